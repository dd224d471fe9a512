"""The broadcaster's fan-out with fake subscribers and a fake @connections client: frames per
connection in order and wrapped as the connection asks, gone connections deleted, nothing
over API Gateway's limit ever posted, a batch delivered again posts nothing."""

from __future__ import annotations

import base64
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from aws_lambda_powertools import Logger, Metrics
from botocore.exceptions import ClientError

from bourse.adapters.connections import Connection
from bourse.adapters.ws_push import Pusher
from bourse.consumers.broadcaster import Broadcaster, SubscriberCache
from bourse.domain.event_codec import encode_events
from bourse.domain.events import DepthUpdate, Event
from bourse.engine import Engine
from bourse.streams.frames import MAX_MESSAGE_BYTES
from bourse.streams.market import Batch, Message, StreamState
from matching_service.workload import commands

pytestmark = pytest.mark.unit

LISTEN_KEY = "k" * 60


class FakeClient:
    def __init__(self, gone: set[str]) -> None:
        self.gone = gone
        self.posted: dict[str, list[bytes]] = {}
        self._lock = threading.Lock()

    def post_to_connection(self, ConnectionId: str, Data: bytes) -> None:
        if ConnectionId in self.gone:
            raise ClientError(
                {"Error": {"Code": "GoneException", "Message": "gone"}}, "PostToConnection"
            )
        assert len(Data) <= MAX_MESSAGE_BYTES
        with self._lock:
            self.posted.setdefault(ConnectionId, []).append(Data)


class FakeSubscribers:
    def __init__(self) -> None:
        self.streams: dict[str, list[Connection]] = {}
        self.accounts: dict[int, list[Connection]] = {}
        self.deleted: list[str] = []

    def connections_for_stream(self, stream: str) -> list[Connection]:
        return [c for c in self.streams.get(stream, []) if c.connection_id not in self.deleted]

    def connections_for_account(self, account_id: int) -> list[Connection]:
        return list(self.accounts.get(account_id, []))

    def delete_connection(self, connection_id: str) -> None:
        self.deleted.append(connection_id)


def _broadcaster(subs: FakeSubscribers, client: FakeClient) -> Broadcaster:
    return Broadcaster(
        state=StreamState(),
        subscribers=subs,
        cache=SubscriberCache(subs, ThreadPoolExecutor(4), ttl_s=60),
        pusher=Pusher(client, 4),
        logger=Logger(service="test"),
        metrics=Metrics(namespace="test", service="test"),
    )


def _msk(events: list[Event], offset: int = 0) -> dict[str, Any]:
    value = base64.b64encode(encode_events(events)).decode()
    record = {"topic": "bourse.events", "partition": 0, "offset": offset, "value": value}
    return {"eventSource": "aws:kafka", "records": {"bourse.events-0": [record]}}


def _events(count: int) -> list[Event]:
    engine = Engine()
    return [ev for cmd in commands(count, seed=4) for ev in engine.process(cmd)]


def test_frames_are_wrapped_per_connection_and_gone_ones_are_deleted() -> None:
    subs = FakeSubscribers()
    raw = Connection("raw", combined=False)
    combined = Connection("combined", combined=True)
    gone = Connection("gone", combined=False)
    user = Connection("user", combined=True, listen_key=LISTEN_KEY)
    subs.streams["btcusdt@trade"] = [raw, combined, gone]
    subs.streams["btcusdt@depth"] = [combined]
    subs.accounts[1] = [user]
    client = FakeClient(gone={"gone"})
    b = _broadcaster(subs, client)
    events = _events(600)
    assert b.handle(_msk(events)) == {"batchItemFailures": []}
    b.wait_for_deletes()

    trades = [json.loads(f) for f in client.posted["raw"]]
    assert trades and all(t["e"] == "trade" and t["s"] == "BTCUSDT" for t in trades)
    assert [t["t"] for t in trades] == list(range(1, len(trades) + 1))
    wrapped = [json.loads(f) for f in client.posted["combined"]]
    assert {w["stream"] for w in wrapped} == {"btcusdt@trade", "btcusdt@depth"}
    assert [w["data"] for w in wrapped if w["stream"] == "btcusdt@trade"] == trades
    users = [json.loads(f) for f in client.posted["user"]]
    assert {u["stream"] for u in users} == {LISTEN_KEY}
    assert "executionReport" in {u["data"]["e"] for u in users}
    assert subs.deleted == ["gone"] and "gone" not in client.posted

    # The same batch again (the event source retrying) posts nothing.
    before = {k: len(v) for k, v in client.posted.items()}
    b.handle(_msk(events))
    assert {k: len(v) for k, v in client.posted.items()} == before


