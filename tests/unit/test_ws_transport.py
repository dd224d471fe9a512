"""The WebSocket transport without I/O: stream names, the market stream messages and the
WebSocket API's mapping onto the REST handlers (with the handlers' fakes and an in-memory
connection store), and the local gateway's event shapes and path mapping."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from bourse.adapters.api_keys import ApiKey
from bourse.adapters.connections import (
    AccountSubscription,
    AlreadySubscribed,
    Connection,
    ConnectionState,
    Session,
)
from bourse.api.signing import ED25519, sign
from bourse.domain.commands import NewOrder
from bourse.domain.enums import Outcome
from bourse.domain.events import ReplyPart
from bourse.ws import api as ws_api
from bourse.ws import market_streams
from bourse.ws.events import WsEvent, read_event
from bourse.ws.streams import InvalidStream, Stream, is_listen_key, parse_stream
from devstack.gateway.websocket import (
    WebSocketGateway,
    _Socket,
    connect_query,
    load_websocket_api,
)
from tests.unit.test_api_handlers import (
    KEY,
    LIMIT,
    NOW,
    SECRET,
    FakeBus,
    FakeKeys,
    deps,
    ok_reply,
    result,
)

pytestmark = pytest.mark.unit

# ------------------------------------------------------------------------- stream names


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("btcusdt@trade", Stream("btcusdt@trade", "trade", "BTCUSDT")),
        ("btcusdt@aggTrade", Stream("btcusdt@aggTrade", "aggTrade", "BTCUSDT")),
        ("btcusdt@kline_1m", Stream("btcusdt@kline_1m", "kline", "BTCUSDT", interval="1m")),
        ("btcusdt@kline_1M@+08:00",
         Stream("btcusdt@kline_1M@+08:00", "kline", "BTCUSDT", interval="1M", utc8=True)),
        ("!miniTicker@arr", Stream("!miniTicker@arr", "miniTicker", None)),
        ("ethusdt@ticker_4h", Stream("ethusdt@ticker_4h", "ticker", "ETHUSDT", window="4h")),
        ("!ticker_1d@arr", Stream("!ticker_1d@arr", "ticker", None, window="1d")),
        ("btcusdt@bookTicker", Stream("btcusdt@bookTicker", "bookTicker", "BTCUSDT")),
        ("btcusdt@avgPrice", Stream("btcusdt@avgPrice", "avgPrice", "BTCUSDT")),
        ("btcusdt@depth", Stream("btcusdt@depth", "depth", "BTCUSDT", speed_ms=1000)),
        ("btcusdt@depth@100ms", Stream("btcusdt@depth@100ms", "depth", "BTCUSDT", speed_ms=100)),
        ("btcusdt@depth20@100ms",
         Stream("btcusdt@depth20@100ms", "depth", "BTCUSDT", levels=20, speed_ms=100)),
    ],
)  # fmt: skip
def test_stream_names(name: str, expected: Stream) -> None:
    assert parse_stream(name) == expected


@pytest.mark.parametrize(
    "name",
    ["BTCUSDT@trade", "btcusdt@trades", "btcusdt@kline_7m", "btcusdt@depth15", "btcusdt@depth@10ms",
     "btcusdt", "@trade", "!trade@arr", "btcusdt@ticker_2h", "btcusdt@trade ", ""],
)  # fmt: skip
def test_invalid_stream_names(name: str) -> None:
    with pytest.raises(InvalidStream):
        parse_stream(name)


def test_listen_keys_are_not_streams() -> None:
    assert is_listen_key("a" * 60) and not is_listen_key("a" * 59)


def test_connection_framing() -> None:
    raw, combined = Connection("a", False), Connection("b", True, listen_key="lk")
    assert raw.frame("btcusdt@trade", {"e": 1}) == {"e": 1}
    assert combined.frame("btcusdt@trade", {"e": 1}) == {
        "stream": "btcusdt@trade",
        "data": {"e": 1},
    }
    assert combined.user_frame({"e": 2}) == {"stream": "lk", "data": {"e": 2}}
    api = Connection("c", False, subscription_id=3)
    assert api.user_frame({"e": 2}) == {"subscriptionId": 3, "event": {"e": 2}}


# ------------------------------------------------------------------------- fakes


class FakeStore:
    """The connections store in memory, with the DynamoDB store's semantics."""

    def __init__(self) -> None:
        self.connections: dict[str, dict[str, Any]] = {}
        self.streams: dict[str, list[str]] = {}
        self.accounts: dict[str, dict[int, AccountSubscription]] = {}

    def put_connection(self, connection_id: str, *, account_id: int | None, combined: bool,
                       expires_at: int, listen_key: str | None = None,
                       return_rate_limits: bool = True,
                       positions: bool = False) -> None:  # fmt: skip
        self.connections[connection_id] = {"combined": combined, "expires_at": expires_at,
                                           "session": None, "next": 0,
                                           "return_rate_limits": return_rate_limits,
                                           "positions": positions}  # fmt: skip
        self.streams[connection_id] = []
        self.accounts[connection_id] = {}
        if account_id is not None:
            self.subscribe_account(connection_id, account_id, listen_key=listen_key)

    def get_connection(self, connection_id: str) -> ConnectionState | None:
        c = self.connections.get(connection_id)
        if c is None:
            return None
        return ConnectionState(connection_id, c["combined"], c["expires_at"], NOW - 1000,
                               c["session"], c["return_rate_limits"])  # fmt: skip

    def delete_connection(self, connection_id: str) -> None:
        for table in (self.connections, self.streams, self.accounts):
            table.pop(connection_id, None)

    def subscribe(self, connection_id: str, streams: Iterable[str]) -> None:
        names = list(streams)
        for name in names:
            parse_stream(name)
        current = self.streams[connection_id]
        current.extend(n for n in names if n not in current)

    def unsubscribe(self, connection_id: str, streams: Iterable[str]) -> None:
        gone = set(streams)
        self.streams[connection_id] = [s for s in self.streams[connection_id] if s not in gone]

    def list_subscriptions(self, connection_id: str) -> list[str]:
        keys = [s.listen_key for s in self.accounts[connection_id].values() if s.listen_key]
        return [*self.streams[connection_id], *keys]

    def set_combined(self, connection_id: str, combined: bool) -> None:
        self.connections[connection_id]["combined"] = combined

    def subscribe_account(self, connection_id: str, account_id: int, *,
                          listen_key: str | None = None, with_subscription_id: bool = False,
                          api_key: str | None = None,
                          positions: bool | None = None) -> int | None:  # fmt: skip
        if account_id in self.accounts[connection_id]:
            raise AlreadySubscribed(account_id)
        sid = None
        if with_subscription_id:
            sid = self.connections[connection_id]["next"]
            self.connections[connection_id]["next"] += 1
        self.accounts[connection_id][account_id] = AccountSubscription(account_id, listen_key, sid,
                                                                       api_key)  # fmt: skip
        return sid

    def account_subscriptions(self, connection_id: str) -> list[AccountSubscription]:
        return list(self.accounts[connection_id].values())

    def unsubscribe_account(self, connection_id: str, account_id: int) -> None:
        self.accounts[connection_id].pop(account_id, None)

    def set_session(self, connection_id: str, api_key: str, account_id: int) -> None:
        self.connections[connection_id]["session"] = Session(api_key, account_id, NOW)

    def clear_session(self, connection_id: str) -> None:
        self.connections[connection_id]["session"] = None


