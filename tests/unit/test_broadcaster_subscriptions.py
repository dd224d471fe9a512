"""A subscription acknowledged by the WebSocket side gets every batch the broadcaster handles
afterwards, however stale the broadcaster's cached subscriber lists and the ``by-stream``
index behind them (docs/streams.md, "Fan-out").

The broadcaster's lists come from an eventually consistent index and are cached for up to
two TTLs; a list fetched just before a subscription used to hide it from the next batches
(the python-binance test, which subscribes right after its account's deposits went by, waited
in vain for its executionReport). The subscribe paths now also record each subscription in
Redis for a few minutes (``RecentSubscriptions``), and the cache adds those to every list.

Fakes only: a fake clock, a fake Redis, a subscriber index that lags as much as the test
says; the store's writes go to moto's in-process DynamoDB.
"""

from __future__ import annotations

import base64
import functools
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis
from aws_lambda_powertools import Logger, Metrics
from botocore.exceptions import ClientError

from bourse.adapters import aws
from bourse.adapters.connections import (
    RECENT_SECONDS,
    Connection,
    ConnectionStore,
    RecentSubscriptions,
    account_stream,
)
from bourse.adapters.ws_push import Pusher
from bourse.consumers.broadcaster import Broadcaster, SubscriberCache
from bourse.domain.event_codec import encode_events
from bourse.streams.market import Batch, Message, StreamState
from bourse.ws.events import WsEvent
from bourse.ws.market_streams import connect, disconnect, handle_message

pytestmark = pytest.mark.unit

LISTEN_KEY = "L" * 60


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeRedis:
    """The hash commands RecentSubscriptions uses, pipelined, with EXPIREAT on ``clock``; an
    outage switch."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.hashes: dict[str, dict[bytes, bytes]] = {}
        self.expire_at: dict[str, float] = {}
        self.down = False
        self.pipelines = 0

    def _live(self, key: str) -> dict[bytes, bytes]:
        if key in self.expire_at and self.clock() >= self.expire_at[key]:
            self.hashes.pop(key, None)
            self.expire_at.pop(key)
        return self.hashes.get(key, {})

    def pipeline(self, transaction: bool = True) -> FakePipeline:
        return FakePipeline(self)

    def execute(self, commands: list[tuple[str, tuple[Any, ...]]]) -> list[Any]:
        if self.down:
            raise redis.exceptions.ConnectionError("Redis is down")
        self.pipelines += 1
        out: list[Any] = []
        for name, args in commands:
            key = args[0]
            current = self._live(key)
            if name == "hset":
                self.hashes.setdefault(key, {})[args[1].encode()] = args[2].encode()
                out.append(1)
            elif name == "expireat":
                self.expire_at[key] = float(args[1])
                out.append(True)
            elif name == "hdel":
                out.append(sum(current.pop(f.encode(), None) is not None for f in args[1:]))
            elif name == "hgetall":
                out.append(dict(current))
        return out

    def fields(self) -> dict[str, set[str]]:
        """stream -> connection ids listed in any live minute."""
        out: dict[str, set[str]] = {}
        for key in list(self.hashes):
            for cid in self._live(key):
                out.setdefault(key.split("{")[1].split("}")[0], set()).add(cid.decode())
        return {k: v for k, v in out.items() if v}


class FakePipeline:
    def __init__(self, owner: FakeRedis) -> None:
        self.owner = owner
        self.commands: list[tuple[str, tuple[Any, ...]]] = []

    def __getattr__(self, name: str) -> Any:
        assert name in ("hset", "expireat", "hdel", "hgetall"), name
        return lambda *args: self.commands.append((name, args))

    def execute(self) -> list[Any]:
        return self.owner.execute(self.commands)


class LaggingIndex:
    """The broadcaster's view of the subscriptions (the ``by-stream`` index): it shows what
    the test has propagated, nothing newer."""

    def __init__(self) -> None:
        self.streams: dict[str, list[Connection]] = {}
        self.accounts: dict[int, list[Connection]] = {}
        self.deleted: list[str] = []

    def connections_for_stream(self, stream: str) -> list[Connection]:
        return list(self.streams.get(stream, []))

    def connections_for_account(self, account_id: int) -> list[Connection]:
        return list(self.accounts.get(account_id, []))

    def delete_connection(self, connection_id: str) -> None:
        self.deleted.append(connection_id)


class FakeClient:
    def __init__(self) -> None:
        self.posted: dict[str, list[bytes]] = {}
        self.gone: set[str] = set()
        self._lock = threading.Lock()

    def post_to_connection(self, ConnectionId: str, Data: bytes) -> None:
        if ConnectionId in self.gone:
            raise ClientError({"Error": {"Code": "GoneException"}}, "PostToConnection")
        with self._lock:
            self.posted.setdefault(ConnectionId, []).append(Data)

    def take(self) -> dict[str, list[bytes]]:
        with self._lock:
            posted, self.posted = self.posted, {}
        return posted


class Rig:
    """A broadcaster whose cache runs on ``clock`` (TTL 1 s), its index lagging, Redis fake."""

    def __init__(self, *, recent: bool = True) -> None:
        self.clock = Clock()
        self.redis = FakeRedis(self.clock)
        self.recent = RecentSubscriptions(self.redis, clock=self.clock)
        self.index = LaggingIndex()
        self.client = FakeClient()
        self.pool = ThreadPoolExecutor(2)
        self.cache = SubscriberCache(
            self.index,
            self.pool,
            ttl_s=1.0,
            clock=self.clock,
            recent=self.recent if recent else None,
        )
        self.broadcaster = Broadcaster(
            state=StreamState(),
            subscribers=self.index,
            cache=self.cache,
            pusher=Pusher(self.client, 2),
            logger=Logger(service="test"),
            metrics=Metrics(namespace="test", service="test"),
        )

    def batch(self, n: int) -> dict[str, list[bytes]]:
        """A trade on x@trade and an event of account 7; what each connection got."""
        self.broadcaster.fan_out(
            Batch(
                market=[Message("x@trade", b'{"t":%d}' % n)],
                user={7: [b'{"e":"executionReport","n":%d}' % n]},
            )
        )
        # a background refresh (stale list) lands before the next batch
        self.pool.submit(lambda: None).result()
        self.pool.shutdown(wait=True)
        self.pool = self.cache.pool = ThreadPoolExecutor(2)
        return self.client.take()

    def advance(self, seconds: float) -> None:
        self.clock.now += seconds


MARKET = Connection("market", combined=True)
USER = Connection("user", combined=True, listen_key=LISTEN_KEY)
API = Connection("api", combined=False, subscription_id=0)


def _subscribe(rig: Rig) -> None:
    """What the subscribe paths do once DynamoDB has the items (the index does not show them
    yet): SUBSCRIBE, a listen key's $connect, userDataStream.subscribe."""
    rig.recent.add(MARKET, ["x@trade"])
    rig.recent.add(USER, [account_stream(7)])
    rig.recent.add(API, [account_stream(7)])


