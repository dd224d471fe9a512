"""A closed listen key closes its streams, through the local gateway (issue 15, item 8): a
trader opens ``/ws/<listenKey>`` and ``/stream?streams=<listenKey>``, then ends the key with
DELETE /api/v3/userDataStream (and, for another key, with the WebSocket API's
``userDataStream.stop``): each stream receives Binance's ``listenKeyExpired`` event (wrapped
on the combined one) and is then closed through the @connections API; other connections stay.

A private exchange (``ApiStack``: the gateway alone, no matching service), private WebSocket
tables and a Redis database of its own; the test process's settings point at the same tables
and commands topic (the listen keys' scope) while the module runs.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from websockets.exceptions import ConnectionClosed

from bourse.adapters import aws, listen_keys
from bourse.settings import Settings
from tests.integration.api_support import ApiStack, Trader
from tests.integration.ws_support import WsClient, gateway_stack

pytestmark = pytest.mark.integration

REDIS_DB = int(os.environ.get("BOURSE_TEST_LISTEN_KEY_CLOSE_REDIS_DB", "47"))


@pytest.fixture(scope="module")
def stack(
    local_stack: Settings, aws_client: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiStack]:
    with gateway_stack(
        local_stack, aws_client("dynamodb"), tmp_path_factory.mktemp("listen-key-close"), REDIS_DB
    ) as stack:
        yield stack


@pytest.fixture
def trader(stack: ApiStack) -> Iterator[Trader]:
    t = stack.trader(random.randrange(10**12, 2 * 10**12), {})
    yield t
    aws.client("dynamodb").delete_item(
        TableName=stack.settings.api_keys_table, Key={"apiKey": {"S": t.api_key}}
    )


def _user_stream(stack: ApiStack, trader: Trader, method: str, **params: str) -> Any:
    response = requests.request(
        method,
        f"{stack.base_url}/api/v3/userDataStream",
        params=params,
        headers={"X-MBX-APIKEY": trader.api_key},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    return response.json()


def _expired_then_closed(socket: WsClient, listen_key: str, *, combined: bool) -> None:
    event = socket.recv(timeout=30)
    if combined:
        assert event["stream"] == listen_key
        event = event["data"]
    assert event["e"] == "listenKeyExpired" and event["listenKey"] == listen_key
    assert isinstance(event["E"], int)
    with pytest.raises(ConnectionClosed):
        socket.conn.recv(timeout=30)


def test_delete_sends_listen_key_expired_and_closes_the_streams(
    stack: ApiStack, trader: Trader
) -> None:
    listen_key = _user_stream(stack, trader, "POST")["listenKey"]
    ws_url = stack.base_url.replace("http://", "ws://")
    raw = WsClient(f"{ws_url}/ws/{listen_key}")
    combined = WsClient(f"{ws_url}/stream?streams={listen_key}")
    bystander = WsClient(f"{ws_url}/ws-api/v3")
    try:
        assert _user_stream(stack, trader, "DELETE", listenKey=listen_key) == {}
        _expired_then_closed(raw, listen_key, combined=False)
        _expired_then_closed(combined, listen_key, combined=True)
        assert listen_keys.store().lookup(listen_key) is None
        assert bystander.api("ping")["status"] == 200  # other connections stay
    finally:
        for socket in (raw, combined, bystander):
            socket.close()


def test_websocket_api_stop_closes_the_streams(stack: ApiStack, trader: Trader) -> None:
    ws_url = stack.base_url.replace("http://", "ws://")
    api = WsClient(f"{ws_url}/ws-api/v3")
    try:
        started = api.api("userDataStream.start", {"apiKey": trader.api_key})
        assert started["status"] == 200, started
        listen_key = started["result"]["listenKey"]
        pinged = api.api("userDataStream.ping", {"apiKey": trader.api_key, "listenKey": listen_key})
        assert (pinged["status"], pinged["result"]) == (200, {})
        stream = WsClient(f"{ws_url}/ws/{listen_key}")
        try:
            stopped = api.api(
                "userDataStream.stop", {"apiKey": trader.api_key, "listenKey": listen_key}
            )
            assert (stopped["status"], stopped["result"]) == (200, {})
            _expired_then_closed(stream, listen_key, combined=False)
        finally:
            stream.close()
        # The API connection that stopped it is not a stream of the key: it stays.
        again = api.api("userDataStream.stop", {"apiKey": trader.api_key, "listenKey": listen_key})
        assert again["error"] == {"code": -1125, "msg": "This listenKey does not exist."}
    finally:
        api.close()
