"""The WebSocket API's rate limits are REST's: the same IP weight and account ORDERS counters,
shared by requests of both transports in any interleaving; refusals execute nothing; and a
command on a symbol the live view does not list never reaches the command bus."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bourse.api import handlers as h
from bourse.api import rate_limits as rl
from bourse.api.app import build
from bourse.api.known_symbols import KnownSymbolsBus, symbols_of
from bourse.api.routes import MARKET_DATA, ORDERS
from bourse.domain.commands import CancelOrder, CancelReplace, NewOrder
from bourse.domain.enums import CancelReplaceMode, OrderType, Outcome, Side
from bourse.domain.errors import BinanceError
from bourse.domain.events import ReplyPart
from bourse.ws import api as ws_api
from bourse.ws.events import WsEvent
from tests.unit.test_api_handlers import (
    CONTEXT,
    LIMIT,
    NOW,
    FakeBus,
    FakeKeys,
    FakeView,
    ok_reply,
)
from tests.unit.test_api_handlers import result as order_result
from tests.unit.test_rate_limits import LIMITS, FakeLimiter, _event, _signed
from tests.unit.test_ws_transport import FakeStore, _ws_signed, _ws_signed_ed, ws_keys

pytestmark = pytest.mark.unit

IP = "10.1.1.1"


class Exchange:
    """REST's resolvers and the WebSocket API over one limiter, one bus and one view."""

    def __init__(self, limiter: FakeLimiter | None = None) -> None:
        self.limiter = limiter or FakeLimiter()
        self.view = FakeView()
        self.bus = FakeBus(lambda c: ok_reply(c, ReplyPart(Outcome.SUCCESS, 0, "", order_result())))
        self.store = FakeStore()
        self.store.put_connection("conn-1", account_id=None, combined=False, expires_at=NOW)
        self.deps = h.Deps(self.view, self.bus, ws_keys(), lambda: NOW, lambda: "req-1",
                           rate_limits=self.limiter)  # fmt: skip
        self.orders = build(ORDERS, lambda: self.deps)
        self.market = build(MARKET_DATA, lambda: self.deps)

    def ws(self, method: str, params: dict[str, Any] | None = None, ip: str = IP) -> Any:
        request: dict[str, Any] = {"id": 1, "method": method}
        if params is not None:
            request["params"] = params
        event = WsEvent(method, "MESSAGE", "conn-1", NOW - 1000, ip, json.dumps(request))
        answer = ws_api.handle(event, self.deps, self.store)
        assert answer["statusCode"] == 200  # the frame's status is in the body
        return json.loads(answer["body"])

    def rest_order(self, order: dict[str, str] = LIMIT) -> tuple[int, dict[str, Any]]:
        answer = self.orders.resolve(_event("POST", "/api/v3/order", _signed(order)), CONTEXT)
        return answer["statusCode"], json.loads(answer["body"])

    def rest_get(self, path: str, query: str = "", ip: str = IP) -> int:
        status: int = self.market.resolve(_event("GET", path, query, ip=ip), CONTEXT)["statusCode"]
        return status


def _ws_status(answer: dict[str, Any]) -> int:
    status: int = answer["status"]
    return status


# ------------------------------------------------------------------------------ ORDERS


@given(st.lists(st.sampled_from(["rest", "ws"]), min_size=1, max_size=8))
def test_orders_limit_is_shared_by_rest_and_websocket(transports: list[str]) -> None:
    """Whatever the interleaving, the first ``orders_per_10s`` orders execute and every later
    one is -1015 (429) with nothing sent, on either transport."""
    exchange = Exchange()
    for n, transport in enumerate(transports, start=1):
        if transport == "rest":
            status, body = exchange.rest_order()
            code = body.get("code")
        else:
            answer = exchange.ws("order.place", _ws_signed(LIMIT))
            status, code = answer["status"], answer.get("error", {}).get("code")
        if n <= LIMITS.orders_per_10s:
            assert status == 200, (n, transport)
        else:
            assert (status, code) == (429, -1015), (n, transport)
        assert exchange.limiter.orders[7] == n
    assert len(exchange.bus.sent) == min(len(transports), LIMITS.orders_per_10s)


