"""The WebSocket API end to end: a WebSocket client -> the local gateway (template.yaml's
WebSocket routes) -> the WebSocket functions -> DynamoDB (private tables) and, for the
WebSocket API, the same handlers, Kafka and matching service as REST.

One private exchange for the module (ws_support). Idle connections close after 5 s here (10
minutes on AWS), so that the idle limit is testable.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from websockets.exceptions import ConnectionClosed, InvalidStatus

from bourse.adapters.connections import (
    Connection,
    ConnectionStore,
    RecentSubscriptions,
    account_stream,
)
from bourse.adapters.listen_keys import ListenKeys
from bourse.settings import Settings
from tests.integration.api_support import ApiStack, Trader
from tests.integration.ws_support import (
    WsClient,
    ed25519_key,
    ed_signed_params,
    private_tables,
    signed_params,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REDIS_DB = int(os.environ.get("BOURSE_TEST_WS_REDIS_DB", "26"))
IDLE_SECONDS = 5


@pytest.fixture(scope="module")
def tables(local_stack: Settings, aws_client: Any) -> Iterator[dict[str, str]]:
    with private_tables(aws_client("dynamodb"), local_stack) as env:
        yield env


@pytest.fixture(scope="module")
def stack(
    local_stack: Settings, tables: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiStack]:
    s = ApiStack(local_stack, tmp_path_factory.mktemp("ws"), REDIS_DB)
    s.env.update(tables)
    s.env["BOURSE_GATEWAY_WS_IDLE_SECONDS"] = str(IDLE_SECONDS)
    try:
        s.start()
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def store(tables: dict[str, str]) -> ConnectionStore:
    return ConnectionStore(tables["CONNECTIONS_TABLE"], tables["SUBSCRIPTIONS_TABLE"])


@pytest.fixture(scope="module")
def alice(stack: ApiStack) -> Trader:
    return stack.trader(1, {"BTC": "2", "USDT": "100000"})


def _url(stack: ApiStack, path: str) -> str:
    return stack.base_url.replace("http://", "ws://") + path


def _unique_stream(kind: str = "trade") -> str:
    return f"zz{uuid.uuid4().hex[:8]}usdt@{kind}"


def _connection_of(store: ConnectionStore, stream: str) -> Any:
    assert wait_for(lambda: len(store.connections_for_stream(stream)) == 1)
    return store.connections_for_stream(stream)[0]


# ------------------------------------------------------------------------- market streams


def test_subscribe_list_unsubscribe(stack: ApiStack, store: ConnectionStore) -> None:
    trade, depth = _unique_stream(), _unique_stream("depth@100ms")
    client = WsClient(_url(stack, "/ws"))
    try:
        assert client.stream_request("LIST_SUBSCRIPTIONS") == {"result": [], "id": 1}
        assert client.stream_request("SUBSCRIBE", [trade, depth]) == {"result": None, "id": 2}
        assert client.stream_request("LIST_SUBSCRIPTIONS") == {"result": [trade, depth], "id": 3}
        connection = _connection_of(store, depth)
        assert connection.combined is False
        assert client.stream_request("UNSUBSCRIBE", [trade]) == {"result": None, "id": 4}
        assert client.stream_request("LIST_SUBSCRIPTIONS") == {"result": [depth], "id": 5}
        assert store.connections_for_stream(trade) == []
        # Binance's errors, with the request's id
        answer = client.stream_request("SUBSCRIBE", ["BTCUSDT@trade"])
        assert answer["id"] == 6 and answer["error"]["code"] == 2, answer
        answer = client.call({"method": "SUBSCRIB", "params": [], "id": 7})
        assert answer["id"] == 7 and answer["error"]["code"] == 2
        assert "unknown variant `SUBSCRIB`" in answer["error"]["msg"]
        answer = client.call("{not json")
        assert answer["error"]["code"] == 3 and answer["id"] is None
        answer = client.call({"params": [trade], "id": 8})
        assert answer == {"error": {"code": 2, "msg": "Invalid request: missing field `method`"},
                          "id": 8}  # fmt: skip
        answer = client.call({"method": "LIST_SUBSCRIPTIONS", "id": {"x": 1}})
        assert answer["error"] == {
            "code": 2, "msg": "Invalid request: request ID must be an unsigned integer"
        }  # fmt: skip
    finally:
        client.close()
    # $disconnect cleans the store
    assert wait_for(lambda: store.get_connection(connection.connection_id) is None)
    assert store.connections_for_stream(depth) == []


def test_subscriptions_are_recorded_for_the_broadcaster(
    stack: ApiStack, tables: dict[str, str], alice: Trader
) -> None:
    """Before a subscription is acknowledged it is in Redis (``RecentSubscriptions``), where
    the broadcaster finds it whatever its cached lists and the by-stream index say; it leaves
    on UNSUBSCRIBE and $disconnect."""
    recent = RecentSubscriptions(stack.redis)
    trade, depth = _unique_stream(), _unique_stream("depth")
    keys = ListenKeys(tables["LISTEN_KEYS_TABLE"], stack.commands_topic)
    listen_key = keys.create(alice.account_id)
    user = account_stream(alice.account_id)
    combined = WsClient(_url(stack, f"/stream?streams={trade}/{listen_key}"))
    market = WsClient(_url(stack, "/ws"))
    api = WsClient(_url(stack, "/ws-api/v3"))
    try:
        # $connect answered: its streams and listen key are there
        (first,) = recent.read([trade])
        assert [c.combined for c in first] == [True]
        combined_id = first[0].connection_id
        assert recent.read([user]) == [[Connection(combined_id, True, listen_key)]]
        assert market.stream_request("SUBSCRIBE", [trade, depth]) == {"result": None, "id": 1}
        (on_trade, on_depth) = recent.read([trade, depth])
        assert len(on_trade) == 2 and len(on_depth) == 1
        market_id = on_depth[0].connection_id
        assert on_depth == [Connection(market_id, False)]
        logon = ed_signed_params(ed25519_key(stack, alice), {})  # Ed25519 only, as on Binance
        assert api.api("session.logon", logon)["status"] == 200
        assert api.api("userDataStream.subscribe")["result"] == {"subscriptionId": 0}
        (on_user,) = recent.read([user])
        assert len(on_user) == 2
        (api_subscription,) = [c for c in on_user if c.connection_id != combined_id]
        assert api_subscription.subscription_id == 0 and api_subscription.listen_key is None
        # unsubscribed and disconnected connections leave
        assert market.stream_request("UNSUBSCRIBE", [trade]) == {"result": None, "id": 2}
        assert [c.connection_id for c in recent.read([trade])[0]] == [combined_id]
        assert api.api("userDataStream.unsubscribe")["result"] == {}
        assert recent.read([user]) == [[Connection(combined_id, True, listen_key)]]
    finally:
        for client in (combined, market, api):
            client.close()
    assert wait_for(lambda: recent.read([trade, depth, user]) == [[], [], []])


def test_binance_paths(stack: ApiStack, store: ConnectionStore) -> None:
    raw = _unique_stream("kline_1m")
    client = WsClient(_url(stack, f"/ws/{raw}"))
    try:
        assert client.stream_request("LIST_SUBSCRIPTIONS") == {"result": [raw], "id": 1}
        assert _connection_of(store, raw).combined is False
    finally:
        client.close()
    a, b = _unique_stream("bookTicker"), _unique_stream("depth20")
    client = WsClient(_url(stack, f"/stream?streams={a}/{b}"))
    try:
        assert client.stream_request("LIST_SUBSCRIPTIONS") == {"result": [a, b], "id": 1}
        connection = _connection_of(store, b)
        assert connection.combined is True
        assert connection.frame(b, {"e": "x"}) == {"stream": b, "data": {"e": "x"}}
    finally:
        client.close()
    # A name Binance does not know opens the connection all the same (ccxt.pro's /ws/<n>):
    # nothing is subscribed.
    client = WsClient(_url(stack, "/ws/btcusdt@nonsense"))
    try:
        assert client.stream_request("LIST_SUBSCRIPTIONS") == {"result": [], "id": 1}
    finally:
        client.close()


def test_listen_key_connections(
    stack: ApiStack, store: ConnectionStore, tables: dict[str, str], alice: Trader
) -> None:
    keys = ListenKeys(tables["LISTEN_KEYS_TABLE"], stack.commands_topic)
    listen_key = keys.create(alice.account_id)
    raw = WsClient(_url(stack, f"/ws/{listen_key}"))
    combined = WsClient(_url(stack, f"/stream?streams={listen_key}"))
    try:
        assert wait_for(lambda: len(store.connections_for_account(alice.account_id)) == 2)
        frames = sorted(
            str(c.user_frame({"e": "executionReport"}))
             for c in store.connections_for_account(alice.account_id)
        )  # fmt: skip
        assert frames == sorted(
            [str({"e": "executionReport"}),
             str({"stream": listen_key, "data": {"e": "executionReport"}})]
        )  # fmt: skip
        assert combined.stream_request("LIST_SUBSCRIPTIONS") == {"result": [listen_key], "id": 1}
    finally:
        raw.close()
        combined.close()
    assert wait_for(lambda: store.connections_for_account(alice.account_id) == [])
    with pytest.raises(InvalidStatus) as refused:
        WsClient(_url(stack, "/ws/" + "x" * 60))
    assert refused.value.response.status_code == 400


# ------------------------------------------------------------------------- WebSocket API


def _without_ids(body: dict[str, Any]) -> dict[str, Any]:
    varying = {"orderId", "clientOrderId", "transactTime", "workingTime"}
    return {k: v for k, v in body.items() if k not in varying}


def test_public_methods_equal_rest(stack: ApiStack) -> None:
    rest = stack.client()
    client = WsClient(_url(stack, "/ws-api/v3"))
    try:
        answer = client.api("ping")
        assert answer["status"] == 200 and answer["result"] == {}
        answer = client.api("time")
        assert abs(answer["result"]["serverTime"] - time.time() * 1000) < 5000
        answer = client.api("exchangeInfo", {"symbols": ["BTCUSDT"]})
        expected = rest.public("GET", "/api/v3/exchangeInfo", symbol="BTCUSDT").json()
        assert answer["result"]["symbols"] == expected["symbols"]
        answer = client.api("depth", {"symbol": "BTCUSDT", "limit": 5})
        assert answer["result"] == rest.public("GET", "/api/v3/depth", symbol="BTCUSDT",
                                               limit=5).json()  # fmt: skip
        answer = client.api("depth", {"symbol": "NOPE"})
        assert answer["status"] == 400 and answer["error"]["code"] == -1121
    finally:
        client.close()


def test_order_place_equals_rest(stack: ApiStack, alice: Trader) -> None:
    order = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
             "quantity": "0.01", "price": "20000", "newOrderRespType": "RESULT",
             "recvWindow": 60000}  # fmt: skip
    rest = stack.client(alice).signed("POST", "/api/v3/order", order)
    assert rest.status_code == 200, rest.text
    client = WsClient(_url(stack, "/ws-api/v3"))
    try:
        answer = client.signed("order.place", alice, order)
        assert answer["status"] == 200, answer
        assert _without_ids(answer["result"]) == _without_ids(rest.json())
        order_id = answer["result"]["orderId"]
        status = client.signed("order.status", alice, {"symbol": "BTCUSDT", "orderId": order_id})
        assert status["result"]["orderId"] == order_id and status["result"]["status"] == "NEW"
        open_orders = client.signed("openOrders.status", alice, {"symbol": "BTCUSDT"})
        assert order_id in [o["orderId"] for o in open_orders["result"]]
        account = client.signed("account.status", alice)
        assert (
            account["result"]["balances"]
            == (stack.client(alice).signed("GET", "/api/v3/account").json()["balances"])
        )
        cancel = client.signed("order.cancel", alice, {"symbol": "BTCUSDT", "orderId": order_id})
        assert cancel["result"]["status"] == "CANCELED"
        # the same errors as REST, in the WebSocket API's shape
        bad = client.api("order.place", signed_params(alice, order, secret="0" * 64))
        assert bad["status"] == 400 and bad["error"]["code"] == -1022
        unknown = client.api("order.place", {**signed_params(alice, order), "apiKey": "A" * 64})
        assert unknown["status"] == 401 and unknown["error"]["code"] == -2015
        unsigned = client.api("order.place", order)
        assert unsigned["status"] == 401 and unsigned["error"]["code"] == -1002
        filtered = client.signed("order.place", alice, {**order, "price": "20000.001"})
        assert filtered["error"]["code"] == -1013
    finally:
        client.close()


def test_order_test_cancel_replace_and_cancel_all_equal_rest(
    stack: ApiStack, alice: Trader
) -> None:
    """order.test, order.cancelReplace and openOrders.cancelAll through the gateway's routes."""
    order = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
             "quantity": "0.01", "price": "20000", "recvWindow": 60000}  # fmt: skip
    client = WsClient(_url(stack, "/ws-api/v3"))
    try:
        tested = client.signed("order.test", alice, order)
        assert tested["status"] == 200 and tested["result"] == {}, tested
        placed = client.signed("order.place", alice, order)
        order_id = placed["result"]["orderId"]
        replaced = client.signed("order.cancelReplace", alice, {
            **order, "price": "20001", "cancelReplaceMode": "STOP_ON_FAILURE",
            "cancelOrderId": order_id})  # fmt: skip
        assert replaced["status"] == 200, replaced
        assert replaced["result"]["cancelResponse"]["orderId"] == order_id
        new_id = replaced["result"]["newOrderResponse"]["orderId"]
        again = {**order, "cancelReplaceMode": "STOP_ON_FAILURE", "cancelOrderId": order_id}
        failed = client.signed("order.cancelReplace", alice, again)
        assert failed["status"] == 400 and failed["error"]["code"] == -2022
        assert failed["error"]["data"]["cancelResult"] == "FAILURE"
        cancelled = client.signed("openOrders.cancelAll", alice, {"symbol": "BTCUSDT"})
        assert cancelled["status"] == 200, cancelled
        assert new_id in [o["orderId"] for o in cancelled["result"]]
        left = stack.client(alice).signed("GET", "/api/v3/openOrders", {"symbol": "BTCUSDT"})
        assert left.json() == []
    finally:
        client.close()


