"""API keys in DynamoDB, as an operator issues them (the admin plane), and their revocation.

The item: ``apiKey`` (hash key), ``accountId`` (the ``by-account`` index), ``keyType``
(``HMAC`` | ``ED25519``), ``status`` (``ACTIVE`` | ``REVOKED``), ``permissions`` (``TRADE``,
``USER_DATA``), ``ipAllowList`` (empty: any address), ``createdAt`` (ms), ``label``, and the
key material: ``secretCiphertext`` for HMAC (KMS ciphertext, base64: the secret is needed in
clear to verify HMAC signatures, so it is encrypted, not hashed) or ``publicKey`` for Ed25519
(PEM; nothing secret is stored: the private key never leaves the trader). Items written before
key types existed have neither ``keyType`` nor ``status``: HMAC and ACTIVE.

Revocation must take effect at once, although every function keeps keys in a TTL cache (KMS
is a network call) and API Gateway caches the authorizer's answer.
``bourse.adapters.key_revocation.revoke_api_key`` marks the item REVOKED (the truth,
``ApiKeyTable.revoke``) and then sets a marker in Redis that every function checks on every
request (``KeyRevocations``, one MGET); see docs/api.md, "API keys and revocation".
"""

from __future__ import annotations

import base64
import ipaddress
import secrets
import string
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from botocore.exceptions import ClientError

from bourse.adapters import aws
from bourse.api.signing import ED25519, HMAC, KEY_TYPES, ed25519_public_pem
from bourse.settings import get_settings

PERMISSIONS = ("TRADE", "USER_DATA")
ACTIVE = "ACTIVE"
REVOKED = "REVOKED"
BY_ACCOUNT_INDEX = "by-account"
_ALPHABET = string.ascii_letters + string.digits
_KEY_LENGTH = 64  # Binance's keys and secrets: 64 letters and digits


@dataclass(frozen=True)
class ApiKey:
    api_key: str
    secret: str  # HMAC only ("" for Ed25519 keys, and in lists, which never decrypt)
    account_id: int
    permissions: tuple[str, ...] = PERMISSIONS
    ip_allow_list: tuple[str, ...] = field(default=())
    label: str = ""
    key_type: str = HMAC
    public_key: str | None = None  # PEM, Ed25519 only
    status: str = ACTIVE
    created_at_ms: int = 0


def _random_text() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(_KEY_LENGTH))


def new_credentials() -> tuple[str, str]:
    """A Binance-shaped key and secret: 64 characters each, letters and digits."""
    return _random_text(), _random_text()


def _check_permissions(permissions: tuple[str, ...]) -> tuple[str, ...]:
    unknown = [p for p in permissions if p not in PERMISSIONS]
    if unknown:
        raise ValueError(f"unknown permission {unknown[0]!r} (expected {PERMISSIONS})")
    return tuple(p for p in PERMISSIONS if p in permissions)


def _check_allow_list(entries: tuple[str, ...]) -> tuple[str, ...]:
    for entry in entries:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError as exc:
            # The authorizer skips entries it cannot read, so a typo would lock the key out.
            raise ValueError(f"not an IP address or network: {entry!r}") from exc
    return tuple(dict.fromkeys(entries))