def _event(route: str, body: Any = None, *, query: dict[str, str] | None = None) -> WsEvent:
    kind = {"$connect": "CONNECT", "$disconnect": "DISCONNECT"}.get(route, "MESSAGE")
    text = body if isinstance(body, str) or body is None else json.dumps(body)
    return WsEvent(route, kind, "conn-1", NOW - 1000, "127.0.0.1", text, query or {})


def _body(answer: dict[str, Any]) -> Any:
    assert answer["statusCode"] == 200
    return json.loads(answer["body"])


# ------------------------------------------------------------------------- market streams


def test_connect_with_streams_and_listen_keys() -> None:
    store = FakeStore()
    keys = {"k" * 60: 7}
    query = {"streams": f"btcusdt@trade/{'k' * 60}", "combined": "true"}
    assert market_streams.connect(_event("$connect", query=query), store, keys.get, NOW / 1000) == {
        "statusCode": 200
    }
    assert store.connections["conn-1"]["combined"] is True
    assert store.connections["conn-1"]["expires_at"] == NOW // 1000 + 7200
    assert store.list_subscriptions("conn-1") == ["btcusdt@trade", "k" * 60]
    refused = market_streams.connect(_event("$connect", query={"streams": "x" * 60}), store,
                                     keys.get)  # fmt: skip
    assert refused["statusCode"] == 400
    assert json.loads(refused["body"])["code"] == -1125
    # A name that is no stream is ignored, as Binance does (ccxt.pro opens /ws/<n>).
    ignored = market_streams.connect(_event("$connect", query={"streams": "0"}), store, keys.get)
    assert ignored == {"statusCode": 200} and store.list_subscriptions("conn-1") == []


