"""Signed admin records: how the engine knows an admin command came from the admin plane.

An admin command travels on ``bourse.commands`` as

    {"type":"SIGNED","kid":"<key ARN>","sig":"<base64 DER ECDSA_SHA_256>","body":"<base64>"}

where ``body`` is exactly ``encode_command(cmd)`` and ``sig`` an ECDSA P-256 / SHA-256
signature over those bytes, made by the KMS key only the admin function's role may use
(``bourse.adapters.admin_signer``). The matching service trusts the public halves of the keys
it is configured with (``AdminVerifier``); ``bourse.domain.codec.decode_record`` turns a record
that does not verify into a ``RejectedAdmin``. docs/engine.md ("Admin commands and who may
issue them") says why signatures rather than a separate topic.

Pure: no I/O. ``LocalAdminSigner`` holds an in-memory key for tests and benches that run the
engine without KMS.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Protocol

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_der_public_key,
)

from bourse.domain.codec import encode_command
from bourse.domain.commands import ADMIN_COMMANDS, Command

SIGNED_TYPE = "SIGNED"
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
_encoder = msgspec.json.Encoder()


def encode_signed(inner: bytes, kid: str, sig: bytes) -> bytes:
    """The SIGNED record carrying ``inner`` (an encoded command) and its signature."""
    return _encoder.encode(
        {
            "type": SIGNED_TYPE,
            "kid": kid,
            "sig": base64.b64encode(sig).decode(),
            "body": base64.b64encode(inner).decode(),
        }
    )


class AdminSigner(Protocol):
    """``LocalAdminSigner`` here, ``bourse.adapters.admin_signer.KmsAdminSigner`` on AWS."""

    def signed_record(self, cmd: Command) -> bytes: ...


def encode_record(cmd: Command, signer: AdminSigner | None) -> bytes:
    """The record of ``cmd`` for bourse.commands: admin commands signed by ``signer``, a
    trader's command plain. With no signer an admin command goes plain (and is refused)."""
    if signer is not None and type(cmd) in ADMIN_COMMANDS:
        return signer.signed_record(cmd)
    return encode_command(cmd)


class AdminVerifier:
    """The trusted admin signing keys: kid (the key's ARN) -> DER SubjectPublicKeyInfo.

    Only EC P-256 keys are accepted. Keys are only ever added over a deployment's life: a
    command signed years ago must still verify when the log is replayed.
    """

    def __init__(self, public_keys: Mapping[str, bytes]) -> None:
        self._keys: dict[str, ec.EllipticCurvePublicKey] = {}
        for kid, der in public_keys.items():
            key = load_der_public_key(der)
            if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
                raise ValueError(f"admin signing key {kid} is not an EC P-256 public key")
            self._keys[kid] = key

    @property
    def kids(self) -> tuple[str, ...]:
        return tuple(self._keys)

    def knows(self, kid: str) -> bool:
        return kid in self._keys

    def verify(self, kid: str, message: bytes, signature: bytes) -> bool:
        """True only if ``kid`` is trusted and ``signature`` is its signature of ``message``."""
        key = self._keys.get(kid)
        if key is None:
            return False
        try:
            key.verify(signature, message, _ECDSA_SHA256)
        except (InvalidSignature, ValueError):
            return False
        return True


class LocalAdminSigner:
    """An in-memory P-256 key standing in for KMS (tests, benches, pure replays)."""

    def __init__(self, kid: str = "local-admin-signing-key") -> None:
        self.kid = kid
        self._key = ec.generate_private_key(ec.SECP256R1())

    @property
    def public_key_der(self) -> bytes:
        return self._key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)

    def public_keys(self) -> dict[str, bytes]:
        """kid -> DER public key, what ``AdminVerifier`` takes."""
        return {self.kid: self.public_key_der}

    def verifier(self) -> AdminVerifier:
        return AdminVerifier(self.public_keys())

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message, _ECDSA_SHA256)

    def signed_record(self, cmd: Command) -> bytes:
        inner = encode_command(cmd)
        return encode_signed(inner, self.kid, self.sign(inner))
