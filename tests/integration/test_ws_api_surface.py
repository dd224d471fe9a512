"""The WebSocket API's market data and account history methods end to end: a WebSocket client
-> the local gateway -> the WebSocket API function -> the scratch record (PostgreSQL) and the
live view -> Binance's answers, the same as REST's for the same request; ``rateLimits`` on
every answer unless the request or the connection URL says ``returnRateLimits=false``; and
``session.logon`` with an Ed25519 key only.

The record and its exchange are test_trading_day_prevented's (prevented matches 1 and 2 of
account 1, one trade today, one yesterday).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from bourse.settings import Settings
from tests.integration.api_support import ApiStack, Trader, now_ms
from tests.integration.test_trading_day_prevented import SYMBOL, Record
from tests.integration.test_trading_day_prevented import record as record
from tests.integration.ws_support import (
    WsClient,
    ed25519_key,
    ed_signed_params,
    private_tables,
    signed_params,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REDIS_DB = int(os.environ.get("BOURSE_TEST_WS_SURFACE_REDIS_DB", "24"))


@pytest.fixture(scope="module")
def stack(
    local_stack: Settings,
    aws_client: Any,
    record: Record,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ApiStack]:
    with private_tables(aws_client("dynamodb"), local_stack) as tables:
        s = ApiStack(local_stack, tmp_path_factory.mktemp("ws-surface"), REDIS_DB, record.dsn)
        s.env.update(tables)
        try:
            s.start()
            yield s
        finally:
            s.stop()


@pytest.fixture(scope="module")
def owner(stack: ApiStack) -> Trader:
    return stack.trader(1, {})


def _ws(stack: ApiStack, query: str = "") -> WsClient:
    return WsClient(stack.base_url.replace("http://", "ws://") + "/ws-api/v3" + query)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def _timeless(body: Any) -> Any:
    """A rolling ticker without its window, which ends at the moment of each request."""
    return {k: v for k, v in body.items() if k not in ("openTime", "closeTime")}


def test_market_data_methods_answer_as_rest(stack: ApiStack, record: Record) -> None:
    rest = stack.client()
    client = _ws(stack)
    first = record.trade_times[0]  # klines from there on: the same candles a moment later
    cases: list[tuple[str, str, dict[str, Any]]] = [
        ("trades.recent", "/api/v3/trades", {"symbol": SYMBOL}),
        ("trades.historical", "/api/v3/historicalTrades", {"symbol": SYMBOL, "fromId": 1}),
        ("trades.aggregate", "/api/v3/aggTrades", {"symbol": SYMBOL}),
        (
            "klines",
            "/api/v3/klines",
            {"symbol": SYMBOL, "interval": "1h", "startTime": first, "limit": 2},
        ),
        (
            "uiKlines",
            "/api/v3/uiKlines",
            {"symbol": SYMBOL, "interval": "1m", "startTime": first, "limit": 2},
        ),
        ("ticker.tradingDay", "/api/v3/ticker/tradingDay", {"symbol": SYMBOL}),
        ("ticker.price", "/api/v3/ticker/price", {"symbol": SYMBOL}),
        ("ticker.book", "/api/v3/ticker/bookTicker", {"symbol": SYMBOL}),
    ]
    try:
        for method, path, params in cases:
            answer = client.api(method, params)
            assert answer["status"] == 200, (method, answer)
            expected = rest.public("GET", path, **{k: _text(v) for k, v in params.items()})
            assert answer["result"] == expected.json(), method
            (weight,) = answer["rateLimits"]
            assert (weight["rateLimitType"], weight["interval"]) == ("REQUEST_WEIGHT", "MINUTE")
        rolling = client.api("ticker", {"symbol": SYMBOL, "windowSize": "7d"})
        expected = rest.public("GET", "/api/v3/ticker", symbol=SYMBOL, windowSize="7d").json()
        assert _timeless(rolling["result"]) == _timeless(expected) and expected["count"] == 2
        listed = client.api("ticker.24hr", {"symbols": [SYMBOL, "ETHUSDT"], "type": "MINI"})
        assert [t["symbol"] for t in listed["result"]] == [SYMBOL, "ETHUSDT"]
        avg = client.api("avgPrice", {"symbol": SYMBOL})
        assert avg["status"] == 200 and avg["result"]["mins"] == 5
        bad = client.api("ticker.tradingDay", {"symbol": SYMBOL, "timeZone": "15"})
        assert (bad["status"], bad["error"]["code"]) == (400, -1130) and "rateLimits" in bad
    finally:
        client.close()


def test_account_methods_and_session_logon(stack: ApiStack, record: Record, owner: Trader) -> None:
    rest = stack.client(owner)
    client = _ws(stack)
    try:
        signed = client.api("myPreventedMatches",
                            signed_params(owner, {"symbol": SYMBOL, "orderId": 4}))  # fmt: skip
        assert signed["status"] == 200, signed
        expected = rest.signed("GET", "/api/v3/myPreventedMatches", {"symbol": SYMBOL,
                                                                       "orderId": 4})  # fmt: skip
        assert signed["result"] == expected.json() and len(signed["result"]) == 2
        hmac_logon = client.api("session.logon", signed_params(owner, {}))
        assert (hmac_logon["status"], hmac_logon["error"]["code"]) == (400, -4056)
        ed_key = ed25519_key(stack, owner)
        logon = client.api("session.logon", ed_signed_params(ed_key, {}))
        assert logon["status"] == 200 and logon["result"]["apiKey"] == ed_key.api_key
        queries: list[tuple[str, dict[str, Any]]] = [
            ("myPreventedMatches", {"symbol": SYMBOL, "preventedMatchId": 1}),
            ("allOrders", {"symbol": SYMBOL}),
            ("myTrades", {"symbol": SYMBOL}),
            ("account.commission", {"symbol": SYMBOL}),
            ("account.rateLimits.orders", {}),
        ]
        for method, params in queries:
            answer = client.api(method, {**params, "timestamp": now_ms(), "recvWindow": 60000})
            assert answer["status"] == 200, (method, answer)
        prevented = client.api(
            "myPreventedMatches",
            {"symbol": SYMBOL, "preventedMatchId": 1, "timestamp": now_ms(), "recvWindow": 60000},
        )
        assert [m["makerOrderId"] for m in prevented["result"]] == [3]
        trades = client.api("myTrades", {"symbol": SYMBOL, "timestamp": now_ms(),
                                         "recvWindow": 60000})  # fmt: skip
        assert [t["orderId"] for t in trades["result"]] == [4]
    finally:
        client.close()


def test_return_rate_limits_by_request_and_by_connection(stack: ApiStack) -> None:
    shown = _ws(stack)
    hidden = _ws(stack, "?returnRateLimits=false")
    try:
        assert "rateLimits" in shown.api("time")
        assert "rateLimits" not in shown.api("time", {"returnRateLimits": False})
        assert shown.api("session.status")["result"]["returnRateLimits"] is True
        assert "rateLimits" not in hidden.api("time")
        assert "rateLimits" not in hidden.api("ticker.price", {"symbol": SYMBOL})
        assert "rateLimits" in hidden.api("time", {"returnRateLimits": True})
        assert hidden.api("session.status")["result"]["returnRateLimits"] is False
    finally:
        shown.close()
        hidden.close()
