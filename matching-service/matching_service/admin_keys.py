"""The admin signing keys the matching service trusts, loaded from KMS at start-up.

``kms:GetPublicKey`` for each configured key id or alias (``Settings.admin_signing_key_ids``):
the public halves become the ``AdminVerifier`` that ``pipeline.run_batch`` checks admin records
with. A key that cannot be loaded stops start-up: serving without it would refuse every admin
command, and serving with a partial set would refuse old ones on replay (the history would
fork).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from bourse.adapters import aws
from bourse.domain.admin_auth import AdminVerifier
from bourse.settings import Settings


class AdminKeyError(RuntimeError):
    """A configured admin signing key is missing or unusable."""


def _key_arn(kms: Any, key_id: str, reported: str) -> str:
    # AWS reports the key ARN; moto reports the bare key id, so ask for the ARN then.
    if reported.startswith("arn:"):
        return reported
    arn: str = kms.describe_key(KeyId=key_id)["KeyMetadata"]["Arn"]
    return arn


def load_public_keys(kms: Any, key_ids: tuple[str, ...]) -> dict[str, bytes]:
    """key ARN -> DER public key, for every configured key id / alias."""
    if not key_ids:
        raise AdminKeyError("no admin signing key configured (BOURSE_ADMIN_SIGNING_KEY_IDS)")
    keys: dict[str, bytes] = {}
    for key_id in key_ids:
        try:
            out = kms.get_public_key(KeyId=key_id)
            arn = _key_arn(kms, key_id, str(out["KeyId"]))
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise AdminKeyError(
                f"admin signing key {key_id} unusable: {error.get('Code')}: {error.get('Message')}"
            ) from exc
        except BotoCoreError as exc:
            raise AdminKeyError(f"admin signing key {key_id} unreachable: {exc}") from exc
        if out.get("KeyUsage", "SIGN_VERIFY") != "SIGN_VERIFY":
            raise AdminKeyError(f"admin signing key {key_id} is not a SIGN_VERIFY key")
        keys[arn] = bytes(out["PublicKey"])
    return keys


def retired_public_keys(path: str) -> dict[str, bytes]:
    """key ARN -> DER public key from ``Settings.admin_trusted_keys_file`` (none when unset or
    not written yet); an unreadable file stops start-up like an unusable KMS key."""
    if not path or not Path(path).exists():
        return {}
    try:
        saved = json.loads(Path(path).read_text())
        return {str(kid): base64.b64decode(der) for kid, der in saved.items()}
    except (OSError, ValueError, AttributeError) as exc:
        raise AdminKeyError(f"retired admin signing keys in {path} unreadable: {exc}") from exc


def load_verifier(settings: Settings, kms: Any | None = None) -> AdminVerifier:
    """The verifier of admin records for this deployment (raises ``AdminKeyError``): the
    configured KMS keys, plus the retired ones still trusted for the commands they signed."""
    client = kms if kms is not None else aws.client("kms")
    keys = {
        **retired_public_keys(settings.admin_trusted_keys_file),
        **load_public_keys(client, settings.admin_signing_key_ids),
    }
    try:
        return AdminVerifier(keys)
    except ValueError as exc:
        raise AdminKeyError(str(exc)) from exc
