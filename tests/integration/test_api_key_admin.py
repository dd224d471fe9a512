"""API keys against the local stack's moto (DynamoDB, KMS) and Redis: an operator creates, lists
and revokes keys (``bourse.adapters.api_keys``, ``bourse.adapters.key_revocation``); a revoked
key stops working at once in a function's cached key store; ``close_key_sessions`` ends the
listen key it created and the WebSocket connections that used it, and nothing else.

Isolation: private copies of the listen keys, connections and subscriptions tables (the
settings the adapters read point at them for this module), keys of an account id nobody else
uses (deleted afterwards), and a Redis database of its own (flushed here).
"""

from __future__ import annotations

import contextlib
import os
import random
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from bourse.adapters import api_keys, aws, connections, key_revocation, listen_keys, redis_conn
from bourse.adapters.api_keys import ACTIVE, REVOKED, KeyRevocations
from bourse.adapters.connections import ConnectionStore
from bourse.adapters.listen_keys import ListenKeys
from bourse.adapters.live_api import CachedKeyStore
from bourse.api.signing import ED25519, HMAC
from bourse.settings import Settings, get_settings
from tests.integration.ws_support import private_tables

pytestmark = pytest.mark.integration

REDIS_DB = int(os.environ.get("BOURSE_TEST_KEYS_REDIS_DB", "45"))
PUBLIC_PEM = (
    Ed25519PrivateKey.generate()
    .public_key()
    .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    .decode()
)


@pytest.fixture(scope="module")
def tables(local_stack: Settings, aws_client: Callable[[str], Any]) -> Iterator[dict[str, str]]:
    """Private listen keys / connections / subscriptions tables, which the adapters' default
    stores (settings) use while this module runs."""
    with private_tables(aws_client("dynamodb"), local_stack) as env:
        saved = {name: os.environ.get(name) for name in env}
        os.environ.update(env)
        get_settings.cache_clear()
        try:
            yield env
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            get_settings.cache_clear()


@pytest.fixture
def marks(local_stack: Settings) -> Iterator[KeyRevocations]:
    client = redis_conn.connect(local_stack.redis_url.rsplit("/", 1)[0] + f"/{REDIS_DB}")
    client.flushdb()
    yield KeyRevocations(client)
    client.flushdb()


@pytest.fixture
def account(local_stack: Settings) -> Iterator[int]:
    """An account id no other test or seed uses; its keys are deleted afterwards."""
    account_id = random.randrange(10**12, 2 * 10**12)
    yield account_id
    ddb = aws.client("dynamodb")
    for key in api_keys.list_api_keys(account_id):
        ddb.delete_item(TableName=local_stack.api_keys_table, Key={"apiKey": {"S": key.api_key}})


class Management:
    """An @connections client that records DELETEs; ``gone`` answer 410 as API Gateway does
    for a connection that already closed."""

    def __init__(self, gone: frozenset[str] = frozenset()) -> None:
        self.deleted: list[str] = []
        self.gone = gone

    def delete_connection(self, ConnectionId: str) -> None:  # boto3's argument name
        self.deleted.append(ConnectionId)
        if ConnectionId in self.gone:
            raise ClientError(
                {"Error": {"Code": "GoneException", "Message": ""},
                 "ResponseMetadata": {"RequestId": "", "HostId": "", "HTTPStatusCode": 410,
                                      "HTTPHeaders": {}, "RetryAttempts": 0}},
                "DeleteConnection",
            )  # fmt: skip


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def test_create_list_and_revoke(account: int, marks: KeyRevocations) -> None:
    hmac_key, secret = api_keys.create_api_key(
        account, HMAC, ("TRADE", "USER_DATA"), ("10.0.0.0/8",), "bot", None, 1_000
    )
    ed_key, no_secret = api_keys.create_api_key(
        account, ED25519, ("USER_DATA",), (), "watcher", PUBLIC_PEM, 2_000
    )
    assert secret is not None and no_secret is None
    assert api_keys.get_api_key(hmac_key.api_key) == hmac_key  # KMS round trip
    assert api_keys.get_api_key(ed_key.api_key) == ed_key
    listed = api_keys.list_api_keys(account)
    assert [(k.api_key, k.key_type, k.permissions, k.ip_allow_list, k.label, k.status,
             k.created_at_ms, k.secret) for k in listed] == [
        (hmac_key.api_key, HMAC, ("TRADE", "USER_DATA"), ("10.0.0.0/8",), "bot", ACTIVE, 1_000, ""),
        (ed_key.api_key, ED25519, ("USER_DATA",), (), "watcher", ACTIVE, 2_000, ""),
    ]  # fmt: skip
    assert listed[1].public_key == PUBLIC_PEM
    with pytest.raises(ValueError):
        api_keys.create_api_key(account, ED25519, ("TRADE",), (), "", "-----BEGIN nonsense", 1)

    # A function's store holds the key; the revocation reaches it at once.
    functions_store = CachedKeyStore(3600, marks)
    assert functions_store.get(ed_key.api_key) == ed_key
    revoked = key_revocation.revoke_api_key(ed_key.api_key, marks)
    assert revoked is not None and revoked.status == REVOKED and revoked.secret == ""
    assert functions_store.get(ed_key.api_key) is None
    assert functions_store.get(hmac_key.api_key) == hmac_key
    assert api_keys.get_api_key(ed_key.api_key) is None
    assert api_keys.get_api_key(ed_key.api_key, consistent=True) is None
    described = api_keys.describe_api_key(ed_key.api_key)
    assert described is not None and described.status == REVOKED
    assert key_revocation.revoke_api_key(ed_key.api_key, marks) == revoked  # idempotent
    assert key_revocation.revoke_api_key("Z" * 64, marks) is None
    assert [k.status for k in api_keys.list_api_keys(account)] == [ACTIVE, REVOKED]

    # Redis loses its data (markers and epoch): the store reads DynamoDB again.
    marks.client.flushdb()
    assert functions_store.get(ed_key.api_key) is None
    assert functions_store.get(hmac_key.api_key) == hmac_key


