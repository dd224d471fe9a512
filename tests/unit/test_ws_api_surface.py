"""The WebSocket API's surface as Binance documents it (web-socket-api.md): the market data and
account history methods on REST's handlers and weights, ``rateLimits`` on every answer unless
the request or the connection's URL says ``returnRateLimits=false``, and the two REST endpoints
they needed: ticker/tradingDay and myPreventedMatches."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bourse.api import handlers as h
from bourse.api import prevented_matches as pm
from bourse.api import rate_limits as rl
from bourse.api import trading_day as td
from bourse.api.routes import BY_FUNCTION, WEIGHTS
from bourse.domain.errors import BinanceError
from bourse.record.tickers import DAY_MS
from bourse.record.views import PreventedMatchRow
from bourse.ws import api as ws_api
from bourse.ws import market_streams
from bourse.ws.events import WsEvent
from tests.unit.test_api_handlers import NOW, signed_request
from tests.unit.test_history_handlers import E8, FakeHistory, public, trade
from tests.unit.test_history_handlers import deps as history_deps
from tests.unit.test_rate_limits import FakeLimiter
from tests.unit.test_ws_transport import FakeStore, _ws_signed, _ws_signed_ed, ws_keys

pytestmark = pytest.mark.unit

# The methods this change added, with the REST endpoint each equals.
ADDED = {
    "trades.recent": ("GET", "/api/v3/trades"),
    "trades.historical": ("GET", "/api/v3/historicalTrades"),
    "trades.aggregate": ("GET", "/api/v3/aggTrades"),
    "klines": ("GET", "/api/v3/klines"),
    "uiKlines": ("GET", "/api/v3/uiKlines"),
    "avgPrice": ("GET", "/api/v3/avgPrice"),
    "ticker.24hr": ("GET", "/api/v3/ticker/24hr"),
    "ticker.tradingDay": ("GET", "/api/v3/ticker/tradingDay"),
    "ticker": ("GET", "/api/v3/ticker"),
    "ticker.price": ("GET", "/api/v3/ticker/price"),
    "ticker.book": ("GET", "/api/v3/ticker/bookTicker"),
    "account.commission": ("GET", "/api/v3/account/commission"),
    "account.rateLimits.orders": ("GET", "/api/v3/rateLimit/order"),
    "allOrders": ("GET", "/api/v3/allOrders"),
    "myTrades": ("GET", "/api/v3/myTrades"),
    "myPreventedMatches": ("GET", "/api/v3/myPreventedMatches"),
}


class PreventedHistory(FakeHistory):
    """The record's prevented matches over a list, with the adapter's semantics."""

    def __init__(self, rows: list[PreventedMatchRow]) -> None:
        super().__init__()
        self.prevented = rows
        self.asked: list[dict[str, Any]] = []

    def prevented_matches(
        self,
        account_id: int,
        symbol: str,
        *,
        prevented_match_id: int | None,
        order_id: int | None,
        from_id: int | None,
        limit: int,
    ) -> list[PreventedMatchRow]:
        self.asked.append({"pm": prevented_match_id, "order": order_id, "from": from_id,
                           "limit": limit})  # fmt: skip
        rows = [
            r for r in self.prevented
            if (prevented_match_id is None or r.prevented_match_id == prevented_match_id)
            and (order_id is None or order_id in (r.taker_order_id, r.maker_order_id))
            and (from_id is None or r.prevented_match_id >= from_id)
        ]  # fmt: skip
        return rows[:limit]


def prevented(pm_id: int, taker: int, maker: int) -> PreventedMatchRow:
    return PreventedMatchRow("BTCUSDT", pm_id, taker, maker, "EXPIRE_MAKER", 30_000 * E8,
                             E8 // 2, NOW - pm_id)  # fmt: skip


def _code(handler: Any, request: h.Request, d: h.Deps) -> int:
    with pytest.raises(BinanceError) as exc:
        handler(request, d)
    return exc.value.code


# ---------------------------------------------------------------------------- tradingDay


@given(now=st.integers(0, 2**42), tz_minutes=st.integers(-12 * 60, 14 * 60))
def test_trading_day_bounds_hold_now_in_the_zones_day(now: int, tz_minutes: int) -> None:
    tz_ms = tz_minutes * 60_000
    start, end = td.trading_day_bounds(now, tz_ms)
    assert start <= now <= end and end - start == DAY_MS - 1
    assert (start + tz_ms) % DAY_MS == 0  # midnight in the zone


def test_trading_day_ticker_full_mini_zone_and_errors() -> None:
    hist = FakeHistory()
    day_start = NOW // DAY_MS * DAY_MS
    hist.trade_rows = [trade(1, day_start - 5, 9 * E8, E8), trade(2, day_start + 5, 10 * E8, E8),
                       trade(3, NOW - 1, 12 * E8, E8)]  # fmt: skip
    body = td.trading_day_ticker(public("symbol=BTCUSDT"), history_deps(hist))
    assert isinstance(body, dict)
    assert (body["openTime"], body["closeTime"]) == (day_start, day_start + DAY_MS - 1)
    assert (body["count"], body["openPrice"], body["lastPrice"]) == (2, "10.00000000",
                                                                    "12.00000000")  # fmt: skip
    assert list(body) == [
        "symbol", "priceChange", "priceChangePercent", "weightedAvgPrice", "openPrice",
        "highPrice", "lowPrice", "lastPrice", "volume", "quoteVolume", "openTime", "closeTime",
        "firstId", "lastId", "count",
    ]  # fmt: skip
    # NOW is 22:13 UTC: in UTC+2 the day began at 22:00 UTC, after the first two trades.
    zoned = td.trading_day_ticker(public("symbol=BTCUSDT&timeZone=2:00"), history_deps(hist))
    assert isinstance(zoned, dict) and zoned["count"] == 1
    assert zoned["openTime"] == day_start + 22 * 3_600_000
    mini = td.trading_day_ticker(public('symbols=["BTCUSDT"]&type=MINI'), history_deps(hist))
    assert isinstance(mini, list) and "priceChange" not in mini[0] and mini[0]["count"] == 2
    d = history_deps(hist)
    assert _code(td.trading_day_ticker, public("type=MINI"), d) == -1102
    assert _code(td.trading_day_ticker, public("symbol=BTCUSDT&timeZone=15"), d) == -1130
    assert _code(td.trading_day_ticker, public("symbol=BTCUSDT&type=BIG"), d) == -1130
    assert _code(td.trading_day_ticker, public("symbol=NOPEUSDT"), d) == -1121
    assert _code(td.trading_day_ticker, public("symbol=BTCUSDT&windowSize=1d"), d) == -1104
    assert _code(td.trading_day_ticker, public("symbol=BTCUSDT&symbolStatus=HALT"), d) == -1220


def test_trading_day_weight_is_binances() -> None:
    weight = WEIGHTS[("GET", "/api/v3/ticker/tradingDay")]
    assert rl.weight_of(WEIGHTS, "GET", "/api/v3/ticker/tradingDay", {"symbol": "X"}) == 4
    many = {"symbols": json.dumps([f"S{i}" for i in range(60)])}
    assert not isinstance(weight, int) and weight(many) == 200


# ---------------------------------------------------------------------------- myPreventedMatches


def test_prevented_matches_shape_and_lookups() -> None:
    hist = PreventedHistory([prevented(1, 5, 3), prevented(2, 6, 5), prevented(3, 8, 7)])
    d = replace(history_deps(hist), history=hist)
    rows = pm.my_prevented_matches(signed_request({"symbol": "BTCUSDT", "orderId": 5}), d)
    assert rows == [
        {"symbol": "BTCUSDT", "preventedMatchId": 1, "takerOrderId": 5, "makerSymbol": "BTCUSDT",
         "makerOrderId": 3, "tradeGroupId": -1, "selfTradePreventionMode": "EXPIRE_MAKER",
         "price": "30000.00000000", "makerPreventedQuantity": "0.50000000",
         "transactTime": NOW - 1},
        {"symbol": "BTCUSDT", "preventedMatchId": 2, "takerOrderId": 6, "makerSymbol": "BTCUSDT",
         "makerOrderId": 5, "tradeGroupId": -1, "selfTradePreventionMode": "EXPIRE_MAKER",
         "price": "30000.00000000", "makerPreventedQuantity": "0.50000000",
         "transactTime": NOW - 2},
    ]  # fmt: skip
    one = pm.my_prevented_matches(signed_request({"symbol": "BTCUSDT", "preventedMatchId": 3}), d)
    assert [r["preventedMatchId"] for r in one] == [3]
    page = pm.my_prevented_matches(
        signed_request({"symbol": "BTCUSDT", "orderId": 5, "fromPreventedMatchId": 2,
                        "limit": 5000}), d)  # fmt: skip
    assert [r["preventedMatchId"] for r in page] == [2] and hist.asked[-1]["limit"] == 1000
    assert hist.asked[0]["limit"] == 500


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"symbol": "BTCUSDT"}, -1128),
        ({"symbol": "BTCUSDT", "orderId": 1, "preventedMatchId": 1}, -1128),
        ({"symbol": "BTCUSDT", "fromPreventedMatchId": 1}, -1128),
        ({"symbol": "BTCUSDT", "preventedMatchId": 1, "limit": 5}, -1128),
        ({"symbol": "BTCUSDT", "orderId": 1, "fromPreventedMatchId": 1, "limit": 0}, -1130),
        ({"symbol": "NOPEUSDT", "orderId": 1}, -1121),
        ({"orderId": 1}, -1102),
        ({"symbol": "BTCUSDT", "orderId": "x"}, -1100),
        ({"symbol": "BTCUSDT", "orderId": 1, "other": 1}, -1104),
    ],
)
def test_prevented_matches_refusals(params: dict[str, Any], code: int) -> None:
    hist = PreventedHistory([prevented(1, 5, 3)])
    d = replace(history_deps(hist), history=hist)
    assert _code(pm.my_prevented_matches, signed_request(params), d) == code
    assert hist.asked == []  # refused before the record is read


def test_prevented_matches_weight() -> None:
    assert pm.prevented_matches_weight({"symbol": "X", "orderId": "1"}) == 20
    assert pm.prevented_matches_weight({"symbol": "X", "preventedMatchId": "1"}) == 2


# ---------------------------------------------------------------------------- WebSocket methods


def test_added_methods_run_their_rest_twins() -> None:
    routes = {(r.method, r.path): r for group in BY_FUNCTION.values() for r in group}
    for name, rest in ADDED.items():
        method = ws_api.METHODS[name]
        assert method.rest == rest and rest in WEIGHTS, name
        assert method.handler is routes[rest].handler, name
        assert (method.permission is not None) == routes[rest].signed, name


class Surface:
    """The WebSocket API over fakes: a record, a limiter, a connection store."""

    def __init__(self, query: dict[str, str] | None = None) -> None:
        self.hist = PreventedHistory([prevented(1, 5, 3)])
        self.hist.trade_rows = [trade(1, NOW - 10, 10 * E8, E8)]
        self.limiter = FakeLimiter(rl.Limits(weight_per_minute=6000))
        self.deps = replace(history_deps(self.hist), keys=ws_keys(), history=self.hist,
                            rate_limits=self.limiter)  # fmt: skip
        self.store = FakeStore()
        self.cid = f"conn-{uuid.uuid4().hex}"  # the connection default is kept per id
        connect = WsEvent("$connect", "CONNECT", self.cid, NOW - 1000, "10.2.2.2", None,
                          query or {})  # fmt: skip
        market_streams.connect(connect, self.store, lambda key: None)

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        request: dict[str, Any] = {"id": 9, "method": method}
        if params is not None:
            request["params"] = params
        event = WsEvent(method, "MESSAGE", self.cid, NOW - 1000, "10.2.2.2", json.dumps(request))
        answer = ws_api.handle(event, self.deps, self.store)
        return json.loads(answer["body"])


def test_market_data_methods_answer_as_rest_with_its_weight() -> None:
    surface = Surface()
    cases: list[tuple[str, dict[str, Any], h.Deps]] = [
        ("trades.recent", {"symbol": "BTCUSDT"}, surface.deps),
        ("ticker.tradingDay", {"symbol": "BTCUSDT", "type": "MINI"}, surface.deps),
        ("ticker", {"symbols": ["BTCUSDT"], "windowSize": "1h"}, surface.deps),
        ("avgPrice", {"symbol": "BTCUSDT"}, surface.deps),
        ("klines", {"symbol": "BTCUSDT", "interval": "1m"}, surface.deps),
    ]
    for name, params, d in cases:
        before = surface.limiter.weight.get("10.2.2.2", 0)
        answer = surface.call(name, params)
        assert answer["status"] == 200, (name, answer)
        query = "&".join(f"{k}={ws_api.param_text(k, v)}" for k, v in params.items())
        assert answer["result"] == ws_api.METHODS[name].handler(public(query), d), name
        weight = ws_api.METHODS[name].weight({k: ws_api.param_text(k, v)
                                              for k, v in params.items()})  # fmt: skip
        assert surface.limiter.weight["10.2.2.2"] - before == weight, name
        assert answer["rateLimits"][0]["count"] == surface.limiter.weight["10.2.2.2"], name
    refused = surface.call("trades.recent", {"symbol": "BTCUSDT", "apiKey": "k" * 64})
    assert refused["error"]["code"] == -1101 or refused["status"] == 400


def test_account_methods_signed_or_in_a_session() -> None:
    surface = Surface()
    signed = surface.call("myPreventedMatches", _ws_signed({"symbol": "BTCUSDT", "orderId": 5}))
    assert signed["status"] == 200 and signed["result"][0]["makerOrderId"] == 3
    assert surface.limiter.weight["10.2.2.2"] == 20
    assert surface.call("myTrades", {"symbol": "BTCUSDT", "timestamp": NOW})["status"] == 401
    assert surface.call("session.logon", _ws_signed_ed({}))["status"] == 200
    queries: list[tuple[str, dict[str, Any]]] = [
        ("myPreventedMatches", {"symbol": "BTCUSDT", "preventedMatchId": 1}),
        ("allOrders", {"symbol": "BTCUSDT"}),
        ("myTrades", {"symbol": "BTCUSDT"}),
        ("account.commission", {"symbol": "BTCUSDT"}),
        ("account.rateLimits.orders", {}),
    ]
    for name, params in queries:
        answer = surface.call(name, {**params, "timestamp": NOW - 10})
        assert answer["status"] == 200, (name, answer)
    orders = surface.call("account.rateLimits.orders", {"timestamp": NOW - 10})["result"]
    assert [r["rateLimitType"] for r in orders] == ["ORDERS", "ORDERS"]
    bad = surface.call("myPreventedMatches", {"symbol": "BTCUSDT", "timestamp": NOW - 10})
    assert bad["error"]["code"] == -1128 and "rateLimits" in bad


# ---------------------------------------------------------------------------- rateLimits


def test_rate_limits_shown_by_default_hidden_on_request() -> None:
    surface = Surface()
    shown = surface.call("time")
    assert shown["rateLimits"] == [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE",
                                    "intervalNum": 1, "limit": shown["rateLimits"][0]["limit"],
                                    "count": 1}]  # fmt: skip
    assert "rateLimits" not in surface.call("time", {"returnRateLimits": False})
    assert "rateLimits" in surface.call("time", {"returnRateLimits": True})
    signed = surface.call(
        "myTrades", _ws_signed({"symbol": "BTCUSDT", "returnRateLimits": "false"})
    )
    assert signed["status"] == 200 and "rateLimits" not in signed
    assert surface.call("time", {"returnRateLimits": "maybe"})["error"]["code"] == -1130
    assert surface.call("session.status")["result"]["returnRateLimits"] is True


def test_connection_url_sets_the_default() -> None:
    surface = Surface({"returnRateLimits": "false"})
    assert "rateLimits" not in surface.call("time")
    assert "rateLimits" not in surface.call("ticker.price", {"symbol": "BTCUSDT"})
    assert "rateLimits" in surface.call("time", {"returnRateLimits": True})
    assert surface.call("session.status")["result"]["returnRateLimits"] is False
    assert surface.limiter.weight["10.2.2.2"] == 1 + 2 + 1 + 2  # still counted
    assert "rateLimits" in Surface({"returnRateLimits": "true"}).call("time")


# ---------------------------------------------------------------------------- session.logon


def test_session_logon_takes_ed25519_keys_only() -> None:
    surface = Surface()
    hmac_logon = surface.call("session.logon", _ws_signed({}))
    assert (hmac_logon["status"], hmac_logon["error"]["code"]) == (400, -4056)
    assert surface.call("session.status")["result"]["apiKey"] is None
    forged = surface.call("session.logon", _ws_signed({}, "x" * 64))
    assert forged["error"]["code"] == -1022  # the key type is not told to a forger
    assert surface.call("session.logon", _ws_signed_ed({}))["result"]["apiKey"] == "E" * 64
    # Signed requests still take HMAC keys, as Binance's do.
    assert surface.call("allOrders", _ws_signed({"symbol": "BTCUSDT"}))["status"] == 200
