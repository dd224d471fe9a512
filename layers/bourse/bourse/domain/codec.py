"""Commands on the wire (Kafka ``bourse.commands``): JSON, one envelope per command.

``{"type": "NEW_ORDER", "body": {...the command's fields...}}``. Decoding is strict (msgspec
checks every field's type: an ``int`` amount sent as ``1.5`` or ``"1"`` is an error), because
the command log is the engine's only input and a bad record must fail loudly at the edge
rather than inside matching. msgspec is used instead of a hand-written parser for its speed
(a few microseconds per command) and its exact type checks on dataclasses.

``decode_record`` is what the matching service applies to each record: it also decides whether
an admin command really comes from the admin plane (a SIGNED record, ``bourse.domain.admin_auth``)
and turns one that does not into a ``RejectedAdmin`` the engine refuses and records.
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Any

import msgspec

from bourse.domain.commands import (
    ADMIN_COMMAND_NAMES,
    ADMIN_COMMANDS,
    COMMAND_NAMES,
    Command,
    RejectedAdmin,
)

if TYPE_CHECKING:
    from bourse.domain.admin_auth import AdminVerifier

_TYPES: dict[str, type[Any]] = {name: cls for cls, name in COMMAND_NAMES.items()}


class _Envelope(msgspec.Struct, frozen=True):
    type: str
    body: msgspec.Raw


_encoder = msgspec.json.Encoder()
_envelope_decoder = msgspec.json.Decoder(_Envelope)
_body_decoders = {name: msgspec.json.Decoder(cls) for name, cls in _TYPES.items()}


class CommandDecodeError(ValueError):
    """A record on the command log that is not a well-formed command."""


def encode_command(command: Command) -> bytes:
    name = COMMAND_NAMES[type(command)]
    return b'{"type":"' + name.encode() + b'","body":' + _encoder.encode(command) + b"}"


def _from_envelope(envelope: _Envelope) -> Command:
    decoder = _body_decoders.get(envelope.type)
    if decoder is None:
        raise CommandDecodeError(f"unknown command type {envelope.type!r}")
    try:
        command: Command = decoder.decode(envelope.body)
    except msgspec.ValidationError as exc:
        raise CommandDecodeError(str(exc)) from exc
    except msgspec.DecodeError as exc:
        raise CommandDecodeError(f"not JSON: {exc}") from exc
    return command


def _envelope(data: bytes) -> _Envelope:
    try:
        return _envelope_decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise CommandDecodeError(str(exc)) from exc
    except msgspec.DecodeError as exc:
        raise CommandDecodeError(f"not JSON: {exc}") from exc


def decode_command(data: bytes) -> Command:
    """A plain command record, whatever its type (no signature check: see decode_record)."""
    return _from_envelope(_envelope(data))


# ---------------------------------------------------------------------------------------------
# Records: plain commands, and admin commands inside SIGNED envelopes

REASON_UNSIGNED = "unsigned"
REASON_UNKNOWN_KEY = "unknown key"
REASON_BAD_SIGNATURE = "bad signature"


class _Signed(msgspec.Struct, frozen=True):
    type: str
    kid: str
    sig: str
    body: str


class _Claims(msgspec.Struct, frozen=True):
    """What any admin record claims, read leniently so that even a malformed forgery is
    refused and recorded under the request id it claimed."""

    request_id: str = ""
    ts: int = 0
    principal: str = ""


_signed_decoder = msgspec.json.Decoder(_Signed)
_claims_decoder = msgspec.json.Decoder(_Claims)


def _rejected(name: str, body: msgspec.Raw | bytes, reason: str) -> RejectedAdmin:
    try:
        claims = _claims_decoder.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise CommandDecodeError(f"{name} record without readable claims: {exc}") from exc
    return RejectedAdmin(claims.request_id, claims.ts, name, claims.principal, reason)


def _b64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CommandDecodeError("SIGNED record with bad base64") from exc


def decode_record(data: bytes, verifier: AdminVerifier) -> Command:
    """One record of the command log -> the command the engine applies.

    - a plain record of a trader's command: that command (as ``decode_command``);
    - a plain record of an admin type: ``RejectedAdmin(reason="unsigned")``;
    - a SIGNED record whose signature by a trusted key verifies: the inner command;
    - a SIGNED record that does not verify: ``RejectedAdmin`` ("unknown key" / "bad
      signature") with the inner record's claimed request id, ts and principal.

    Replays of a validly signed record are the engine's to refuse (it keeps the applied admin
    request ids). Raises ``CommandDecodeError`` for a record that is no command at all.
    """
    envelope = _envelope(data)
    if envelope.type in ADMIN_COMMAND_NAMES:
        return _rejected(envelope.type, envelope.body, REASON_UNSIGNED)
    if envelope.type != "SIGNED":
        return _from_envelope(envelope)
    try:
        signed = _signed_decoder.decode(data)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise CommandDecodeError(f"malformed SIGNED record: {exc}") from exc
    inner, sig = _b64(signed.body), _b64(signed.sig)
    if not verifier.knows(signed.kid):
        reason = REASON_UNKNOWN_KEY
    elif not verifier.verify(signed.kid, inner, sig):
        reason = REASON_BAD_SIGNATURE
    else:
        return decode_command(inner)
    inner_envelope = _envelope(inner)
    if inner_envelope.type not in ADMIN_COMMAND_NAMES:
        # A trader's command needs no signature: a bad one around it changes nothing.
        return _from_envelope(inner_envelope)
    return _rejected(inner_envelope.type, inner_envelope.body, reason)


def is_admin(command: Command) -> bool:
    return type(command) in ADMIN_COMMANDS
