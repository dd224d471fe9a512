"""Events on the wire (Kafka ``bourse.events``, Redis replies): JSON, one envelope per event.

``{"type": "Trade", "seq": 42, "body": {...the event's fields...}}``. ``type`` is the event's
class name, ``seq`` repeats ``body.seq`` so a consumer can drop an event it has already
applied without decoding the body. Enums are written as their values, amounts as integers in
1e-8 units, exactly as the event Structs hold them; decoding gives back equal events.

A Kafka record of ``bourse.events`` holds a **list** of envelopes (a JSON array): the events
of a run of consecutive commands, in ``seq`` order. kafka-python spends ~100 µs per record
sent, so one record per event would cap the matching service far below the engine's speed;
a few records per batch cost nothing. Consumers iterate ``decode_events(record.value)``.

msgspec encodes the event Structs directly (no intermediate dicts) and decodes them with
exact type checks, so a record that does not match the schema fails loudly.
"""

from __future__ import annotations

from typing import Any

import msgspec

from bourse.domain.events import (
    AccountBalances,
    AccountFeesUpdated,
    AccountUpdated,
    AdminAction,
    BalanceUpdate,
    DepthUpdate,
    Event,
    ExecutionReport,
    FundingUpdate,
    ListStatus,
    OrderAmended,
    PreventedMatch,
    Reply,
    SymbolUpdated,
    Trade,
)

EVENT_TYPES: tuple[type[Any], ...] = (
    ExecutionReport,
    Trade,
    PreventedMatch,
    OrderAmended,
    BalanceUpdate,
    AccountBalances,
    DepthUpdate,
    SymbolUpdated,
    AccountFeesUpdated,
    AdminAction,
    AccountUpdated,
    FundingUpdate,
    ListStatus,
    Reply,
)
EVENT_NAMES: dict[type[Any], str] = {cls: cls.__name__ for cls in EVENT_TYPES}


class _Envelope(msgspec.Struct, frozen=True):
    type: str
    seq: int
    body: msgspec.Raw


class EventDecodeError(ValueError):
    """Bytes that are not a well-formed event (or list of events)."""


_encoder = msgspec.json.Encoder()
_one_decoder = msgspec.json.Decoder(_Envelope)
_list_decoder = msgspec.json.Decoder(list[_Envelope])
_body_decoders = {cls.__name__: msgspec.json.Decoder(cls) for cls in EVENT_TYPES}


def _envelope(event: Event) -> dict[str, Any]:
    return {"type": EVENT_NAMES[type(event)], "seq": event.seq, "body": event}


def encode_event(event: Event) -> bytes:
    return _encoder.encode(_envelope(event))


def encode_events(events: list[Event]) -> bytes:
    """One JSON array for a run of events (one Kafka record)."""
    names = EVENT_NAMES
    return _encoder.encode([{"type": names[type(ev)], "seq": ev.seq, "body": ev} for ev in events])


def _body(envelope: _Envelope) -> Event:
    decoder = _body_decoders.get(envelope.type)
    if decoder is None:
        raise EventDecodeError(f"unknown event type {envelope.type!r}")
    event: Event = decoder.decode(envelope.body)
    if event.seq != envelope.seq:
        raise EventDecodeError(f"envelope seq {envelope.seq} != body seq {event.seq}")
    return event


def decode_event(data: bytes) -> Event:
    try:
        return _body(_one_decoder.decode(data))
    except msgspec.ValidationError as exc:
        raise EventDecodeError(str(exc)) from exc
    except msgspec.DecodeError as exc:
        raise EventDecodeError(f"not JSON: {exc}") from exc


def decode_events(data: bytes) -> list[Event]:
    try:
        return [_body(envelope) for envelope in _list_decoder.decode(data)]
    except msgspec.ValidationError as exc:
        raise EventDecodeError(str(exc)) from exc
    except msgspec.DecodeError as exc:
        raise EventDecodeError(f"not JSON: {exc}") from exc


def event_seqs(data: bytes) -> list[int]:
    """The seqs of a record without decoding bodies: for consumers skipping applied events."""
    try:
        return [envelope.seq for envelope in _list_decoder.decode(data)]
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise EventDecodeError(str(exc)) from exc
