"""Settlement: SQS batch of trade-fill messages -> each fill reconciled with the ledger once.

Each message is one fill (bourse.adapters.notify.fill_message). A message that does not parse,
or whose trade is not in the record, fails on its own (``batchItemFailures``): SQS makes it
visible again after the visibility timeout and, after five receives, moves it to the DLQ. A
fill that does not reconcile is a break: written to ``settlement_breaks`` and published to the
alerts topic in the same step, before its verdict commits.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from bourse.adapters.notify import SnsPublisher
from bourse.adapters.settlement_store import SettlementStore
from bourse.record.rows import Fill
from bourse.record.settlement import fill_from_message
from bourse.settings import Settings


@dataclass
class Settlement:
    store: SettlementStore
    alerts: SnsPublisher | None
    logger: Logger
    metrics: Metrics

    @classmethod
    def from_settings(cls, settings: Settings, logger: Logger, metrics: Metrics) -> Settlement:
        from bourse.adapters import aws

        return cls(
            SettlementStore(settings.pg_dsn),
            SnsPublisher(aws.client("sns"), settings.alerts_topic_arn),
            logger,
            metrics,
        )

    def _alert(self, fill: Fill, problems: list[str]) -> None:
        self.logger.error(
            "settlement break",
            extra={"seq": fill.seq, "symbol": fill.symbol, "tradeId": fill.trade_id,
                   "accountId": fill.account_id, "problems": problems},
        )  # fmt: skip
        if self.alerts is not None:
            self.alerts.publish(
                f"settlement break {fill.symbol} trade {fill.trade_id}",
                {
                    "kind": "SETTLEMENT_BREAK",
                    "symbol": fill.symbol,
                    "tradeId": fill.trade_id,
                    "accountId": fill.account_id,
                    "side": fill.side,
                    "seq": fill.seq,
                    "problems": problems,
                },
            )

    def handle(self, event: dict[str, Any]) -> PartialItemFailureResponse:
        counts = {"settled": 0, "breaks": 0, "duplicates": 0}

        def on_record(record: SQSRecord) -> None:
            fill = fill_from_message(json.loads(record.body))
            problems = self.store.settle(fill, on_break=self._alert)
            if problems is None:
                counts["duplicates"] += 1
            elif problems:
                counts["breaks"] += 1
            else:
                counts["settled"] += 1

        processor = BatchProcessor(EventType.SQS, raise_on_entire_batch_failure=False)
        with processor(records=event.get("Records", []), handler=on_record):
            processor.process()
        response = processor.response()
        failed = len(response["batchItemFailures"])
        self.metrics.add_metric("FillsSettled", MetricUnit.Count, counts["settled"])
        self.metrics.add_metric("SettlementBreaks", MetricUnit.Count, counts["breaks"])
        self.metrics.add_metric("FillsAlreadySettled", MetricUnit.Count, counts["duplicates"])
        self.metrics.add_metric("FillsFailed", MetricUnit.Count, failed)
        self.logger.info("settlement batch", extra={**counts, "failed": failed})
        return response
