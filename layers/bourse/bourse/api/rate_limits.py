"""Binance's rate limits as pure decisions: windows, endpoint weights, limits, and what to
answer. No I/O: the counters live in Redis and the bans in DynamoDB
(``bourse.adapters.rate_limit_store``), and ``bourse.api.limiting`` runs these decisions on
every request.

Two limiters, as Binance applies them:

* REQUEST_WEIGHT per source IP and fixed minute (a request at 00:01:23.456 counts towards the
  00:01:00 minute); every response carries the minute's used weight.
* ORDERS per account, per fixed 10-second window and per UTC day, counted on the order placement
  endpoints (order, order/cancelReplace); their responses carry both counts.

The WebSocket API counts on the same two limiters (Binance shares them between the APIs), and
answers with the same counts in its ``rateLimits`` array rather than in headers.

Over a limit: HTTP 429 with ``Retry-After`` (seconds until the window ends), -1003 for weight,
-1015 for orders, and nothing is executed. An IP that sends again within the same minute after
its 429 is banned (HTTP 418, -1003 "IP banned until"), for 2 minutes the first time, doubling
with each further ban up to 3 days; bans are remembered for a day after they end.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from bourse.domain import errors
from bourse.domain.errors import BinanceError

SECOND_MS = 1000
MINUTE_MS = 60 * SECOND_MS
DAY_MS = 24 * 60 * MINUTE_MS
BAN_FIRST_S = 2 * 60
BAN_MAX_S = 3 * 24 * 60 * 60
BAN_MEMORY_MS = DAY_MS  # how long after a ban ends a new one still escalates

WEIGHT_HEADER = "X-MBX-USED-WEIGHT-1M"
# Binance still sends the interval-less header too (the minute's weight); older clients read it.
LEGACY_WEIGHT_HEADER = "X-MBX-USED-WEIGHT"
ORDER_10S_HEADER = "X-MBX-ORDER-COUNT-10S"
ORDER_1D_HEADER = "X-MBX-ORDER-COUNT-1D"


@dataclass(frozen=True)
class Window:
    """A fixed window: every ``interval_ms`` from the epoch (UTC days for a day)."""

    interval_ms: int
    interval: str  # Binance's name: SECOND, MINUTE, DAY
    interval_num: int

    def start(self, now_ms: int) -> int:
        return now_ms - now_ms % self.interval_ms

    def end(self, now_ms: int) -> int:
        return self.start(now_ms) + self.interval_ms

    def retry_after_s(self, now_ms: int) -> int:
        """Whole seconds until the window ends (at least 1: "0" would invite a retry now)."""
        return max(1, -(-(self.end(now_ms) - now_ms) // SECOND_MS))

    def per(self) -> str:
        """How Binance's messages name the interval: "1 MINUTE", "10 SECOND"."""
        return f"{self.interval_num} {self.interval}"


WEIGHT_WINDOW = Window(MINUTE_MS, "MINUTE", 1)
ORDERS_10S = Window(10 * SECOND_MS, "SECOND", 10)
ORDERS_DAY = Window(DAY_MS, "DAY", 1)


@dataclass(frozen=True)
class Limits:
    """The limits enforced and published in exchangeInfo (from settings; Binance's defaults)."""

    weight_per_minute: int = 6000
    orders_per_10s: int = 100
    orders_per_day: int = 200_000

    def published(self) -> list[dict[str, Any]]:
        """exchangeInfo's ``rateLimits``: exactly the limiters enforced."""
        return [
            _limit("REQUEST_WEIGHT", WEIGHT_WINDOW, self.weight_per_minute),
            _limit("ORDERS", ORDERS_10S, self.orders_per_10s),
            _limit("ORDERS", ORDERS_DAY, self.orders_per_day),
        ]

    def counted(self, weight: int | None, orders: OrderCounts | None) -> list[dict[str, Any]]:
        """The WebSocket API's ``rateLimits``: each limiter the request counted against, with
        its count (ORDERS first, as Binance lists them)."""
        status = self.order_status(orders) if orders is not None else []
        if weight is not None:
            status.append({**_limit("REQUEST_WEIGHT", WEIGHT_WINDOW, self.weight_per_minute),
                           "count": weight})  # fmt: skip
        return status

    def order_status(self, counts: OrderCounts) -> list[dict[str, Any]]:
        """GET /api/v3/rateLimit/order: each ORDERS limiter with its current count."""
        return [
            {**_limit("ORDERS", ORDERS_10S, self.orders_per_10s), "count": counts.ten_seconds},
            {**_limit("ORDERS", ORDERS_DAY, self.orders_per_day), "count": counts.day},
        ]


def _limit(kind: str, window: Window, limit: int) -> dict[str, Any]:
    return {
        "rateLimitType": kind,
        "interval": window.interval,
        "intervalNum": window.interval_num,
        "limit": limit,
    }


# ------------------------------------------------------------------------------- weights

Weight = int | Callable[[Mapping[str, str]], int]


def depth_weight(params: Mapping[str, str]) -> int:
    """GET /api/v3/depth: by ``limit`` (default 100); an unreadable limit weighs the default."""
    try:
        limit = int(params.get("limit", "100"))
    except ValueError:
        limit = 100
    if limit <= 100:
        return 5
    if limit <= 500:
        return 25
    if limit <= 1000:
        return 50
    return 250


def one_or_all(one: int, many: int) -> Callable[[Mapping[str, str]], int]:
    """``one`` with a ``symbol``, ``many`` without it (all symbols, or a ``symbols`` list)."""

    def weight(params: Mapping[str, str]) -> int:
        return one if "symbol" in params else many

    return weight


def _symbol_count(params: Mapping[str, str]) -> int | None:
    raw = params.get("symbols")
    if raw is None:
        return None
    return max(1, raw.count(",") + 1)