def test_stream_messages() -> None:
    store = FakeStore()
    market_streams.connect(_event("$connect"), store, lambda k: None)

    def send(body: Any) -> Any:
        return _body(market_streams.handle_message(_event("SUBSCRIBE", body), store))

    assert send({"method": "SUBSCRIBE", "params": ["btcusdt@trade"], "id": 1}) == {
        "result": None, "id": 1}  # fmt: skip
    assert send({"method": "LIST_SUBSCRIPTIONS", "id": "abc"}) == {
        "result": ["btcusdt@trade"], "id": "abc"}  # fmt: skip
    assert send({"method": "UNSUBSCRIBE", "params": ["btcusdt@trade"], "id": 2}) == {
        "result": None, "id": 2}  # fmt: skip
    assert send({"method": "SUBSCRIBE", "params": ["btcusdt@nope"], "id": 3}) == {
        "error": {"code": 2, "msg": "Invalid request: invalid stream name `btcusdt@nope`"},
        "id": 3}  # fmt: skip
    assert send("[1,")["error"]["code"] == 3
    assert send({"id": 4})["error"]["msg"] == "Invalid request: missing field `method`"
    assert send({"method": "LIST_SUBSCRIPTIONS", "id": 1.5})["error"]["msg"] == (
        "Invalid request: request ID must be an unsigned integer")  # fmt: skip
    assert send({"method": "LIST_SUBSCRIPTIONS", "params": ["x"], "id": 5})["error"]["msg"] == (
        "Invalid request: too many parameters")  # fmt: skip
    unknown = send({"method": "FOO", "id": 6})
    assert unknown["id"] == 6 and unknown["error"]["msg"].startswith(
        "Invalid request: unknown variant `FOO`, expected one of `SUBSCRIBE`"
    )
    market_streams.disconnect(_event("$disconnect"), store)
    assert store.connections == {}


# ------------------------------------------------------------------------- WebSocket API


def _ws_signed(params: dict[str, Any], secret: str = SECRET) -> dict[str, Any]:
    values = {**params, "apiKey": KEY, "timestamp": NOW - 10}
    payload = "&".join(f"{k}={v}" for k, v in sorted(values.items()))
    return {**values, "signature": sign(secret, payload)}


# session.logon takes Ed25519 keys only (Binance): account 7's second key.
ED_PRIVATE = Ed25519PrivateKey.generate()
ED_KEY = "E" * 64
ED_PUBLIC = ED_PRIVATE.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
ED_API_KEY = ApiKey(ED_KEY, "", 7, key_type=ED25519, public_key=ED_PUBLIC.decode())


def ws_keys() -> FakeKeys:
    """The handlers' key store with account 7's Ed25519 key beside its HMAC one."""
    keys = FakeKeys()
    keys.keys[ED_KEY] = ED_API_KEY
    return keys


