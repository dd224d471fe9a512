"""Resumable streams end to end (issue 20, item 1; docs/streams.md, "Resumable streams"): a
WebSocket client -> the local gateway -> $connect (``withSeq``, ``resumeFrom``) -> the
broadcaster (its message log in Redis) and the stream resume function, on a private exchange.

Two clients open the same combined stream (trades, 100 ms depth diffs, 1m klines, the ticker
and a listen key's user data) with positions. While two traders trade, one of them drops its
connection mid-stream, stays away while trading goes on, and reconnects with ``resumeFrom``
set to the position of the last message it got. Afterwards its messages, the first
connection's then the second's, are exactly the uninterrupted client's from its first
message on: the same frames, byte for byte, in the same order, none missing, none twice.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from bourse.settings import Settings
from tests.integration.api_support import ApiStack, Client
from tests.integration.ws_support import (
    EdTrader,
    WsClient,
    ed25519_key,
    ed_signed_params,
    ws_exchange,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REDIS_DB = int(os.environ.get("BOURSE_TEST_RESUME_REDIS_DB", "59"))
SYMBOL = "BTCUSDT"
ROUNDS = 40
QUIET_S = 3.0


@pytest.fixture(scope="module")
def stack(
    local_stack: Settings, aws_client: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiStack]:
    logs = tmp_path_factory.mktemp("resume")
    with ws_exchange(local_stack, aws_client("dynamodb"), logs, REDIS_DB) as s:
        yield s


def _open(url: str) -> ClientConnection:
    return connect(url, compression=None, proxy=None, open_timeout=90, legacy=True)


def _read(conn: ClientConnection, out: list[str], count: int | None = None) -> None:
    """Frames as received (text, untouched) until ``count`` of them, or until QUIET_S of
    silence."""
    while count is None or len(out) < count:
        try:
            frame = conn.recv(timeout=QUIET_S if count is None else 30)
        except (TimeoutError, ConnectionClosed):
            if count is None:
                return
            raise
        assert isinstance(frame, str)
        out.append(frame)


def _trade(maker: Client, taker: Client, done: threading.Event) -> None:
    try:
        for i in range(ROUNDS):
            price = f"{87000 + i % 7}"
            for client, side in ((maker, "SELL"), (taker, "BUY")):
                answer = client.signed("POST", "/api/v3/order", {
                    "symbol": SYMBOL, "side": side, "type": "LIMIT", "timeInForce": "GTC",
                    "quantity": "0.001", "price": price})  # fmt: skip
                assert answer.status_code == 200, answer.text
            time.sleep(0.2)
    finally:
        done.set()


def _pages(
    stack: ApiStack, path: str, params: dict[str, Any], from_seq: int, signer: Client | None = None
) -> list[dict[str, Any]]:
    """Every message from ``from_seq`` on, a page of 7 at a time (so that pages end mid-batch)."""
    out: list[dict[str, Any]] = []
    seq, n = from_seq, 0
    while True:
        query = {**params, "fromSeq": seq, "fromN": n, "limit": 7}
        answer = (
            signer.signed("GET", path, query)
            if signer is not None
            else requests.get(stack.base_url + path, params=query, timeout=30)
        )
        assert answer.status_code == 200, answer.text
        page = answer.json()
        if not page:
            return out
        out += page
        seq, n = page[-1]["seq"], page[-1]["n"] + 1


def test_a_client_that_reconnects_with_resume_from_misses_nothing(stack: ApiStack) -> None:
    maker = stack.client(stack.trader(5901, {"BTC": "10"}))
    taker_trader = stack.trader(5902, {"USDT": "1000000"})
    taker = stack.client(taker_trader)
    answer = requests.post(f"{stack.base_url}/api/v3/userDataStream",
                           headers={"X-MBX-APIKEY": taker_trader.api_key}, timeout=30)  # fmt: skip
    assert answer.status_code == 200, answer.text
    listen_key = answer.json()["listenKey"]
    streams = "/".join(
        ["btcusdt@trade", "btcusdt@depth@100ms", "btcusdt@kline_1m", "btcusdt@ticker", listen_key]
    )
    url = f"ws://127.0.0.1:{stack.port}/stream?streams={streams}"
    steady = _open(url + "&withSeq=true")
    dropping = _open(url + "&withSeq=true")
    done = threading.Event()
    trading = threading.Thread(target=_trade, args=(maker, taker, done), daemon=True)
    trading.start()

    first: list[str] = []
    _read(dropping, first, count=30)
    dropping.close()  # mid-stream: trading goes on
    time.sleep(1.5)
    last = json.loads(first[-1])
    resumed = _open(url + f"&resumeFrom={last['seq']}-{last['n']}")
    trading.join(timeout=120)
    assert done.is_set() and not trading.is_alive()
    second: list[str] = []
    _read(resumed, second)
    seen: list[str] = []
    _read(steady, seen)
    steady.close()
    resumed.close()

    assert seen, "the uninterrupted client received nothing"
    start = seen.index(first[0])
    got = first + second
    assert len(got) == len(seen) - start, (len(got), len(seen) - start)
    assert got == seen[start:]
    # The reconnection did resume: messages published while no connection was open came back.
    positions = [(m["seq"], m["n"]) for m in map(json.loads, got)]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    kinds = {json.loads(m)["data"].get("e") for m in second}
    assert {"trade", "executionReport"} <= kinds, kinds

    # Replay by sequence over REST (issue 20, item 2): the same messages from the same log.
    received = [json.loads(m) for m in seen]
    first_seq = received[0]["seq"]
    for stream in ("trade", "kline_1m"):
        name = f"btcusdt@{stream}"
        want = [(m["seq"], m["n"], m["data"]) for m in received if m["stream"] == name]
        got_rest = _pages(
            stack, "/api/v3/bourse/marketEvents", {"symbol": SYMBOL, "stream": stream}, first_seq
        )
        assert [(m["seq"], m["n"], m["data"]) for m in got_rest][-len(want) :] == want
        assert {m["stream"] for m in got_rest} == {name}
    want_user = [(m["seq"], m["n"], m["data"]) for m in received if m["stream"] == listen_key]
    got_user = _pages(stack, "/api/v3/bourse/events", {}, first_seq, taker)
    assert [(m["seq"], m["n"], m["data"]) for m in got_user][-len(want_user) :] == want_user


def _events(client: WsClient, out: list[str], count: int | None = None) -> None:
    """A WebSocket API connection's user data frames (``subscriptionId`` + ``event``), as
    received, until ``count`` of them or QUIET_S of silence."""
    while count is None or len(out) < count:
        try:
            frame = client.conn.recv(timeout=QUIET_S if count is None else 30)
        except (TimeoutError, ConnectionClosed):
            if count is None:
                return
            raise
        assert isinstance(frame, str)
        if '"event"' in frame and '"subscriptionId"' in frame:
            out.append(frame)


def _logged_on(stack: ApiStack, key: EdTrader) -> WsClient:
    client = WsClient(f"ws://127.0.0.1:{stack.port}/ws-api/v3")
    assert client.api("session.logon", ed_signed_params(key, {}))["status"] == 200
    return client


def test_a_websocket_api_session_resumes_its_user_data(stack: ApiStack) -> None:
    """``session.resume`` (Bourse's own): the user data of a logged-on session with positions;
    with ``resumeFrom`` on a new connection, first everything after that position, then the
    live events, as an uninterrupted subscription received them."""
    maker = stack.client(stack.trader(5911, {"BTC": "10"}))
    taker_trader = stack.trader(5912, {"USDT": "1000000"})
    key = ed25519_key(stack, taker_trader)
    steady, dropping = _logged_on(stack, key), _logged_on(stack, key)
    for client in (steady, dropping):
        assert client.api("session.resume")["result"] == {"subscriptionId": 0}
    done = threading.Event()
    trading = threading.Thread(
        target=_trade, args=(maker, stack.client(taker_trader), done), daemon=True
    )
    trading.start()
    first: list[str] = []
    _events(dropping, first, count=20)
    dropping.close()
    time.sleep(1.5)
    last = json.loads(first[-1])
    resumed = _logged_on(stack, key)
    resumed.send({"id": "r1", "method": "session.resume",
                  "params": {"resumeFrom": f"{last['seq']}-{last['n']}"}})  # fmt: skip
    answer = json.loads(resumed.conn.recv(timeout=60))  # before any event it replays
    assert answer["id"] == "r1" and answer["result"] == {"subscriptionId": 0}, answer
    trading.join(timeout=120)
    assert done.is_set() and not trading.is_alive()
    second: list[str] = []
    _events(resumed, second)
    seen: list[str] = []
    _events(steady, seen)
    steady.close()
    resumed.close()
    start = seen.index(first[0])
    assert first + second == seen[start:]
    assert second, "nothing came after the reconnection"
