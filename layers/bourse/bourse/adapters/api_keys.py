"""API keys in DynamoDB, their secrets encrypted with KMS.

The item: ``apiKey`` (hash key), ``accountId``, ``secretCiphertext`` (KMS ciphertext, base64),
``permissions`` (e.g. TRADE, USER_DATA), ``ipAllowList`` (empty: any address), ``createdAt``
(ms), ``label``. The secret is needed in clear to verify HMAC signatures, so it is encrypted
(KMS), not hashed.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass, field

from bourse.adapters import aws
from bourse.settings import get_settings

PERMISSIONS = ("TRADE", "USER_DATA")


@dataclass(frozen=True)
class ApiKey:
    api_key: str
    secret: str
    account_id: int
    permissions: tuple[str, ...] = PERMISSIONS
    ip_allow_list: tuple[str, ...] = field(default=())
    label: str = ""


def new_credentials() -> tuple[str, str]:
    """A Binance-shaped key and secret: 64 characters each, letters and digits."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return (
        "".join(secrets.choice(alphabet) for _ in range(64)),
        "".join(secrets.choice(alphabet) for _ in range(64)),
    )


def put_api_key(key: ApiKey, created_at_ms: int) -> None:
    settings = get_settings()
    ciphertext = aws.client("kms").encrypt(
        KeyId=settings.api_key_kms_alias, Plaintext=key.secret.encode()
    )["CiphertextBlob"]
    aws.client("dynamodb").put_item(
        TableName=settings.api_keys_table,
        Item={
            "apiKey": {"S": key.api_key},
            "accountId": {"N": str(key.account_id)},
            "secretCiphertext": {"S": base64.b64encode(ciphertext).decode()},
            "permissions": {"L": [{"S": p} for p in key.permissions]},
            "ipAllowList": {"L": [{"S": ip} for ip in key.ip_allow_list]},
            "createdAt": {"N": str(created_at_ms)},
            "label": {"S": key.label},
        },
    )


def get_api_key(api_key: str) -> ApiKey | None:
    settings = get_settings()
    item = (
        aws.client("dynamodb")
        .get_item(TableName=settings.api_keys_table, Key={"apiKey": {"S": api_key}})
        .get("Item")
    )
    if item is None:
        return None
    plaintext = aws.client("kms").decrypt(
        CiphertextBlob=base64.b64decode(item["secretCiphertext"]["S"])
    )["Plaintext"]
    return ApiKey(
        api_key=api_key,
        secret=plaintext.decode(),
        account_id=int(item["accountId"]["N"]),
        permissions=tuple(p["S"] for p in item["permissions"]["L"]),
        ip_allow_list=tuple(ip["S"] for ip in item["ipAllowList"]["L"]),
        label=item.get("label", {}).get("S", ""),
    )
