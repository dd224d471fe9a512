"""Dry runs (issue 20, item 3; docs/engine.md, "Dry runs"): an order run on a copy of its
symbol at a point of the sequence predicts exactly what the same order does as the next
command, and changes nothing but the seq its own reply takes.

The stream is the benchmark's standard workload (stops, trailing stops, icebergs, STP,
MARKET by quote, thin accounts), so the predictions cover every path the engine has; each
order of it is first dry-run, then placed, on a book of over 1,000 resting orders.
"""

from __future__ import annotations

import json
from dataclasses import replace
from itertools import islice

import msgspec
import pytest

from bench.workload import commands, setup_commands
from bourse.domain.commands import DryRunOrder, NewOrder
from bourse.domain.events import Event, PreventedMatch, Reply
from bourse.engine import Engine

pytestmark = pytest.mark.unit

ACCOUNTS = 200
WARM = 8_000  # commands before the dry runs start: the book then holds over 1,000 orders
CHECKED = 500


def _without_seq(events: list[Event]) -> list[bytes]:
    out = []
    for event in events:
        event.seq = 0
        out.append(msgspec.json.encode(event))
    return out


def _resting(engine: Engine) -> int:
    sym = engine._symbols["BTCUSDT"]
    return len(sym.book.orders)


def test_dry_runs_predict_the_next_order_exactly_and_change_nothing() -> None:
    dry, twin = Engine(), Engine()  # the twin never sees a dry run
    for cmd in setup_commands(ACCOUNTS):
        dry.process(cmd)
        twin.process(cmd)
    stream = commands(WARM + CHECKED * 3, ACCOUNTS, seed=7)
    for cmd in islice(stream, WARM):
        dry.process(cmd)
        twin.process(cmd)
    assert _resting(dry) >= 1_000
    orders = fills = prevented = rejected = 0
    for cmd in stream:
        if type(cmd) is NewOrder:
            before = dry.state_hash(seq=False)
            (reply,) = dry.process(DryRunOrder(f"dry-{cmd.request_id}", cmd.ts, cmd), now=0)
            assert isinstance(reply, Reply) and reply.command == "DRY_RUN_ORDER"
            assert dry.state_hash(seq=False) == before
            placed = dry.process(cmd)
            real = placed[-1]
            assert isinstance(real, Reply)
            assert (reply.code, reply.msg) == (real.code, real.msg)
            assert reply.parts == real.parts
            if reply.code == 0:
                detail = json.loads(reply.detail)
                assert detail["asOfSeq"] == reply.seq - 1
                real_prevented = [e for e in placed if isinstance(e, PreventedMatch)]
                assert [p["preventedMatchId"] for p in detail["preventedMatches"]] == [
                    e.prevented_match_id for e in real_prevented
                ]
                fills += bool(reply.parts[0].result and reply.parts[0].result.fills)
                prevented += bool(real_prevented)
            else:
                rejected += 1
            orders += 1
            assert _without_seq(placed) == _without_seq(twin.process(cmd))
        else:
            assert _without_seq(dry.process(cmd)) == _without_seq(twin.process(cmd))
        if orders >= CHECKED:
            break
    assert dry.state_hash(seq=False) == twin.state_hash(seq=False)
    # The stream exercised what a prediction must get right.
    assert orders == CHECKED and fills > 50 and rejected > 0


def test_a_dry_run_of_an_unknown_symbol_is_refused_and_changes_nothing() -> None:
    engine = Engine()
    for cmd in setup_commands(4):
        engine.process(cmd)
    order = next(c for c in commands(50, 4, seed=1) if type(c) is NewOrder)
    before = engine.state_hash(seq=False)
    (reply,) = engine.process(DryRunOrder("r", order.ts, replace(order, symbol="NOPE")))
    assert isinstance(reply, Reply) and reply.code == -1121
    assert reply.detail == ""
    assert engine.state_hash(seq=False) == before
