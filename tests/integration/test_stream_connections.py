"""Market stream connections as Binance accepts them, end to end through the local gateway and
the broadcaster (docs/websocket.md, "Market streams"; docs/streams.md):

* the paths: ``/ws/<anything>`` (ccxt.pro opens ``/ws/<n>``, a connection index) and bare
  ``/ws`` and ``/stream`` followed by SUBSCRIBE; ``/stream?streams=a/b`` (wrapped
  ``{"stream","data"}``); ``/ws/a/b`` (raw, several streams);
* a SUBSCRIBE's acknowledgement is a promise: the very next message of the stream arrives, so
  Binance's local order book procedure (REST snapshot, then diffs from lastUpdateId + 1)
  starts right after it;
* LIST_SUBSCRIPTIONS, SET_PROPERTY / GET_PROPERTY ``combined``;
* the streams added for issue 16: ``@avgPrice``, ``@ticker_<window>``, ``!ticker_<window>@arr``.

One private exchange for the module (tables of its own, Redis database 61), with the
broadcaster beside it.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from bourse.settings import Settings
from tests.binance_book import LocalOrderBook
from tests.integration.api_support import ApiStack, Trader
from tests.integration.ws_support import WsClient, ws_exchange

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REDIS_DB = int(os.environ.get("BOURSE_TEST_STREAM_CONNECTIONS_REDIS_DB", "61"))


@pytest.fixture(scope="module")
def stack(
    local_stack: Settings, aws_client: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiStack]:
    logs = tmp_path_factory.mktemp("stream-connections")
    env = {"BOURSE_RATE_LIMITS_ENABLED": "false"}
    with ws_exchange(local_stack, aws_client("dynamodb"), logs, REDIS_DB, env=env) as s:
        yield s


@dataclasses.dataclass
class Market:
    symbol: str
    maker: Trader
    taker: Trader

    @property
    def stream_symbol(self) -> str:
        return self.symbol.lower()


_next_account = iter(range(601, 700))


def _market(stack: ApiStack, symbol: str) -> Market:
    """A new market like BTCUSDT (same filters) with a maker holding its base asset and a
    taker holding USDT: each test trades on a book of its own."""
    base = symbol.removesuffix("USDT")
    stack.list_market(symbol, base)
    maker = stack.trader(next(_next_account), {base: "100"})
    taker = stack.trader(next(_next_account), {"USDT": "10000000"})
    return Market(symbol, maker, taker)


def _order(stack: ApiStack, trader: Trader, **params: Any) -> dict[str, Any]:
    answer = stack.client(trader).signed("POST", "/api/v3/order", params)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def _rest(market: Market, stack: ApiStack, price: str, side: str = "SELL") -> None:
    """A resting limit order of the maker: one depth update."""
    _order(stack, market.maker, symbol=market.symbol, side=side, type="LIMIT",
           timeInForce="GTC", quantity="0.01", price=price)  # fmt: skip


def _trade(market: Market, stack: ApiStack, price: str = "30000") -> None:
    _rest(market, stack, price)
    _order(stack, market.taker, symbol=market.symbol, side="BUY", type="MARKET",
           quantity="0.01")  # fmt: skip


def _depth(stack: ApiStack, symbol: str, limit: int = 5000) -> dict[str, Any]:
    params: dict[str, str | int] = {"symbol": symbol, "limit": limit}
    answer = requests.get(f"{stack.base_url}/api/v3/depth", params=params, timeout=30)
    assert answer.status_code == 200, answer.text
    data: dict[str, Any] = answer.json()
    return data


def _first(client: WsClient, pick: Callable[[Any], bool], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    skipped: list[Any] = []
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"nothing arrived; before: {skipped}"
        message = client.recv(timeout=left)
        if pick(message):
            return message
        skipped.append(message)


def _url(stack: ApiStack, path: str) -> str:
    return f"ws://127.0.0.1:{stack.port}{path}"


# -- the paths


@pytest.mark.parametrize("path", ["/ws/0", "/ws/1", "/ws", "/ws/", "/stream", "/ws/not-a-stream"])
def test_a_connection_without_streams_opens_and_subscribes(stack: ApiStack, path: str) -> None:
    """ccxt.pro opens /ws/<connection index> and subscribes afterwards: Binance accepts a
    name it does not know in the path (nothing is published on it) and so do we."""
    client = WsClient(_url(stack, path))
    try:
        assert client.stream_request("LIST_SUBSCRIPTIONS") == {"result": [], "id": 1}
        assert client.stream_request("SUBSCRIBE", ["btcusdt@trade"]) == {"result": None, "id": 2}
        assert client.stream_request("LIST_SUBSCRIPTIONS") == {
            "result": ["btcusdt@trade"], "id": 3
        }  # fmt: skip
        combined = path.startswith("/stream")
        assert client.stream_request("GET_PROPERTY", ["combined"]) == {
            "result": combined, "id": 4
        }  # fmt: skip
    finally:
        client.close()


def test_subscribe_after_connecting_by_index_receives_the_stream(stack: ApiStack) -> None:
    market = _market(stack, "IDXUSDT")
    raw = WsClient(_url(stack, "/ws/0"))
    combined = WsClient(_url(stack, "/stream"))
    try:
        for client in (raw, combined):
            answer = client.stream_request("SUBSCRIBE", [f"{market.stream_symbol}@trade"])
            assert answer == {"result": None, "id": 1}
        _trade(market, stack)
        trade = _first(raw, lambda m: True)
        assert trade["e"] == "trade" and trade["s"] == "IDXUSDT", trade
        wrapped = _first(combined, lambda m: True)
        assert wrapped["stream"] == "idxusdt@trade" and wrapped["data"]["e"] == "trade", wrapped
    finally:
        raw.close()
        combined.close()


def test_combined_and_raw_paths_with_several_streams(stack: ApiStack) -> None:
    market = _market(stack, "CMBUSDT")
    s = market.stream_symbol
    combined = WsClient(_url(stack, f"/stream?streams={s}@trade/{s}@aggTrade"))
    raw = WsClient(_url(stack, f"/ws/{s}@trade/{s}@aggTrade"))
    try:
        assert combined.stream_request("LIST_SUBSCRIPTIONS")["result"] == [
            f"{s}@trade", f"{s}@aggTrade"
        ]  # fmt: skip
        assert raw.stream_request("LIST_SUBSCRIPTIONS")["result"] == [f"{s}@trade", f"{s}@aggTrade"]
        _trade(market, stack)
        got = [_first(combined, lambda m: True), _first(combined, lambda m: True)]
        assert {m["stream"] for m in got} == {f"{s}@trade", f"{s}@aggTrade"}, got
        assert {m["data"]["e"] for m in got} == {"trade", "aggTrade"}
        got = [_first(raw, lambda m: True), _first(raw, lambda m: True)]
        assert {m["e"] for m in got} == {"trade", "aggTrade"}, got
    finally:
        combined.close()
        raw.close()


# -- the acknowledgement is a promise


def test_the_next_depth_update_after_subscribe_arrives_and_a_local_book_starts(
    stack: ApiStack,
) -> None:
    """Binance's local order book procedure, started right after SUBSCRIBE: the very next
    diff arrives (its U is the previous diff's u + 1, as a watcher subscribed all along saw
    it), the REST snapshot follows, and every diff after it continues with no gap.

    The watcher makes the broadcaster look the stream up (and cache the list) just before the
    new client subscribes, the case that lost the next update."""
    market = _market(stack, "OBKUSDT")
    stream = f"{market.stream_symbol}@depth@100ms"
    watcher = WsClient(_url(stack, f"/ws/{stream}"))
    try:
        prices = iter(range(30_000, 31_000, 10))
        _rest(market, stack, str(next(prices)))
        last_u = _first(watcher, lambda m: m.get("e") == "depthUpdate")["u"]
        for _ in range(3):
            client = WsClient(_url(stack, "/ws/0"))
            try:
                assert client.stream_request("SUBSCRIBE", [stream]) == {"result": None, "id": 1}
                time.sleep(0.1)
                _rest(market, stack, str(next(prices)))
                first = _first(client, lambda m: True, timeout=30)
                assert first["e"] == "depthUpdate" and first["U"] == last_u + 1, (first, last_u)
                seen = _first(watcher, lambda m: True)
                assert seen == first
                book = LocalOrderBook()
                book.on_event(first)
                assert book.on_snapshot(_depth(stack, market.symbol))
                for _ in range(3):
                    _rest(market, stack, str(next(prices)))
                    diff = _first(client, lambda m: True, timeout=30)
                    assert book.last is not None and diff["U"] == book.last + 1, (diff, book.last)
                    book.on_event(diff)
                    assert _first(watcher, lambda m: True) == diff
                rest = _depth(stack, market.symbol)
                assert rest["lastUpdateId"] == book.last
                assert book.top() == (
                    [tuple(x) for x in rest["bids"]], [tuple(x) for x in rest["asks"]]
                )  # fmt: skip
                last_u = book.last
            finally:
                client.close()
    finally:
        watcher.close()


# -- properties


def test_set_property_combined_wraps_the_next_payloads(stack: ApiStack) -> None:
    market = _market(stack, "PRPUSDT")
    stream = f"{market.stream_symbol}@trade"
    client = WsClient(_url(stack, f"/ws/{stream}"))
    try:
        assert client.stream_request("GET_PROPERTY", ["combined"]) == {"result": False, "id": 1}
        _trade(market, stack)
        assert _first(client, lambda m: True)["e"] == "trade"
        # The broadcaster has just looked the stream up (raw): the property wins at once.
        assert client.call({"method": "SET_PROPERTY", "params": ["combined", True], "id": 2}) == {
            "result": None, "id": 2
        }  # fmt: skip
        assert client.call({"method": "GET_PROPERTY", "params": ["combined"], "id": 3}) == {
            "result": True, "id": 3
        }  # fmt: skip
        _trade(market, stack)
        wrapped = _first(client, lambda m: True)
        assert wrapped["stream"] == stream and wrapped["data"]["e"] == "trade", wrapped
        assert client.call({"method": "SET_PROPERTY", "params": ["combined", "yes"], "id": 4}) == {
            "error": {"code": 1, "msg": "Invalid value type: expected Boolean"}, "id": 4
        }  # fmt: skip
        assert client.call({"method": "GET_PROPERTY", "params": ["speed"], "id": 5}) == {
            "error": {"code": 0, "msg": "Unknown property"}, "id": 5
        }  # fmt: skip
    finally:
        client.close()


# -- the streams added


def test_avg_price_and_rolling_window_ticker_streams(stack: ApiStack) -> None:
    market = _market(stack, "WINUSDT")
    s = market.stream_symbol
    names = [f"{s}@avgPrice", f"{s}@ticker_1h", f"{s}@ticker_4h", f"{s}@ticker_1d",
             "!ticker_1h@arr", f"{s}@depth", f"{s}@depth5@100ms"]  # fmt: skip
    client = WsClient(_url(stack, "/stream?streams=" + "/".join(names)))
    try:
        _trade(market, stack, "25000")
        got: dict[str, Any] = {}
        while set(got) != set(names):
            message = _first(client, lambda m: True)
            got.setdefault(message["stream"], message["data"])
        assert got[f"{s}@avgPrice"]["e"] == "avgPrice"
        assert got[f"{s}@avgPrice"]["w"] == "25000.00000000"
        assert got[f"{s}@avgPrice"]["i"] == "5m" and got[f"{s}@avgPrice"]["s"] == "WINUSDT"
        for size in ("1h", "4h", "1d"):
            ticker = got[f"{s}@ticker_{size}"]
            assert ticker["e"] == f"{size}Ticker" and ticker["c"] == "25000.00000000"
            assert ticker["n"] == 1 and ticker["v"] == "0.01000000" and ticker["O"] % 60_000 == 0
        assert [t["s"] for t in got["!ticker_1h@arr"]] == ["WINUSDT"]
        assert got[f"{s}@depth"]["e"] == "depthUpdate"
        assert set(got[f"{s}@depth5@100ms"]) == {"lastUpdateId", "bids", "asks"}
    finally:
        client.close()