def test_session_logon_and_user_data(
    stack: ApiStack, store: ConnectionStore, alice: Trader
) -> None:
    client = WsClient(_url(stack, "/ws-api/v3"))
    try:
        assert client.api("session.status")["result"]["apiKey"] is None
        refused = client.api("session.logon", signed_params(alice, {}))  # an HMAC key
        assert (refused["status"], refused["error"]["code"]) == (400, -4056), refused
        ed_key = ed25519_key(stack, alice)
        logon = client.api("session.logon", ed_signed_params(ed_key, {}))
        assert logon["status"] == 200, logon
        assert logon["result"]["apiKey"] == ed_key.api_key
        assert logon["result"]["userDataStream"] is False
        # requests of the session need no signature
        order = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                 "quantity": "0.01", "price": "19000", "recvWindow": 60000}  # fmt: skip
        placed = client.api("order.place", {**order, "timestamp": int(time.time() * 1000)})
        assert placed["status"] == 200, placed
        assert client.api("userDataStream.subscribe")["result"] == {"subscriptionId": 0}
        again = client.api("userDataStream.subscribe")
        assert again["error"]["code"] == -2035
        (connection,) = store.connections_for_account(alice.account_id)
        assert connection.subscription_id == 0
        assert connection.user_frame({"e": "x"}) == {"subscriptionId": 0, "event": {"e": "x"}}
        assert client.api("session.status")["result"]["userDataStream"] is True
        assert client.api("userDataStream.unsubscribe")["result"] == {}
        assert client.api("userDataStream.unsubscribe")["error"]["code"] == -2036
        assert store.connections_for_account(alice.account_id) == []
        signature = client.api("userDataStream.subscribe.signature", signed_params(alice, {}))
        assert signature["result"] == {"subscriptionId": 1}
        assert client.api("session.logout")["result"]["apiKey"] is None
        order["timestamp"] = int(time.time() * 1000)
        assert client.api("order.place", order)["error"]["code"] == -1002
    finally:
        client.close()
    assert wait_for(lambda: store.connections_for_account(alice.account_id) == [])