class ApiKeyTable:
    """The ApiKeys table and the KMS key that encrypts HMAC secrets."""

    def __init__(self, table: str, kms_key_id: str) -> None:
        self.table = table
        self.kms_key_id = kms_key_id

    @property
    def _ddb(self) -> Any:
        return aws.client("dynamodb")

    # -- writing

    def _item(self, key: ApiKey, created_at_ms: int) -> dict[str, Any]:
        item: dict[str, Any] = {
            "apiKey": {"S": key.api_key},
            "accountId": {"N": str(key.account_id)},
            "keyType": {"S": key.key_type},
            "status": {"S": key.status},
            "permissions": {"L": [{"S": p} for p in key.permissions]},
            "ipAllowList": {"L": [{"S": ip} for ip in key.ip_allow_list]},
            "createdAt": {"N": str(created_at_ms)},
            "label": {"S": key.label},
        }
        if key.key_type == ED25519:
            item["publicKey"] = {"S": key.public_key or ""}
        else:
            ciphertext = aws.client("kms").encrypt(
                KeyId=self.kms_key_id, Plaintext=key.secret.encode()
            )["CiphertextBlob"]
            item["secretCiphertext"] = {"S": base64.b64encode(ciphertext).decode()}
        return item

    def put(self, key: ApiKey, created_at_ms: int) -> None:
        """Writes ``key`` as given (replacing an item of the same name)."""
        self._ddb.put_item(TableName=self.table, Item=self._item(key, created_at_ms))

    def create(
        self,
        account_id: int,
        key_type: str,
        permissions: tuple[str, ...],
        ip_allow_list: tuple[str, ...],
        label: str,
        public_key_pem: str | None,
        created_at_ms: int,
    ) -> tuple[ApiKey, str | None]:
        """A new ACTIVE key and, for HMAC, its secret (shown once: only its ciphertext is
        kept). ValueError for an unknown type or permission, an unreadable allow-list entry, an
        Ed25519 key without an Ed25519 PEM public key, or an HMAC key given one."""
        if key_type not in KEY_TYPES:
            raise ValueError(f"unknown key type {key_type!r} (expected {KEY_TYPES})")
        public_key: str | None = None
        secret = ""
        if key_type == ED25519:
            if not public_key_pem:
                raise ValueError("an ED25519 key needs its public key (PEM)")
            public_key = ed25519_public_pem(public_key_pem)
        elif public_key_pem:
            raise ValueError("an HMAC key takes no public key")
        else:
            secret = _random_text()
        key = ApiKey(
            api_key=_random_text(),
            secret=secret,
            account_id=account_id,
            permissions=_check_permissions(permissions),
            ip_allow_list=_check_allow_list(ip_allow_list),
            label=label,
            key_type=key_type,
            public_key=public_key,
            status=ACTIVE,
            created_at_ms=created_at_ms,
        )
        # 62^64 names: a clash is impossible in practice, but never overwrite one.
        self._ddb.put_item(
            TableName=self.table,
            Item=self._item(key, created_at_ms),
            ConditionExpression="attribute_not_exists(apiKey)",
        )
        return key, (secret if key_type == HMAC else None)

    def revoke(self, api_key: str) -> ApiKey | None:
        """Marks the key REVOKED (idempotent: an already revoked key is returned as it is);
        None for an unknown key."""
        try:
            answer = self._ddb.update_item(
                TableName=self.table,
                Key={"apiKey": {"S": api_key}},
                UpdateExpression="SET #s = :revoked",
                ConditionExpression="attribute_exists(apiKey)",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":revoked": {"S": REVOKED}},
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return None
            raise
        return _from_item(answer["Attributes"], secret="")

    # -- reading

    def _raw(self, api_key: str, consistent: bool) -> dict[str, Any] | None:
        item: dict[str, Any] | None = self._ddb.get_item(
            TableName=self.table, Key={"apiKey": {"S": api_key}}, ConsistentRead=consistent
        ).get("Item")
        return item

    def get(self, api_key: str, *, consistent: bool = False) -> ApiKey | None:
        """An ACTIVE key with its secret decrypted; None when unknown or revoked."""
        item = self._raw(api_key, consistent)
        if item is None or _status(item) != ACTIVE:
            return None
        secret = ""
        if "secretCiphertext" in item:
            secret = (
                aws.client("kms")
                .decrypt(CiphertextBlob=base64.b64decode(item["secretCiphertext"]["S"]))[
                    "Plaintext"
                ]
                .decode()
            )
        return _from_item(item, secret=secret)

    def describe(self, api_key: str) -> ApiKey | None:
        """The key whatever its status, without its secret (never decrypted)."""
        item = self._raw(api_key, True)
        return None if item is None else _from_item(item, secret="")

    def is_active(self, api_key: str) -> bool:
        """One strongly consistent read of the status alone (no KMS)."""
        item = self._ddb.get_item(
            TableName=self.table,
            Key={"apiKey": {"S": api_key}},
            ConsistentRead=True,
            ProjectionExpression="#s",
            ExpressionAttributeNames={"#s": "status"},
        ).get("Item")
        return item is not None and _status(item) == ACTIVE

    def list(self, account_id: int) -> list[ApiKey]:
        """The account's keys, every status, oldest first, without secrets."""
        keys = []
        for item in self._by_account(account_id):
            if "permissions" not in item:  # the index projects only keys
                item = self._raw(item["apiKey"]["S"], True) or item
            keys.append(_from_item(item, secret=""))
        return sorted(keys, key=lambda k: (k.created_at_ms, k.api_key))

    def _by_account(self, account_id: int) -> Iterator[dict[str, Any]]:
        paginator = self._ddb.get_paginator("query")
        for page in paginator.paginate(
            TableName=self.table,
            IndexName=BY_ACCOUNT_INDEX,
            KeyConditionExpression="accountId = :a",
            ExpressionAttributeValues={":a": {"N": str(account_id)}},
        ):
            yield from page.get("Items", [])


