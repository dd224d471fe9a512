"""A delivery decoded once for the recorder: the same events ``event_codec`` decodes (those
the record is written from; the others' bodies are left undecoded but their seqs count), and
archive lines that are exactly ``encode_event``'s bytes, without encoding anything again."""

from __future__ import annotations

import gzip
from typing import Any

import pytest

from bourse.adapters.archive import EventArchive, archive_key
from bourse.domain.event_codec import EventDecodeError, decode_events, encode_event, encode_events
from bourse.domain.events import Event
from bourse.engine import Engine
from bourse.record.delivery import RECORDLESS, Delivery
from matching_service.workload import commands as workload

pytestmark = pytest.mark.unit


def _events(count: int = 600) -> list[Event]:
    engine = Engine()
    out: list[Event] = []
    for cmd in workload(count, seed=5):
        out.extend(engine.process(cmd))
    return out


def _records(events: list[Event], size: int = 97) -> list[bytes]:
    return [encode_events(events[i : i + size]) for i in range(0, len(events), size)]


def test_the_events_are_event_codecs_and_the_lines_its_bytes() -> None:
    events = _events()
    delivery = Delivery()
    for record in _records(events):
        delivery.add(record)
    decoded = [ev for r in _records(events) for ev in decode_events(r)]
    assert delivery.events == [ev for ev in decoded if type(ev).__name__ not in RECORDLESS]
    assert {type(ev).__name__ for ev in decoded} & RECORDLESS  # some were left out
    assert delivery.seqs() == [ev.seq for ev in events]
    lines, first_seq, first_ts, last_seq = delivery.lines_after(0)
    assert lines == [encode_event(ev) + b"\n" for ev in events]
    assert (first_seq, first_ts, last_seq) == (events[0].seq, events[0].ts, events[-1].seq)


def test_lines_after_the_mark_once_per_seq_in_seq_order() -> None:
    events = _events(300)
    records = _records(events, 50)
    delivery = Delivery()
    # A re-delivery that overlaps itself and comes out of order.
    for record in [records[2], records[0], records[1], records[2], records[3]]:
        delivery.add(record)
    mark = events[70].seq
    lines, first_seq, first_ts, last_seq = delivery.lines_after(mark)
    fresh = [ev for ev in events[:200] if ev.seq > mark]
    assert lines == [encode_event(ev) + b"\n" for ev in fresh]
    assert (first_seq, first_ts, last_seq) == (fresh[0].seq, fresh[0].ts, fresh[-1].seq)
    assert delivery.lines_after(events[199].seq) == ([], 0, 0, 0)


@pytest.mark.parametrize(
    "record",
    [
        b"not json",
        b'[{"type": "Trade", "seq": "not a number"}]',
        b'[{"type": "Nonesuch", "seq": 1, "body": {}}]',
    ],
)
def test_a_record_that_does_not_decode_adds_nothing(record: bytes) -> None:
    delivery = Delivery()
    good = _records(_events(100))[0]
    delivery.add(good)
    before = (list(delivery.envelopes), list(delivery.events))
    with pytest.raises(EventDecodeError):
        delivery.add(record)
    assert (delivery.envelopes, delivery.events) == before


def test_a_body_whose_seq_differs_from_its_envelope_is_refused() -> None:
    event = next(ev for ev in _events(50) if type(ev).__name__ not in RECORDLESS)
    line = encode_event(event)
    forged = line.replace(b'"seq":%d,"body"' % event.seq, b'"seq":%d,"body"' % (event.seq + 1))
    with pytest.raises(EventDecodeError, match="envelope seq"):
        Delivery().add(b"[" + forged + b"]")


class _S3:
    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}

    def put_object(self, **kwargs: Any) -> None:
        self.objects[kwargs["Key"]] = kwargs


def test_the_first_line_may_be_an_undecoded_event() -> None:
    events = _events(100)
    start = next(i for i, ev in enumerate(events) if type(ev).__name__ in RECORDLESS)
    delivery = Delivery()
    delivery.add(encode_events(events[start:]))
    _, first_seq, first_ts, _ = delivery.lines_after(0)
    assert (first_seq, first_ts) == (events[start].seq, events[start].ts)


def test_archived_lines_are_the_same_object_as_archived_events() -> None:
    events = _events(200)[10:150]
    delivery = Delivery()
    delivery.add(encode_events(events))
    s3 = _S3()
    key = EventArchive(s3, "bucket", "events/").put_lines(*delivery.lines_after(0))
    assert key == archive_key("events/", events)
    body = gzip.decompress(s3.objects[key]["Body"]).splitlines()
    assert body == [encode_event(ev) for ev in events]
    assert s3.objects[key]["ContentType"] == "application/gzip"
