"""userDataStream listenKeys in DynamoDB (the ListenKeysTable: key ``pk``, TTL attribute
``expiresAt``), as Binance keeps them: one live key per account, valid 60 minutes after its
creation or last keepalive; POST on an account with a live key returns that key and extends it;
DELETE ends it.

Two items per key, written together in one transaction: ``key|<listenKey>`` (its account, for
``lookup`` when a WebSocket connects to ``/ws/<listenKey>``) and ``<scope>|account|<id>`` (the
account's live key, so that POST reuses it). Expiry is checked against ``validUntil`` (ms) on
every read: DynamoDB's TTL sweep (``expiresAt``) only tidies up, and may run days late.

``scope`` (the commands topic) keeps exchanges that share the table apart (test exchanges on
their own topics, locally): a key answers only in the exchange that created it.

The ``key|`` item also records (``apiKeys``, a string set) the API keys that created it or
kept it alive: revoking one of them ends the listen key (``close_for_api_key``), since whoever
holds the revoked key knows it.

A key that ends ends its streams, as on Binance (``listenKeyExpired``, then the connection
closes: ``bourse.adapters.listen_key_streams``): ``close`` calls ``on_close`` once the key is
gone (the functions pass ``listen_key_streams.end_streams``), and a key that expired without
keepalive is ended by the broadcaster, which checks the keys it streams
(``ListenKeyValidity``).
"""

from __future__ import annotations

import secrets
import string
import time
from collections.abc import Callable
from functools import cache
from typing import Any

from botocore.exceptions import ClientError

from bourse.adapters import aws
from bourse.settings import get_settings

