"""SIGNED endpoint security, exactly as Binance defines it.

The signature is HMAC-SHA256, keyed with the API secret, over ``totalParams``: the query
string concatenated with the request body, without the ``signature`` parameter itself, as the
client sent them (still percent-encoded). It is checked in the function, not the authorizer,
because an API Gateway authorizer cannot see the body.

Timing: the request is valid when ``timestamp < server_time + 1000`` and
``server_time - timestamp <= recvWindow`` (default 5000 ms, at most 60000).
"""

from __future__ import annotations

import hashlib
import hmac

from bourse.domain import errors
from bourse.domain.errors import BinanceError

DEFAULT_RECV_WINDOW = 5000
MAX_RECV_WINDOW = 60000
MAX_AHEAD_MS = 1000

INVALID_SIGNATURE = BinanceError(
    errors.INVALID_SIGNATURE, "Signature for this request is not valid."
)


def sign(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def split_signature(query_string: str, body: str) -> tuple[str, str]:
    """Return (totalParams without the signature, the signature sent).

    Binance clients append ``signature`` last, to the query string or to the body; it is
    removed wherever it stands so that the rest is verified byte for byte as sent.
    """
    found: list[str] = []

    def without_signature(source: str) -> str:
        kept = []
        for segment in source.split("&") if source else []:
            if segment.startswith("signature="):
                found.append(segment[len("signature=") :])
            else:
                kept.append(segment)
        return "&".join(kept)

    payload = without_signature(query_string) + without_signature(body)
    if not found or not found[0]:
        raise errors.mandatory("signature")
    if len(found) > 1:
        raise BinanceError(
            errors.TOO_MANY_PARAMETERS, "Duplicate values for parameter 'signature'."
        )
    return payload, found[0]


def verify_signature(secret: str, query_string: str, body: str) -> None:
    payload, signature = split_signature(query_string, body)
    expected = sign(secret, payload)
    if not hmac.compare_digest(expected, signature.lower()):
        raise INVALID_SIGNATURE


def check_timestamp(timestamp: int, recv_window: int | None, server_time: int) -> None:
    window = DEFAULT_RECV_WINDOW if recv_window is None else recv_window
    if window > MAX_RECV_WINDOW:
        raise BinanceError(errors.BAD_RECV_WINDOW, "recvWindow must be less than 60000")
    if timestamp >= server_time + MAX_AHEAD_MS:
        raise BinanceError(
            errors.INVALID_TIMESTAMP,
            "Timestamp for this request was 1000ms ahead of the server's time.",
        )
    if server_time - timestamp > window:
        raise BinanceError(
            errors.INVALID_TIMESTAMP, "Timestamp for this request is outside of the recvWindow."
        )