def test_websocket_refusal_shapes_and_rate_limits_array() -> None:
    exchange = Exchange()
    exchange.limiter.orders[7] = LIMITS.orders_per_10s - 1
    placed = exchange.ws("order.place", _ws_signed(LIMIT))
    assert placed["status"] == 200
    assert placed["rateLimits"] == [
        {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 3,
         "count": 3},
        {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 5, "count": 3},
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 100,
         "count": 1},
    ]  # fmt: skip
    refused = exchange.ws("order.place", _ws_signed(LIMIT))
    assert refused["status"] == 429 and len(exchange.bus.sent) == 1
    assert refused["error"] == {
        "code": -1015,
        "msg": "Too many new orders; current limit is 3 orders per 10 SECOND.",
        "data": {"serverTime": NOW, "retryAfter": rl.ORDERS_10S.end(NOW)},
    }
    assert [r["count"] for r in refused["rateLimits"]] == [4, 4, 2]
    # Hidden on request, still counted (and still refused).
    hidden = exchange.ws("order.place", {**_ws_signed({**LIMIT, "returnRateLimits": "false"})})
    assert hidden["status"] == 429 and "rateLimits" not in hidden
    assert exchange.limiter.orders[7] == 5 and exchange.limiter.weight[IP] == 3


def test_only_signed_websocket_orders_count() -> None:
    """As on REST: a forged signature costs weight, not the account's order budget; a query
    counts weight only; a session's orders count like signed ones."""
    exchange = Exchange()
    forged = exchange.ws("order.place", _ws_signed(LIMIT, "x" * 64))
    assert forged["error"]["code"] == -1022 and exchange.limiter.orders == {}
    assert [r["rateLimitType"] for r in forged["rateLimits"]] == ["REQUEST_WEIGHT"]
    status = exchange.ws("order.status", _ws_signed({"symbol": "BTCUSDT", "orderId": 1}))
    assert exchange.limiter.orders == {} and status["rateLimits"][-1]["count"] == 1 + 4
    assert exchange.ws("session.logon", _ws_signed_ed({}))["status"] == 200
    placed = exchange.ws("order.place", {**LIMIT, "timestamp": NOW - 10})
    assert placed["status"] == 200 and exchange.limiter.orders[7] == 1
    assert exchange.limiter.weight[IP] == 1 + 4 + 2 + 1


# ------------------------------------------------------------------------------ weight


KINDS = {  # kind: (WebSocket method and params, REST path and query, weight)
    "ping": (("ping", None), ("/api/v3/ping", ""), 1),
    "exchangeInfo": (("exchangeInfo", None), ("/api/v3/exchangeInfo", ""), 20),
    "depth": (("depth", {"symbol": "BTCUSDT", "limit": 1000}),
              ("/api/v3/depth", "symbol=BTCUSDT&limit=1000"), 50),
}  # fmt: skip


@given(st.lists(st.tuples(st.sampled_from(["rest", "ws"]), st.sampled_from(sorted(KINDS))),
                min_size=1, max_size=12))  # fmt: skip
def test_ip_weight_is_shared_by_rest_and_websocket(requests: list[tuple[str, str]]) -> None:
    """One minute's weight across both transports: 200 while within the limit, 429 (-1003)
    for the request that crosses it, 418 for any request after that 429."""
    exchange = Exchange()
    used, throttled = 0, False
    for transport, kind in requests:
        (method, params), (path, query), weight = KINDS[kind]
        used += weight
        if transport == "rest":
            status = exchange.rest_get(path, query)
        else:
            answer = exchange.ws(method, params)
            status = _ws_status(answer)
            assert answer["rateLimits"][-1]["count"] == used
            if status != 200:
                assert answer["error"]["code"] == -1003
        expected = 418 if throttled else 429 if used > LIMITS.weight_per_minute else 200
        assert status == expected, (transport, kind, used)
        throttled = throttled or expected == 429
    assert exchange.limiter.weight[IP] == used


