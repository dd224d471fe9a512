"""The webhook dispatcher: one MSK batch of bourse.events -> the user-data events of accounts
with a webhook or a queue -> SQS FIFO messages, idempotently by seq (docs/webhooks.md).

Per invocation:
1. Decode the records (one that does not decode is logged, counted and skipped, as the
   broadcaster does; the recorder reports its seqs as a gap).
2. Read the registrations' version (one consistent GetItem); reload the targets only when it
   moved (a consistent Scan). An event sequenced after a registration was answered is in a
   batch read after it, so a new webhook misses nothing from then on.
3. ``bourse.webhooks.dispatch.plan``: each target's messages above its high-water mark.
4. Send each target's messages, in order (webhooks: the delivery queue, group = webhook id;
   queues: the account's queue, group = account id), then raise its high-water mark.

A failure raises: the MSK trigger delivers the batch again, and step 3 and the deduplication
ids skip what was already enqueued. Targets are sent in parallel; one target's messages are
sent by one thread, in seq order.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from bourse.consumers.msk_records import records
from bourse.domain.event_codec import EventDecodeError, decode_events
from bourse.domain.events import Event
from bourse.settings import Settings
from bourse.webhooks.dispatch import WEBHOOK, Outgoing, Target, plan
from bourse.webhooks.events import user_events


class Directory(Protocol):
    """The registrations (bourse.adapters.webhooks.Targets)."""

    def version(self) -> int: ...

    def targets(self) -> dict[int, list[Target]]: ...

    def advance(self, target_id: str, seq: int) -> None: ...


Send = Callable[[str, Sequence[Outgoing]], None]  # (queue url, messages)


@dataclass
class Dispatcher:
    directory: Directory
    send: Send
    delivery_queue_url: Callable[[], str]
    logger: Logger
    metrics: Metrics
    pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(8))
    _version: int = -1
    _targets: dict[int, list[Target]] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings, logger: Logger, metrics: Metrics) -> Dispatcher:
        from bourse.adapters import webhook_queues
        from bourse.adapters.webhooks import Targets, webhook_table

        name = settings.webhook_queue_name
        return cls(
            directory=webhook_table(Targets),
            send=webhook_queues.send,
            delivery_queue_url=lambda: webhook_queues.queue_url(name),
            logger=logger,
            metrics=metrics,
        )

    def decode(self, event: Mapping[str, Any]) -> list[Event]:
        events: list[Event] = []
        for partition, offset, value in records(event):
            try:
                events.extend(decode_events(value))
            except EventDecodeError:
                self.metrics.add_metric("WebhookUndecodableRecords", MetricUnit.Count, 1)
                self.logger.exception(
                    "undecodable record skipped", extra={"partition": partition, "offset": offset}
                )
        return events

    def targets(self) -> dict[int, list[Target]]:
        version = self.directory.version()
        if version != self._version:
            self._targets = self.directory.targets()
            self._version = version
        return self._targets

    def handle(self, event: Mapping[str, Any]) -> dict[str, Any]:
        started = time.perf_counter()
        mine = user_events(self.decode(event))
        work = plan(mine, self.targets()) if mine else []
        try:
            for sent in self.pool.map(self._deliver, work):
                self._remember(sent)
        except Exception:
            # Some targets' marks may have moved in the table and not here: read them again.
            self._version = -1
            raise
        self.metrics.add_metric(
            "WebhookMessagesEnqueued", MetricUnit.Count, sum(len(m) for _, m in work)
        )
        self.metrics.add_metric(
            "WebhookDispatchSeconds", MetricUnit.Seconds, time.perf_counter() - started
        )
        return {"batchItemFailures": []}

    def _deliver(self, item: tuple[Target, list[Outgoing]]) -> Target:
        target, messages = item
        url = self.delivery_queue_url() if target.kind == WEBHOOK else target.queue_url
        self.send(url, messages)
        last = messages[-1].seq
        self.directory.advance(target.target_id, last)
        self.logger.debug(
            "enqueued", extra={"target": target.target_id, "count": len(messages), "seq": last}
        )
        return replace(target, high_water=last)

    def _remember(self, target: Target) -> None:
        """The container's copy of the mark follows what was sent (no reload needed)."""
        listed = self._targets.get(target.account_id, [])
        self._targets[target.account_id] = [
            target if t.target_id == target.target_id else t for t in listed
        ]
