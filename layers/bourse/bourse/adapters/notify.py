"""SNS publishers: trade fills (for settlement and other subscribers) and alerts.

A fill message is one side of one trade, JSON with integer amounts in 1e-8 units, and carries
the attributes ``accountId``, ``symbol`` and ``side`` so subscribers can filter on them (the
settlement queue's subscription delivers raw messages, attributes included).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bourse.record.rows import Fill

_BATCH = 10  # SNS PublishBatch's limit


def fill_message(fill: Fill) -> dict[str, Any]:
    return {
        "seq": fill.seq,
        "ts": fill.ts,
        "symbol": fill.symbol,
        "tradeId": fill.trade_id,
        "orderId": fill.order_id,
        "accountId": fill.account_id,
        "side": fill.side,
        "isMaker": fill.is_maker,
        "price": fill.price,
        "qty": fill.qty,
        "quoteQty": fill.quote_qty,
        "commission": fill.commission,
        "commissionAsset": fill.commission_asset,
    }


def _entry(fill: Fill) -> dict[str, Any]:
    return {
        "Id": str(fill.seq),
        "Message": json.dumps(fill_message(fill), separators=(",", ":")),
        "MessageAttributes": {
            "accountId": {"DataType": "Number", "StringValue": str(fill.account_id)},
            "symbol": {"DataType": "String", "StringValue": fill.symbol},
            "side": {"DataType": "String", "StringValue": fill.side},
        },
    }


class PublishError(RuntimeError):
    """SNS refused some entries; the batch must be retried (subscribers are idempotent)."""


class SnsPublisher:
    def __init__(self, sns: Any, topic_arn: str, threads: int = 1) -> None:
        if not topic_arn:
            raise ValueError("no topic ARN configured")
        self._sns = sns
        self._topic_arn = topic_arn
        # PublishBatch takes 10 messages; a batch of thousands of fills is hundreds of calls,
        # which on AWS run side by side (boto3 clients are thread-safe). moto server handles
        # one request at a time and slows down under concurrency, so locally threads=1.
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="sns")

    def _publish(self, entries: list[dict[str, Any]]) -> None:
        reply = self._sns.publish_batch(
            TopicArn=self._topic_arn, PublishBatchRequestEntries=entries
        )
        failed = reply.get("Failed") or []
        if failed:
            raise PublishError(f"{len(failed)} messages refused, first: {failed[0]}")

    def publish_fills(self, fills: Sequence[Fill]) -> int:
        chunks = [[_entry(f) for f in fills[i : i + _BATCH]] for i in range(0, len(fills), _BATCH)]
        for future in [self._pool.submit(self._publish, chunk) for chunk in chunks]:
            future.result()
        return len(fills)

    def publish(self, subject: str, message: dict[str, Any]) -> None:
        self._sns.publish(
            TopicArn=self._topic_arn, Subject=subject[:100], Message=json.dumps(message)
        )