VALIDITY_MS = 60 * 60 * 1000
KEY_LENGTH = 60  # Binance's listenKeys are 60 letters and digits
_ALPHABET = string.ascii_letters + string.digits
_ATTEMPTS = 4


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _cancelled(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in (
        "TransactionCanceledException",
        "ConditionalCheckFailedException",
    )


class ListenKeys:
    def __init__(
        self,
        table: str,
        scope: str,
        validity_ms: int = VALIDITY_MS,
        *,
        on_close: Callable[[str, int], None] | None = None,
    ) -> None:
        self.table = table
        self.scope = scope
        self.validity_ms = validity_ms
        self.on_close = on_close  # (listen key, account id) of a key ``close`` ended

    def _key_pk(self, listen_key: str) -> dict[str, Any]:
        return {"pk": {"S": f"key|{listen_key}"}}

    def _account_pk(self, account_id: int) -> dict[str, Any]:
        return {"pk": {"S": f"{self.scope}|account|{account_id}"}}

    def _get(self, key: dict[str, Any]) -> dict[str, Any] | None:
        item: dict[str, Any] | None = (
            aws.client("dynamodb")
            .get_item(TableName=self.table, Key=key, ConsistentRead=True)
            .get("Item")
        )
        return item

    def create(
        self, account_id: int, now_ms: int | None = None, *, api_key: str | None = None
    ) -> str:
        """The account's live key, extended; a new one when it has none. ``api_key``: the API
        key asking (recorded, see above)."""
        for _ in range(_ATTEMPTS):
            now = _now_ms() if now_ms is None else now_ms
            current = self._get(self._account_pk(account_id))
            if current is not None and int(current["validUntil"]["N"]) > now:
                listen_key = str(current["listenKey"]["S"])
                if self.keepalive(listen_key, account_id, now, api_key=api_key):
                    return listen_key
                continue  # closed or expired in between: look again
            listen_key = "".join(secrets.choice(_ALPHABET) for _ in range(KEY_LENGTH))
            if self._put_new(listen_key, account_id, now, api_key):
                return listen_key
        raise RuntimeError(f"listenKey of account {account_id}: kept changing under us")

    def _put_new(self, listen_key: str, account_id: int, now: int, api_key: str | None) -> bool:
        until = now + self.validity_ms
        common = {
            "validUntil": {"N": str(until)},
            "expiresAt": {"N": str(until // 1000 + 1)},
        }
        by_key: dict[str, Any] = {"apiKeys": {"SS": [api_key]}} if api_key else {}
        return _transact(
            [
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": {
                            **self._key_pk(listen_key),
                            "accountId": {"N": str(account_id)},
                            "scope": {"S": self.scope},
                            **common,
                            **by_key,
                        },
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": {
                            **self._account_pk(account_id),
                            "listenKey": {"S": listen_key},
                            **common,
                        },
                        # Another request may have created the account's key meanwhile.
                        "ConditionExpression": "attribute_not_exists(pk) OR validUntil <= :now",
                        "ExpressionAttributeValues": {":now": {"N": str(now)}},
                    }
                },
            ]
        )

    def keepalive(
        self,
        listen_key: str,
        account_id: int,
        now_ms: int | None = None,
        *,
        api_key: str | None = None,
    ) -> bool:
        """Extend the key by the validity; False when it is not this account's live key."""
        now = _now_ms() if now_ms is None else now_ms
        until = now + self.validity_ms
        values = {
            ":until": {"N": str(until)},
            ":exp": {"N": str(until // 1000 + 1)},
            ":now": {"N": str(now)},
        }
        update = "SET validUntil = :until, expiresAt = :exp"
        by_key: dict[str, Any] = {}
        if api_key:
            update += " ADD apiKeys :k"
            by_key = {":k": {"SS": [api_key]}}
        return _transact(
            [
                {
                    "Update": {
                        "TableName": self.table,
                        "Key": self._key_pk(listen_key),
                        "UpdateExpression": update,
                        "ConditionExpression": "accountId = :a AND #s = :s AND validUntil > :now",
                        "ExpressionAttributeNames": {"#s": "scope"},
                        "ExpressionAttributeValues": {
                            **values,
                            **by_key,
                            ":a": {"N": str(account_id)},
                            ":s": {"S": self.scope},
                        },
                    }
                },
                {
                    "Update": {
                        "TableName": self.table,
                        "Key": self._account_pk(account_id),
                        "UpdateExpression": "SET validUntil = :until, expiresAt = :exp",
                        "ConditionExpression": "listenKey = :k",
                        "ExpressionAttributeValues": {**values, ":k": {"S": listen_key}},
                    }
                },
            ]
        )

    def close(self, listen_key: str, account_id: int, now_ms: int | None = None) -> bool:
        """End the key, then its streams (``on_close``); False when it is not this account's
        live key."""
        now = _now_ms() if now_ms is None else now_ms
        closed = self._delete_live(listen_key, account_id, now)
        if closed and self.on_close is not None:
            self.on_close(listen_key, account_id)
        return closed

    def _delete_live(self, listen_key: str, account_id: int, now: int) -> bool:
        return _transact(
            [
                {
                    "Delete": {
                        "TableName": self.table,
                        "Key": self._key_pk(listen_key),
                        "ConditionExpression": "accountId = :a AND #s = :s AND validUntil > :now",
                        "ExpressionAttributeNames": {"#s": "scope"},
                        "ExpressionAttributeValues": {
                            ":a": {"N": str(account_id)},
                            ":s": {"S": self.scope},
                            ":now": {"N": str(now)},
                        },
                    }
                },
                {
                    "Delete": {
                        "TableName": self.table,
                        "Key": self._account_pk(account_id),
                        "ConditionExpression": "listenKey = :k",
                        "ExpressionAttributeValues": {":k": {"S": listen_key}},
                    }
                },
            ]
        )

    def close_for_api_key(self, account_id: int, api_key: str) -> list[str]:
        """Ends the account's listen key if ``api_key`` created it or kept it alive, valid or
        not (API key revocation); the keys ended."""
        current = self._get(self._account_pk(account_id))
        if current is None:
            return []
        listen_key = str(current["listenKey"]["S"])
        item = self._get(self._key_pk(listen_key))
        if item is None or api_key not in item.get("apiKeys", {}).get("SS", []):
            return []
        ended = _transact(
            [
                {
                    "Delete": {
                        "TableName": self.table,
                        "Key": self._key_pk(listen_key),
                        "ConditionExpression": "contains(apiKeys, :k)",
                        "ExpressionAttributeValues": {":k": {"S": api_key}},
                    }
                },
                {
                    "Delete": {
                        "TableName": self.table,
                        "Key": self._account_pk(account_id),
                        "ConditionExpression": "listenKey = :l",
                        "ExpressionAttributeValues": {":l": {"S": listen_key}},
                    }
                },
            ]
        )
        return [listen_key] if ended else []

    def lookup(self, listen_key: str, now_ms: int | None = None) -> int | None:
        """The account of a live key of this exchange; None when unknown, closed or expired."""
        now = _now_ms() if now_ms is None else now_ms
        item = self._get(self._key_pk(listen_key))
        if item is None or item.get("scope", {}).get("S") != self.scope:
            return None
        if int(item["validUntil"]["N"]) <= now:
            return None
        return int(item["accountId"]["N"])


class ListenKeyValidity:
    """Reads only (the broadcaster's): until when a key is valid."""

    def __init__(self, table: str, scope: str) -> None:
        self.table = table
        self.scope = scope

    def valid_until(self, listen_key: str) -> int | None:
        """Until when (ms) a key of this exchange is valid, as stored now; None when it is
        unknown or closed (an expired key still answers its past ``validUntil``)."""
        item: dict[str, Any] | None = (
            aws.client("dynamodb")
            .get_item(
                TableName=self.table, Key={"pk": {"S": f"key|{listen_key}"}}, ConsistentRead=True
            )
            .get("Item")
        )
        if item is None or item.get("scope", {}).get("S") != self.scope:
            return None
        return int(item["validUntil"]["N"])


def validity() -> ListenKeyValidity:
    s = get_settings()
    return ListenKeyValidity(s.listen_keys_table, s.commands_topic)


@cache
def _default(table: str, scope: str) -> ListenKeys:
    return ListenKeys(table, scope)


def store() -> ListenKeys:
    """The listen keys of this exchange (settings: table and commands topic)."""
    s = get_settings()
    return _default(s.listen_keys_table, s.commands_topic)


def create(account_id: int) -> str:
    return store().create(account_id)


def keepalive(listen_key: str, account_id: int) -> bool:
    return store().keepalive(listen_key, account_id)


def close(listen_key: str, account_id: int) -> bool:
    return store().close(listen_key, account_id)


def lookup(listen_key: str) -> int | None:
    return store().lookup(listen_key)


def _transact(items: list[dict[str, Any]]) -> bool:
    """Write ``items`` all or nothing; False when a condition refused them (not an error)."""
    try:
        aws.client("dynamodb").transact_write_items(TransactItems=items)
    except ClientError as exc:
        if not _cancelled(exc):
            raise
        return False
    return True
