"""Commands on the wire (Kafka ``bourse.commands``): JSON, one envelope per command.

``{"type": "NEW_ORDER", "body": {...the command's fields...}}``. Decoding is strict (msgspec
checks every field's type: an ``int`` amount sent as ``1.5`` or ``"1"`` is an error), because
the command log is the engine's only input and a bad record must fail loudly at the edge
rather than inside matching. msgspec is used instead of a hand-written parser for its speed
(a few microseconds per command) and its exact type checks on dataclasses.
"""

from __future__ import annotations

from typing import Any

import msgspec

from bourse.domain.commands import COMMAND_NAMES, Command

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


def decode_command(data: bytes) -> Command:
    try:
        envelope = _envelope_decoder.decode(data)
        decoder = _body_decoders.get(envelope.type)
        if decoder is None:
            raise CommandDecodeError(f"unknown command type {envelope.type!r}")
        command: Command = decoder.decode(envelope.body)
    except msgspec.ValidationError as exc:
        raise CommandDecodeError(str(exc)) from exc
    except msgspec.DecodeError as exc:
        raise CommandDecodeError(f"not JSON: {exc}") from exc
    return command