def _status(item: dict[str, Any]) -> str:
    return str(item.get("status", {}).get("S", ACTIVE))


def _from_item(item: dict[str, Any], *, secret: str) -> ApiKey:
    return ApiKey(
        api_key=item["apiKey"]["S"],
        secret=secret,
        account_id=int(item["accountId"]["N"]),
        permissions=tuple(p["S"] for p in item.get("permissions", {}).get("L", [])),
        ip_allow_list=tuple(ip["S"] for ip in item.get("ipAllowList", {}).get("L", [])),
        label=item.get("label", {}).get("S", ""),
        key_type=item.get("keyType", {}).get("S", HMAC),
        public_key=item["publicKey"]["S"] if "publicKey" in item else None,
        status=_status(item),
        created_at_ms=int(item.get("createdAt", {}).get("N", "0")),
    )


# -- revocation markers (Redis)


class KeyRevocations:
    """What every request checks besides its cached key: one MGET of two Redis keys.

    * ``{apikeys}:revoked:<apiKey>``: set by ``revoke_api_key`` after the item is REVOKED; it
      outlives every cache entry that could still hold the key (``marker_seconds``), after
      which the caches have re-read the item and found it revoked.
    * ``{apikeys}:epoch``: a random token. A cache entry is only good for the epoch it was
      read in; if Redis loses its data (a flush, a failover without persistence) the markers
      go, but so does the epoch: the next request makes a new one and every cache re-reads
      DynamoDB, where the revocation is.

    One hash tag, so both keys live in one slot of a Redis cluster (one MGET).
    """

    EPOCH_KEY = "{apikeys}:epoch"

    def __init__(self, client: Any, marker_seconds: int = 86_400) -> None:
        self.client = client
        self.marker_seconds = marker_seconds

    @staticmethod
    def marker(api_key: str) -> str:
        return f"{{apikeys}}:revoked:{api_key}"

    def check(self, api_key: str) -> tuple[str, bool]:
        """(the current epoch, whether the key is marked revoked). Raises Redis's errors."""
        epoch, revoked = self.client.mget([self.EPOCH_KEY, self.marker(api_key)])
        if epoch is None:
            self.client.set(self.EPOCH_KEY, secrets.token_hex(16), nx=True)
            epoch = self.client.get(self.EPOCH_KEY)
        return _text(epoch), revoked is not None

    def revoke(self, api_key: str) -> None:
        self.client.set(self.marker(api_key), b"1", ex=self.marker_seconds)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# -- this deployment's keys (settings)


@cache
def _table(table: str, kms_key_id: str) -> ApiKeyTable:
    return ApiKeyTable(table, kms_key_id)


def table() -> ApiKeyTable:
    s = get_settings()
    return _table(s.api_keys_table, s.api_key_kms_alias)


def get_api_key(api_key: str, *, consistent: bool = False) -> ApiKey | None:
    """An ACTIVE key, with its HMAC secret; None when unknown or REVOKED."""
    return table().get(api_key, consistent=consistent)


def create_api_key(
    account_id: int,
    key_type: str,
    permissions: tuple[str, ...],
    ip_allow_list: tuple[str, ...],
    label: str,
    public_key_pem: str | None,
    created_at_ms: int,
) -> tuple[ApiKey, str | None]:
    """See ``ApiKeyTable.create``. The returned ApiKey carries the HMAC secret too."""
    return table().create(
        account_id, key_type, permissions, ip_allow_list, label, public_key_pem, created_at_ms
    )


def list_api_keys(account_id: int) -> list[ApiKey]:
    """The account's keys (ACTIVE and REVOKED), oldest first, secrets left out ("")."""
    return table().list(account_id)


def describe_api_key(api_key: str) -> ApiKey | None:
    """A key whatever its status (for the admin plane), secret left out ("")."""
    return table().describe(api_key)
