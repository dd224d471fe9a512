"""Engine events -> the user-data events an account's webhooks and queue receive.

The same events and the same Binance payloads as the user data stream (docs/streams.md):
executionReport, listStatus, outboundAccountPosition, balanceUpdate, built by
``bourse.streams.payloads``. Each keeps its event's global ``seq``: a receiver orders and
deduplicates by it. Unlike a WebSocket frame, an outboundAccountPosition is never split (an SQS
message holds 256 KiB: some 1,500 assets changed by one command).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgspec

from bourse.domain.events import AccountBalances, BalanceUpdate, Event, ExecutionReport, ListStatus
from bourse.streams import payloads

_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True, slots=True)
class UserEvent:
    account_id: int
    seq: int
    ts: int  # the command's time (ms), when it happened
    payload: dict[str, Any]


def user_event(ev: Event) -> UserEvent | None:
    """The user-data event of ``ev``, or None when it has none (market data, admin events)."""
    if isinstance(ev, ExecutionReport):
        return UserEvent(ev.order.account_id, ev.seq, ev.ts, payloads.execution_report(ev))
    if isinstance(ev, ListStatus):
        return UserEvent(ev.order_list.account_id, ev.seq, ev.ts, payloads.list_status(ev))
    if isinstance(ev, AccountBalances):
        return UserEvent(ev.account_id, ev.seq, ev.ts, payloads.account_position(ev))
    if isinstance(ev, BalanceUpdate):
        return UserEvent(ev.account_id, ev.seq, ev.ts, payloads.balance_update(ev))
    return None


def user_events(events: Iterable[Event]) -> list[UserEvent]:
    """The user-data events among ``events``, in their order."""
    return [u for u in map(user_event, events) if u is not None]


def body(event: UserEvent, webhook_id: str | None = None) -> bytes:
    """What a delivery carries, byte for byte what a webhook is posted and what is signed:
    ``{"webhookId"?, "seq", "accountId", "event"}`` (webhookId only for webhooks)."""
    envelope: dict[str, Any] = {} if webhook_id is None else {"webhookId": webhook_id}
    envelope.update(seq=event.seq, accountId=event.account_id, event=event.payload)
    return _encode(envelope)