def _ws_signed_ed(params: dict[str, Any], timestamp: int = NOW - 10) -> dict[str, Any]:
    values = {**params, "apiKey": ED_KEY, "timestamp": timestamp}
    text = {k: ws_api.param_text(k, v) for k, v in values.items()}
    signature = ED_PRIVATE.sign(ws_api.signature_payload(text).encode())
    return {**values, "signature": base64.b64encode(signature).decode()}


def _call(method: str, params: dict[str, Any] | list[Any] | None, store: FakeStore,
          bus: FakeBus | None = None) -> Any:  # fmt: skip
    request: dict[str, Any] = {"id": "r1", "method": method}
    if params is not None:
        request["params"] = params
    return _body(ws_api.handle(_event(method, request), replace(deps(bus), keys=ws_keys()), store))


def test_binance_signature_example() -> None:
    """Binance's documented WebSocket API signing example, byte for byte."""
    params = {"apiKey": "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A",
              "newOrderRespType": "ACK", "price": "52000.00", "quantity": "0.01000000",
              "recvWindow": 100, "side": "SELL", "symbol": "BTCUSDT", "timeInForce": "GTC",
              "timestamp": 1645423376532, "type": "LIMIT"}  # fmt: skip
    text = {k: ws_api.param_text(k, v) for k, v in params.items()}
    secret = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
    assert sign(secret, ws_api.signature_payload(text)) == (
        "cc15477742bd704c29492d96c7ead9414dfd8e0ec4a00f947bb5bb454ddbd08a"
    )


def test_param_text() -> None:
    assert ws_api.param_text("a", True) == "true"
    assert ws_api.param_text("a", 5) == "5"
    assert ws_api.param_text("symbols", ["BTCUSDT", "ETHUSDT"]) == '["BTCUSDT","ETHUSDT"]'


def test_order_place_runs_the_rest_handler() -> None:
    store = FakeStore()
    store.put_connection("conn-1", account_id=None, combined=False, expires_at=NOW)
    bus = FakeBus(lambda c: ok_reply(c, ReplyPart(Outcome.SUCCESS, 0, "", result())))
    answer = _call("order.place", _ws_signed(LIMIT), store, bus)
    assert answer["status"] == 200 and answer["id"] == "r1"
    assert answer["result"]["status"] == "FILLED"
    assert isinstance(bus.sent[0], NewOrder) and bus.sent[0].account_id == 7
    assert _call("order.place", _ws_signed(LIMIT, "x" * 64), store)["error"]["code"] == -1022
    assert _call("order.place", {**LIMIT, "timestamp": NOW}, store)["error"] == {
        "code": -1002, "msg": "You are not authorized to execute this request."}  # fmt: skip
    assert _call("order.place", {**_ws_signed(LIMIT), "price": "1"}, store)["error"]["code"] == (
        -1022)  # fmt: skip
    assert _call("ping", {"apiKey": KEY}, store)["error"]["code"] == -1106
    assert _call("ping", [], store)["error"]["code"] == -1135
    assert _call("time", None, store)["result"] == {"serverTime": NOW}


def test_session_logon_and_user_data_subscriptions() -> None:
    store = FakeStore()
    store.put_connection("conn-1", account_id=None, combined=False, expires_at=NOW)
    assert _call("userDataStream.subscribe", None, store)["error"]["code"] == -1002
    refused = _call("session.logon", _ws_signed({}), store)  # an HMAC key: Binance's refusal
    assert (refused["status"], refused["error"]["code"]) == (400, -4056)
    assert _call("session.status", None, store)["result"]["apiKey"] is None
    logon = _call("session.logon", _ws_signed_ed({}), store)
    assert logon["result"]["apiKey"] == ED_KEY and logon["result"]["authorizedSince"] == NOW
    bus = FakeBus(lambda c: ok_reply(c, ReplyPart(Outcome.SUCCESS, 0, "", result())))
    placed = _call("order.place", {**LIMIT, "timestamp": NOW - 10}, store, bus)
    assert placed["status"] == 200
    assert isinstance(bus.sent[0], NewOrder) and bus.sent[0].account_id == 7
    assert _call("userDataStream.subscribe", None, store)["result"] == {"subscriptionId": 0}
    assert _call("userDataStream.subscribe", None, store)["error"]["code"] == -2035
    assert _call("session.subscriptions", None, store)["result"] == [{"subscriptionId": 0}]
    assert _call("session.subscriptions", {"x": "1"}, store)["error"]["code"] == -1106
    assert _call("userDataStream.unsubscribe", {"subscriptionId": 5}, store)["error"]["code"] == (
        -2036)  # fmt: skip
    assert _call("userDataStream.unsubscribe", {"subscriptionId": 0}, store)["result"] == {}
    assert _call("session.subscriptions", None, store)["result"] == []
    assert _call("userDataStream.subscribe.signature", _ws_signed({}), store)["result"] == {
        "subscriptionId": 1}  # fmt: skip
    assert _call("session.subscriptions", None, store)["result"] == [{"subscriptionId": 1}]
    assert _call("session.logout", None, store)["result"]["apiKey"] is None


