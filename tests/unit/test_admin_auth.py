"""Signed admin records (bourse.domain.admin_auth, codec.decode_record): only a record signed
by a trusted key yields an admin command; everything else claiming to be one becomes a
RejectedAdmin (and a replay is the engine's to refuse)."""

from __future__ import annotations

import base64
import json

import pytest

from bourse.domain.admin_auth import (
    AdminVerifier,
    LocalAdminSigner,
    encode_record,
    encode_signed,
)
from bourse.domain.codec import CommandDecodeError, decode_record, encode_command
from bourse.domain.commands import (
    CancelAll,
    CreateAccount,
    Deposit,
    NewOrder,
    RejectedAdmin,
    SetAccountFees,
)
from bourse.domain.enums import OrderType, Side, TimeInForce
from bourse.domain.events import Reply
from bourse.engine import Engine

pytestmark = pytest.mark.unit

SIGNER = LocalAdminSigner("arn:aws:kms:us-east-1:123456789012:key/trusted")
VERIFIER = SIGNER.verifier()
DEPOSIT = Deposit("dep-1", 7, 3, "BTC", 10**8, "tx-1", "arn:aws:iam::1:user/op")


def _fields(record: bytes) -> dict[str, str]:
    out: dict[str, str] = json.loads(record)
    return out


def test_signed_admin_command_round_trips() -> None:
    record = SIGNER.signed_record(DEPOSIT)
    envelope = _fields(record)
    assert envelope["type"] == "SIGNED" and envelope["kid"] == SIGNER.kid
    assert base64.b64decode(envelope["body"]) == encode_command(DEPOSIT)
    assert decode_record(record, VERIFIER) == DEPOSIT


def test_unsigned_admin_command_is_rejected_with_its_claims() -> None:
    assert decode_record(encode_command(DEPOSIT), VERIFIER) == RejectedAdmin(
        "dep-1", 7, "DEPOSIT", "arn:aws:iam::1:user/op", "unsigned"
    )
    # even a malformed one is refused under what it claims, not skipped
    raw = b'{"type":"SET_ACCOUNT_FEES","body":{"request_id":"x","ts":1,"maker_rate":"lots"}}'
    assert decode_record(raw, VERIFIER) == RejectedAdmin("x", 1, "SET_ACCOUNT_FEES", "", "unsigned")


def _refusal(record: bytes) -> str:
    """Why decode_record refused ``record`` (it must have)."""
    decoded = decode_record(record, VERIFIER)
    assert isinstance(decoded, RejectedAdmin), decoded
    return decoded.reason


def test_tampered_body_is_rejected() -> None:
    envelope = _fields(SIGNER.signed_record(DEPOSIT))
    inner = base64.b64decode(envelope["body"]).replace(b'"amount":100000000', b'"amount":900000000')
    envelope["body"] = base64.b64encode(inner).decode()
    decoded = decode_record(json.dumps(envelope).encode(), VERIFIER)
    assert decoded == RejectedAdmin("dep-1", 7, "DEPOSIT", DEPOSIT.principal, "bad signature")


def test_wrong_key_and_unknown_kid_are_rejected() -> None:
    impostor = LocalAdminSigner(SIGNER.kid)  # claims the trusted kid, signs with its own key
    assert _refusal(impostor.signed_record(DEPOSIT)) == "bad signature"
    stranger = LocalAdminSigner("arn:aws:kms:us-east-1:123456789012:key/other")
    assert _refusal(stranger.signed_record(DEPOSIT)) == "unknown key"
    # and a signature of other bytes, moved onto this body
    other = _fields(SIGNER.signed_record(CreateAccount("c", 1)))
    moved = _fields(SIGNER.signed_record(DEPOSIT)) | {"sig": other["sig"]}
    assert _refusal(json.dumps(moved).encode()) == "bad signature"


def test_several_trusted_keys_all_verify() -> None:
    second = LocalAdminSigner("kid-2")
    verifier = AdminVerifier(SIGNER.public_keys() | second.public_keys())
    assert verifier.kids == (SIGNER.kid, "kid-2")
    for signer in (SIGNER, second):
        assert decode_record(signer.signed_record(DEPOSIT), verifier) == DEPOSIT


def test_verifier_refuses_keys_that_are_not_p256() -> None:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    spki = (Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key().public_bytes(*spki)
    ed = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(*spki)
    for der in (p384, ed):
        with pytest.raises(ValueError):
            AdminVerifier({"k": der})
    assert not VERIFIER.verify(SIGNER.kid, b"m", b"not a DER signature")


def test_trader_commands_need_no_signature() -> None:
    order = NewOrder("o", 1, 3, "BTCUSDT", Side.BUY, OrderType.LIMIT, "c", 10**6, None, 10**8,
                     None, TimeInForce.GTC)  # fmt: skip
    assert decode_record(encode_command(order), VERIFIER) == order
    assert decode_record(encode_record(order, SIGNER), VERIFIER) == order  # left plain
    # a trader's command inside a badly signed envelope is just that command
    forged = LocalAdminSigner("kid-x").signed_record(CancelAll("x", 1, 3, "BTCUSDT"))
    assert decode_record(forged, VERIFIER) == CancelAll("x", 1, 3, "BTCUSDT")


@pytest.mark.parametrize(
    "record",
    [
        b'{"type":"SIGNED","kid":"k","sig":"%%%","body":"e30="}',
        b'{"type":"SIGNED","kid":"k","sig":"AA==","body":"bm90IGpzb24="}',  # body "not json"
        b'{"type":"SIGNED","kid":"k","body":"e30="}',  # no sig
        b'{"type":"SIGNED","kid":"k","sig":"AA==","body":"eyJ0eXBlIjoiREVQT1NJVCIsImJvZHkiOjF9"}',
        b"not json",
    ],
)
def test_malformed_signed_records_are_undecodable(record: bytes) -> None:
    with pytest.raises(CommandDecodeError):
        decode_record(record, VERIFIER)


def test_a_replayed_signed_record_is_refused_by_the_engine() -> None:
    engine = Engine()
    record = SIGNER.signed_record(CreateAccount("create-3", 1, 3))
    first = engine.process(decode_record(record, VERIFIER))
    again = engine.process(decode_record(record, VERIFIER))
    assert isinstance(first[-1], Reply) and first[-1].code == 0
    assert isinstance(again[-1], Reply) and (again[-1].code, again[-1].msg) == (
        -1002, "You are not authorized to execute this request."
    )  # fmt: skip
    assert engine.accounts() == {3: "ACTIVE"}


def test_encode_signed_is_the_documented_envelope() -> None:
    record = encode_signed(b"inner", "kid", b"\x01\x02")
    assert json.loads(record) == {"type": "SIGNED", "kid": "kid", "sig": "AQI=",
                                  "body": base64.b64encode(b"inner").decode()}  # fmt: skip
    fees = SetAccountFees("f", 1, 3, 0, 0)
    assert _refusal(encode_record(fees, None)) == "unsigned"
