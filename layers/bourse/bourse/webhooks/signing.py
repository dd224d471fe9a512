"""How a webhook delivery is signed, and how a receiver verifies it (docs/webhooks.md).

``X-Bourse-Signature: sha256=<hex>`` is HMAC-SHA256, keyed with the webhook's secret, over
``<X-Bourse-Timestamp>.<body>`` (the timestamp's decimal digits, a dot, the raw body bytes).
The timestamp is when the attempt was made (ms): signing it lets a receiver refuse a delivery
replayed long after it was sent, without which a captured request would stay valid forever.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping

SIGNATURE_HEADER = "X-Bourse-Signature"
TIMESTAMP_HEADER = "X-Bourse-Timestamp"
SEQ_HEADER = "X-Bourse-Seq"
WEBHOOK_HEADER = "X-Bourse-Webhook-Id"
ATTEMPT_HEADER = "X-Bourse-Attempt"
SECRET_PREFIX = "whsec_"
# How old a delivery a receiver should still accept (the example in docs/webhooks.md).
TOLERANCE_MS = 5 * 60 * 1000


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def signature(secret: str, timestamp_ms: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), str(timestamp_ms).encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def headers(
    webhook_id: str, secret: str, seq: int, timestamp_ms: int, body: bytes, attempt: int
) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": "Bourse-Webhooks/1",
        WEBHOOK_HEADER: webhook_id,
        SEQ_HEADER: str(seq),
        TIMESTAMP_HEADER: str(timestamp_ms),
        ATTEMPT_HEADER: str(attempt),
        SIGNATURE_HEADER: signature(secret, timestamp_ms, body),
    }


def verify(
    secret: str,
    received: Mapping[str, str],
    body: bytes,
    now_ms: int,
    tolerance_ms: int = TOLERANCE_MS,
) -> bool:
    """Whether ``body`` with ``received`` headers was signed with ``secret`` within
    ``tolerance_ms`` of ``now_ms`` (header names case-insensitive, as HTTP has them)."""
    lower = {k.lower(): v for k, v in received.items()}
    stamp = lower.get(TIMESTAMP_HEADER.lower(), "")
    given = lower.get(SIGNATURE_HEADER.lower(), "")
    if not stamp.isdigit() or abs(now_ms - int(stamp)) > tolerance_ms:
        return False
    return hmac.compare_digest(given, signature(secret, int(stamp), body))
