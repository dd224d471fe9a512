"""The rate limiter's pure decisions (windows, weights, verdicts, bans, -1015) and its wiring in
the resolver (headers on every answer, 429 / 418 / -1015 with nothing executed, failing open),
with an in-memory counter store."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any
from urllib.parse import urlencode

import pytest
from aws_lambda_powertools.utilities.typing import LambdaContext
from hypothesis import given
from hypothesis import strategies as st

from bourse.api import handlers as h
from bourse.api import rate_limits as rl
from bourse.api.app import build
from bourse.api.routes import BY_FUNCTION, ORDER_PLACEMENT, ORDERS, WEIGHTS
from bourse.domain.commands import Command
from bourse.domain.events import Reply
from tests.unit.test_api_handlers import KEY, NOW, SECRET, FakeBus, FakeKeys, FakeView

pytestmark = pytest.mark.unit

CONTEXT = LambdaContext()  # the resolver reads nothing of the Lambda context

LIMITS = rl.Limits(weight_per_minute=100, orders_per_10s=3, orders_per_day=5)


# ------------------------------------------------------------------------------ pure


@given(st.integers(min_value=0, max_value=2**45), st.sampled_from(
    [rl.WEIGHT_WINDOW, rl.ORDERS_10S, rl.ORDERS_DAY]))  # fmt: skip
def test_windows_are_fixed_and_cover_now(now: int, window: rl.Window) -> None:
    start = window.start(now)
    assert start % window.interval_ms == 0 and start <= now < window.end(now)
    assert window.start(window.end(now) - 1) == start  # same window to its last ms
    assert 1 <= window.retry_after_s(now) <= window.interval_ms // 1000


@given(st.lists(st.integers(min_value=1, max_value=250), min_size=1, max_size=80),
       st.integers(min_value=1, max_value=2000))  # fmt: skip
def test_weight_verdicts_over_one_minute(weights: list[int], limit: int) -> None:
    """Within a minute: allowed while the total stays within the limit, one 429 for the
    request that crosses it, then a ban for any request sent after that 429."""
    limits = rl.Limits(weight_per_minute=limit)
    used, verdicts = 0, []
    for weight in weights:
        used += weight
        verdicts.append(rl.weight_verdict(rl.IpUsage(used), weight, limits, NOW))
    crossing = next((i for i, v in enumerate(verdicts) if v is not rl.Verdict.ALLOW), None)
    if crossing is None:
        assert sum(weights) <= limit
        return
    assert verdicts[crossing] is rl.Verdict.THROTTLE
    assert all(v is rl.Verdict.BAN for v in verdicts[crossing + 1 :])
    assert sum(weights[:crossing]) <= limit < sum(weights[: crossing + 1])


def test_a_running_ban_wins() -> None:
    usage = rl.IpUsage(used=1, banned_until=NOW + 1, bans=1)
    assert rl.weight_verdict(usage, 1, LIMITS, NOW) is rl.Verdict.BANNED
    assert rl.weight_verdict(usage, 1, LIMITS, NOW + 1) is rl.Verdict.ALLOW


@given(st.integers(min_value=1, max_value=200))
def test_bans_escalate_from_two_minutes_to_three_days(bans: int) -> None:
    assert rl.ban_seconds(1) == 120
    assert rl.ban_seconds(bans) <= rl.ban_seconds(bans + 1) <= 3 * 24 * 3600
    assert rl.ban_seconds(bans) == min(120 * 2 ** (bans - 1), 3 * 24 * 3600)


def test_refusals_are_binance_errors() -> None:
    throttled = rl.too_much_weight(LIMITS, NOW)
    assert (throttled.error.http_status, throttled.error.code) == (429, -1003)
    assert throttled.error.msg == (
        "Too much request weight used; current limit is 100 request weight per 1 MINUTE. "
        "Please use WebSocket Streams for live updates to avoid polling the API."
    )
    assert throttled.headers() == {"Retry-After": str(rl.WEIGHT_WINDOW.retry_after_s(NOW))}
    ban = rl.banned(NOW + 120_000, NOW)
    assert (ban.error.http_status, ban.error.code, ban.retry_after_s) == (418, -1003, 120)
    assert f"IP banned until {NOW + 120_000}." in ban.error.msg
    assert rl.order_refusal(rl.OrderCounts(3, 3), LIMITS, NOW) is None
    per_10s = rl.order_refusal(rl.OrderCounts(4, 4), LIMITS, NOW)
    assert per_10s is not None and (per_10s.error.http_status, per_10s.error.code) == (429, -1015)
    assert per_10s.error.msg == "Too many new orders; current limit is 3 orders per 10 SECOND."
    per_day = rl.order_refusal(rl.OrderCounts(4, 6), LIMITS, NOW)
    assert per_day is not None
    assert per_day.error.msg == "Too many new orders; current limit is 5 orders per 1 DAY."
    assert per_day.retry_after_s == rl.ORDERS_DAY.retry_after_s(NOW)


def test_published_limits_and_order_status() -> None:
    assert LIMITS.published() == [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 100},
        {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 3},
        {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 5},
    ]
    assert LIMITS.order_status(rl.OrderCounts(2, 4)) == [
        {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 3,
         "count": 2},
        {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 5, "count": 4},
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "path", "params", "weight"),
    [
        ("GET", "/api/v3/depth", {"symbol": "BTCUSDT"}, 5),
        ("GET", "/api/v3/depth", {"limit": "100"}, 5),
        ("GET", "/api/v3/depth", {"limit": "101"}, 25),
        ("GET", "/api/v3/depth", {"limit": "1000"}, 50),
        ("GET", "/api/v3/depth", {"limit": "5000"}, 250),
        ("GET", "/api/v3/depth", {"limit": "x"}, 5),
        ("GET", "/api/v3/exchangeInfo", {}, 20),
        ("GET", "/api/v3/account", {}, 20),
        ("GET", "/api/v3/openOrders", {}, 80),
        ("GET", "/api/v3/openOrders", {"symbol": "BTCUSDT"}, 6),
        ("GET", "/api/v3/ticker/price", {"symbol": "BTCUSDT"}, 2),
        ("GET", "/api/v3/ticker/price", {}, 4),
        ("GET", "/api/v3/ticker/24hr", {}, 80),
        ("GET", "/api/v3/ticker/24hr", {"symbols": '["A","B"]'}, 2),
        ("GET", "/api/v3/ticker", {"symbols": '["A","B","C"]'}, 12),
        ("POST", "/api/v3/order/test", {}, 1),
        ("POST", "/api/v3/order/test", {"computeCommissionRates": "true"}, 20),
        ("GET", "/api/v3/rateLimit/order", {}, 40),
        ("PUT", "/api/v3/userDataStream", {}, 2),
        ("GET", "/api/v3/notThere", {}, 1),
    ],
)
def test_weights(method: str, path: str, params: dict[str, str], weight: int) -> None:
    assert rl.weight_of(WEIGHTS, method, path, params) == weight


def test_every_route_has_its_weight() -> None:
    routes = {(r.method, r.path) for routes in BY_FUNCTION.values() for r in routes}
    assert routes - set(WEIGHTS) == set()
    assert routes >= ORDER_PLACEMENT


# ------------------------------------------------------------------------------ wiring


class FakeLimiter:
    """Counts in memory, one window for ever; ``down`` plays an unreachable Redis."""

    def __init__(self, limits: rl.Limits = LIMITS, down: bool = False) -> None:
        self.limits = limits
        self.down = down
        self.weight: dict[str, int] = {}
        self.orders: dict[int, int] = {}
        self.bans: dict[str, tuple[int, int]] = {}

    def count(
        self, ip: str | None, weight: int, account_id: int | None, now_ms: int
    ) -> tuple[rl.IpUsage | None, rl.OrderCounts | None] | None:
        if self.down:
            return None
        usage = None if ip is None else self.add_weight(ip, weight, now_ms)
        orders = None if account_id is None else self.add_order(account_id, now_ms)
        return usage, orders

    def add_weight(self, ip: str, weight: int, now_ms: int) -> rl.IpUsage | None:
        if self.down:
            return None
        self.weight[ip] = self.weight.get(ip, 0) + weight
        until, bans = self.bans.get(ip, (0, 0))
        return rl.IpUsage(self.weight[ip], until, bans)

    def add_order(self, account_id: int, now_ms: int) -> rl.OrderCounts | None:
        if self.down:
            return None
        self.orders[account_id] = self.orders.get(account_id, 0) + 1
        return self.order_counts(account_id, now_ms)

    def ban(self, ip: str, until_ms: int, bans: int, now_ms: int) -> int:
        self.bans[ip] = (until_ms, bans)
        return until_ms

    def order_counts(self, account_id: int, now_ms: int) -> rl.OrderCounts:
        count = self.orders.get(account_id, 0)
        return rl.OrderCounts(count, count)


def _event(method: str, path: str, payload: str = "", ip: str = "10.1.1.1") -> dict[str, Any]:
    body = payload if method == "POST" else None
    query = None if method == "POST" or not payload else {
        k: [v] for k, v in (p.split("=", 1) for p in payload.split("&"))}  # fmt: skip
    return {"resource": path, "path": path, "httpMethod": method,
            "headers": {"X-MBX-APIKEY": KEY}, "multiValueHeaders": {},
            "queryStringParameters": None, "multiValueQueryStringParameters": query,
            "requestContext": {"requestId": "r", "identity": {"sourceIp": ip},
                               "authorizer": {"accountId": "7", "permissions": "TRADE,USER_DATA"}},
            "body": body, "isBase64Encoded": False}  # fmt: skip


def _signed(params: dict[str, str]) -> str:
    payload = urlencode({**params, "timestamp": NOW - 10})
    return payload + "&signature=" + hmac.new(SECRET.encode(), payload.encode(),
                                              hashlib.sha256).hexdigest()  # fmt: skip


def _deps(limiter: FakeLimiter, bus: FakeBus | None = None) -> h.Deps:
    return h.Deps(FakeView(), bus or FakeBus(), FakeKeys(), lambda: NOW, lambda: "req-1",
                  rate_limits=limiter)  # fmt: skip


def _headers(answer: dict[str, Any]) -> dict[str, str]:
    merged = dict(answer.get("headers") or {})
    for name, values in (answer.get("multiValueHeaders") or {}).items():
        merged[name] = values[-1]
    return merged


def test_headers_429_then_418_and_another_ip_unaffected() -> None:
    from bourse.api.routes import MARKET_DATA

    limiter = FakeLimiter()
    app = build(MARKET_DATA, lambda: _deps(limiter))
    answers = [app.resolve(_event("GET", "/api/v3/depth", "symbol=BTCUSDT&limit=1000"), CONTEXT)
               for _ in range(3)]  # fmt: skip
    assert [a["statusCode"] for a in answers] == [200, 200, 429]
    assert [_headers(a)["X-MBX-USED-WEIGHT-1M"] for a in answers] == ["50", "100", "150"]
    assert _headers(answers[0])["X-MBX-USED-WEIGHT"] == "50"
    assert json.loads(answers[2]["body"])["code"] == -1003
    assert int(_headers(answers[2])["Retry-After"]) == rl.WEIGHT_WINDOW.retry_after_s(NOW)
    banned = app.resolve(_event("GET", "/api/v3/ping"), CONTEXT)
    assert banned["statusCode"] == 418 and int(_headers(banned)["Retry-After"]) == 120
    assert json.loads(banned["body"])["msg"].startswith(
        f"Way too much request weight used; IP banned until {NOW + 120_000}."
    )
    other = app.resolve(_event("GET", "/api/v3/ping", ip="10.2.2.2"), CONTEXT)
    assert other["statusCode"] == 200 and _headers(other)["X-MBX-USED-WEIGHT-1M"] == "1"
    # An error answer carries the headers too.
    bad = app.resolve(_event("GET", "/api/v3/depth", "symbol=NOPE", ip="10.3.3.3"), CONTEXT)
    assert bad["statusCode"] == 400 and _headers(bad)["X-MBX-USED-WEIGHT-1M"] == "5"


def test_orders_limit_executes_nothing() -> None:
    limiter = FakeLimiter()

    def accept(command: Command) -> Reply:
        raise AssertionError("no command expected")

    bus = FakeBus(accept)
    app = build(ORDERS, lambda: _deps(limiter, bus))
    limiter.orders[7] = 3  # the 10-second limit is reached
    order = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
             "quantity": "0.01", "price": "30000"}  # fmt: skip
    refused = app.resolve(_event("POST", "/api/v3/order", _signed(order)), CONTEXT)
    assert refused["statusCode"] == 429 and bus.sent == []
    assert json.loads(refused["body"]) == {
        "code": -1015,
        "msg": "Too many new orders; current limit is 3 orders per 10 SECOND.",
    }
    headers = _headers(refused)
    assert headers["X-MBX-ORDER-COUNT-10S"] == "4" and headers["X-MBX-ORDER-COUNT-1D"] == "4"
    assert "Retry-After" in headers and headers["X-MBX-USED-WEIGHT-1M"] == "1"
    # A bad signature is refused before it counts; order/test counts weight only.
    forged = urlencode({**order, "timestamp": NOW - 10}) + "&signature=" + "0" * 64
    unsigned = app.resolve(_event("POST", "/api/v3/order", forged), CONTEXT)
    assert json.loads(unsigned["body"])["code"] == -1022 and limiter.orders[7] == 4
    assert "X-MBX-ORDER-COUNT-10S" not in _headers(unsigned)
    tested = app.resolve(_event("POST", "/api/v3/order/test", _signed(order)), CONTEXT)
    assert tested["statusCode"] == 200 and limiter.orders[7] == 4
    assert "X-MBX-ORDER-COUNT-10S" not in _headers(tested)


def test_fails_open_without_headers() -> None:
    from bourse.api.routes import MARKET_DATA

    app = build(MARKET_DATA, lambda: _deps(FakeLimiter(down=True)))
    answer = app.resolve(_event("GET", "/api/v3/ping"), CONTEXT)
    assert answer["statusCode"] == 200 and "X-MBX-USED-WEIGHT-1M" not in _headers(answer)


def test_rate_limit_order_and_exchange_info_share_the_limits() -> None:
    from bourse.api.routes import ACCOUNT, MARKET_DATA

    limiter = FakeLimiter()
    limiter.orders[7] = 2
    account = build(ACCOUNT, lambda: _deps(limiter))
    answer = account.resolve(_event("GET", "/api/v3/rateLimit/order", _signed({})), CONTEXT)
    assert answer["statusCode"] == 200, answer["body"]
    assert json.loads(answer["body"]) == LIMITS.order_status(rl.OrderCounts(2, 2))
    market = build(MARKET_DATA, lambda: _deps(limiter))
    info = market.resolve(_event("GET", "/api/v3/exchangeInfo"), CONTEXT)
    assert json.loads(info["body"])["rateLimits"] == LIMITS.published()
