"""The broadcaster end to end: orders -> Kafka -> matching service -> bourse.events -> the
broadcaster Lambda (local MSK poller) -> the gateway's @connections -> WebSocket clients.

One private exchange for the module (private DynamoDB tables, topics, Redis database 28;
``ws_support``), with the broadcaster running beside it. python-binance's
``BinanceSocketManager`` (PyPI, unmodified; only its stream URL and REST URL point at the
gateway) gets trade, diff depth and kline events for orders placed through REST, and the
executionReport on the user data stream of a listen key from POST /api/v3/userDataStream.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from websockets.sync.client import ClientConnection, connect

from bourse.adapters.connections import ConnectionStore
from bourse.domain.amounts import parse_units
from bourse.domain.commands import NewOrder
from bourse.domain.enums import OrderType, Side, TimeInForce
from bourse.settings import Settings
from bourse.streams.frames import MAX_MESSAGE_BYTES
from matching_service.workload import commands
from tests.binance_book import LocalOrderBook
from tests.integration.api_support import ApiStack, now_ms
from tests.integration.ws_support import (
    WsClient,
    ed25519_key,
    ed_signed_params,
    private_tables,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REDIS_DB = int(os.environ.get("BOURSE_TEST_BROADCASTER_REDIS_DB", "28"))


@pytest.fixture(scope="module")
def tables(local_stack: Settings, aws_client: Any) -> Iterator[dict[str, str]]:
    with private_tables(aws_client("dynamodb"), local_stack) as env:
        yield env


@pytest.fixture(scope="module")
def stack(
    local_stack: Settings, tables: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiStack]:
    s = ApiStack(local_stack, tmp_path_factory.mktemp("broadcaster"), REDIS_DB)
    s.env.update(tables)
    # These tests poll the REST book far more than a client would (limit=5000 weighs 250).
    s.env["BOURSE_RATE_LIMITS_ENABLED"] = "false"
    try:
        s.start()
        s.spawn_broadcaster()
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def store(tables: dict[str, str]) -> ConnectionStore:
    return ConnectionStore(tables["CONNECTIONS_TABLE"], tables["SUBSCRIPTIONS_TABLE"])


class Reader:
    """A raw WebSocket client reading frames on a thread of its own."""

    def __init__(self, url: str) -> None:
        self._exit = contextlib.ExitStack()
        self.conn: ClientConnection = self._exit.enter_context(
            connect(url, compression=None, proxy=None, max_size=None)
        )
        self.frames: list[bytes] = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for frame in self.conn:
                self.frames.append(frame if isinstance(frame, bytes) else frame.encode())
        except Exception:  # the connection closed: the test reads what arrived
            return

    def messages(self) -> list[Any]:
        return [json.loads(f) for f in list(self.frames)]

    def close(self) -> None:
        self._exit.close()


def _depth(stack: ApiStack, symbol: str, limit: int = 5000) -> dict[str, Any]:
    url = f"{stack.base_url}/api/v3/depth"
    params: dict[str, str | int] = {"symbol": symbol, "limit": limit}
    answer = requests.get(url, params=params, timeout=30)
    assert answer.status_code == 200, answer.text
    data: dict[str, Any] = answer.json()
    return data


def _sync(stack: ApiStack, book: LocalOrderBook, symbol: str) -> None:
    """Binance's step 2-3: the REST snapshot, fetched again while it is older than the first
    buffered event."""
    deadline = time.monotonic() + 60
    while not book.on_snapshot(_depth(stack, symbol)):
        assert time.monotonic() < deadline, "the REST book stayed behind the stream"
        time.sleep(0.2)


def _follow(reader: Reader, book: LocalOrderBook, seen: int) -> int:
    frames = reader.messages()
    for m in frames[seen:]:
        book.on_event(m)
    return len(frames)


def _settled(stack: ApiStack, reader: Reader, book: LocalOrderBook, symbol: str) -> None:
    """Follows the stream until the local book is at the REST book's lastUpdateId, then
    compares every level."""
    seen = 0
    deadline = time.monotonic() + 180
    while True:
        seen = _follow(reader, book, seen)
        if book.last == _depth(stack, symbol, 1)["lastUpdateId"]:
            rest = _depth(stack, symbol)
            if rest["lastUpdateId"] == book.last:
                bids = [tuple(x) for x in rest["bids"]]
                assert book.top() == (bids, [tuple(x) for x in rest["asks"]])
                return
        assert time.monotonic() < deadline, (book.last, _depth(stack, symbol, 1)["lastUpdateId"])
        time.sleep(0.3)


def _add_symbol(stack: ApiStack, symbol: str, base_asset: str) -> None:
    """A new market like BTCUSDT (same filters), through the matching service."""
    stack.list_market(symbol, base_asset)


def test_local_book_from_rest_snapshot_and_diff_stream_equals_the_exchange(
    stack: ApiStack,
) -> None:
    reader = Reader(f"ws://127.0.0.1:{stack.port}/ws/btcusdt@depth@100ms")
    try:
        book = LocalOrderBook()
        load = list(commands(5_000, seed=31))
        stack.send(load[:2_500])
        # The snapshot is taken while the first half is still flowing.
        assert wait_for(lambda: len(reader.frames) > 0, timeout=120)
        for m in reader.messages():
            book.on_event(m)
        seen = len(reader.frames)
        _sync(stack, book, "BTCUSDT")
        stack.send(load[2_500:])
        seen = _follow(reader, book, seen)
        # Compare once every command is in: the REST book has stopped moving.
        last, quiet_since = -1, time.monotonic()
        while time.monotonic() - quiet_since < 3:
            now = _depth(stack, "BTCUSDT", 1)["lastUpdateId"]
            if now != last:
                last, quiet_since = now, time.monotonic()
            time.sleep(0.2)
        _settled(stack, reader, book, "BTCUSDT")
        assert book.bids and book.asks
    finally:
        reader.close()


def test_python_binance_socket_manager(stack: ApiStack) -> None:
    from binance import AsyncClient, BinanceSocketManager

    # A symbol of its own: an empty book, so the taker meets exactly the maker's order.
    _add_symbol(stack, "PYBUSDT", "PYB")
    maker = stack.trader(201, {"PYB": "1"})
    taker = stack.trader(202, {"USDT": "100000"})

    async def run() -> dict[str, Any]:
        clients = []
        for trader in (maker, taker):
            client = AsyncClient(trader.api_key, trader.secret)
            client.API_URL = stack.base_url + "/api"
            clients.append(client)
        maker_client, taker_client = clients
        bsm = BinanceSocketManager(maker_client)
        bsm.STREAM_URL = f"ws://127.0.0.1:{stack.port}/"
        listen_key = await maker_client.stream_get_listen_key()
        got: dict[str, Any] = {}
        try:
            async with (
                bsm.trade_socket("PYBUSDT") as trades,
                bsm.depth_socket("PYBUSDT") as depth,
                bsm.kline_socket("PYBUSDT", AsyncClient.KLINE_INTERVAL_1MINUTE) as klines,
                bsm.multiplex_socket([listen_key]) as user,
            ):
                sell = await maker_client.order_limit_sell(
                    symbol="PYBUSDT", quantity="0.01", price="31000", newClientOrderId="ws-maker-1"
                )
                await taker_client.order_market_buy(symbol="PYBUSDT", quantity="0.01")

                async def first(sock: Any, pick: Any) -> Any:
                    while True:
                        msg = await asyncio.wait_for(sock.recv(), 120)
                        if pick(msg):
                            return msg

                got["trade"] = await first(trades, lambda m: m.get("e") == "trade")
                got["depth"] = await first(depth, lambda m: m.get("e") == "depthUpdate")
                got["kline"] = await first(klines, lambda m: m.get("e") == "kline")
                got["user"] = await first(
                    user,
                    lambda m: (
                        m.get("data", {}).get("e") == "executionReport"
                        and m["data"]["x"] == "TRADE"
                    ),
                )
                got["order"] = sell
        finally:
            for client in clients:
                await client.close_connection()
        return got

    got = asyncio.run(run())
    trade = got["trade"]
    assert trade["s"] == "PYBUSDT" and trade["p"] == "31000.00000000"
    assert trade["q"] == "0.01000000" and trade["m"] is False  # the buyer took
    assert got["depth"]["s"] == "PYBUSDT" and got["depth"]["u"] >= got["depth"]["U"]
    kline = got["kline"]["k"]
    assert kline["i"] == "1m" and kline["c"] == "31000.00000000" and kline["n"] >= 1
    report = got["user"]["data"]
    assert report["i"] == got["order"]["orderId"] and report["c"] == "ws-maker-1"
    assert report["X"] == "FILLED" and report["L"] == "31000.00000000" and report["m"] is True


def test_a_connection_that_is_gone_is_deleted(stack: ApiStack, store: ConnectionStore) -> None:
    # A subscription whose connection the gateway does not know (its client vanished without
    # a $disconnect): the first post answers 410 GoneException and the broadcaster deletes it.
    store.put_connection(
        "gone-conn", account_id=None, combined=False, expires_at=int(time.time()) + 600
    )
    store.subscribe("gone-conn", ["ethusdt@trade"])
    reader = Reader(f"ws://127.0.0.1:{stack.port}/ws/ethusdt@trade")
    try:
        ids = {c.connection_id for c in store.connections_for_stream("ethusdt@trade")}
        assert "gone-conn" in ids and len(ids) == 2
        seller = stack.trader(211, {"ETH": "10"})
        buyer = stack.trader(212, {"USDT": "100000"})
        stack.client(seller).signed("POST", "/api/v3/order", {"symbol": "ETHUSDT", "side": "SELL",
            "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.1", "price": "2000"})  # fmt: skip
        stack.client(buyer).signed("POST", "/api/v3/order", {"symbol": "ETHUSDT", "side": "BUY",
            "type": "MARKET", "quantity": "0.1"})  # fmt: skip
        assert wait_for(lambda: bool(reader.frames), timeout=120)
        assert wait_for(
            lambda: all(
                c.connection_id != "gone-conn"
                for c in store.connections_for_stream("ethusdt@trade")
            ),
            timeout=30,
        )
        # Its subscriptions go first, then its Redis entries and the connection item: wait for
        # the end of the delete, not its first half (CI once looked in between).
        assert wait_for(lambda: store.get_connection("gone-conn") is None, timeout=30)
        assert {m["e"] for m in reader.messages()} == {"trade"}
    finally:
        reader.close()
    # A client that closes is removed by $disconnect: nothing is left subscribed.
    assert wait_for(lambda: store.connections_for_stream("ethusdt@trade") == [], timeout=30)


def test_a_sweep_of_5000_levels_arrives_in_frames_under_the_limit(stack: ApiStack) -> None:
    _add_symbol(stack, "BIGUSDT", "BIG")
    reader = Reader(f"ws://127.0.0.1:{stack.port}/ws/bigusdt@depth")
    try:
        ts = now_ms()
        makers = range(301, 326)  # 25 accounts x 200 orders (MAX_NUM_ORDERS)
        for a in makers:
            stack.open_account(a, {"BIG": "10"})
        stack.open_account(400, {"USDT": "1000000"})
        price = parse_units("40000")
        orders = [
            NewOrder(f"big-{a}-{i}", ts, a, "BIGUSDT", Side.SELL, OrderType.LIMIT, f"b{a}-{i}",
                     quantity=parse_units("0.001"), price=price + (k * 200 + i) * 10**6,
                     time_in_force=TimeInForce.GTC)
            for k, a in enumerate(makers) for i in range(200)
        ]  # fmt: skip
        stack.send(orders)
        book = LocalOrderBook()
        assert wait_for(lambda: len(reader.frames) > 0, timeout=120)
        _sync(stack, book, "BIGUSDT")
        # The stream and REST can agree half way through the orders: wait for all of them.
        assert wait_for(lambda: len(_depth(stack, "BIGUSDT")["asks"]) == 5_000, timeout=180)
        _settled(stack, reader, book, "BIGUSDT")
        assert len(book.asks) == 5_000
        before = len(reader.frames)
        stack.send([NewOrder("big-sweep", now_ms(), 400, "BIGUSDT", Side.BUY, OrderType.MARKET,
                             "sweep", quantity=parse_units("5"))])  # fmt: skip
        assert wait_for(lambda: _depth(stack, "BIGUSDT", 1)["asks"] == [], timeout=120)
        _settled(stack, reader, book, "BIGUSDT")
        assert book.asks == {}
        sweep = reader.frames[before:]
        # 5,000 removed levels are ~180 KB of JSON: several frames, each under the limit.
        assert len(sweep) >= 2
        assert max(len(f) for f in reader.frames) <= MAX_MESSAGE_BYTES
    finally:
        reader.close()


def _first(client: WsClient, pick: Any, timeout: float = 30) -> Any:
    """The first frame ``pick`` accepts; the frames before it are returned too."""
    deadline = time.monotonic() + timeout
    skipped: list[Any] = []
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"nothing arrived; before: {skipped}"
        message = client.recv(timeout=left)
        if pick(message):
            return message, skipped
        skipped.append(message)


def test_a_new_subscriber_receives_the_next_event(stack: ApiStack) -> None:
    """Subscribing right after an event of the same stream and account: the next event
    reaches the new subscriber, by each way of subscribing (SUBSCRIBE, a listen key's
    $connect, the WebSocket API's userDataStream.subscribe).

    A watcher receives each round's events first, so the broadcaster has just looked the
    stream and the account up when the new connections subscribe; a subscriber list cached
    from that lookup must not hide them from the next event (it did: lists were used for up
    to two seconds)."""
    _add_symbol(stack, "SUBUSDT", "SUB")
    maker = stack.trader(221, {"SUB": "10"})
    taker = stack.trader(222, {"USDT": "1000000"})
    answer = requests.post(
        f"{stack.base_url}/api/v3/userDataStream",
        headers={"X-MBX-APIKEY": maker.api_key},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    listen_key = answer.json()["listenKey"]
    url = f"ws://127.0.0.1:{stack.port}"
    watcher = Reader(f"{url}/stream?streams=subusdt@trade/{listen_key}")
    maker_rest, taker_rest = stack.client(maker), stack.client(taker)

    def trade(client_order_id: str) -> None:
        sell = maker_rest.signed("POST", "/api/v3/order", {"symbol": "SUBUSDT", "side": "SELL",
            "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.01", "price": "30000",
            "newClientOrderId": client_order_id})  # fmt: skip
        assert sell.status_code == 200, sell.text
        buy = taker_rest.signed("POST", "/api/v3/order", {"symbol": "SUBUSDT", "side": "BUY",
            "type": "MARKET", "quantity": "0.01"})  # fmt: skip
        assert buy.status_code == 200, buy.text

    def watched(client_order_id: str) -> bool:
        messages = watcher.messages()
        return any(m["stream"] == "subusdt@trade" for m in messages) and any(
            m["data"].get("e") == "executionReport"
            and m["data"]["c"] == client_order_id
            and m["data"]["x"] == "TRADE"
            for m in messages
        )

    try:
        trade("sub-0")
        assert wait_for(lambda: watched("sub-0"), timeout=120)
        for n in range(1, 4):
            watcher.frames.clear()
            market = WsClient(f"{url}/ws")
            assert market.stream_request("SUBSCRIBE", ["subusdt@trade"]) == {
                "result": None, "id": 1
            }  # fmt: skip
            user = WsClient(f"{url}/ws/{listen_key}")  # $connect answered: subscribed
            api = WsClient(f"{url}/ws-api/v3")
            try:
                logon = ed_signed_params(ed25519_key(stack, maker), {})
                assert api.api("session.logon", logon)["status"] == 200
                assert api.api("userDataStream.subscribe")["result"] == {"subscriptionId": 0}
                trade(f"sub-{n}")
                # The first events after subscribing: the trade, the maker's NEW report.
                first, _ = _first(market, lambda m: True)
                assert first["e"] == "trade" and first["s"] == "SUBUSDT", first
                report, before = _first(user, lambda m: m.get("e") == "executionReport")
                assert report["c"] == f"sub-{n}" and report["x"] == "NEW", (report, before)
                report, before = _first(
                    api, lambda m: m.get("event", {}).get("e") == "executionReport"
                )
                assert report["subscriptionId"] == 0, report
                assert report["event"]["c"] == f"sub-{n}", (report, before)
                assert report["event"]["x"] == "NEW", report
                assert wait_for(functools.partial(watched, f"sub-{n}"), timeout=60)
            finally:
                for client in (market, user, api):
                    client.close()
    finally:
        watcher.close()
