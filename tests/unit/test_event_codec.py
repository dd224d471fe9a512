"""The event wire format: every event type round-trips to an equal dataclass; bad input fails
loudly; the envelope's seq is the body's."""

from __future__ import annotations

import json

import pytest

from bourse.domain.event_codec import (
    EVENT_TYPES,
    EventDecodeError,
    decode_event,
    decode_events,
    encode_event,
    encode_events,
    event_seqs,
)
from bourse.domain.events import Event, Reply
from bourse.engine import Engine
from matching_service.workload import commands

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def events() -> list[Event]:
    engine = Engine()
    out: list[Event] = []
    for cmd in commands(4_000, seed=21):
        out.extend(engine.process(cmd))
    return out + _order_list_events()


def _order_list_events() -> list[Event]:
    """The workload places no order lists: one OCO, from an engine of its own."""
    from tests.unit.test_engine_helpers import Bench
    from tests.unit.test_engine_order_lists import LM, SL, leg, place_list, traded_at

    b = Bench()
    traded_at(b, 100)
    return place_list(b, "OCO", leg(1, "SELL", LM, 5, price=110), leg(1, "SELL", SL, 5, stop=90))


def test_stream_has_every_event_type_but_admin_ones(events: list[Event]) -> None:
    seen = {type(e) for e in events}
    assert seen >= set(EVENT_TYPES) - {e for e in EVENT_TYPES if e.__name__ == "AccountFeesUpdated"}


def test_each_event_round_trips(events: list[Event]) -> None:
    for event in events:
        data = encode_event(event)
        envelope = json.loads(data)
        assert envelope["type"] == type(event).__name__
        assert envelope["seq"] == event.seq == envelope["body"]["seq"]
        assert decode_event(data) == event


def test_lists_round_trip_in_order(events: list[Event]) -> None:
    data = encode_events(events)
    assert decode_events(data) == events
    assert event_seqs(data) == [e.seq for e in events]
    assert decode_events(encode_events([])) == []


def test_enums_and_amounts_are_plain_json(events: list[Event]) -> None:
    reply = next(e for e in events if isinstance(e, Reply) and e.parts and e.parts[0].result)
    body = json.loads(encode_event(reply))["body"]
    part = body["parts"][0]
    assert part["outcome"] == "SUCCESS"
    assert isinstance(part["result"]["order"]["quantity"], int)


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b'{"type": "Nope", "seq": 1, "body": {}}',
        b'{"type": "BalanceUpdate", "seq": 1, "body": {"seq": 1}}',
        b'{"type": "BalanceUpdate", "seq": 2, "body": {"seq": 1, "ts": 0, "account_id": 1,'
        b' "asset": "BTC", "delta": 1}}',
        b'{"type": "BalanceUpdate", "seq": 1, "body": {"seq": 1, "ts": 0, "account_id": 1,'
        b' "asset": "BTC", "delta": 1.5}}',
    ],
)
def test_bad_input_is_rejected(data: bytes) -> None:
    with pytest.raises(EventDecodeError):
        decode_event(data)
    with pytest.raises(EventDecodeError):
        decode_events(b"[" + data + b"]")


def test_reply_detail_is_on_the_wire_only_when_set(events: list[Event]) -> None:
    plain = next(e for e in events if isinstance(e, Reply) and e.command == "NEW_ORDER")
    assert "detail" not in json.loads(encode_event(plain))["body"]
    created = next(e for e in events if isinstance(e, Reply) and e.command == "CREATE_ACCOUNT")
    body = json.loads(encode_event(created))["body"]
    assert json.loads(body["detail"]) == {"accountId": 1}
    assert decode_event(encode_event(created)) == created
