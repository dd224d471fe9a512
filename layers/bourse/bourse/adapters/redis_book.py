"""The live market view in Redis: key names and readers (the matching service is the writer).

Every key carries a hash tag so it lands on one slot of a Redis cluster: all keys of a symbol
share ``{SYMBOL}``, a reply list has its own ``{requestId}``.

- ``book:{SYM}``   JSON ``{"lastUpdateId": u, "offset": o, "bids": [[price, qty], ...],
  "asks": [...]}``: up to ``BOOK_LEVELS`` displayed levels per side (bids descending, asks
  ascending), integers in 1e-8 units. ``lastUpdateId`` is the ``final_update_id`` of the last
  ``DepthUpdate`` the book includes, so a client can stitch it to the diff stream as Binance
  documents. ``offset`` is the commands offset the view reflects.
- ``bbo:{SYM}``    JSON ``{"lastUpdateId", "bidPrice", "bidQty", "askPrice", "askQty"}`` (0 when a
  side is empty): cheap for bookTicker.
- ``trade:{SYM}``  the last ``Trade`` event of the symbol (event codec envelope).
- ``reply:{requestId}``  a list holding the command's ``Reply`` event (event codec envelope),
  pushed once the batch's Kafka transaction has committed; it expires after the reply TTL.
- ``symbols:{exchange}``  hash: symbol -> its ``SymbolSpec`` (JSON), from ``SymbolUpdated``;
  what exchangeInfo lists.
- ``account:{ID}:balances``  hash: asset -> JSON ``[free, locked]`` (absent: zero), from
  ``AccountBalances`` (which carries absolute values, so the view never adds anything up).
- ``account:{ID}:orders``  hash: ``"SYMBOL:orderId"`` -> the order as an ``OrderResult`` (JSON,
  no fills) while it is open (resting or an untriggered stop), from ``ExecutionReport``; a
  report with a final status removes it. openOrders and GET order read it. The same write
  puts the closed order in ``account:{ID}:closed`` and the account's fills in
  ``account:{ID}:fills`` (``bourse.adapters.recent_view``: read-your-writes).
- ``account:{ID}:fees``  JSON ``[maker_rate, taker_rate]`` once set (absent: the symbol's
  commissions apply).
- ``accounts:{exchange}``  hash: account id -> ``"ACTIVE"`` | ``"FROZEN"``, every created
  account, from ``AccountUpdated``.
- ``matching:{<commands topic>}:offset``  the commands offset the whole view reflects; writes
  carrying an older offset are ignored (a fenced instance cannot roll the view back).
"""

from __future__ import annotations

from typing import Any

import msgspec

from bourse.domain.enums import OrderStatus
from bourse.domain.event_codec import decode_event
from bourse.domain.events import Event, ExecutionReport, OrderResult, Trade
from bourse.domain.symbols import SymbolSpec

BOOK_LEVELS = 5_000  # GET /api/v3/depth?limit=5000, Binance's largest


def book_key(symbol: str) -> str:
    return f"book:{{{symbol}}}"


def bbo_key(symbol: str) -> str:
    return f"bbo:{{{symbol}}}"


def trade_key(symbol: str) -> str:
    return f"trade:{{{symbol}}}"


def reply_key(request_id: str) -> str:
    return f"reply:{{{request_id}}}"


def offset_key(commands_topic: str) -> str:
    return f"matching:{{{commands_topic}}}:offset"


SYMBOLS_KEY = "symbols:{exchange}"
ACCOUNTS_KEY = "accounts:{exchange}"
# A report with one of these statuses ends the order: it leaves the open-orders hash.
FINAL_STATUSES = frozenset(
    {
        OrderStatus.FILLED,
        OrderStatus.CANCELED,
        OrderStatus.REJECTED,
        OrderStatus.EXPIRED,
        OrderStatus.EXPIRED_IN_MATCH,
    }
)


def balances_key(account_id: int) -> str:
    return f"account:{{{account_id}}}:balances"


def orders_key(account_id: int) -> str:
    return f"account:{{{account_id}}}:orders"


def fees_key(account_id: int) -> str:
    return f"account:{{{account_id}}}:fees"


def order_field(symbol: str, order_id: int) -> str:
    return f"{symbol}:{order_id}"


_encoder = msgspec.json.Encoder()
_order_decoder = msgspec.json.Decoder(OrderResult)
_spec_decoder = msgspec.json.Decoder(SymbolSpec)
_pair_decoder = msgspec.json.Decoder(tuple[int, int])


def encode_order(result: OrderResult) -> bytes:
    return _encoder.encode(result)


