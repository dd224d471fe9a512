"""Determinism, state hash and snapshots: replay gives byte-identical events and state."""

from __future__ import annotations

from itertools import islice

import orjson
import pytest

from bench.workload import commands, setup_commands
from bourse.domain.commands import (
    Command,
    CreateAccount,
    Deposit,
    SetAccountFees,
    WithdrawRequest,
    WithdrawSettle,
)
from bourse.domain.enums import OrderType, StpMode
from bourse.engine import Engine
from bourse.engine.invariants import problems
from tests.unit.test_engine_helpers import E8, LOT, Bench

pytestmark = pytest.mark.unit

N = 3_000


def _stream() -> list[Command]:
    return [*setup_commands(20), *islice(commands(N, accounts=20, seed=7), N)]


def test_two_runs_give_identical_events_and_hash() -> None:
    stream = _stream()
    a, b = Engine(), Engine()
    for cmd in stream:
        assert a.process(cmd) == b.process(cmd)
    assert a.state_hash() == b.state_hash()
    assert a.snapshot() == b.snapshot()


def test_invariants_hold_through_the_standard_workload() -> None:
    engine = Engine()
    seq = 0
    for i, cmd in enumerate(_stream()):
        for event in engine.process(cmd):
            seq += 1
            assert event.seq == seq
        if i % 50 == 0:
            assert not problems(engine), problems(engine)
    assert not problems(engine)


def test_snapshot_restore_same_hash_and_same_following_events() -> None:
    stream = _stream()
    cut = len(stream) // 2
    original = Engine()
    for cmd in stream[:cut]:
        original.process(cmd)
    restored = Engine.restore(original.snapshot())
    assert restored.state_hash() == original.state_hash()
    assert restored.balances() == original.balances()
    assert restored.depth("BTCUSDT", 50) == original.depth("BTCUSDT", 50)
    for cmd in stream[cut:]:
        assert restored.process(cmd) == original.process(cmd)
    assert restored.state_hash() == original.state_hash()


def test_snapshot_with_stops_icebergs_fees_and_partial_fills_round_trips() -> None:
    b = Bench()
    b.admin(SetAccountFees, 2, 50_000, 70_000)
    b.order(1, "SELL", 30, 100, iceberg_qty=10 * LOT)
    b.order(2, "BUY", 15, 100)
    b.order(3, "SELL", 5, 90, type=OrderType.STOP_LOSS_LIMIT, stop_price=95 * E8)
    b.order(4, "BUY", 5, 99, stp_mode=StpMode.EXPIRE_BOTH)
    restored = Engine.restore(b.engine.snapshot())
    assert restored.state_hash() == b.engine.state_hash()
    assert not problems(restored)
    outputs = []
    for engine in (b.engine, restored):
        # Same commands (same ts and client ids) into both engines.
        bench = Bench.__new__(Bench)
        bench.engine, bench.ts, bench.oid, bench.seq = engine, b.ts, b.oid, engine._seq
        bench.admin_n = b.admin_n
        outputs.append([bench.order(2, "BUY", 40, 100), bench.order(4, "SELL", 50, 90)])
    assert outputs[0] == outputs[1]
    assert restored.state_hash() == b.engine.state_hash()


def test_hash_ignores_history_that_left_no_state() -> None:
    # A canceled order lingers in its level's queue (lazy deletion); the hash must not see it.
    b = Bench()
    b.order(1, "BUY", 10, 100)
    b.order(2, "BUY", 10, 100)
    b.cancel(1, 1)
    assert Engine.restore(b.engine.snapshot()).state_hash() == b.engine.state_hash()
    # An emptied balance is the same state as one never used.
    x, y = Engine(), Engine()
    for engine in (x, y):
        engine.process(CreateAccount("a", 0, 1))
        engine.process(Deposit("d", 0, 1, "ETH", E8, "tx1"))
        engine.process(WithdrawRequest("w", 0, 1, "ETH", E8, "w1"))
        engine.process(WithdrawSettle("s", 0, "w1", "COMPLETED"))
    assert x.balances() == {}
    y._bal.entry(1, "BTC")  # touched, never funded
    y._bal.entry(1, "ETH")
    assert x.state_hash() == y.state_hash()


def test_snapshot_is_plain_json_and_rejects_garbage() -> None:
    b = Bench()
    b.order(1, "BUY", 10, 100)
    state = orjson.loads(b.engine.snapshot())
    assert state["version"] == 3
    with pytest.raises(ValueError):
        Engine.restore(b"{}")
    state["seq"] = "1"
    with pytest.raises(ValueError):
        Engine.restore(orjson.dumps(state))
