"""Ed25519 keys and revocation through the local gateway, as a trader meets them: python-binance
unmodified signs with its Ed25519 private key over HTTP (the gateway's REQUEST authorizer, its
cached answer, the functions); a WebSocket API session logs on with the key and a listen key
stream is open; then the key is revoked and at once REST refuses it (-2015, 401) although API
Gateway's cached Allow still stands, and both WebSocket connections are closed through the
@connections API.

A private exchange (``ApiStack``: the gateway alone, no matching service), private WebSocket
tables and a Redis database of its own; the test process's settings point at the same tables
and commands topic (the listen keys' scope) while the module runs.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from binance.client import Client
from binance.exceptions import BinanceAPIException
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from websockets.exceptions import ConnectionClosed

from bourse.adapters import api_keys, aws, key_revocation, listen_keys, redis_conn
from bourse.adapters.api_keys import KeyRevocations
from bourse.api.signing import ED25519
from bourse.settings import Settings
from tests.integration.api_support import ApiStack, now_ms
from tests.integration.ws_support import WsClient, gateway_stack, wait_for

pytestmark = pytest.mark.integration

REDIS_DB = int(os.environ.get("BOURSE_TEST_KEYS_GATEWAY_REDIS_DB", "46"))
PRIVATE = Ed25519PrivateKey.generate()
PRIVATE_PEM = PRIVATE.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
PUBLIC_PEM = (
    PRIVATE.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
)
REVOKED = {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}


@pytest.fixture(scope="module")
def stack(
    local_stack: Settings, aws_client: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiStack]:
    with gateway_stack(
        local_stack, aws_client("dynamodb"), tmp_path_factory.mktemp("keys-gateway"), REDIS_DB
    ) as stack:
        yield stack


def test_ed25519_key_revoked_through_the_gateway(stack: ApiStack) -> None:
    account = random.randrange(10**12, 2 * 10**12)
    key, secret = api_keys.create_api_key(
        account, ED25519, ("TRADE", "USER_DATA"), (), "e2e", PUBLIC_PEM, now_ms()
    )
    assert secret is None
    try:
        _scenario(stack, account, key.api_key)
    finally:
        aws.client("dynamodb").delete_item(
            TableName=stack.settings.api_keys_table, Key={"apiKey": {"S": key.api_key}}
        )


def _scenario(stack: ApiStack, account: int, api_key: str) -> None:
    client = Client(api_key, private_key=PRIVATE_PEM, ping=False)
    client.API_URL = stack.base_url + "/api"
    assert client.get_account()["balances"] == []  # query-string signature (GET)
    listen_key = client.stream_get_listen_key()  # USER_STREAM
    assert listen_keys.store().lookup(listen_key) == account
    ws_url = stack.base_url.replace("http://", "ws://")
    stream = WsClient(f"{ws_url}/ws/{listen_key}")
    session = WsClient(f"{ws_url}/ws-api/v3")
    late = WsClient(f"{ws_url}/ws-api/v3")
    try:
        # python-binance's own WebSocket API signing, with the Ed25519 private key
        logon = session.api("session.logon", _ws_signed(client))
        assert logon["status"] == 200 and logon["result"]["apiKey"] == api_key
        assert session.api("account.status", {"timestamp": now_ms()})["status"] == 200
        assert session.api("userDataStream.subscribe")["result"] == {"subscriptionId": 0}

        marks = KeyRevocations(redis_conn.connect(stack.redis_url))
        revoked = key_revocation.revoke_api_key(api_key, marks)
        assert revoked is not None and revoked.status == "REVOKED"
        # At once, though API Gateway's cached Allow (300 s) still lets it reach the functions.
        with pytest.raises(BinanceAPIException) as refused:
            client.get_account()
        assert (refused.value.status_code, refused.value.code) == (401, -2015)
        with pytest.raises(BinanceAPIException) as no_stream:
            client.stream_get_listen_key()
        assert no_stream.value.code == -2015
        answer = late.api("session.logon", _ws_signed(client))
        assert (answer["status"], answer["error"]) == (401, REVOKED)

        management = boto3.client(
            "apigatewaymanagementapi",
            endpoint_url=stack.base_url,
            region_name=stack.settings.region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        closed = key_revocation.close_key_sessions(api_key, management, account_id=account)
        assert closed == 3  # the listen key, its /ws/ connection, the session
        for socket in (stream, session):
            with pytest.raises(ConnectionClosed):
                socket.conn.recv(timeout=10)
        assert listen_keys.store().lookup(listen_key) is None
        assert late.api("ping")["status"] == 200  # other connections stay
        assert wait_for(lambda: key_revocation.close_key_sessions(api_key, management) == 0)
    finally:
        for socket in (stream, session, late):
            socket.close()


def _ws_signed(client: Client) -> dict[str, Any]:
    params: dict[str, Any] = client._sign_ws_params(
        {"recvWindow": 60000}, client._generate_ws_api_signature
    )
    return params
