"""The trade recorder: one MSK batch of bourse.events -> the record, the archive, trade fills,
funding steps and admin alerts.

Per invocation:
1. Decode every record (Powertools batch processing, records grouped by "topic-partition",
   base64 values). A record that does not decode is reported failed on its own
   (``batchItemFailures`` with its partition and offset); the others go on.
2. Write all decoded events in ONE PostgreSQL transaction (``RecordStore``), idempotent by seq;
   inside it, archive the newly applied events to S3: the put runs in a thread beside the
   writes (their envelopes' bytes as they came, gzipped; zlib and the socket release the GIL)
   and is waited for before the commit. Any failure here fails the whole invocation, so the
   event source delivers the batch again: nothing was committed, and what was is skipped by
   seq.
3. Only after the commit, publish the batch's fills to SNS trade-fills. Fills of events that
   were already recorded (a re-delivery) are published again: the message goes out at least
   once even if the previous attempt died between commit and publish, and settlement is
   idempotent per fill. Likewise every FundingUpdate to the funding topic (subscribers
   deduplicate by the ``seq`` attribute) and every admin command refused as unauthorized
   (AdminAction code -1002: forged, unsigned, badly signed or replayed) to the alerts topic.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pybase64
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.kafka_event import KafkaEventRecord

from bourse.adapters.archive import EventArchive
from bourse.adapters.hot_cache import HotCache
from bourse.adapters.notify import SnsPublisher, refused_admin_alert
from bourse.adapters.record_reads import rolling_ticker
from bourse.adapters.record_store import RecordStore, WriteResult
from bourse.domain.event_codec import encode_events
from bourse.domain.events import Event
from bourse.record.delivery import Delivery
from bourse.record.rows import fills_of, funding_of, refused_admin_of
from bourse.settings import Settings


@dataclass
class Recorder:
    store: RecordStore
    archive: EventArchive | None
    fills: SnsPublisher | None
    logger: Logger
    metrics: Metrics
    hot: HotCache | None = None
    funding: SnsPublisher | None = None
    alerts: SnsPublisher | None = None
    # One thread per container for the archive put beside the writes (only one batch is in
    # flight at a time).
    _beside: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="archive"), repr=False
    )

    @classmethod
    def from_settings(cls, settings: Settings, logger: Logger, metrics: Metrics) -> Recorder:
        from bourse.adapters import aws, redis_conn

        return cls(
            store=RecordStore(settings.pg_dsn, settings.recorder_consumer),
            archive=EventArchive(
                aws.client("s3"), settings.archive_bucket, settings.archive_prefix
            ),
            fills=SnsPublisher(
                aws.client("sns"),
                settings.trade_fills_topic_arn,
                threads=1 if settings.aws_endpoint_url else 8,
            ),
            logger=logger,
            metrics=metrics,
            hot=HotCache(redis_conn.connect(settings.redis_url, socket_timeout=2)),
            funding=SnsPublisher(aws.client("sns"), settings.funding_topic_arn),
            alerts=SnsPublisher(aws.client("sns"), settings.alerts_topic_arn),
        )

    def handle(self, event: dict[str, Any]) -> PartialItemFailureResponse:
        delivery = Delivery()

        def on_record(record: KafkaEventRecord) -> None:
            # pybase64 (SIMD): ~4x the base64 module Powertools' decoded_value uses, and
            # strict (validate): a value that is not base64 fails its record alone.
            delivery.add(pybase64.b64decode(record.value, validate=True))

        # An all-poison batch is still a partial failure (each record reported), not an
        # exception that would make the event source retry the good ones forever with them.
        processor = BatchProcessor(EventType.Kafka, raise_on_entire_batch_failure=False)
        with processor(records=_records(event), handler=on_record):
            processor.process()
        response = processor.response()
        failures = response["batchItemFailures"]
        for failure in failures:
            self.logger.error(
                "undecodable record skipped", extra={"record": failure["itemIdentifier"]}
            )
        self.metrics.add_metric("PoisonRecords", MetricUnit.Count, len(failures))
        if delivery.envelopes:
            self._record(delivery.events, delivery)
        return response

    def _record(self, events: list[Event], delivery: Delivery | None = None) -> None:
        """Record ``events``; ``delivery``, the records they were decoded from, gives the
        archive its lines (without it, as in tests handing in events, they are encoded)."""
        if delivery is None:
            delivery = Delivery()
            delivery.add(encode_events(events))
        alongside: Callable[[int], Callable[[], None]] | None = None
        if self.archive is not None:
            put = self.archive.put_lines

            def archive(mark: int) -> None:
                put(*delivery.lines_after(mark))

            def alongside(mark: int) -> Callable[[], None]:
                future = self._beside.submit(archive, mark)

                def finish() -> None:
                    future.result()  # raises the put's error: the batch rolls back

                return finish

        result = self.store.write(events, alongside=alongside, seqs=delivery.seqs())
        self.logger.info(
            "batch recorded",
            extra={
                "events": result.received,
                "applied": result.applied,
                "firstSeq": result.first_seq,
                "seq": result.last_seq,
                "gaps": result.gaps,
            },
        )
        if result.gaps:
            self.logger.error(
                "seq gap: events missing from the record", extra={"gaps": result.gaps}
            )
        self.metrics.add_metric("EventsRecorded", MetricUnit.Count, result.applied)
        self.metrics.add_metric("EventsSkipped", MetricUnit.Count, result.received - result.applied)
        self.metrics.add_metric("SeqGaps", MetricUnit.Count, len(result.gaps))
        if self.hot is not None:
            self._refresh_hot(result)
        if self.fills is not None:
            published = self.fills.publish_fills(fills_of(events))
            self.metrics.add_metric("FillsPublished", MetricUnit.Count, published)
        if self.funding is not None:
            published = self.funding.publish_funding(funding_of(events))
            self.metrics.add_metric("FundingPublished", MetricUnit.Count, published)
        self._alert_refused(events)

    def _alert_refused(self, events: list[Event]) -> None:
        """An admin command refused as unauthorized: someone who is not the admin plane wrote
        onto bourse.commands, or replayed a signed command. Logged and alerted every time the
        batch is delivered (at least once; the alert carries the seq)."""
        refused = refused_admin_of(events)
        for ev in refused:
            subject, message = refused_admin_alert(ev)
            self.logger.error(subject, extra={"seq": ev.seq, "principal": ev.principal})
            if self.alerts is not None:
                self.alerts.publish(
                    subject, message, {"kind": str(message["kind"]), "seq": str(ev.seq)}
                )
        self.metrics.add_metric("AdminCommandsRefused", MetricUnit.Count, len(refused))

    def _refresh_hot(self, result: WriteResult) -> None:
        """Newest klines and 24 h tickers of the symbols just traded, into Redis. A cache:
        a failure is logged and counted, never fails the batch (the record is committed)."""
        assert self.hot is not None
        try:
            conn = self.store.connection()
            tickers = [rolling_ticker(conn, s, ts) for s, ts in sorted(result.traded.items())]
            self.hot.write(result.klines, tickers)
        except Exception:
            self.logger.exception("hot cache not refreshed")
            self.metrics.add_metric("HotCacheFailures", MetricUnit.Count, 1)


def _records(event: dict[str, Any]) -> list[dict[str, Any]]:
    """The MSK event's records, flattened from {"topic-partition": [records]} in order."""
    out: list[dict[str, Any]] = []
    for records in (event.get("records") or {}).values():
        out.extend(records)
    return out
