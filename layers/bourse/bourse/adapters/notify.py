"""SNS publishers: trade fills (for settlement and other subscribers), funding steps (for
downstream systems: wallets, accounting) and alerts.

A fill message is one side of one trade, JSON with integer amounts in 1e-8 units, and carries
the attributes ``accountId``, ``symbol`` and ``side`` so subscribers can filter on them (the
settlement queue's subscription delivers raw messages, attributes included).

A funding message is one step of one deposit or withdrawal (a FundingUpdate event), same
conventions, with the attributes ``seq`` (unique per message: the deduplication key of an
at-least-once delivery), ``fundingId``, ``kind``, ``status``, ``accountId`` and ``asset``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bourse.domain.events import AdminAction, FundingUpdate
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


def funding_message(ev: FundingUpdate) -> dict[str, Any]:
    return {
        "seq": ev.seq,
        "ts": ev.ts,
        "fundingId": ev.funding_id,
        "kind": ev.kind,
        "status": ev.status,
        "accountId": ev.account_id,
        "asset": ev.asset,
        "amount": ev.amount,
        "txId": ev.tx_id,
    }


def _funding_entry(ev: FundingUpdate) -> dict[str, Any]:
    message = funding_message(ev)
    attributes = {
        "seq": ("Number", str(ev.seq)),
        "fundingId": ("String", ev.funding_id),
        "kind": ("String", ev.kind),
        "status": ("String", ev.status),
        "accountId": ("Number", str(ev.account_id)),
        "asset": ("String", ev.asset),
    }
    return {
        "Id": str(ev.seq),
        "Message": json.dumps(message, separators=(",", ":")),
        # SNS refuses an empty attribute value.
        "MessageAttributes": {
            k: {"DataType": t, "StringValue": v} for k, (t, v) in attributes.items() if v
        },
    }


def _subject(text: str) -> str:
    """SNS subjects are at most 100 printable ASCII characters on one line; an alert's text
    comes partly from the command (a forged one may claim anything), and a refused publish
    would fail the batch on every retry."""
    clean = "".join(c if " " <= c <= "~" else "?" for c in text).strip()
    return clean[:100] or "alert"


def refused_admin_alert(ev: AdminAction) -> tuple[str, dict[str, Any]]:
    """(subject, message) of the alert for an admin command refused as unauthorized (-1002):
    a forged, unsigned, badly signed or replayed command reached bourse.commands. Shaped as
    settlement's alerts (``kind`` first, then what identifies the case)."""
    return (
        f"refused admin command {ev.command} {ev.request_id}",
        {
            "kind": "ADMIN_COMMAND_REFUSED",
            "seq": ev.seq,
            "ts": ev.ts,
            "requestId": ev.request_id,
            "command": ev.command,
            "principal": ev.principal,
            "code": ev.code,
            "msg": ev.msg,
            "detail": ev.detail,
        },
    )


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

    def _publish_entries(self, entries: list[dict[str, Any]]) -> int:
        chunks = [entries[i : i + _BATCH] for i in range(0, len(entries), _BATCH)]
        for future in [self._pool.submit(self._publish, chunk) for chunk in chunks]:
            future.result()
        return len(entries)

    def publish_fills(self, fills: Sequence[Fill]) -> int:
        return self._publish_entries([_entry(f) for f in fills])

    def publish_funding(self, updates: Sequence[FundingUpdate]) -> int:
        return self._publish_entries([_funding_entry(u) for u in updates])

    def publish(
        self, subject: str, message: dict[str, Any], attributes: dict[str, str] | None = None
    ) -> None:
        """One message; ``attributes`` (all String) let subscribers filter and deduplicate."""
        extra: dict[str, Any] = {}
        if attributes:
            extra["MessageAttributes"] = {
                k: {"DataType": "String", "StringValue": v} for k, v in attributes.items() if v
            }
        self._sns.publish(
            TopicArn=self._topic_arn, Subject=_subject(subject), Message=json.dumps(message),
            **extra,
        )  # fmt: skip
