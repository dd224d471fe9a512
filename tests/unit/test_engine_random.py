"""Seeded random streams over every order type: invariants after every command, and a
snapshot/restore in the middle that changes nothing that follows."""

from __future__ import annotations

import random
from typing import Any

import pytest

from bourse.domain.commands import (
    AddSymbol,
    CancelAll,
    CancelOrder,
    CancelReplace,
    CreateAccount,
    Deposit,
    NewOrder,
    SetAccountFees,
    SetAccountStatus,
    SetSymbolStatus,
    WithdrawRequest,
    WithdrawSettle,
)
from bourse.domain.enums import (
    CancelReplaceMode,
    OrderType,
    Side,
    StpMode,
    SymbolStatus,
    TimeInForce,
)
from bourse.engine import Engine
from bourse.engine.invariants import problems
from tests.unit.test_engine_helpers import E8, LOT, SYMBOL, spec

pytestmark = pytest.mark.unit

LIMIT_TIF = (OrderType.LIMIT, OrderType.STOP_LOSS_LIMIT, OrderType.TAKE_PROFIT_LIMIT)
STOPS = (OrderType.STOP_LOSS, OrderType.TAKE_PROFIT, OrderType.STOP_LOSS_LIMIT,
         OrderType.TAKE_PROFIT_LIMIT)  # fmt: skip


def _order(rng: random.Random, ts: int, acct: int, cid: str) -> NewOrder:
    order_type = rng.choice([OrderType.LIMIT] * 4 + list(OrderType))
    kw: dict[str, Any] = {}
    qty = rng.randint(1, 500) * LOT
    if order_type in LIMIT_TIF:
        kw["time_in_force"] = rng.choice([TimeInForce.GTC] * 3 + [TimeInForce.IOC, TimeInForce.FOK])
    if order_type in (*LIMIT_TIF, OrderType.LIMIT_MAKER):
        kw["price"] = rng.randint(95, 105) * E8
        if kw.get("time_in_force", TimeInForce.GTC) is TimeInForce.GTC and rng.random() < 0.2:
            kw["iceberg_qty"] = max(LOT, qty // rng.randint(2, 4) // LOT * LOT)
            if kw["iceberg_qty"] >= qty:
                del kw["iceberg_qty"]
    if order_type in STOPS:
        kw["stop_price"] = rng.randint(95, 105) * E8
    if order_type is OrderType.MARKET and rng.random() < 0.4:
        kw["quote_order_qty"] = rng.randint(1, 50_000) * E8 // 100
    else:
        kw["quantity"] = qty
    if rng.random() < 0.3:
        kw["stp_mode"] = rng.choice(list(StpMode))
    side = rng.choice([Side.BUY, Side.SELL])
    return NewOrder(f"n{ts}", ts, acct, SYMBOL, side, order_type, cid, **kw)


def stream(seed: int, n: int) -> list[Any]:
    rng = random.Random(seed)
    out: list[Any] = [AddSymbol("a", 0, spec(max_num_orders=8))]
    for acct in range(1, 5):
        out.append(CreateAccount(f"a{acct}", 0, acct))
        out.append(Deposit(f"du{acct}", 0, acct, "USDT", rng.randint(0, 3000) * E8))
        out.append(Deposit(f"db{acct}", 0, acct, "BTC", rng.randint(0, 30) * E8))
    requested: list[str] = []
    for ts in range(1, n + 1):
        r, acct, cid = rng.random(), rng.randint(1, 4), f"c{rng.randint(0, 12)}"
        if r < 0.55:
            out.append(_order(rng, ts, acct, cid))
        elif r < 0.75:
            by_id = rng.random() < 0.5
            out.append(CancelOrder(f"c{ts}", ts, acct, SYMBOL,
                                   rng.randint(1, ts + 1) if by_id else None,
                                   None if by_id else cid, "x"))  # fmt: skip
        elif r < 0.8:
            out.append(CancelAll(f"a{ts}", ts, acct, SYMBOL))
        elif r < 0.87:
            cancel = CancelOrder(f"r{ts}", ts, acct, SYMBOL, rng.randint(1, ts + 1))
            mode = rng.choice(list(CancelReplaceMode))
            out.append(CancelReplace(f"r{ts}", ts, mode, cancel, _order(rng, ts, acct, cid)))
        elif r < 0.92:
            out.append(Deposit(f"d{ts}", ts, acct, rng.choice(["BTC", "USDT"]),
                               rng.randint(1, 1000) * E8))  # fmt: skip
        elif r < 0.94:
            out.append(WithdrawRequest(f"w{ts}", ts, acct, rng.choice(["BTC", "USDT"]),
                                       rng.randint(1, 100) * E8, f"w{ts}"))  # fmt: skip
            requested.append(f"w{ts}")
        elif r < 0.955 and requested:
            wid = requested.pop(rng.randrange(len(requested)))
            outcome = rng.choice(["COMPLETED", "FAILED", "CANCELED"])
            out.append(WithdrawSettle(f"ws{ts}", ts, wid, outcome))
        elif r < 0.96:
            out.append(SetAccountStatus(f"fz{ts}", ts, acct, rng.random() < 0.3))
        elif r < 0.98:
            out.append(SetAccountFees(f"f{ts}", ts, acct, rng.randint(0, 300_000),
                                      rng.randint(0, 300_000)))  # fmt: skip
        else:
            status = rng.choice([SymbolStatus.TRADING] * 3 + [SymbolStatus.HALT])
            out.append(SetSymbolStatus(f"s{ts}", ts, SYMBOL, status))
    return out


@pytest.mark.parametrize("seed", range(12))
def test_random_stream_keeps_invariants_and_survives_restore(seed: int) -> None:
    commands = stream(seed, 300)
    half = len(commands) // 2
    engine = Engine()
    seq = 0
    kinds = set()
    after_half = []
    for i, cmd in enumerate(commands):
        events = engine.process(cmd)
        for event in events:
            seq += 1
            assert event.seq == seq
            kinds.add(type(event).__name__)
        assert not problems(engine), (i, cmd, problems(engine))
        if i == half:
            restored = Engine.restore(engine.snapshot())
            assert restored.state_hash() == engine.state_hash()
        elif i > half:
            after_half.append(events)
    assert [restored.process(c) for c in commands[half + 1 :]] == after_half
    assert restored.state_hash() == engine.state_hash()
    assert {"Trade", "ExecutionReport", "DepthUpdate", "AccountBalances"} <= kinds
