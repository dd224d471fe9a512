"""Admin signing through KMS (moto): ``KmsAdminSigner`` signs, ``admin_keys.load_verifier``
loads the public halves by alias and ARN, and only records signed by a loaded key verify."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from bourse.adapters.admin_signer import KmsAdminSigner
from bourse.domain.codec import decode_record, encode_command
from bourse.domain.commands import AddSymbol, Deposit, RejectedAdmin
from bourse.domain.markets import DEFAULT_MARKETS
from bourse.settings import Settings
from matching_service.admin_keys import AdminKeyError, load_verifier

pytestmark = pytest.mark.integration


def _signing_key(kms: Any) -> tuple[str, str]:
    arn = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
    alias = f"alias/bourse-test-{uuid.uuid4().hex[:8]}-admin-signing"
    kms.create_alias(AliasName=alias, TargetKeyId=arn)
    return str(arn), alias


def test_records_signed_by_kms_verify_against_the_keys_loaded_by_alias(
    local_stack: Settings, aws_client: Callable[[str], Any]
) -> None:
    kms = aws_client("kms")
    arn, alias = _signing_key(kms)
    old_arn, _ = _signing_key(kms)  # an older key still trusted: its commands must replay
    verifier = load_verifier(
        replace(local_stack, admin_trusted_keys_file="", admin_signing_key_ids=(alias, old_arn)),
        kms,
    )
    assert set(verifier.kids) == {arn, old_arn}
    deposit = Deposit("d-1", 1, 7, "BTC", 10**8, "tx-1", "arn:aws:iam::123456789012:user/op")
    for key_id in (alias, old_arn):
        record = KmsAdminSigner(kms, key_id).signed_record(deposit)
        assert decode_record(record, verifier) == deposit
    # the largest admin command fits KMS's RAW message limit
    add = AddSymbol("a-1", 1, DEFAULT_MARKETS[0], "arn:aws:iam::123456789012:user/op")
    assert decode_record(KmsAdminSigner(kms, alias).signed_record(add), verifier) == add
    # a key the service was not told about, and no signature at all
    stranger, _ = _signing_key(kms)
    forged = KmsAdminSigner(kms, stranger).signed_record(deposit)
    assert decode_record(forged, verifier) == RejectedAdmin(
        "d-1", 1, "DEPOSIT", deposit.principal, "unknown key"
    )
    assert isinstance(decode_record(encode_command(deposit), verifier), RejectedAdmin)


def test_a_missing_or_unusable_key_is_a_clear_error(
    local_stack: Settings, aws_client: Callable[[str], Any]
) -> None:
    kms = aws_client("kms")
    missing = f"alias/bourse-test-{uuid.uuid4().hex[:8]}-nope"
    with pytest.raises(AdminKeyError, match=f"admin signing key {missing} unusable"):
        load_verifier(
            replace(local_stack, admin_trusted_keys_file="", admin_signing_key_ids=(missing,)), kms
        )
    with pytest.raises(AdminKeyError, match="no admin signing key configured"):
        load_verifier(
            replace(local_stack, admin_trusted_keys_file="", admin_signing_key_ids=()), kms
        )
    symmetric = kms.create_key()["KeyMetadata"]["Arn"]
    with pytest.raises(AdminKeyError):
        load_verifier(
            replace(local_stack, admin_trusted_keys_file="", admin_signing_key_ids=(symmetric,)),
            kms,
        )


def test_a_retired_key_stays_trusted_through_its_public_half(
    local_stack: Settings, aws_client: Callable[[str], Any], tmp_path: Any
) -> None:
    """The local stack's case: moto made a new key at `up`, the log holds commands the old one
    signed. Its public half in the trusted-keys file keeps them verifying; without it they are
    refused (the replay would fork)."""
    import base64
    import json

    kms = aws_client("kms")
    old_arn, _ = _signing_key(kms)
    _, current = _signing_key(kms)
    deposit = Deposit("d-2", 1, 7, "BTC", 10**8, "tx-2", "arn:aws:iam::123456789012:user/op")
    record = KmsAdminSigner(kms, old_arn).signed_record(deposit)
    trusted = tmp_path / "admin-trusted-keys.json"
    der = kms.get_public_key(KeyId=old_arn)["PublicKey"]
    trusted.write_text(json.dumps({old_arn: base64.b64encode(der).decode()}))

    settings = replace(local_stack, admin_signing_key_ids=(current,))
    with_file = load_verifier(replace(settings, admin_trusted_keys_file=str(trusted)), kms)
    without = load_verifier(replace(settings, admin_trusted_keys_file=""), kms)
    assert decode_record(record, with_file) == deposit
    assert isinstance(decode_record(record, without), RejectedAdmin)
    trusted.write_text("not json")
    with pytest.raises(AdminKeyError, match="unreadable"):
        load_verifier(replace(settings, admin_trusted_keys_file=str(trusted)), kms)