def order_from_report(report: ExecutionReport) -> OrderResult:
    """The order as of this report, in the shape RESULT responses and openOrders use."""
    return OrderResult(
        order=report.order,
        status=report.status,
        executed_qty=report.cum_qty,
        cum_quote=report.cum_quote,
        working_ts=report.working_ts,
        fills=(),
    )


def encode_spec(spec: SymbolSpec) -> bytes:
    return _encoder.encode(spec)


def encode_pair(a: int, b: int) -> bytes:
    return _encoder.encode((a, b))


class Book(msgspec.Struct, frozen=True):
    lastUpdateId: int  # the wire name, as Binance spells it
    offset: int
    bids: list[tuple[int, int]]
    asks: list[tuple[int, int]]


_book_decoder = msgspec.json.Decoder(Book)


def read_book(client: Any, symbol: str, limit: int = 100) -> Book | None:
    raw = client.get(book_key(symbol))
    if raw is None:
        return None
    book = _book_decoder.decode(raw)
    if limit >= len(book.bids) and limit >= len(book.asks):
        return book
    return Book(book.lastUpdateId, book.offset, book.bids[:limit], book.asks[:limit])


class Bbo(msgspec.Struct, frozen=True):
    lastUpdateId: int
    bidPrice: int
    bidQty: int
    askPrice: int
    askQty: int


_bbo_decoder = msgspec.json.Decoder(Bbo)


def read_bbo(client: Any, symbol: str) -> Bbo | None:
    raw = client.get(bbo_key(symbol))
    return None if raw is None else _bbo_decoder.decode(raw)


def read_last_price(client: Any, symbol: str) -> int | None:
    """The price of the symbol's last trade (None before its first trade)."""
    raw = client.get(trade_key(symbol))
    if raw is None:
        return None
    trade = decode_event(raw)
    return trade.price if isinstance(trade, Trade) else None


def read_reply(client: Any, request_id: str, timeout_s: float) -> Event | None:
    """Wait up to ``timeout_s`` for a command's reply (BLPOP: each reply is read once)."""
    got = client.blpop([reply_key(request_id)], timeout=timeout_s)
    return None if got is None else decode_event(got[1])


def read_symbols(client: Any) -> dict[str, SymbolSpec]:
    """Every listed symbol, sorted by name (a stable order for exchangeInfo)."""
    raw = client.hgetall(SYMBOLS_KEY)
    specs = (_spec_decoder.decode(v) for v in raw.values())
    return {spec.symbol: spec for spec in sorted(specs, key=lambda s: s.symbol)}


def read_symbol(client: Any, symbol: str) -> SymbolSpec | None:
    raw = client.hget(SYMBOLS_KEY, symbol)
    return None if raw is None else _spec_decoder.decode(raw)


def read_balances(client: Any, account_id: int) -> dict[str, tuple[int, int]]:
    """asset -> (free, locked), assets sorted; assets never held are absent."""
    raw = client.hgetall(balances_key(account_id))
    pairs = {k.decode(): _pair_decoder.decode(v) for k, v in raw.items()}
    return dict(sorted(pairs.items()))


def read_fees(client: Any, account_id: int) -> tuple[int, int] | None:
    raw = client.get(fees_key(account_id))
    return None if raw is None else _pair_decoder.decode(raw)


def read_accounts(client: Any) -> dict[int, str]:
    """Every created account, ascending id -> "ACTIVE" | "FROZEN"."""
    raw = client.hgetall(ACCOUNTS_KEY)
    return dict(sorted((int(k), v.decode()) for k, v in raw.items()))


def read_account_status(client: Any, account_id: int) -> str | None:
    """ "ACTIVE" | "FROZEN", or None for an account never created."""
    raw = client.hget(ACCOUNTS_KEY, str(account_id))
    return None if raw is None else str(raw.decode())


def read_open_orders(client: Any, account_id: int, symbol: str | None = None) -> list[OrderResult]:
    """The account's open orders (of one symbol, or all), by symbol then ascending order id."""
    raw = client.hgetall(orders_key(account_id))
    orders = [_order_decoder.decode(v) for v in raw.values()]
    if symbol is not None:
        orders = [o for o in orders if o.order.symbol == symbol]
    orders.sort(key=lambda o: (o.order.symbol, o.order.order_id))
    return orders


def read_open_order(client: Any, account_id: int, symbol: str, order_id: int) -> OrderResult | None:
    raw = client.hget(orders_key(account_id), order_field(symbol, order_id))
    return None if raw is None else _order_decoder.decode(raw)
