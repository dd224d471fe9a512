"""What the API handlers need from the outside world, as protocols.

Handlers take these as arguments, so unit tests pass in-memory fakes and the Lambda
entrypoints pass the live adapters (``bourse.adapters.live_api``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from bourse.adapters.api_keys import ApiKey
from bourse.adapters.redis_book import Bbo, Book
from bourse.api.rate_limits import IpUsage, Limits, OrderCounts
from bourse.domain.commands import Command
from bourse.domain.events import OrderResult, Reply
from bourse.domain.symbols import SymbolSpec
from bourse.record.tickers import Ticker
from bourse.record.views import AccountTradeRow, AggTradeRow, KlineRow, OrderRow, TradeRow


class MarketView(Protocol):
    """The matching service's live view (Redis)."""

    def symbols(self) -> dict[str, SymbolSpec]: ...

    def symbol(self, name: str) -> SymbolSpec | None: ...

    def is_listed(self, name: str) -> bool:
        """Whether the view lists ``name`` (a delisted market stays listed, in BREAK)."""
        ...

    def book(self, symbol: str, limit: int) -> Book | None: ...

    def bbo(self, symbol: str) -> Bbo | None: ...

    def last_price(self, symbol: str) -> int | None: ...

    def balances(self, account_id: int) -> dict[str, tuple[int, int]]: ...

    def fees(self, account_id: int) -> tuple[int, int] | None: ...

    def open_orders(self, account_id: int, symbol: str | None) -> list[OrderResult]: ...


class RecentView(Protocol):
    """Each account's recently closed orders and fills in the live view
    (``bourse.adapters.recent_view``): newer than the record, which lags the engine."""

    def closed_order(
        self, account_id: int, symbol: str, order_id: int | None, client_order_id: str | None
    ) -> OrderRow | None:
        """By id, or else the newest recently closed order with that client id."""
        ...

    def closed_orders(self, account_id: int, symbol: str) -> list[OrderRow]: ...

    def fills(self, account_id: int, symbol: str) -> list[AccountTradeRow]:
        """In trade order."""
        ...


class CommandBus(Protocol):
    """Sends a command to the sequencer and waits for its reply."""

    def execute(self, command: Command) -> Reply | None:
        """The command's ``Reply``, or None when it did not come within the timeout (the
        command may still execute: Binance's "execution status unknown")."""
        ...

    def wait(self, request_id: str) -> Reply | None:
        """The reply of a command sent earlier (by a request that timed out)."""
        ...


class Idempotency(Protocol):
    """newClientOrderId idempotency (``bourse.adapters.idempotency``)."""

    def claim(self, key: str, request_id: str) -> Any:
        """None when this request now owns ``key``; else the earlier claim, with
        ``request_id``, ``status`` and ``body`` (the latter two None until answered)."""
        ...

    def reclaim(self, key: str, old_request_id: str, request_id: str) -> Any:
        """Take ``key`` over from the claim of ``old_request_id`` (answered, its order no longer
        open): None when this request now owns it; else the claim as it now is (another
        request took it first)."""
        ...

    def complete(self, key: str, status: int, body: str) -> None: ...


class KeyStore(Protocol):
    def get(self, api_key: str) -> ApiKey | None: ...


class Clock(Protocol):
    def __call__(self) -> int:
        """Milliseconds since the epoch."""
        ...


class HistoryView(Protocol):
    """The durable record (PostgreSQL, docs/record.md), read for the history endpoints; the
    implementation may answer from the record's hot copies in Redis where they are exact.

    Lists come in ascending key order. ``newest``: the last ``limit`` rows that match rather
    than the first. Times are inclusive bounds in ms; ``None`` leaves a bound open.
    """

    def trades(self, symbol: str, *, from_id: int | None, limit: int) -> list[TradeRow]:
        """Trades with id >= ``from_id``, or the newest ``limit`` when it is None."""
        ...

    def agg_trades(
        self,
        symbol: str,
        *,
        from_id: int | None,
        start: int | None,
        end: int | None,
        limit: int,
        newest: bool,
    ) -> list[AggTradeRow]: ...

    def klines(self, symbol: str, interval: str, lo: int, hi: int) -> list[KlineRow]:
        """Stored klines of ``interval`` opening in [lo, hi] (only traded ones are stored)."""
        ...

    def kline_before(self, symbol: str, interval: str, before: int) -> KlineRow | None:
        """The newest stored kline opening before ``before`` (for the close of empty ones)."""
        ...

    def first_kline_open(self, symbol: str, interval: str) -> int | None: ...

    def ticker(self, symbol: str, start: int, end: int) -> Ticker:
        """The trades of [start, end] folded into one ticker."""
        ...

    def last_trade_before(self, symbol: str, before: int) -> TradeRow | None: ...

    def orders(
        self,
        account_id: int,
        symbol: str,
        *,
        from_id: int | None,
        start: int | None,
        end: int | None,
        limit: int,
        newest: bool,
    ) -> list[OrderRow]: ...

    def order(
        self, account_id: int, symbol: str, order_id: int | None, client_order_id: str | None
    ) -> OrderRow | None:
        """By id, or else the newest order with that client id (ids repeat once closed)."""
        ...

    def account_trades(
        self,
        account_id: int,
        symbol: str,
        *,
        order_id: int | None,
        from_id: int | None,
        start: int | None,
        end: int | None,
        limit: int,
        newest: bool,
    ) -> list[AccountTradeRow]: ...


class RateLimiter(Protocol):
    """The rate-limit counters (``bourse.adapters.rate_limit_store``). The counting calls
    answer None when the store is unreachable: the request then goes through (fails open)."""

    @property
    def limits(self) -> Limits: ...

    def count(
        self, ip: str | None, weight: int, account_id: int | None, now_ms: int
    ) -> tuple[IpUsage | None, OrderCounts | None] | None:
        """The IP's weight and the account's orders, each when given, counted together (one
        round trip): the IP's usage and the account's counts after."""
        ...

    def add_weight(self, ip: str, weight: int, now_ms: int) -> IpUsage | None: ...

    def add_order(self, account_id: int, now_ms: int) -> OrderCounts | None: ...

    def ban(self, ip: str, until_ms: int, bans: int, now_ms: int) -> int:
        """Record a ban; when it ends (another container's, if it banned first)."""
        ...

    def order_counts(self, account_id: int, now_ms: int) -> OrderCounts: ...


class ListenKeyStore(Protocol):
    """userDataStream listenKeys (``bourse.adapters.listen_keys``)."""

    def create(self, account_id: int, *, api_key: str | None = None) -> str:
        """``api_key``: the API key asking, recorded so that its revocation ends the key."""
        ...

    def keepalive(
        self, listen_key: str, account_id: int, *, api_key: str | None = None
    ) -> bool: ...

    def close(self, listen_key: str, account_id: int) -> bool: ...


class EventLogView(Protocol):
    """The WebSocket streams' message log (``bourse.adapters.stream_log``): up to ``count``
    messages of ``logs`` after ``cursor`` as (position, log, payload), in position order;
    ``LogGap`` when the log no longer holds all that follows the cursor."""

    def read_after(
        self, logs: Sequence[str], cursor: tuple[int, int], count: int
    ) -> list[tuple[tuple[int, int], str, bytes]]: ...
