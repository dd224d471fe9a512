"""Rate limiting of one request, before its handler runs: the IP's REQUEST_WEIGHT, then, on
order placement, the account's ORDERS. REST (``bourse.api.app``, every route) and the WebSocket
API (``bourse.ws.api``, every method) both count here, on the same counters, as Binance shares
its limits between the two.

The decisions are ``bourse.api.rate_limits``'; the counters ``Deps.rate_limits``. A refused
request raises its ``BinanceError`` (429 / 418) before anything is executed; what was counted
(used weight, order counts, the refusal's wait) is put in a ``Usage`` first, so that it goes out
with the refusal and with any error the handler raises after: as headers on REST, as the
``rateLimits`` array on the WebSocket API.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from bourse.api import rate_limits as rl
from bourse.api.handlers import TRADE, Deps, Request
from bourse.api.ports import RateLimiter
from bourse.api.routes import ORDER_PLACEMENT, WEIGHTS, Route
from bourse.domain.errors import BinanceError


@dataclass
class Usage:
    """What one request counted: None where nothing was (no limiter, or it did not answer)."""

    weight: int | None = None
    orders: rl.OrderCounts | None = None
    refusal: rl.Refusal | None = None
    refused_at: int = 0

    def headers(self) -> dict[str, str]:
        """REST's: X-MBX-USED-WEIGHT-1M, X-MBX-ORDER-COUNT-10S/1D, Retry-After."""
        out: dict[str, str] = {}
        if self.weight is not None:
            out.update(rl.weight_headers(self.weight))
        if self.orders is not None:
            out.update(rl.order_headers(self.orders))
        if self.refusal is not None:
            out.update(self.refusal.headers())
        return out


def source_ip(event: dict[str, Any]) -> str:
    identity = (event.get("requestContext") or {}).get("identity") or {}
    return str(identity.get("sourceIp") or "unknown")


def _weight_params(request: Request) -> dict[str, str]:
    """The parameters a weight depends on (limit, symbol, ...), read leniently: a malformed
    request still has its weight, and its error comes from the handler."""
    try:
        pairs = parse_qsl(f"{request.query_string}&{request.body}", max_num_fields=200)
    except ValueError:
        return {}
    return dict(pairs)


def _refuse(refusal: rl.Refusal, usage: Usage, now: int) -> None:
    usage.refusal, usage.refused_at = refusal, now
    raise refusal.error


def judge_weight(
    store: RateLimiter, ip: str, counted: rl.IpUsage, weight: int, now: int, usage: Usage
) -> None:
    """429 over the limit, 418 while (or once) banned."""
    usage.weight = counted.used
    verdict = rl.weight_verdict(counted, weight, store.limits, now)
    if verdict is rl.Verdict.BANNED:
        _refuse(rl.banned(counted.banned_until, now), usage, now)
    if verdict is rl.Verdict.BAN:
        until = store.ban(ip, rl.ban_until(counted, now), counted.bans + 1, now)
        _refuse(rl.banned(until, now), usage, now)
    if verdict is rl.Verdict.THROTTLE:
        _refuse(rl.too_much_weight(store.limits, now), usage, now)


def judge_orders(store: RateLimiter, counts: rl.OrderCounts, now: int, usage: Usage) -> None:
    """-1015 over a limit."""
    usage.orders = counts
    refusal = rl.order_refusal(counts, store.limits, now)
    if refusal is not None:
        _refuse(refusal, usage, now)


def count_weight(store: RateLimiter, ip: str, weight: int, now: int, usage: Usage) -> None:
    """Add ``weight`` to the IP's minute, then judge it."""
    counted = store.add_weight(ip, weight, now)
    if counted is None:  # the store is unreachable: fail open (it logged why)
        return
    judge_weight(store, ip, counted, weight, now, usage)


def count_order(store: RateLimiter, request: Request, deps: Deps, now: int, usage: Usage) -> None:
    """Add one order to the caller's account: -1015 over a limit."""
    # Only orders whose signature holds count: an API key alone (not a secret) must not let
    # anyone spend an account's order budget.
    caller, _ = request.signed(deps, TRADE)
    counts = store.add_order(caller.account_id, now)
    if counts is not None:
        judge_orders(store, counts, now, usage)


def admit(
    route: Route, event: dict[str, Any], request: Request, deps: Deps, headers: dict[str, str]
) -> None:
    """REST: count the request (its weight and, placing an order, the account's orders, in one
    round trip), its limit headers into ``headers`` (refused or not)."""
    store = deps.rate_limits
    if store is None:
        return
    now = deps.clock()
    weight = rl.weight_of(WEIGHTS, route.method, route.path, _weight_params(request))
    ip = source_ip(event)
    usage = Usage()
    account_id: int | None = None
    unsigned: BinanceError | None = None
    if (route.method, route.path) in ORDER_PLACEMENT:
        # Only orders whose signature holds count: an API key alone (not a secret) must not
        # let anyone spend an account's order budget. The handler reuses this check
        # (``Request.signed`` keeps its answer).
        try:
            account_id = request.signed(deps, TRADE)[0].account_id
        except BinanceError as exc:
            unsigned = exc  # answered after the weight, which counts all the same
    try:
        counted = store.count(ip, weight, account_id, now)
        if counted is not None:  # None: the store is unreachable, fail open (it logged why)
            ip_usage, orders = counted
            if ip_usage is not None:
                judge_weight(store, ip, ip_usage, weight, now, usage)
            if unsigned is not None:
                raise unsigned
            if orders is not None:
                judge_orders(store, orders, now, usage)
    finally:
        headers.update(usage.headers())
