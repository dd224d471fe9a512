"""Market stream connections as Binance accepts them (web-socket-streams.md): a path name that
is no stream opens the connection (ccxt.pro's ``/ws/<n>``), and SET_PROPERTY / GET_PROPERTY
``combined`` with Binance's answers and error codes; a changed ``combined`` reaches the
broadcaster from the acknowledgement on, over its cached subscriber lists.

The handlers over moto's DynamoDB and a fake Redis (the store of
``test_broadcaster_subscriptions``); the error rules also as a property over any params.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bourse.adapters.connections import Connection, ConnectionStore, account_stream
from bourse.ws import market_streams
from bourse.ws.market_streams import StreamRequestError, connect, handle_message
from tests.unit import test_broadcaster_subscriptions
from tests.unit.test_broadcaster_subscriptions import (
    LISTEN_KEY,
    FakeRedis,
    Rig,
    _event,
    _got,
)

pytestmark = pytest.mark.unit

Store = tuple[ConnectionStore, FakeRedis]
# The fixture of test_broadcaster_subscriptions: ConnectionStore on moto, Redis faked.
store = test_broadcaster_subscriptions.store


def _no_keys(listen_key: str) -> int | None:
    return None


def _send(s: ConnectionStore, cid: str, request: Any) -> Any:
    body = request if isinstance(request, str) else json.dumps(request)
    answer = handle_message(_event("MESSAGE", cid, body=body), s)
    assert answer["statusCode"] == 200
    return json.loads(answer["body"])


@pytest.mark.parametrize("streams", ["0", "17", "not-a-stream", "btcusdt@nonsense/0"])
def test_a_path_name_that_is_no_stream_opens_the_connection(store: Store, streams: str) -> None:
    s, fake = store
    answer = connect(_event("CONNECT", "c1", query={"streams": streams}), s, _no_keys)
    assert answer == {"statusCode": 200}
    assert _send(s, "c1", {"method": "LIST_SUBSCRIPTIONS", "id": 1}) == {"result": [], "id": 1}
    assert _send(s, "c1", {"method": "SUBSCRIBE", "params": ["btcusdt@trade"], "id": 2}) == {
        "result": None, "id": 2
    }  # fmt: skip
    assert fake.fields() == {"btcusdt@trade": {"c1"}}


def test_an_unknown_listen_key_still_refuses_the_handshake(store: Store) -> None:
    s, _ = store
    answer = connect(_event("CONNECT", "c1", query={"streams": "x" * 60}), s, _no_keys)
    assert answer["statusCode"] == 400 and json.loads(answer["body"])["code"] == -1125


def test_set_and_get_property_combined(store: Store) -> None:
    s, fake = store
    query = {"streams": f"x@trade/{LISTEN_KEY}"}
    connect(_event("CONNECT", "c1", query=query), s, {LISTEN_KEY: 7}.get)
    assert _send(s, "c1", {"method": "GET_PROPERTY", "params": ["combined"], "id": 2}) == {
        "result": False, "id": 2
    }  # fmt: skip
    assert _send(s, "c1", {"method": "SET_PROPERTY", "params": ["combined", True], "id": 5}) == {
        "result": None, "id": 5
    }  # fmt: skip
    assert _send(s, "c1", {"method": "GET_PROPERTY", "params": ["combined"], "id": "x"}) == {
        "result": True, "id": "x"
    }  # fmt: skip
    # Every item the broadcaster reads says so, and so do the recent subscriptions.
    assert s.connections_for_stream("x@trade") == [Connection("c1", True)]
    assert s.connections_for_account(7) == [Connection("c1", True, LISTEN_KEY)]
    assert s.recent is not None
    assert s.recent.read(["x@trade", account_stream(7)]) == [
        [Connection("c1", True)],
        [Connection("c1", True, LISTEN_KEY)],
    ]
    # A subscription made afterwards is combined too; LIST_SUBSCRIPTIONS is unchanged.
    _send(s, "c1", {"method": "SUBSCRIBE", "params": ["y@depth"], "id": 6})
    assert s.connections_for_stream("y@depth") == [Connection("c1", True)]
    assert _send(s, "c1", {"method": "LIST_SUBSCRIPTIONS", "id": 7})["result"] == [
        "x@trade", LISTEN_KEY, "y@depth"
    ]  # fmt: skip
    assert _send(s, "c1", {"method": "SET_PROPERTY", "params": ["combined", False], "id": 8}) == {
        "result": None, "id": 8
    }  # fmt: skip
    assert s.connections_for_stream("y@depth") == [Connection("c1", False)]
    assert fake.fields() == {"x@trade": {"c1"}, "y@depth": {"c1"}, "@account:7": {"c1"}}


@pytest.mark.parametrize(
    ("request_", "error"),
    [
        ({"method": "SET_PROPERTY", "params": ["combined", 1], "id": 1},
         {"code": 1, "msg": "Invalid value type: expected Boolean"}),
        ({"method": "SET_PROPERTY", "params": ["combined", "true"], "id": 1},
         {"code": 1, "msg": "Invalid value type: expected Boolean"}),
        ({"method": "SET_PROPERTY", "params": ["combined"], "id": 1},
         {"code": 1, "msg": "Invalid value type: expected Boolean"}),
        ({"method": "SET_PROPERTY", "params": ["speed", True], "id": 1},
         {"code": 0, "msg": "Unknown property"}),
        ({"method": "GET_PROPERTY", "params": ["Combined"], "id": 1},
         {"code": 0, "msg": "Unknown property"}),
        ({"method": "SET_PROPERTY", "params": [5, True], "id": 1},
         {"code": 2, "msg": "Invalid request: property name must be a string"}),
        ({"method": "GET_PROPERTY", "id": 1},
         {"code": 2, "msg": "Invalid request: property name must be a string"}),
        ({"method": "GET_PROPERTY", "params": [], "id": 1},
         {"code": 2, "msg": "Invalid request: property name must be a string"}),
        ({"method": "SET_PROPERTY", "params": ["combined", True, 1], "id": 1},
         {"code": 2, "msg": "Invalid request: too many parameters"}),
        ({"method": "GET_PROPERTY", "params": ["combined", True], "id": 1},
         {"code": 2, "msg": "Invalid request: too many parameters"}),
    ],
)  # fmt: skip
def test_property_errors_are_binances_and_change_nothing(
    store: Store, request_: dict[str, Any], error: dict[str, Any]
) -> None:
    s, _ = store
    connect(_event("CONNECT", "c1", query={"streams": "x@trade"}), s, _no_keys)
    assert _send(s, "c1", request_) == {"error": error, "id": 1}
    assert _send(s, "c1", {"method": "GET_PROPERTY", "params": ["combined"], "id": 2}) == {
        "result": False, "id": 2
    }  # fmt: skip


def test_unknown_methods_name_the_property_methods(store: Store) -> None:
    s, _ = store
    connect(_event("CONNECT", "c1"), s, _no_keys)
    msg = _send(s, "c1", {"method": "SET_PROPERTIES", "id": 1})["error"]["msg"]
    assert msg.startswith(
        "Invalid request: unknown variant `SET_PROPERTIES`, expected one of `SUBSCRIBE`, "
        "`UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, `GET_PROPERTY`"
    )


_values = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=10))


@given(
    params=st.one_of(
        st.none(),
        st.integers(),
        st.text(max_size=5),
        st.lists(st.one_of(st.sampled_from(["combined", "x"]), _values), max_size=4),
    ),
    method=st.sampled_from(["SET_PROPERTY", "GET_PROPERTY"]),
)
def test_property_requests_either_succeed_or_fail_with_a_documented_code(
    params: Any, method: str
) -> None:
    """Whatever the params, the answer is the value or one of Binance's documented errors,
    decided without the store (checked before any write)."""
    request: dict[str, Any] = {"method": method, "params": params, "id": 1}
    most = 2 if method == "SET_PROPERTY" else 1
    try:
        market_streams._property_name(request, 1, most)
        if method == "SET_PROPERTY":
            value = market_streams._property_value(request, 1)
            assert params == ["combined", value] and isinstance(value, bool)
        else:
            assert params == ["combined"]
    except StreamRequestError as exc:
        assert (exc.code, exc.msg) in {
            (0, "Unknown property"),
            (1, "Invalid value type: expected Boolean"),
            (2, "Invalid request: property name must be a string"),
            (2, "Invalid request: too many parameters"),
        }
        assert exc.request_id == 1


def test_the_broadcaster_wraps_as_set_from_the_acknowledgement_on() -> None:
    """The broadcaster's cached list says raw; the property, recorded again in Redis, wins at
    once (before the list is refreshed)."""
    rig = Rig()
    rig.index.streams["x@trade"] = [Connection("c1", combined=False)]
    assert _got(rig.batch(1))["c1"] == [{"t": 1}]
    rig.advance(0.1)
    rig.recent.add(Connection("c1", combined=True), ["x@trade"])  # what set_combined records
    assert _got(rig.batch(2))["c1"] == [{"stream": "x@trade", "data": {"t": 2}}]
    rig.advance(0.1)
    rig.recent.add(Connection("c1", combined=False), ["x@trade"])
    assert _got(rig.batch(3))["c1"] == [{"t": 3}]