# ------------------------------------------------------------------------- @connections


def test_management_endpoint(stack: ApiStack, store: ConnectionStore) -> None:
    stream = _unique_stream()
    client = WsClient(_url(stack, f"/ws/{stream}"))
    management = boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=stack.base_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    try:
        connection_id = _connection_of(store, stream).connection_id
        management.post_to_connection(ConnectionId=connection_id, Data=b'{"e":"trade"}')
        assert client.recv() == {"e": "trade"}
        info = management.get_connection(ConnectionId=connection_id)
        assert info["Identity"]["SourceIp"] == "127.0.0.1"
        assert info["ConnectedAt"].year >= 2024
        with pytest.raises(ClientError) as too_big:
            management.post_to_connection(ConnectionId=connection_id, Data=b"x" * (128 * 1024 + 1))
        assert too_big.value.response["Error"]["Code"] == "PayloadTooLargeException"
        management.delete_connection(ConnectionId=connection_id)
        with pytest.raises(ConnectionClosed):
            client.conn.recv(timeout=10)
        with pytest.raises(ClientError) as gone:
            management.post_to_connection(ConnectionId=connection_id, Data=b"{}")
        assert gone.value.response["Error"]["Code"] == "GoneException"
        assert gone.value.response["ResponseMetadata"]["HTTPStatusCode"] == 410
        assert wait_for(lambda: store.connections_for_stream(stream) == [])
    finally:
        client.close()


def test_idle_connection_is_closed(stack: ApiStack) -> None:
    client = WsClient(_url(stack, "/ws"), ping_interval=None)
    try:
        with pytest.raises(ConnectionClosed) as closed:
            client.conn.recv(timeout=IDLE_SECONDS + 10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    finally:
        client.close()
