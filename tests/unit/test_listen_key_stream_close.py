"""A listen key that ends ends its streams (issue 15, item 8): DELETE /api/v3/userDataStream
and the WebSocket API's userDataStream.stop send each connection streaming the key Binance's
``listenKeyExpired`` event and close it; a key that expired without keepalive is ended by the
broadcaster, which sends its connections nothing more. Before, a closed key kept streaming for
up to the connection's 2 h life."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from aws_lambda_powertools import Logger, Metrics
from botocore.exceptions import ClientError
from hypothesis import given, settings
from hypothesis import strategies as st

from bourse.adapters.connections import Connection, account_stream
from bourse.adapters.listen_key_streams import RECHECK_MS, ListenKeyStreams, LiveListenKeys
from bourse.adapters.listen_keys import ListenKeys, ListenKeyValidity
from bourse.adapters.ws_push import Pusher
from bourse.api import handlers as h
from bourse.consumers.broadcaster import Broadcaster, SubscriberCache
from bourse.streams.market import StreamState
from bourse.ws import api as ws_api
from bourse.ws.events import WsEvent
from tests.unit.moto_tables import dynamodb_table
from tests.unit.test_api_handlers import KEY as API_KEY
from tests.unit.test_api_handlers import FakeBus, FakeKeys, FakeView
from tests.unit.test_broadcaster_fanout import FakeSubscribers, _events, _msk
from tests.unit.test_ws_transport import FakeStore

pytestmark = pytest.mark.unit

KEY = "L" * 60
OTHER = "M" * 60
NOW = 1_700_000_000_000


class Management:
    """@connections: what was posted and deleted, in order; ``gone`` answer 410."""

    def __init__(self, gone: frozenset[str] = frozenset()) -> None:
        self.gone = gone
        self.calls: list[tuple[str, str, Any]] = []

    def _check(self, cid: str, operation: str) -> None:
        if cid in self.gone:
            raise ClientError({"Error": {"Code": "GoneException", "Message": ""}}, operation)

    def post_to_connection(self, ConnectionId: str, Data: bytes) -> None:
        self._check(ConnectionId, "PostToConnection")
        self.calls.append(("post", ConnectionId, json.loads(Data)))

    def delete_connection(self, ConnectionId: str) -> None:
        self._check(ConnectionId, "DeleteConnection")
        self.calls.append(("delete", ConnectionId, None))


class Recent:
    def __init__(self, listed: dict[str, list[Connection]]) -> None:
        self.listed = listed

    def read(self, streams: Sequence[str]) -> list[list[Connection]]:
        return [self.listed.get(s, []) for s in streams]


def _subscribers() -> FakeSubscribers:
    subs = FakeSubscribers()
    subs.accounts[7] = [
        Connection("raw", combined=False, listen_key=KEY),
        Connection("combined", combined=True, listen_key=KEY),
        Connection("other-key", combined=False, listen_key=OTHER),
        Connection("ws-api", combined=False, subscription_id=0),
    ]
    return subs


def test_each_stream_of_the_key_gets_listen_key_expired_then_is_closed() -> None:
    subs = _subscribers()
    late = Connection("just-connected", combined=False, listen_key=KEY)
    management = Management()
    recent = Recent({account_stream(7): [late, subs.accounts[7][0]]})
    streams = ListenKeyStreams(subs, management, recent, clock=lambda: NOW)
    assert streams.end(KEY, 7) == 3
    event = {"e": "listenKeyExpired", "E": NOW, "listenKey": KEY}
    assert management.calls == [
        ("post", "combined", {"stream": KEY, "data": event}),
        ("delete", "combined", None),
        ("post", "just-connected", event),
        ("delete", "just-connected", None),
        ("post", "raw", event),
        ("delete", "raw", None),
    ]
    assert sorted(subs.deleted) == ["combined", "just-connected", "raw"]


def test_a_connection_already_gone_is_forgotten_all_the_same() -> None:
    subs = _subscribers()
    management = Management(gone=frozenset({"raw"}))
    ListenKeyStreams(subs, management, clock=lambda: NOW).end(KEY, 7)
    assert [c[:2] for c in management.calls] == [("post", "combined"), ("delete", "combined")]
    assert sorted(subs.deleted) == ["combined", "raw"]


class Validity:
    def __init__(self) -> None:
        self.until: dict[str, int] = {}
        self.reads = 0

    def valid_until(self, listen_key: str) -> int | None:
        self.reads += 1
        return self.until.get(listen_key)


def test_live_keys_expire_close_and_keepalive() -> None:
    validity = Validity()
    now = [NOW]
    live = LiveListenKeys(validity, clock=lambda: now[0])
    validity.until[KEY] = NOW + 60_000
    assert live.ended([KEY]) == set() and validity.reads == 1
    assert live.ended([KEY]) == set() and validity.reads == 1  # kept
    validity.until[KEY] = NOW + 120_000  # a keepalive
    now[0] = NOW + 60_000  # the kept validity has passed: read again, still live
    assert live.ended([KEY]) == set() and validity.reads == 2
    del validity.until[KEY]  # closed by a request that missed a connection
    now[0] += RECHECK_MS
    assert live.ended([KEY]) == {KEY}
    assert live.ended([OTHER]) == {OTHER}  # unknown


@settings(max_examples=200, deadline=None)
@given(
    valid_for=st.integers(-100_000, 100_000),
    steps=st.lists(st.integers(0, 50_000), max_size=8),
    closed_at=st.one_of(st.none(), st.integers(0, 8)),
)
def test_an_ended_key_is_never_reported_live_past_its_bounds(
    valid_for: int, steps: list[int], closed_at: int | None
) -> None:
    """Whatever the timing: never live after ``validUntil``; never live more than
    ``RECHECK_MS`` after a close."""
    validity = Validity()
    validity.until[KEY] = NOW + valid_for
    now = [NOW]
    live = LiveListenKeys(validity, clock=lambda: now[0])
    closed_since: int | None = None
    for i, step in enumerate([0, *steps]):
        now[0] += step
        if closed_at == i:
            validity.until.pop(KEY, None)
            closed_since = now[0]
        ended = KEY in live.ended([KEY])
        if now[0] >= NOW + valid_for:
            assert ended
        if closed_since is not None and now[0] - closed_since >= RECHECK_MS:
            assert ended


def test_the_broadcaster_ends_an_expired_keys_streams_and_sends_it_nothing() -> None:
    subs = FakeSubscribers()
    live_conn = Connection("live", combined=False, listen_key=OTHER)
    expired_conn = Connection("expired", combined=True, listen_key=KEY)
    subs.accounts = {a: [live_conn, expired_conn] for a in range(1, 10)}
    management = Management()
    validity = Validity()
    validity.until = {OTHER: NOW + 1_000_000, KEY: NOW - 1}
    b = Broadcaster(
        state=StreamState(),
        subscribers=subs,
        cache=SubscriberCache(subs, ThreadPoolExecutor(4), ttl_s=60),
        pusher=Pusher(management, 4),
        logger=Logger(service="test"),
        metrics=Metrics(namespace="test", service="test"),
        live_keys=LiveListenKeys(validity, clock=lambda: NOW),
        key_streams=ListenKeyStreams(subs, management, clock=lambda: NOW),
    )
    b.handle(_msk(_events(200)))
    b.wait_for_deletes()
    expired = [c for c in management.calls if c[1] == "expired"]
    assert expired == [
        ("post", "expired", {"stream": KEY, "data": {"e": "listenKeyExpired", "E": NOW,
                                                     "listenKey": KEY}}),
        ("delete", "expired", None),
    ]  # fmt: skip
    assert subs.deleted == ["expired"]
    assert any(c[1] == "live" for c in management.calls)  # user data still flows there
    # The next batch: the ended connection is not among the subscribers any more.
    b.handle(_msk(_events(400)[200:], offset=1))
    b.wait_for_deletes()
    assert [c for c in management.calls if c[1] == "expired"] == expired


@pytest.fixture
def tables(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    with dynamodb_table(monkeypatch, "lk", "pk"):
        yield


def test_close_ends_the_streams_once_the_key_is_gone(tables: None) -> None:
    ended: list[tuple[str, int]] = []
    keys = ListenKeys("lk", "scope", on_close=lambda k, a: ended.append((k, a)))
    key = keys.create(7)
    validity = ListenKeyValidity("lk", "scope")
    assert validity.valid_until(key) is not None
    assert not keys.close(key, 8) and ended == []  # not that account's key: nothing ends
    assert keys.close(key, 7) and ended == [(key, 7)]
    assert validity.valid_until(key) is None
    assert not keys.close(key, 7) and ended == [(key, 7)]
    assert ListenKeyValidity("lk", "other-exchange").valid_until(keys.create(7)) is None


def _ws(deps: h.Deps, method: str, params: dict[str, Any]) -> dict[str, Any]:
    store = FakeStore()
    store.put_connection("conn-1", account_id=None, combined=False, expires_at=NOW)
    request = {"id": 1, "method": method, "params": params}
    event = WsEvent(method, "MESSAGE", "conn-1", NOW, "10.1.1.1", json.dumps(request))
    body: dict[str, Any] = json.loads(ws_api.handle(event, deps, store)["body"])
    return body


def test_the_websocket_apis_listen_key_methods_and_stop_ends_the_streams(tables: None) -> None:
    ended: list[tuple[str, int]] = []
    keys = ListenKeys("lk", "scope", on_close=lambda k, a: ended.append((k, a)))
    deps = h.Deps(FakeView(), FakeBus(), FakeKeys(), lambda: NOW, listen_keys=keys)
    started = _ws(deps, "userDataStream.start", {"apiKey": API_KEY})
    listen_key = started["result"]["listenKey"]
    assert started["status"] == 200 and len(listen_key) == 60
    assert _ws(deps, "userDataStream.ping", {"apiKey": API_KEY, "listenKey": listen_key}) == {
        "id": 1, "status": 200, "result": {}
    }  # fmt: skip
    assert (
        _ws(deps, "userDataStream.stop", {"apiKey": API_KEY, "listenKey": listen_key})["result"]
        == {}
    )
    assert ended == [(listen_key, 7)]
    again = _ws(deps, "userDataStream.stop", {"apiKey": API_KEY, "listenKey": listen_key})
    assert again["error"] == {"code": -1125, "msg": "This listenKey does not exist."}
    missing = _ws(deps, "userDataStream.stop", {"listenKey": listen_key})
    assert missing["error"]["code"] == -1102 and ended == [(listen_key, 7)]
    unknown = _ws(deps, "userDataStream.start", {"apiKey": "x" * 64})
    assert unknown["status"] == 401 and unknown["error"]["code"] == -2015
