"""WebSocket tests' support: private copies of the tables the WebSocket functions use, a
private exchange (``api_support.ApiStack``) whose gateway and functions use them, and a
client that speaks Binance's market stream and WebSocket API messages.

The tables are copies of template.yaml's definitions under names of their own, so that a test
never sees (nor deletes) another exchange's connections; the gateway's functions get the names
through the environment, as the template's variables (overrides win, see runtime.py).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from websockets.sync.client import ClientConnection, connect

from bourse.api.signing import sign
from bourse.settings import Settings, get_settings
from devstack.cfn import load_template, local_resolver
from tests.integration.api_support import ApiStack, Trader, now_ms
from tests.integration.record_support import scratch_database

# Logical id -> the environment variable that names it for the functions.
TABLES = {
    "ConnectionsTable": "CONNECTIONS_TABLE",
    "SubscriptionsTable": "SUBSCRIPTIONS_TABLE",
    "ListenKeysTable": "LISTEN_KEYS_TABLE",
}


@contextlib.contextmanager
def private_tables(dynamodb: Any, settings: Settings) -> Iterator[dict[str, str]]:
    """Creates the tables (template.yaml's key schemas and indexes, new names); yields the
    environment that points the functions at them; deletes them afterwards."""
    template = load_template()
    resolver = local_resolver(template, settings.stage, settings.region)
    suffix = uuid.uuid4().hex[:8]
    env: dict[str, str] = {}
    try:
        for logical_id, variable in TABLES.items():
            resource = template["Resources"].get(logical_id)
            if resource is None:
                continue
            props = resolver.resolve(resource["Properties"])
            name = f"{props['TableName']}-test-{suffix}"
            args: dict[str, Any] = {
                "TableName": name,
                "KeySchema": props["KeySchema"],
                "AttributeDefinitions": props["AttributeDefinitions"],
                "BillingMode": "PAY_PER_REQUEST",
            }
            if props.get("GlobalSecondaryIndexes"):
                args["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
            dynamodb.create_table(**args)
            env[variable] = name
        yield env
    finally:
        for name in env.values():
            with contextlib.suppress(Exception):
                dynamodb.delete_table(TableName=name)


@contextlib.contextmanager
def ws_exchange(
    settings: Settings,
    dynamodb: Any,
    logs: Path,
    redis_db: int,
    *,
    env: dict[str, str] | None = None,
    broadcaster: bool = True,
    record_prefix: str | None = None,
) -> Iterator[ApiStack]:
    """A started private exchange on WebSocket tables of its own, with the broadcaster
    (``broadcaster``) and the trade recorder into a scratch record named ``record_prefix``_...
    (when given); stopped and cleaned up afterwards."""
    with contextlib.ExitStack() as cleanup:
        tables = cleanup.enter_context(private_tables(dynamodb, settings))
        dsn = (
            None
            if record_prefix is None
            else cleanup.enter_context(scratch_database(settings.pg_dsn, record_prefix))
        )
        stack = ApiStack(settings, logs, redis_db, dsn)
        stack.env.update({**tables, **(env or {})})
        try:
            stack.start()
            if dsn is not None:
                stack.spawn_recorder()
            if broadcaster:
                stack.spawn_broadcaster()
            yield stack
        finally:
            stack.stop()


def ws_stack(settings: Settings, logs: Path, redis_db: int, env: dict[str, str]) -> ApiStack:
    stack = ApiStack(settings, logs, redis_db)
    stack.env.update(env)
    # the settings the test process itself reads (the store, the listen keys) point there too
    return stack


class WsClient:
    """One WebSocket connection to the gateway, with Binance's request shapes."""

    def __init__(self, url: str, **options: Any) -> None:
        # A long open timeout: $connect may wait for a function's cold start (a busy container
        # starts another, as Lambda scales out), tens of seconds on a loaded machine.
        options.setdefault("open_timeout", 90)
        self.conn: ClientConnection = connect(
            url, compression=None, proxy=None, legacy=True, **options
        )
        self._ids = iter(range(1, 1_000_000))

    def send(self, message: dict[str, Any] | str) -> None:
        self.conn.send(message if isinstance(message, str) else json.dumps(message))

    def recv(self, timeout: float = 15) -> Any:
        return json.loads(self.conn.recv(timeout=timeout))

    def call(self, message: dict[str, Any] | str) -> Any:
        self.send(message)
        return self.recv()

    def stream_request(self, method: str, params: list[str] | None = None) -> Any:
        message: dict[str, Any] = {"method": method, "id": next(self._ids)}
        if params is not None:
            message["params"] = params
        return self.call(message)

    def api(self, method: str, params: dict[str, Any] | None = None) -> Any:
        request_id = uuid.uuid4().hex[:12]
        message: dict[str, Any] = {"id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        answer = self.call(message)
        assert answer["id"] == request_id, answer
        return answer

    def signed(self, method: str, trader: Trader, params: dict[str, Any] | None = None) -> Any:
        return self.api(method, signed_params(trader, params or {}))

    def close(self) -> None:
        self.conn.close()


def signed_params(
    trader: Trader, params: dict[str, Any], *, secret: str | None = None
) -> dict[str, Any]:
    """Binance's WebSocket API signing: apiKey and timestamp added, every parameter sorted,
    ``name=value`` joined with ``&``, HMAC-SHA256 with the secret."""
    # the longest window Binance allows: a loaded test machine takes seconds per request
    values = {"recvWindow": 60000, **params, "apiKey": trader.api_key, "timestamp": now_ms()}
    payload = "&".join(f"{k}={_text(v)}" for k, v in sorted(values.items()))
    values["signature"] = sign(secret or trader.secret, payload)
    return values


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def wait_for(condition: Callable[[], bool], timeout: float = 10) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@contextlib.contextmanager
def gateway_stack(
    settings: Settings, dynamodb: Any, logs: Path, redis_db: int
) -> Iterator[ApiStack]:
    """A local gateway without a matching service on tables of its own, with this process's
    settings pointed at the same tables and commands topic while it runs (the tests read the
    store and listen keys directly)."""
    with private_tables(dynamodb, settings) as tables:
        stack = ApiStack(settings, logs, redis_db)
        stack.env.update(tables)
        own = {**tables, "BOURSE_COMMANDS_TOPIC": stack.commands_topic}
        saved = {name: os.environ.get(name) for name in own}
        os.environ.update(own)
        get_settings.cache_clear()
        try:
            stack.start(matching=False)
            yield stack
        finally:
            stack.stop()
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            get_settings.cache_clear()


@dataclass(frozen=True)
class EdTrader:
    """An account's Ed25519 key (session.logon takes no other kind, as on Binance)."""

    account_id: int
    api_key: str
    private_key: Ed25519PrivateKey


def ed25519_key(stack: ApiStack, trader: Trader) -> EdTrader:
    """A second key of ``trader``'s account, Ed25519, issued through the admin API."""
    private = Ed25519PrivateKey.generate()
    public = private.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    answer = stack.admin.create_key(
        trader.account_id, key_type="ED25519", permissions=["READ", "TRADE"], label="test",
        public_key=public.decode(),
    )  # fmt: skip
    return EdTrader(trader.account_id, answer["apiKey"], private)


def ed_signed_params(trader: EdTrader, params: dict[str, Any]) -> dict[str, Any]:
    """Binance's WebSocket API signing with an Ed25519 key: the same sorted payload, its
    signature in base64."""
    values = {"recvWindow": 60000, **params, "apiKey": trader.api_key, "timestamp": now_ms()}
    payload = "&".join(f"{k}={_text(v)}" for k, v in sorted(values.items()))
    values["signature"] = base64.b64encode(trader.private_key.sign(payload.encode())).decode()
    return values
