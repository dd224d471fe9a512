"""Rate limiting of one request, before its handler runs (called by ``bourse.api.app`` for
every route): the IP's REQUEST_WEIGHT, then, on order placement, the account's ORDERS.

The decisions are ``bourse.api.rate_limits``'; the counters ``Deps.rate_limits``. A refused
request raises its ``BinanceError`` (429 / 418) before anything is executed; the headers to
send (used weight, order counts, Retry-After) are put in ``headers`` first, so that they go out
with the refusal and with any error the handler raises after.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from bourse.api import rate_limits as rl
from bourse.api.handlers import TRADE, Deps, Request
from bourse.api.ports import RateLimiter
from bourse.api.routes import ORDER_PLACEMENT, WEIGHTS, Route


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


def _refuse(refusal: rl.Refusal, headers: dict[str, str]) -> None:
    headers.update(refusal.headers())
    raise refusal.error


def admit(
    route: Route, event: dict[str, Any], request: Request, deps: Deps, headers: dict[str, str]
) -> None:
    store = deps.rate_limits
    if store is None:
        return
    now = deps.clock()
    weight = rl.weight_of(WEIGHTS, route.method, route.path, _weight_params(request))
    ip = source_ip(event)
    usage = store.add_weight(ip, weight, now)
    if usage is None:  # the store is unreachable: fail open (it logged why)
        return
    headers.update(rl.weight_headers(usage.used))
    verdict = rl.weight_verdict(usage, weight, store.limits, now)
    if verdict is rl.Verdict.BANNED:
        _refuse(rl.banned(usage.banned_until, now), headers)
    if verdict is rl.Verdict.BAN:
        until = store.ban(ip, rl.ban_until(usage, now), usage.bans + 1, now)
        _refuse(rl.banned(until, now), headers)
    if verdict is rl.Verdict.THROTTLE:
        _refuse(rl.too_much_weight(store.limits, now), headers)
    if (route.method, route.path) in ORDER_PLACEMENT:
        _count_order(store, request, deps, now, headers)


def _count_order(
    store: RateLimiter, request: Request, deps: Deps, now: int, headers: dict[str, str]
) -> None:
    # Only orders whose signature holds count: an API key alone (not a secret) must not let
    # anyone spend an account's order budget. The handler checks the signature again (an
    # HMAC and a cached key: microseconds).
    caller, _ = request.signed(deps, TRADE)
    counts = store.add_order(caller.account_id, now)
    if counts is None:
        return
    headers.update(rl.order_headers(counts))
    refusal = rl.order_refusal(counts, store.limits, now)
    if refusal is not None:
        _refuse(refusal, headers)