# ------------------------------------------------------------------------- local gateway


def test_paths_map_to_connect_queries() -> None:
    assert connect_query("/ws/btcusdt@trade") == {"streams": "btcusdt@trade"}
    assert connect_query("/ws/btcusdt@trade?resumeFrom=9-1&withSeq=true&x=1") == {
        "streams": "btcusdt@trade", "resumeFrom": "9-1", "withSeq": "true"}  # fmt: skip
    assert connect_query("/ws/%21miniTicker%40arr") == {"streams": "!miniTicker@arr"}
    assert connect_query("/stream?streams=a@trade/b@trade") == {
        "streams": "a@trade/b@trade", "combined": "true"}  # fmt: skip
    assert connect_query("/ws-api/v3") == {}
    assert connect_query("/?streams=a@trade") == {"streams": "a@trade"}
    assert connect_query("/api/v3/ping") is None


def test_template_routes_and_selection() -> None:
    api = load_websocket_api("local", "us-east-1")
    assert api is not None and api.selection_expression == "$request.body.method"
    assert {"$connect", "$disconnect", "$default", "SUBSCRIBE", "order.place"} <= set(api.routes)
    assert not api.routes["$connect"].two_way and api.routes["order.place"].two_way
    assert set(ws_api.ALL_METHODS) <= set(api.routes)
    assert api.routes["order.place"].function == "WsApiFunction"
    for body, key in (
        ('{"method":"SUBSCRIBE","id":1}', "SUBSCRIBE"),
        ("not json", "$default"),
        ('{"method":"$connect"}', "$default"),
    ):
        route = api.select(body)
        assert route is not None and route.key == key, body


def test_gateway_event_shapes() -> None:
    api = load_websocket_api("local", "us-east-1")
    assert api is not None
    gateway = WebSocketGateway(type("Rest", (), {"functions": {}})(), api)
    sock = _Socket("abc=", None, None, "10.0.0.1", "ua", {"Host": "h"})  # type: ignore[arg-type]
    connect = gateway.connect_event(sock, {"streams": "a@trade"})
    context = connect["requestContext"]
    assert (context["routeKey"], context["eventType"], context["connectionId"]) == (
        "$connect", "CONNECT", "abc=")  # fmt: skip
    assert {"domainName", "stage", "apiId", "connectedAt", "requestId"} <= context.keys()
    assert connect["queryStringParameters"] == {"streams": "a@trade"}
    message = gateway.message_event(sock, "SUBSCRIBE", '{"method":"SUBSCRIBE"}')
    assert message["requestContext"]["eventType"] == "MESSAGE"
    assert message["body"] == '{"method":"SUBSCRIBE"}'
    disconnect = gateway.disconnect_event(sock, 1000, "bye")
    assert disconnect["requestContext"]["disconnectStatusCode"] == 1000
    read = read_event(connect)
    assert (read.route_key, read.connection_id, read.source_ip, read.query) == (
        "$connect", "abc=", "10.0.0.1", {"streams": "a@trade"})  # fmt: skip
