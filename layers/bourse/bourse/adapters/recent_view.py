"""Each account's recently closed orders and recent fills in the live view (Redis): what makes
a read after an answer reflect that answer (docs/api.md, "Read-your-writes").

The API answers once the engine's reply is in Redis, but the record (PostgreSQL) receives the
same events later, through the recorder's pipeline. An order that just closed has left the
open orders, so without these keys a GET order right after a cancel would read the record and
find the order as it was (or not at all). The matching service writes them in the same Lua
script as the open orders and the replies (``matching_service.redis_view``), so there is no
instant where a closed order is in neither place, and none where a reply is readable and the
order's closing is not.

- ``account:{ID}:closed``      hash ``"SYMBOL:orderId"`` -> the order as the record's
  ``OrderRow`` (JSON), for every order that reached a final status;
- ``account:{ID}:closed-seq``  sorted set of the same fields by the seq that closed them: the
  oldest beyond ``CLOSED_CAP`` are dropped from both;
- ``account:{ID}:fills``       list of the account's fills as the record's
  ``AccountTradeRow`` (JSON), oldest first, the newest ``FILLS_CAP`` kept.

Memory is bounded twice: by the caps per account, and by ``RECENT_TTL_S``, which each write
renews, so the keys of an account that stops trading go away. Both are far beyond the
recorder's lag (normally under a second); past them the record answers, as before.
"""

from __future__ import annotations

from typing import Any

import msgspec

from bourse.adapters.redis_book import order_field
from bourse.domain.enums import ExecutionType, Side
from bourse.domain.events import ExecutionReport
from bourse.record.views import AccountTradeRow, OrderRow

CLOSED_CAP = 1_000
FILLS_CAP = 1_000
RECENT_TTL_S = 600


def closed_key(account_id: int) -> str:
    return f"account:{{{account_id}}}:closed"


def closed_index_key(account_id: int) -> str:
    return f"account:{{{account_id}}}:closed-seq"


def fills_key(account_id: int) -> str:
    return f"account:{{{account_id}}}:fills"


_encoder = msgspec.json.Encoder()
_order_decoder = msgspec.json.Decoder(OrderRow)
_fill_decoder = msgspec.json.Decoder(AccountTradeRow)


def _text(member: Any) -> str:
    # The enums are StrEnums: str() is C's str.__str__, the value, at half the cost of
    # ``.value`` (a Python-level descriptor), five times per closed order in the service.
    return str(member)


def closed_order(report: ExecutionReport) -> OrderRow:
    """The order as its final report leaves it: the row the recorder will write for it."""
    o = report.order
    return OrderRow(
        symbol=o.symbol,
        order_id=o.order_id,
        client_order_id=o.client_order_id,
        side=_text(o.side),
        type=_text(o.type),
        time_in_force=None if o.time_in_force is None else _text(o.time_in_force),
        quantity=o.quantity,
        price=o.price,
        stop_price=o.stop_price,
        iceberg_qty=o.iceberg_qty,
        quote_order_qty=o.quote_order_qty,
        stp_mode=_text(o.stp_mode),
        status=_text(report.status),
        executed_qty=report.cum_qty,
        cum_quote=report.cum_quote,
        order_list_id=o.order_list_id,
        is_working=report.is_working,
        working_ts=report.working_ts,
        created_ts=o.created_ts,
        update_ts=report.ts,
    )


def fill(report: ExecutionReport) -> AccountTradeRow | None:
    """The account's side of a trade (a TRADE report), as myTrades shows it; None otherwise."""
    if report.exec_type is not ExecutionType.TRADE:
        return None
    o = report.order
    return AccountTradeRow(
        symbol=o.symbol,
        trade_id=report.trade_id,
        order_id=o.order_id,
        is_buyer=o.side is Side.BUY,
        is_maker=report.is_maker,
        price=report.last_price,
        qty=report.last_qty,
        quote_qty=report.last_quote,
        commission=report.commission,
        commission_asset=report.commission_asset,
        ts=report.ts,
    )


def encode_row(row: OrderRow | AccountTradeRow) -> bytes:
    return _encoder.encode(row)


def read_closed_order(
    client: Any, account_id: int, symbol: str, order_id: int | None, client_order_id: str | None
) -> OrderRow | None:
    """A recently closed order by id, or else the newest with that client id (client ids are
    unique among open orders only, so several closed orders may share one)."""
    if order_id is not None:
        raw = client.hget(closed_key(account_id), order_field(symbol, order_id))
        return None if raw is None else _order_decoder.decode(raw)
    matches = [
        row
        for row in read_closed_orders(client, account_id, symbol)
        if row.client_order_id == client_order_id
    ]
    return max(matches, key=lambda row: row.order_id, default=None)


def read_closed_orders(client: Any, account_id: int, symbol: str) -> list[OrderRow]:
    """The account's recently closed orders of ``symbol``, ascending order id."""
    raw = client.hgetall(closed_key(account_id))
    rows = (_order_decoder.decode(v) for v in raw.values())
    return sorted((r for r in rows if r.symbol == symbol), key=lambda r: r.order_id)


def read_fills(client: Any, account_id: int, symbol: str) -> list[AccountTradeRow]:
    """The account's recent fills of ``symbol``, in trade order."""
    rows = (_fill_decoder.decode(v) for v in client.lrange(fills_key(account_id), 0, -1))
    return sorted((r for r in rows if r.symbol == symbol), key=lambda r: (r.trade_id, r.is_buyer))
