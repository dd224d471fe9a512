"""SIGNED endpoint security, exactly as Binance defines it.

The signed payload is ``totalParams``: the query string concatenated with the request body,
without the ``signature`` parameter itself, as the client sent them (still percent-encoded).
How it is signed depends on the key's type:

* ``HMAC``: the hex HMAC-SHA256 of the payload, keyed with the API secret (case-insensitive);
* ``ED25519``: the base64 of the payload's Ed25519 signature (RFC 8032), made with the private
  key whose public half the operator registered. Base64 has ``+``, ``/`` and ``=``, so REST
  clients percent-encode it; it is decoded before it is checked (case-sensitive).

It is checked in the function, not the authorizer, because an API Gateway authorizer cannot
see the body.

Input that is not ASCII: a signature is hex or base64, so one with any other character is
simply not valid (-1022), never an error. The payload is signed as the bytes the client sent:
a body that is not UTF-8 reaches here with its stray bytes kept as surrogates
(``surrogateescape``, ``bourse.api.app.body_text``) and is encoded back to those bytes
(``payload_bytes``).

Timing: the request is valid when ``timestamp < server_time + 1000`` and
``server_time - timestamp <= recvWindow`` (default 5000 ms, at most 60000).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol
from urllib.parse import unquote

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_public_key,
)

from bourse.domain import errors
from bourse.domain.errors import BinanceError

DEFAULT_RECV_WINDOW = 5000
MAX_RECV_WINDOW = 60000
MAX_AHEAD_MS = 1000

# The key types an operator can issue (bourse.adapters.api_keys stores them).
HMAC = "HMAC"
ED25519 = "ED25519"
KEY_TYPES = (HMAC, ED25519)
_ED25519_SIGNATURE_BYTES = 64

INVALID_SIGNATURE = BinanceError(
    errors.INVALID_SIGNATURE, "Signature for this request is not valid."
)


class SigningKey(Protocol):
    """What verifying needs of a key (``bourse.adapters.api_keys.ApiKey`` is one)."""

    @property
    def key_type(self) -> str: ...

    @property
    def secret(self) -> str: ...

    @property
    def public_key(self) -> str | None: ...


def payload_bytes(text: str) -> bytes:
    """The bytes a payload was sent as: UTF-8, with bytes that were not UTF-8 (kept as
    surrogates by ``surrogateescape``) restored; any other lone surrogate (a JSON ``\\ud800``
    of the WebSocket API) encoded as is, so that it can only fail to match."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def sign(secret: str, payload: str) -> str:
    return hmac.new(payload_bytes(secret), payload_bytes(payload), hashlib.sha256).hexdigest()


def ed25519_public_key(pem: str) -> Ed25519PublicKey:
    """The Ed25519 public key of a PEM (SubjectPublicKeyInfo); ValueError for anything else
    (not PEM, another algorithm, a private key)."""
    try:
        key = load_pem_public_key(pem.strip().encode())
    except (ValueError, TypeError) as exc:
        raise ValueError("not a PEM public key") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


def ed25519_public_pem(pem: str) -> str:
    """The key re-serialised canonically (what is stored); ValueError as above."""
    key = ed25519_public_key(pem)
    return key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()


@lru_cache(maxsize=4096)
def _loaded(pem: str) -> Ed25519PublicKey:
    # Parsing a PEM costs more than verifying; keys are few and immutable.
    return ed25519_public_key(pem)


def _ed25519_valid(pem: str, payload: str, signature: str) -> bool:
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return False
    if len(raw) != _ED25519_SIGNATURE_BYTES:
        return False
    try:
        _loaded(pem).verify(raw, payload_bytes(payload))
    except InvalidSignature:
        return False
    return True


def signature_valid(key: SigningKey, payload: str, signature: str) -> bool:
    """Whether ``signature`` (as the client made it: hex for HMAC, base64 for Ed25519, not
    percent-encoded) signs ``payload`` with ``key``."""
    if key.key_type == ED25519:
        return key.public_key is not None and _ed25519_valid(key.public_key, payload, signature)
    if key.key_type != HMAC or not key.secret or not signature.isascii():
        return False  # compare_digest refuses non-ASCII text: such a signature is just wrong
    return hmac.compare_digest(sign(key.secret, payload), signature.lower())


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


@dataclass(frozen=True)
class _Hmac:
    secret: str
    key_type: str = HMAC
    public_key: str | None = None


def verify_signature(key: SigningKey | str, query_string: str, body: str) -> None:
    """-1022 unless the request's signature is the key's over its payload (a bare string is
    an HMAC secret). An Ed25519 signature arrives percent-encoded and is decoded first."""
    payload, signature = split_signature(query_string, body)
    signing_key = _Hmac(key) if isinstance(key, str) else key
    if signing_key.key_type == ED25519:
        signature = unquote(signature)
    if not signature_valid(signing_key, payload, signature):
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