def test_banned_websocket_answer_and_other_ips() -> None:
    exchange = Exchange()
    for _ in range(2):
        assert _ws_status(exchange.ws("depth", {"symbol": "BTCUSDT", "limit": 1000})) == 200
    throttled = exchange.ws("depth", {"symbol": "BTCUSDT", "limit": 1000})
    assert throttled["status"] == 429 and throttled["error"]["code"] == -1003
    assert throttled["error"]["data"] == {"serverTime": NOW, "retryAfter": NOW - NOW % 60_000
                                          + 60_000}  # fmt: skip
    banned = exchange.ws("time")
    assert banned["status"] == 418
    assert banned["error"]["data"] == {"serverTime": NOW, "retryAfter": NOW + 120_000}
    assert "result" not in banned
    assert exchange.rest_get("/api/v3/ping") == 418  # the ban is the IP's, REST included
    other = exchange.ws("time", ip="10.9.9.9")
    assert other["status"] == 200 and other["rateLimits"][0]["count"] == 1


def test_session_methods_weigh_two_and_bad_return_rate_limits() -> None:
    exchange = Exchange()
    status = exchange.ws("session.status")
    assert status["status"] == 200 and status["result"]["returnRateLimits"] is True
    assert status["rateLimits"][0]["count"] == 2
    assert "rateLimits" not in exchange.ws("time", {"returnRateLimits": False})
    assert exchange.ws("time", {"returnRateLimits": "maybe"})["error"]["code"] == -1130
    assert exchange.limiter.weight[IP] == 2 + 1 + 1


def test_without_a_limiter_no_rate_limits() -> None:
    exchange = Exchange()
    exchange.deps = h.Deps(exchange.view, exchange.bus, FakeKeys(), lambda: NOW)
    answer = exchange.ws("order.place", _ws_signed(LIMIT))
    assert answer["status"] == 200 and "rateLimits" not in answer


def test_store_down_fails_open() -> None:
    exchange = Exchange(FakeLimiter(down=True))
    answer = exchange.ws("order.place", _ws_signed(LIMIT))
    assert answer["status"] == 200 and "rateLimits" not in answer


# ------------------------------------------------------------------------------ symbols

unknown_symbols = st.from_regex(r"\A[A-Z0-9]{3,12}\Z").filter(lambda s: s not in FakeView().specs)


@given(unknown_symbols)
def test_unknown_symbols_never_reach_the_command_bus(symbol: str) -> None:
    exchange = Exchange()
    placed = exchange.ws("order.place", _ws_signed({**LIMIT, "symbol": symbol}))
    cancelled = exchange.ws("order.cancel", _ws_signed({"symbol": symbol, "orderId": 1}))
    for answer in (placed, cancelled):
        assert answer["status"] == 400
        assert answer["error"] == {"code": -1121, "msg": "Invalid symbol."}
    assert exchange.bus.sent == []


@given(unknown_symbols)
def test_unknown_symbols_never_reach_the_command_bus_from_rest(symbol: str) -> None:
    exchange = Exchange()
    for method, path, params in (
        ("POST", "/api/v3/order", {**LIMIT, "symbol": symbol}),
        ("DELETE", "/api/v3/order", {"symbol": symbol, "orderId": "1"}),
        ("DELETE", "/api/v3/openOrders", {"symbol": symbol}),
    ):
        event = _event(method, path, _signed(params))
        answer = exchange.orders.resolve(event, CONTEXT)
        assert answer["statusCode"] == 400, (path, answer["body"])
        assert json.loads(answer["body"]) == {"code": -1121, "msg": "Invalid symbol."}
    assert exchange.bus.sent == []


def test_known_symbols_bus_checks_both_halves_of_a_cancel_replace() -> None:
    view, bus = FakeView(), FakeBus()
    cancel = CancelOrder("r", NOW, 7, "BTCUSDT", order_id=1)
    new = NewOrder("r", NOW, 7, "NOPE", Side.BUY, OrderType.LIMIT, "c1", 1, price=1)
    command = CancelReplace("r", NOW, CancelReplaceMode.STOP_ON_FAILURE, cancel, new)
    assert symbols_of(command) == ("BTCUSDT", "NOPE")
    with pytest.raises(BinanceError) as refused:
        KnownSymbolsBus(bus, view).execute(command)
    assert refused.value.code == -1121 and bus.sent == []
    KnownSymbolsBus(bus, view).execute(cancel)
    assert bus.sent == [cancel]
