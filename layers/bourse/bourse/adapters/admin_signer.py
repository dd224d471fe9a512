"""Signs admin commands with the KMS admin signing key (the admin function's side).

The private half never leaves KMS; only the admin function's role may ``kms:Sign`` with it.
The record format and its verification are ``bourse.domain.admin_auth``.
"""

from __future__ import annotations

from typing import Any

from bourse.domain.admin_auth import encode_signed
from bourse.domain.codec import encode_command
from bourse.domain.commands import Command

SIGNING_ALGORITHM = "ECDSA_SHA_256"
KMS_RAW_LIMIT = 4096  # bytes kms:Sign accepts as a RAW message


class KmsAdminSigner:
    """``signed_record(cmd)``: the SIGNED record of ``cmd`` for bourse.commands.

    ``key_id`` may be a key id, an ARN or an alias; the record's ``kid`` is the key ARN that
    KMS reports, which is what the matching service's verifier is keyed by.
    """

    def __init__(self, kms_client: Any, key_id: str) -> None:
        self.kms = kms_client
        self.key_id = key_id

    def signed_record(self, cmd: Command) -> bytes:
        inner = encode_command(cmd)
        if len(inner) > KMS_RAW_LIMIT:
            raise ValueError(f"admin command of {len(inner)} bytes is too large to sign")
        out = self.kms.sign(
            KeyId=self.key_id,
            Message=inner,
            MessageType="RAW",
            SigningAlgorithm=SIGNING_ALGORITHM,
        )
        return encode_signed(inner, str(out["KeyId"]), bytes(out["Signature"]))
