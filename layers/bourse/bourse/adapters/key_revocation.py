"""Revoking an API key: it stops working at once, and what it left open is closed.

``revoke_api_key`` marks the key REVOKED in DynamoDB, then sets its Redis marker, which every
function checks on every request (``bourse.adapters.api_keys.KeyRevocations``);
``close_key_sessions`` ends its listen key and WebSocket connections.

Kept apart from ``bourse.adapters.api_keys``, which every API function imports to read keys:
only the admin plane revokes, so only it imports Redis's connection (with its AUTH secret),
the listen keys, the connections tables and the @connections API, and only its role is
granted them (template.yaml; tests/unit/test_template_contract.py checks it).
"""

from __future__ import annotations

import logging
from functools import cache
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from bourse.adapters import connections, listen_keys, redis_conn
from bourse.adapters.api_keys import ApiKey, KeyRevocations, describe_api_key, table
from bourse.adapters.ws_push import management_client
from bourse.settings import get_settings

log = logging.getLogger("bourse.api_keys")


@cache
def _redis(url: str) -> Any:
    return redis_conn.connect(url, socket_timeout=5, socket_connect_timeout=2)


def revocations() -> KeyRevocations:
    """The markers in this deployment's Redis (the live view's database, which the functions
    read)."""
    s = get_settings()
    # Longer than any cache could keep the key: a day, or ten cache lifetimes.
    longest = max(s.api_key_cache_seconds, s.api_key_checked_cache_seconds)
    return KeyRevocations(_redis(s.redis_url), max(86_400, 10 * longest))


def revoke_api_key(api_key: str, marks: KeyRevocations | None = None) -> ApiKey | None:
    """REVOKED in DynamoDB (a conditional update), then the Redis marker: when this returns,
    no function accepts the key any more (-2015). Idempotent: an already revoked key is
    returned as it is, and its marker written again (so call it again if it raised). None for
    an unknown key. The key comes back without its secret ("")."""
    key = table().revoke(api_key)
    if key is not None:
        (marks or revocations()).revoke(api_key)
    return key


def close_key_sessions(
    api_key: str, management: Any | None = None, *, account_id: int | None = None
) -> int:
    """Ends what the key opened: the account's listen key when this key created or kept it
    alive (``ListenKeys.close_for_api_key``), the WebSocket connections that receive that
    listen key's stream, and every connection logged on (``session.logon``) or subscribed to
    user data through the WebSocket API (``userDataStream.subscribe``, signed or in a session)
    with the key. Connections are closed
    through the @connections API (DELETE, the broadcaster's ``management_client``; a 410 Gone is
    fine) and their records deleted, so nothing more is pushed to them even if the DELETE
    failed. Returns how many listen keys and connections were ended (0 for an unknown key).

    ``management``: an ``apigatewaymanagementapi`` client (default: this deployment's);
    ``account_id``: the key's account when the caller knows it (saves a read)."""
    if account_id is None:
        described = describe_api_key(api_key)
        if described is None:
            return 0
        account_id = described.account_id
    closed = listen_keys.store().close_for_api_key(account_id, api_key)
    store = connections.store()
    targets = {
        c.connection_id
        for c in store.connections_for_account(account_id)
        if c.listen_key is not None and c.listen_key in closed
    }
    targets.update(store.connections_for_api_key(api_key))
    if targets:
        client = management if management is not None else management_client(get_settings(), 1)
        for connection_id in sorted(targets):
            _close_connection(client, connection_id)
            store.delete_connection(connection_id)
    return len(closed) + len(targets)


def _close_connection(client: Any, connection_id: str) -> None:
    try:
        client.delete_connection(ConnectionId=connection_id)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "GoneException":
            log.warning("@connections DELETE failed", extra={"connectionId": connection_id})
    except BotoCoreError:
        log.warning("@connections DELETE failed", extra={"connectionId": connection_id})