def ticker_24hr_weight(params: Mapping[str, str]) -> int:
    """GET /api/v3/ticker/24hr: 2 for one symbol; a list by its size; all symbols 80."""
    if "symbol" in params:
        return 2
    count = _symbol_count(params)
    if count is None or count > 100:
        return 80
    return 2 if count <= 20 else 40


def per_symbol_weight(each: int, cap: int) -> Callable[[Mapping[str, str]], int]:
    """``each`` per symbol named (``symbol`` or ``symbols``), at most ``cap``."""

    def weight(params: Mapping[str, str]) -> int:
        return min(cap, each * (_symbol_count(params) or 1))

    return weight


def order_test_weight(params: Mapping[str, str]) -> int:
    """Binance's 1, or 20 with computeCommissionRates; a dry run (Bourse's ``dryRun``) runs
    in the sequencer on a copy of the book, and weighs 20 as well."""
    if params.get("computeCommissionRates") == "true" or params.get("dryRun") == "true":
        return 20
    return 1


def my_trades_weight(params: Mapping[str, str]) -> int:
    return 5 if "orderId" in params else 20


def weight_of(table: Mapping[tuple[str, str], Weight], method: str, path: str,
              params: Mapping[str, str]) -> int:  # fmt: skip
    """The request's weight; a route missing from the table weighs 1 (a unit test keeps the
    table complete)."""
    spec = table.get((method, path), 1)
    return spec if isinstance(spec, int) else spec(params)


# ------------------------------------------------------------------------------- decisions


class Verdict(Enum):
    ALLOW = "allow"
    THROTTLE = "throttle"  # 429: over the limit, back off until the window ends
    BAN = "ban"  # sent again after a 429: a new ban starts now (the store records it)
    BANNED = "banned"  # 418: a ban already running


@dataclass(frozen=True)
class IpUsage:
    """One IP's state once this request's weight is counted."""

    used: int  # weight in the current minute, this request included
    banned_until: int = 0  # ms; 0 or past: not banned
    bans: int = 0  # bans so far (remembered BAN_MEMORY_MS after the last one ends)


@dataclass(frozen=True)
class OrderCounts:
    ten_seconds: int
    day: int


def weight_headers(used: int) -> dict[str, str]:
    return {WEIGHT_HEADER: str(used), LEGACY_WEIGHT_HEADER: str(used)}


def order_headers(counts: OrderCounts) -> dict[str, str]:
    return {ORDER_10S_HEADER: str(counts.ten_seconds), ORDER_1D_HEADER: str(counts.day)}


def weight_verdict(usage: IpUsage, weight: int, limits: Limits, now_ms: int) -> Verdict:
    """Counts only grow within a minute, so "the weight before this request was already over
    the limit" means an earlier request of this minute got its 429: this one did not back off."""
    if usage.banned_until > now_ms:
        return Verdict.BANNED
    if usage.used <= limits.weight_per_minute:
        return Verdict.ALLOW
    if usage.used - weight > limits.weight_per_minute:
        return Verdict.BAN
    return Verdict.THROTTLE


def ban_seconds(bans: int) -> int:
    """The ``bans``-th ban's length (1 is the first): 2 minutes, doubling, at most 3 days."""
    return int(min(BAN_FIRST_S * 2 ** min(max(bans, 1) - 1, 32), BAN_MAX_S))


def ban_until(usage: IpUsage, now_ms: int) -> int:
    """When a ban starting now ends, escalated by the IP's earlier bans."""
    return now_ms + ban_seconds(usage.bans + 1) * SECOND_MS


@dataclass(frozen=True)
class Refusal:
    """What to answer instead of executing: the error (its HTTP status 429 or 418) and the
    ``Retry-After`` seconds."""

    error: BinanceError
    retry_after_s: int
    retry_at_ms: int  # when the window (or the ban) ends: the WebSocket API's ``retryAfter``

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}

    def data(self, now_ms: int) -> dict[str, int]:
        """The WebSocket API's ``error.data``."""
        return {"serverTime": now_ms, "retryAfter": self.retry_at_ms}


def too_much_weight(limits: Limits, now_ms: int) -> Refusal:
    msg = (
        f"Too much request weight used; current limit is {limits.weight_per_minute} request "
        f"weight per {WEIGHT_WINDOW.per()}. Please use WebSocket Streams for live updates to "
        "avoid polling the API."
    )
    return Refusal(
        BinanceError(errors.TOO_MANY_REQUESTS, msg, 429),
        WEIGHT_WINDOW.retry_after_s(now_ms),
        WEIGHT_WINDOW.end(now_ms),
    )


def banned(until_ms: int, now_ms: int) -> Refusal:
    msg = (
        f"Way too much request weight used; IP banned until {until_ms}. Please use WebSocket "
        "Streams for live updates to avoid bans."
    )
    retry = max(1, -(-(until_ms - now_ms) // SECOND_MS))
    return Refusal(BinanceError(errors.TOO_MANY_REQUESTS, msg, 418), retry, until_ms)


def order_refusal(counts: OrderCounts, limits: Limits, now_ms: int) -> Refusal | None:
    """-1015 when a count (this order included) is over its limit; the day's first, since it
    is the longer wait."""
    for count, limit, window in (
        (counts.day, limits.orders_per_day, ORDERS_DAY),
        (counts.ten_seconds, limits.orders_per_10s, ORDERS_10S),
    ):
        if count > limit:
            msg = f"Too many new orders; current limit is {limit} orders per {window.per()}."
            return Refusal(
                BinanceError(errors.TOO_MANY_ORDERS, msg, 429),
                window.retry_after_s(now_ms),
                window.end(now_ms),
            )
    return None