def test_a_sweep_of_thousands_of_levels_never_goes_out_as_one_frame() -> None:
    subs = FakeSubscribers()
    subs.streams["btcusdt@depth@100ms"] = [Connection("c", combined=True)]
    client = FakeClient(gone=set())
    b = _broadcaster(subs, client)
    n = 4_000
    bids = tuple((10**12 - i * 10**6, 10**8 + i) for i in range(n))
    first = DepthUpdate(1, 1_700_000_000_000, "BTCUSDT", 1, n, bids, ())
    sweep = DepthUpdate(
        2, 1_700_000_000_001, "BTCUSDT", n + 1, 2 * n, tuple((p, 0) for p, _ in bids), ()
    )
    b.handle(_msk([first, sweep]))
    frames = client.posted["c"]
    assert len(frames) > 2 and max(len(f) for f in frames) <= MAX_MESSAGE_BYTES
    diffs = [json.loads(f)["data"] for f in frames]
    book: dict[str, str] = {}
    last = 0
    for d in diffs:
        assert d["U"] == last + 1
        last = d["u"]
        for p, q in d["b"]:
            if float(q) == 0:
                book.pop(p, None)
            else:
                book[p] = q
    assert last == 2 * n and book == {}


def test_an_oversize_frame_is_dropped_not_posted() -> None:
    subs = FakeSubscribers()
    subs.streams["x@trade"] = [Connection("c", combined=False)]
    client = FakeClient(gone=set())
    b = _broadcaster(subs, client)
    big = b'"' + b"x" * MAX_MESSAGE_BYTES + b'"'
    b.fan_out(Batch(market=[Message("x@trade", big), Message("x@trade", b"1")]))
    assert client.posted["c"] == [b"1"]


def test_subscriber_lists_are_cached_and_refreshed_in_the_background(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    subs = FakeSubscribers()
    calls: list[str] = []
    real = subs.connections_for_stream

    def counting(stream: str) -> list[Connection]:
        calls.append(stream)
        return real(stream)

    monkeypatch.setattr(subs, "connections_for_stream", counting)
    now = [100.0]
    pool = ThreadPoolExecutor(2)
    cache = SubscriberCache(subs, pool, ttl_s=1.0, clock=lambda: now[0])
    key = ("stream", "btcusdt@trade")
    assert cache.get([key]) == {key: []} and calls == ["btcusdt@trade"]
    subs.streams["btcusdt@trade"] = [Connection("a", combined=False)]
    now[0] += 0.5
    assert cache.get([key]) == {key: []} and len(calls) == 1  # fresh enough: no query
    now[0] += 1.0
    assert cache.get([key]) == {key: []}  # stale: served, and refreshed in the background
    deadline = time.monotonic() + 10
    while len(calls) < 2 or cache.get([key])[key] == []:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert [c.connection_id for c in cache.get([key])[key]] == ["a"]
    cache.forget({"a"})
    assert cache.get([key]) == {key: []}
    # A list more than two TTLs old (a quiet stream) is queried again before use.
    subs.streams["btcusdt@trade"] = [Connection("b", combined=False)]
    now[0] += 2.5
    assert [c.connection_id for c in cache.get([key])[key]] == ["b"] and len(calls) == 3