def _skewed(clock: Clock, skew: float) -> float:
    return clock() + skew


def _got(posted: dict[str, list[bytes]]) -> dict[str, list[Any]]:
    return {cid: [json.loads(f) for f in frames] for cid, frames in posted.items()}


def test_without_recent_subscriptions_a_cached_list_hides_a_new_subscriber() -> None:
    """The defect, as it was: lists fetched just before the subscription serve the next
    batches (up to two TTLs, longer while the index lags)."""
    rig = Rig(recent=False)
    assert rig.batch(1) == {}  # looked up: nobody
    rig.advance(0.3)
    _subscribe(rig)  # acknowledged to the clients
    rig.advance(0.2)
    assert rig.batch(2) == {}  # the fresh cached lists: missed
    rig.advance(1.0)
    assert rig.batch(3) == {}  # stale, refreshed in the background (the index still lags)
    rig.advance(1.5)
    assert rig.batch(4) == {}  # re-queried, but the index still lags


def test_a_subscriber_gets_every_batch_after_its_acknowledgement() -> None:
    rig = Rig()
    rig.index.accounts[7] = [Connection("watcher", combined=False)]
    assert set(rig.batch(1)) == {"watcher"}  # looked up just now
    rig.advance(0.3)
    _subscribe(rig)

    def check(n: int) -> None:
        """Batch n reaches each connection once, wrapped as it subscribed."""
        report = {"e": "executionReport", "n": n}
        assert _got(rig.batch(n)) == {
            "market": [{"stream": "x@trade", "data": {"t": n}}],
            "user": [{"stream": LISTEN_KEY, "data": report}],
            "api": [{"subscriptionId": 0, "event": report}],
            "watcher": [report],
        }, n

    for n, step in enumerate((0.2, 1.0, 1.5, 30.0, 60.0), start=2):
        rig.advance(step)  # fresh list, stale list, expired list, much later: index lagging
        check(n)
    # The index catches up: each connection still gets each frame once.
    rig.index.streams["x@trade"] = [MARKET]
    rig.index.accounts[7] = [Connection("watcher", combined=False), USER, API]
    rig.advance(3.0)
    check(10)
    # Past the recent window, the index alone lists them; Redis lets the minutes expire.
    rig.advance(RECENT_SECONDS + 60)
    assert rig.recent.read(["x@trade", account_stream(7)]) == [[], []]
    check(11)
    rig.advance(RECENT_SECONDS)
    assert rig.redis.fields() == {}


