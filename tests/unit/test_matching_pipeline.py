"""The matching service's pure transform: command records -> engine -> event records, replies,
changed books; no Kafka, Redis or S3 involved."""

from __future__ import annotations

from functools import partial

import pytest

from bourse.domain.admin_auth import LocalAdminSigner, encode_record
from bourse.domain.codec import encode_command
from bourse.domain.event_codec import decode_event, decode_events, encode_events
from bourse.domain.events import DepthUpdate, Event, Reply, Trade
from bourse.engine import Engine
from matching_service import pipeline
from matching_service.pipeline import join_records
from matching_service.workload import commands

pytestmark = pytest.mark.unit

SIGNER = LocalAdminSigner()
VERIFIER = SIGNER.verifier()
run_batch = partial(pipeline.run_batch, verifier=VERIFIER)


def _records(n: int, seed: int = 4, start: int = 0) -> list[tuple[int, bytes]]:
    return [(start + i, encode_record(c, SIGNER)) for i, c in enumerate(commands(n, seed=seed))]


def test_batch_publishes_what_the_engine_emits() -> None:
    records = _records(1_500)
    reference = Engine()
    want: list[Event] = []
    for cmd in commands(1_500, seed=4):
        want.extend(reference.process(cmd))
    engine = Engine()
    out = run_batch(engine, records, max_record_bytes=50_000)
    got = [e for r in out.records for e in decode_events(r)]
    assert got == want
    assert (out.first_offset, out.next_offset, out.commands) == (0, 1_500, 1_500)
    assert out.last_seq == want[-1].seq and out.events == len(want)
    assert engine.state_hash() == reference.state_hash()
    assert [decode_event(v) for _, v in out.replies] == [e for e in want if isinstance(e, Reply)]
    assert out.depth_symbols == list(
        dict.fromkeys(e.symbol for e in want if isinstance(e, DepthUpdate))
    )
    last_trades = {e.symbol: e for e in want if isinstance(e, Trade)}
    assert out.last_trades == last_trades


def test_replay_without_publishing_advances_the_same_state() -> None:
    records = _records(800)
    loud, quiet = Engine(), Engine()
    a = run_batch(loud, records)
    b = run_batch(quiet, records, publish=False, want_replies=False)
    assert b.records == [] and b.replies == []
    assert a.last_seq == b.last_seq
    assert loud.state_hash() == quiet.state_hash()


def test_records_hold_whole_commands_within_the_size_bound() -> None:
    engine = Engine()
    per_command = [engine.process(c) for c in commands(600, seed=8)]
    parts = [encode_events(out) for out in per_command]
    records = join_records(parts, max_record_bytes=20_000)
    assert all(len(r) <= max(20_000, max(map(len, parts))) for r in records)
    decoded = [decode_events(r) for r in records]
    assert [e for r in decoded for e in r] == [e for out in per_command for e in out]
    assert all(isinstance(r[-1], Reply) for r in decoded)  # no command is split


def test_undecodable_record_is_skipped_deterministically() -> None:
    records = _records(50)
    records.insert(10, (999, b'{"type": "NEW_ORDER", "body": {"oops": 1}}'))
    engine = Engine()
    out = run_batch(engine, records)
    assert out.undecodable == 1 and out.commands == 50
    assert out.next_offset == 49 + 1  # the last record's offset + 1


def test_snapshot_round_trip_and_validation() -> None:
    from matching_service.snapshots import decode_snapshot, encode_snapshot, snapshot_key

    engine = Engine()
    for c in commands(300, seed=2):
        engine.process(c)
    data, state_hash = encode_snapshot(engine, 300, 1234)
    restored, meta = decode_snapshot("k", data)
    assert restored.state_hash() == state_hash == engine.state_hash()
    assert (meta.offset, meta.last_seq) == (300, 1234)
    assert snapshot_key("p/", 300) == "p/00000000000000000300.snap" < snapshot_key("p/", 1000)
    header, payload = data.split(b"\n", 1)
    for bad in (
        b"garbage",
        header + b"\n" + payload[:-1],  # truncated
        header + b"\n" + payload[:-1] + bytes([payload[-1] ^ 1]),  # flipped bit
        header.replace(state_hash.encode(), b"0" * 64) + b"\n" + payload,  # wrong state hash
    ):
        with pytest.raises(ValueError):
            decode_snapshot("k", bad)


def test_a_command_larger_than_a_record_is_split_in_order() -> None:
    records = _records(400, seed=6)
    want = run_batch(Engine(), records)
    got = run_batch(Engine(), records, max_record_bytes=1_500)
    assert len(got.records) > len(want.records)
    assert [e for r in got.records for e in decode_events(r)] == [
        e for r in want.records for e in decode_events(r)
    ]
    assert got.replies == want.replies


def test_json_log_lines_carry_correlation_fields() -> None:
    import json
    import logging

    from matching_service.logs import JsonFormatter

    record = logging.makeLogRecord(
        {"name": "matching_service", "levelname": "INFO", "msg": "x %s", "args": ("y",),
         "requestId": "r-1", "seq": 7}
    )  # fmt: skip
    line = json.loads(JsonFormatter().format(record))
    assert (line["msg"], line["requestId"], line["seq"], line["level"]) == ("x y", "r-1", 7, "INFO")


def test_admin_records_need_the_admin_signature() -> None:
    from bourse.domain.commands import Command, CreateAccount, Deposit
    from bourse.domain.events import AdminAction

    setup: list[Command] = [CreateAccount("c1", 1, 7), Deposit("d1", 2, 7, "BTC", 10**8, "tx1")]
    good = [(i, SIGNER.signed_record(c)) for i, c in enumerate(setup)]
    forged = [
        (2, encode_command(Deposit("f1", 3, 7, "BTC", 10**8, "tx2"))),  # plain
        (3, LocalAdminSigner().signed_record(Deposit("f2", 3, 7, "BTC", 10**8, "tx3"))),
        (4, good[1][1]),  # a replay of the signed deposit
    ]
    engine = Engine()
    out = run_batch(engine, good + forged)
    assert engine.balances()[7] == {"BTC": (10**8, 0)}
    assert out.refused_admin == 2 and out.accounts == {7: "ACTIVE"}
    events = [e for r in out.records for e in decode_events(r)]
    replies = [e for e in events if isinstance(e, Reply)]
    assert [(r.request_id, r.code) for r in replies] == [
        ("c1", 0),
        ("d1", 0),
        ("f1", -1002),
        ("f2", -1002),
        ("d1", -1002),
    ]
    actions = [e for e in events if isinstance(e, AdminAction)]
    assert [(a.command, a.code) for a in actions] == [
        ("CREATE_ACCOUNT", 0),
        ("DEPOSIT", 0),
        ("DEPOSIT", -1002),
        ("DEPOSIT", -1002),
        ("DEPOSIT", -1002),
    ]