def test_close_key_sessions(tables: dict[str, str], account: int, marks: KeyRevocations) -> None:
    ed_key, _ = api_keys.create_api_key(account, ED25519, ("TRADE", "USER_DATA"), (), "",
                                        PUBLIC_PEM, now_ms())  # fmt: skip
    other, _ = api_keys.create_api_key(account, HMAC, ("USER_DATA",), (), "", None, now_ms())
    store = connections.store()
    assert isinstance(store, ConnectionStore)
    assert store.connections_table == tables["CONNECTIONS_TABLE"]
    keys = listen_keys.store()
    assert isinstance(keys, ListenKeys) and keys.table == tables["LISTEN_KEYS_TABLE"]

    # The key made the account's listen key; the other key kept it alive.
    listen_key = keys.create(account, api_key=ed_key.api_key)
    assert keys.keepalive(listen_key, account, api_key=other.api_key)
    prefix = f"test-{uuid.uuid4().hex[:8]}-"
    expires = int(time.time()) + 600
    for name in ("raw", "combined", "session", "signed", "bystander", "switched"):
        store.put_connection(prefix + name, account_id=None, combined=name == "combined",
                             expires_at=expires)  # fmt: skip
    store.subscribe_account(prefix + "raw", account, listen_key=listen_key)
    store.subscribe_account(prefix + "combined", account, listen_key=listen_key)
    store.set_session(prefix + "session", ed_key.api_key, account)
    store.subscribe(prefix + "session", ["btcusdt@trade"])
    store.subscribe_account(prefix + "signed", account, with_subscription_id=True,
                            api_key=ed_key.api_key)  # fmt: skip
    store.set_session(prefix + "bystander", other.api_key, account)
    store.subscribe_account(prefix + "bystander", account, with_subscription_id=True)
    # Logged on with the key, then with another one: no longer the key's.
    store.set_session(prefix + "switched", ed_key.api_key, account)
    store.set_session(prefix + "switched", other.api_key, account)
    # Logged on, subscribed in the session, logged out: still the key's (its user data flows).
    store.put_connection(prefix + "logout", account_id=None, combined=False, expires_at=expires)
    store.set_session(prefix + "logout", ed_key.api_key, account)
    store.subscribe_account(prefix + "logout", account, with_subscription_id=True,
                            api_key=ed_key.api_key)  # fmt: skip
    store.clear_session(prefix + "logout")
    store.clear_session(prefix + "never-connected")  # creates nothing
    assert store.get_connection(prefix + "never-connected") is None

    assert sorted(store.connections_for_api_key(ed_key.api_key)) == [
        prefix + "logout", prefix + "session", prefix + "signed"]  # fmt: skip
    assert store.list_subscriptions(prefix + "session") == ["btcusdt@trade"]  # no marks listed
    (signed,) = store.account_subscriptions(prefix + "signed")
    assert signed.api_key == ed_key.api_key and signed.subscription_id == 0

    assert key_revocation.revoke_api_key(ed_key.api_key, marks) is not None
    management = Management(gone=frozenset({prefix + "raw"}))
    closed = key_revocation.close_key_sessions(ed_key.api_key, management)
    assert closed == 1 + 5  # the listen key, and raw, combined, session, signed, logout
    assert sorted(management.deleted) == sorted(
        prefix + n for n in ("raw", "combined", "session", "signed", "logout"))  # fmt: skip
    assert keys.lookup(listen_key) is None
    for name in ("raw", "combined", "session", "signed", "logout"):
        assert store.get_connection(prefix + name) is None, name
        assert store.list_subscriptions(prefix + name) == []
    for name in ("bystander", "switched"):
        state = store.get_connection(prefix + name)
        assert state is not None and state.session is not None
        assert state.session.api_key == other.api_key
    assert [c.connection_id for c in store.connections_for_account(account)] == [
        prefix + "bystander"]  # fmt: skip
    # Nothing left to close; an unknown key closes nothing.
    assert key_revocation.close_key_sessions(ed_key.api_key, Management()) == 0
    assert key_revocation.close_key_sessions("Z" * 64, Management()) == 0
    # A listen key the revoked key never touched survives the other key's revocation... and
    # ends with it when that key made it.
    fresh = keys.create(account, api_key=other.api_key)
    assert key_revocation.close_key_sessions(ed_key.api_key, Management()) == 0
    assert keys.lookup(fresh) == account
    store.clear_session(prefix + "bystander")
    assert store.connections_for_api_key(other.api_key) == [prefix + "switched"]
    management = Management()
    assert key_revocation.close_key_sessions(other.api_key, management, account_id=account) == 1 + 1
    assert management.deleted == [prefix + "switched"] and keys.lookup(fresh) is None
    with contextlib.suppress(Exception):
        store.delete_connection(prefix + "bystander")
