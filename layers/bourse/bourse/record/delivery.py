"""One delivery of ``bourse.events`` records, decoded once for all the recorder does with it:
the events the record is written from, and each event's envelope exactly as it came, whose
bytes are the archive's line for it (so archiving re-encodes nothing).

The wire format is ``bourse.domain.event_codec``'s (a record is a JSON array of
``{"type", "seq", "body"}`` envelopes); this reads it the same way (every envelope's type
known and seq an integer; every body the record is written from decoded against its event
type, with envelope seq = body seq) and keeps the envelopes. Bodies of the events the record
keeps nothing of (``RECORDLESS``: replies, depth updates, ...: a third of the events and of the
bytes) are not decoded at all: their seqs still count (the mark, gaps) and their bytes are
archived as they came. A record that does not decode adds nothing: the caller reports it
failed on its own.
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


# Events the recorder neither writes nor publishes (bourse.record.rows.map_events, fills_of,
# funding_of, refused_admin_of read none of them).
RECORDLESS = frozenset(
    {"Reply", "DepthUpdate", "PreventedMatch", "BalanceUpdate", "AccountFeesUpdated"}
)
_records = msgspec.json.Decoder(list[Envelope])
_bodies = {cls.__name__: msgspec.json.Decoder(cls) for cls in EVENT_TYPES}
_recorded = {name: dec for name, dec in _bodies.items() if name not in RECORDLESS}


def decode_record(value: bytes) -> tuple[list[Envelope], list[Event]]:
    """A record's envelopes and the events the record is written from (in order);
    EventDecodeError if any of them is bad."""
    try:
        envelopes = _records.decode(value)
        events: list[Event] = []
        append = events.append
        recorded = _recorded
        for envelope in envelopes:
            decoder = recorded.get(envelope.type)
            if decoder is None:
                if envelope.type in RECORDLESS:
                    continue
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
    """The decoded records of one delivery, in delivery order (duplicates possible):
    every envelope, and the events the record is written from."""

    envelopes: list[Envelope] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    def add(self, value: bytes) -> None:
        """Decode one record; all of it or, if it does not decode, none of it (raises)."""
        envelopes, events = decode_record(value)
        self.envelopes.extend(envelopes)
        self.events.extend(events)

    def seqs(self) -> list[int]:
        """Every seq delivered, recordless events' included (for the mark and gaps)."""
        return [envelope.seq for envelope in self.envelopes]

    def lines_after(self, mark: int) -> tuple[list[bytes], int, int, int]:
        """The archive lines of the events above ``mark``, ascending seq, each seq once;
        with the first's seq and time and the last's seq. Empty lines: none above the mark."""
        envelopes = self.envelopes
        fresh = [i for i, env in enumerate(envelopes) if env.seq > mark]
        seqs = [envelopes[i].seq for i in fresh]
        if not all(map(operator.lt, seqs, seqs[1:])):
            # A re-delivery overlapping itself, or records out of order: one line per seq.
            by_seq = {envelopes[i].seq: i for i in fresh}
            fresh = [by_seq[s] for s in sorted(by_seq)]
        if not fresh:
            return [], 0, 0, 0
        first, last = envelopes[fresh[0]], envelopes[fresh[-1]]
        lines = [envelopes[i].line() for i in fresh]
        # The key's hour is the first event's: its body may be one left undecoded.
        first_ts = _bodies[first.type].decode(first.body).ts
        return lines, first.seq, first_ts, last.seq
