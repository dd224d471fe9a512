"""One delivery of ``bourse.events`` records, decoded once for all the recorder does with it:
the events the record is written from, and each event's envelope exactly as it came, whose
bytes are the archive's line for it (so archiving re-encodes nothing).

The wire format is ``bourse.domain.event_codec``'s (a record is a JSON array of
``{"type", "seq", "body"}`` envelopes); this reads it the same way, with the same strictness
(every body decoded against its event type, envelope seq = body seq), and keeps the envelopes.
A record that does not decode adds nothing: the caller reports it failed on its own.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field

import msgspec

from bourse.domain.event_codec import EVENT_TYPES, EventDecodeError
from bourse.domain.events import Event


class Envelope(msgspec.Struct, frozen=True):
    type: str
    seq: int
    body: msgspec.Raw

    def line(self) -> bytes:
        """The envelope as ``event_codec.encode_event`` writes it, and a newline: the producer
        wrote the body with that encoder, so its bytes need no decoding and encoding again."""
        return b'{"type":"%s","seq":%d,"body":%s}\n' % (
            self.type.encode(),
            self.seq,
            bytes(self.body),
        )


_records = msgspec.json.Decoder(list[Envelope])
_bodies = {cls.__name__: msgspec.json.Decoder(cls) for cls in EVENT_TYPES}


def decode_record(value: bytes) -> tuple[list[Envelope], list[Event]]:
    """A record's envelopes and their events (same order); EventDecodeError if any is bad."""
    try:
        envelopes = _records.decode(value)
        events: list[Event] = []
        append = events.append
        for envelope in envelopes:
            decoder = _bodies.get(envelope.type)
            if decoder is None:
                raise EventDecodeError(f"unknown event type {envelope.type!r}")
            event: Event = decoder.decode(envelope.body)
            if event.seq != envelope.seq:
                raise EventDecodeError(f"envelope seq {envelope.seq} != body seq {event.seq}")
            append(event)
    except msgspec.ValidationError as exc:
        raise EventDecodeError(str(exc)) from exc
    except msgspec.DecodeError as exc:
        raise EventDecodeError(f"not JSON: {exc}") from exc
    return envelopes, events


@dataclass(slots=True)
class Delivery:
    """The decoded records of one delivery, in delivery order (duplicates possible)."""

    envelopes: list[Envelope] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    def add(self, value: bytes) -> None:
        """Decode one record; all of it or, if it does not decode, none of it (raises)."""
        envelopes, events = decode_record(value)
        self.envelopes.extend(envelopes)
        self.events.extend(events)

    def lines_after(self, mark: int) -> tuple[list[bytes], int, int, int]:
        """The archive lines of the events above ``mark``, ascending seq, each seq once;
        with the first's seq and time and the last's seq. Empty lines: none above the mark."""
        envelopes, events = self.envelopes, self.events
        fresh = [i for i, env in enumerate(envelopes) if env.seq > mark]
        seqs = [envelopes[i].seq for i in fresh]
        if not all(map(operator.lt, seqs, seqs[1:])):
            # A re-delivery overlapping itself, or records out of order: one line per seq.
            by_seq = {envelopes[i].seq: i for i in fresh}
            fresh = [by_seq[s] for s in sorted(by_seq)]
        if not fresh:
            return [], 0, 0, 0
        first, last = fresh[0], fresh[-1]
        lines = [envelopes[i].line() for i in fresh]
        return lines, envelopes[first].seq, events[first].ts, envelopes[last].seq