@pytest.mark.parametrize("offset", [0.1, 5.0, 9.9, 60.0, 119.9])
def test_the_recent_window_outlasts_the_cache(offset: float) -> None:
    """A subscription made at any point of a period stays listed at least RECENT_SECONDS
    (less the skew) for readers whose clocks are a few seconds behind or ahead of the
    writer's, at most twice that, and then expires from Redis."""
    made = 1_700_000_040.0 + offset  # 1_700_000_040 starts a period
    assert made // RECENT_SECONDS == 1_700_000_040 // RECENT_SECONDS
    clock = Clock(made)
    fake = FakeRedis(clock)
    RecentSubscriptions(fake, clock=clock).add(MARKET, ["x@trade"])
    for skew in (-5.0, 0.0, 5.0):
        reader = RecentSubscriptions(fake, clock=functools.partial(_skewed, clock, skew))
        for age in (0.0, 0.2, 1.0, 2.5, 59.0, 61.0, RECENT_SECONDS - 6):
            clock.now = made + age
            assert reader.read(["x@trade"]) == [[MARKET]], (skew, age)
        clock.now = made + 2 * RECENT_SECONDS + 6
        assert reader.read(["x@trade"]) == [[]], skew
    clock.now = made + 3 * RECENT_SECONDS + 1
    assert fake.fields() == {} and fake.hashes == {}


def test_unsubscribe_and_gone_connections_leave_the_recent_lists() -> None:
    rig = Rig()
    _subscribe(rig)
    rig.advance(0.1)
    assert set(rig.batch(1)) == {"market", "user", "api"}
    rig.recent.remove("api", [account_stream(7)])  # userDataStream.unsubscribe
    rig.advance(0.1)
    assert set(rig.batch(2)) == {"market", "user"}
    # The client vanished: API Gateway answers 410, the broadcaster stops sending at once
    # (Redis lists it until the background delete runs).
    rig.client.gone.add("market")
    rig.advance(0.1)
    assert set(rig.batch(3)) == {"user"}
    rig.broadcaster.wait_for_deletes()
    assert rig.index.deleted == ["market"]
    rig.client.gone.clear()
    rig.advance(0.1)
    assert set(rig.batch(4)) == {"user"}


def test_redis_down_falls_back_to_the_cached_lists() -> None:
    rig = Rig()
    rig.index.streams["x@trade"] = [Connection("old", combined=False)]
    _subscribe(rig)
    rig.redis.down = True
    assert set(rig.batch(1)) == {"old"}  # logged; the batch is not failed
    rig.redis.down = False
    assert set(rig.batch(2)) == {"old", "market", "user", "api"}


def test_one_redis_round_trip_per_batch() -> None:
    rig = Rig()
    _subscribe(rig)
    before = rig.redis.pipelines
    rig.broadcaster.fan_out(
        Batch(
            market=[Message(f"s{i}@trade", b"1") for i in range(40)],
            user={a: [b"{}"] for a in range(10)},
        )
    )
    assert rig.redis.pipelines == before + 1


