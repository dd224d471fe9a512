"""The webhook sender: SQS FIFO batch of deliveries -> each POSTed to its webhook's URL,
signed with the webhook's secret (docs/webhooks.md).

A delivery that fails (a status other than 2xx, a timeout, a refused connection) stays in the
queue: the batch answers it in ``batchItemFailures`` and its visibility is set to the retry's
delay, ``webhook_retry_base_seconds`` doubling with every receive up to
``webhook_retry_max_seconds`` (bourse.webhooks.rules.backoff_seconds). The later messages of
the same webhook in the batch are not attempted (SqsFifoPartialProcessor, skip_group_on_error)
and are made visible again at once: FIFO holds a group while any of its messages is in flight,
so they come back only with, and after, the failed one. (Left in flight with a delay of their
own, they would be one more thing whose order depends on clocks; and moto's FIFO, locally,
hands a group's messages out of order when several become visible together.) Other webhooks'
messages go on.

After the queue's maxReceiveCount receives a message moves to the dead-letter queue (and with
it, the same receive later, the messages queued behind it): from then on the webhook's later
events are delivered while those wait there; docs/webhooks.md says how to replay them.

A webhook removed meanwhile (or no longer ACTIVE) has its deliveries dropped.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from bourse.settings import Settings
from bourse.webhooks import signing
from bourse.webhooks.rules import backoff_seconds

# How long a webhook's URL and secret are kept in the container: a removed webhook stops
# receiving within this long.
REGISTRATION_TTL_S = 30.0


class Deliveries(Protocol):
    """A webhook's URL and secret (bourse.adapters.webhooks.Deliveries)."""

    def delivery(self, webhook_id: str) -> tuple[Any, str] | None: ...


Post = Callable[[str, bytes, dict[str, str], float], int]  # url, body, headers, timeout
RetryLater = Callable[[str, str, int], None]  # queue arn, receipt handle, seconds


@dataclass
class WebhookSender:
    deliveries: Deliveries
    post: Post
    retry_later: RetryLater
    logger: Logger
    metrics: Metrics
    timeout_s: float = 10.0
    retry_base_s: int = 2
    retry_max_s: int = 900
    clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000
    monotonic: Callable[[], float] = time.monotonic
    _cache: dict[str, tuple[float, tuple[str, str] | None]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def from_settings(cls, settings: Settings, logger: Logger, metrics: Metrics) -> WebhookSender:
        from bourse.adapters import webhook_http, webhook_queues
        from bourse.adapters.webhooks import Deliveries, webhook_table

        return cls(
            deliveries=webhook_table(Deliveries),
            post=webhook_http.post,
            retry_later=webhook_queues.retry_later,
            logger=logger,
            metrics=metrics,
            timeout_s=float(settings.webhook_timeout_seconds),
            retry_base_s=settings.webhook_retry_base_seconds,
            retry_max_s=settings.webhook_retry_max_seconds,
        )

    def _webhook(self, webhook_id: str) -> tuple[str, str] | None:
        """(url, secret) of an ACTIVE webhook, kept REGISTRATION_TTL_S."""
        now = self.monotonic()
        with self._lock:
            cached = self._cache.get(webhook_id)
        if cached is not None and now - cached[0] < REGISTRATION_TTL_S:
            return cached[1]
        found = self.deliveries.delivery(webhook_id)
        value = None if found is None else (str(found[0].url), found[1])
        with self._lock:
            self._cache[webhook_id] = (now, value)
        return value

    def deliver(self, record: SQSRecord) -> None:
        raw = record.body.encode()
        message = json.loads(raw)
        webhook_id, seq = str(message["webhookId"]), int(message["seq"])
        webhook = self._webhook(webhook_id)
        if webhook is None:
            self.logger.info("webhook gone: delivery dropped",
                             extra={"webhookId": webhook_id, "seq": seq})  # fmt: skip
            self.metrics.add_metric("WebhookDeliveriesDropped", MetricUnit.Count, 1)
            return
        url, secret = webhook
        attempt = int(record.attributes.approximate_receive_count or 1)
        headers = signing.headers(webhook_id, secret, seq, self.clock_ms(), raw, attempt)
        try:
            self.post(url, raw, headers, self.timeout_s)
        except Exception as exc:
            failure = {"webhookId": webhook_id, "seq": seq, "attempt": attempt, "error": str(exc)}
            self.logger.warning("delivery failed", extra=failure)
            self.metrics.add_metric("WebhookDeliveryFailures", MetricUnit.Count, 1)
            raise
        self.metrics.add_metric("WebhookDeliveries", MetricUnit.Count, 1)

    def handle(self, event: Mapping[str, Any]) -> dict[str, Any]:
        processor = SqsFifoPartialProcessor(skip_group_on_error=True)
        # Every message failing is an answer like any other (each gets its retry delay), not
        # an error of the invocation, which would bring them back after the full visibility
        # timeout instead.
        processor.raise_on_entire_batch_failure = False
        records = list(event.get("Records") or [])
        with processor(records, self.deliver):
            processor.process()
        self._delay(processor.fail_messages)
        return dict(processor.response())

    def _delay(self, failed: list[Any]) -> None:
        """Each failed group's first message (the one that failed) invisible for its retry
        delay; the group's others visible at once (the first holds the group)."""
        seen: set[str] = set()
        for record in failed:
            group = str(record.attributes.message_group_id or "")
            delay = 0
            if group not in seen:
                seen.add(group)
                count = int(record.attributes.approximate_receive_count or 1)
                delay = backoff_seconds(count, self.retry_base_s, self.retry_max_s)
            try:
                self.retry_later(record.event_source_arn, record.receipt_handle, delay)
            except Exception:
                # It comes back after the queue's visibility timeout instead: later, not lost.
                self.logger.warning("retry delay not set", exc_info=True,
                                    extra={"messageId": record.message_id})  # fmt: skip