# -- the subscribe paths write Redis (ConnectionStore over moto's DynamoDB)


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ConnectionStore, FakeRedis]]:
    from moto import mock_aws

    from devstack.cfn import load_template, local_resolver

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    with mock_aws():
        import boto3

        ddb = boto3.client("dynamodb", region_name="us-east-1")
        resource = boto3.resource("dynamodb", region_name="us-east-1")
        monkeypatch.setattr(aws, "client", lambda service: ddb)
        monkeypatch.setattr(aws, "resource", lambda service: resource)
        template = load_template()
        resolver = local_resolver(template, "local", "us-east-1")
        names = {}
        for logical_id in ("ConnectionsTable", "SubscriptionsTable"):
            props = resolver.resolve(template["Resources"][logical_id]["Properties"])
            args = {k: props[k] for k in ("TableName", "KeySchema", "AttributeDefinitions")}
            if props.get("GlobalSecondaryIndexes"):
                args["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
            ddb.create_table(BillingMode="PAY_PER_REQUEST", **args)
            names[logical_id] = props["TableName"]
        fake = FakeRedis(Clock(time.time()))
        yield (
            ConnectionStore(
                names["ConnectionsTable"],
                names["SubscriptionsTable"],
                RecentSubscriptions(fake, clock=fake.clock),
            ),
            fake,
        )


def _event(
    kind: str, cid: str, *, query: dict[str, str] | None = None, body: str | None = None
) -> WsEvent:
    return WsEvent(
        route_key="$default",
        event_type=kind,
        connection_id=cid,
        connected_at_ms=int(time.time() * 1000),
        source_ip="127.0.0.1",
        body=body,
        query=query or {},
    )


def test_the_subscribe_paths_record_recent_subscriptions(
    store: tuple[ConnectionStore, FakeRedis],
) -> None:
    s, fake = store
    lookup = {LISTEN_KEY: 7}.get
    # $connect with a market stream and a listen key: both recorded before it answers
    answer = connect(
        _event("CONNECT", "c1", query={"streams": f"x@trade/{LISTEN_KEY}", "combined": "true"}),
        s,
        lookup,
    )
    assert answer["statusCode"] == 200
    assert fake.fields() == {"x@trade": {"c1"}, "@account:7": {"c1"}}
    assert s.recent is not None
    assert s.recent.read(["x@trade", account_stream(7)]) == [
        [Connection("c1", combined=True)],
        [Connection("c1", combined=True, listen_key=LISTEN_KEY)],
    ]
    # SUBSCRIBE / UNSUBSCRIBE
    connect(_event("CONNECT", "c2"), s, lookup)
    body = json.dumps({"method": "SUBSCRIBE", "params": ["y@depth", "x@trade"], "id": 1})
    assert json.loads(handle_message(_event("MESSAGE", "c2", body=body), s)["body"]) == {
        "result": None, "id": 1
    }  # fmt: skip
    assert fake.fields()["y@depth"] == {"c2"} and fake.fields()["x@trade"] == {"c1", "c2"}
    body = json.dumps({"method": "UNSUBSCRIBE", "params": ["x@trade"], "id": 2})
    handle_message(_event("MESSAGE", "c2", body=body), s)
    assert fake.fields()["x@trade"] == {"c1"}
    # userDataStream.subscribe (the WebSocket API's store call) and unsubscribe
    assert s.subscribe_account("c2", 7, with_subscription_id=True, api_key="K") == 0
    assert s.recent.read([account_stream(7)]) == [
        [Connection("c1", True, LISTEN_KEY), Connection("c2", False, None, 0)]
    ]
    s.unsubscribe_account("c2", 7)
    assert fake.fields()["@account:7"] == {"c1"}
    # $disconnect: gone from every list
    disconnect(_event("DISCONNECT", "c1"), s)
    assert fake.fields() == {"y@depth": {"c2"}}


class FakeStreamLog:
    """The stream log's two sides as the broadcaster sees them (bourse.adapters.stream_log)."""

    def __init__(self, replaying: set[str]) -> None:
        self.replaying = replaying
        self.pending = False
        self.appended: list[tuple[int, list[tuple[int, str, bytes]], set[str]]] = []
        self.fail = False

    def head(self) -> tuple[int, int] | None:
        return (self.appended[-1][0], 0) if self.appended else None

    def begin_batch(self) -> None:
        self.pending = True

    def append(self, seq: int, entries: Any, connection_ids: Any) -> set[str]:
        if self.fail:
            raise ConnectionError("redis down")
        self.pending = False
        ids = set(connection_ids)
        self.appended.append((seq, list(entries), ids))
        return ids & self.replaying


def test_the_broadcaster_logs_every_batch_and_skips_replaying_connections() -> None:
    """Issue 20 item 1: each batch is written to the log with the positions its frames carry;
    a connection still replaying gets nothing live (its resumer posts it from the log); a
    batch whose log write fails is published again from a fresh state when redelivered."""
    from bourse.domain.events import Trade
    from bourse.streams.positions import positioned_frame

    rig = Rig()
    log = FakeStreamLog({"resuming"})
    rig.broadcaster.log = log  # type: ignore[assignment]
    live = Connection("live", combined=False, positions=True)
    resuming = Connection("resuming", combined=False, positions=True)
    rig.index.streams["btcusdt@trade"] = [live, resuming]

    def trade(seq: int) -> dict[str, Any]:
        ev = Trade(seq, 1_700_000_000_000, "BTCUSDT", seq, 100, 1, 100, 1, 2, 3, 4, False)
        return {"records": {"p-0": [{"offset": seq, "value": base64.b64encode(
            encode_events([ev])).decode()}]}}  # fmt: skip

    rig.broadcaster.handle(trade(5))
    rig.pool.shutdown(wait=True)
    posted = rig.client.take()
    seq, entries, ids = log.appended[-1]
    assert seq == 5 and {"live", "resuming"} <= ids and not log.pending
    trades = [(n, data) for n, name, data in entries if name == "s:btcusdt@trade"]
    assert posted["live"] == [positioned_frame("btcusdt@trade", data, (5, n)) for n, data in trades]
    assert "resuming" not in posted
    log.fail = True
    with pytest.raises(ConnectionError):
        rig.broadcaster.handle(trade(6))
    log.fail = False
    rig.broadcaster.handle(trade(6))  # delivered again: published and logged this time
    assert log.appended[-1][0] == 6
