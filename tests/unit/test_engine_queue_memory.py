"""Memory is bounded by open orders, however many orders were placed and canceled (issue 15, 5).

A level's queue may hold canceled (dead) entries for a while, but never more dead entries
than live ones: ``len(level.orders) <= 2 * level.live``. Before the fix, 50,000
place/cancel cycles at one far price left 50,001 entries in that level's queue.

The cycles go straight to ``Engine.process`` (``Bench.run`` checks every invariant after each
command, which is quadratic here); the invariants are checked at checkpoints instead.
"""

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
)
from bourse.domain.enums import CancelReplaceMode, OrderType, Side, StpMode, TimeInForce
from bourse.domain.events import ExecutionReport, Reply
from bourse.engine import Engine
from bourse.engine.invariants import problems
from bourse.engine.symbol_state import SymbolState
from tests.unit.test_differential import Checker
from tests.unit.test_engine_helpers import E8, LOT, SYMBOL, Bench, reports, spec, trades

pytestmark = pytest.mark.unit

CYCLES = 50_000
GTC = TimeInForce.GTC


class Driver:
    """Places and cancels orders on a ``Bench``'s engine without per-command checks."""

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.engine = bench.engine
        self.n = 0

    def process(self, cmd: Any) -> list[Any]:
        events = self.engine.process(cmd)
        last = events[-1]
        assert isinstance(last, Reply) and last.code == 0, last
        return events

    def place(self, acct: int, side: str, qty: int, price: int, **kw: Any) -> int:
        """A LIMIT order (GTC unless told), quantities in lots, prices in USDT; its id."""
        self.n += 1
        kw.setdefault("time_in_force", GTC)
        events = self.process(
            NewOrder(f"q{self.n}", self.n, acct, SYMBOL, Side(side), OrderType.LIMIT,
                     f"k{self.n}", quantity=qty * LOT, price=price * E8, **kw)
        )  # fmt: skip
        order_id: int = reports(events)[0][0]
        return order_id

    def cancel(self, acct: int, order_id: int) -> None:
        self.n += 1
        self.process(CancelOrder(f"q{self.n}", self.n, acct, SYMBOL, order_id))


def sym_of(engine: Engine) -> SymbolState:
    return engine._symbols[SYMBOL]


def queue_entries(engine: Engine) -> int:
    book = sym_of(engine).book
    return sum(len(lv.orders) for side in (book.bids, book.asks) for lv in side.levels.values())


def assert_bounded(engine: Engine) -> None:
    """Queues hold at most as many dead entries as live ones, level by level; nothing
    else keeps a closed order."""
    sym = sym_of(engine)
    book = sym.book
    for side in (book.bids, book.asks):
        for level in side.levels.values():
            assert len(level.orders) <= 2 * level.live, (level.price, len(level.orders))
    open_orders = len(book.orders)
    assert queue_entries(engine) <= 2 * open_orders
    assert sum(len(v) for v in sym.by_account.values()) == open_orders + len(sym.stops)
    assert not problems(engine), problems(engine)


def assert_round_trip(engine: Engine) -> None:
    """A snapshot restores to the same state, with no dead entries at all."""
    restored = Engine.restore(engine.snapshot())
    assert restored.state_hash() == engine.state_hash()
    assert restored.snapshot() == engine.snapshot()
    assert queue_entries(restored) == len(sym_of(restored).book.orders)


def test_place_cancel_cycles_at_one_far_price_keep_one_entry() -> None:
    """The issue's case: one order rests far from the market; 50,000 more come and go."""
    d = Driver(Bench())
    d.place(1, "BUY", 1, 100)
    d.place(3, "SELL", 1, 1_000)
    for _ in range(CYCLES):
        d.cancel(2, d.place(2, "BUY", 1, 100))
    assert_bounded(d.engine)
    assert queue_entries(d.engine) == 2  # was 50,002 (50,001 at the far bid)
    assert_round_trip(d.engine)


def test_cycles_across_levels_canceling_from_the_middle_stay_bounded() -> None:
    """Orders rest on ten levels and are canceled in random order (front, middle, back);
    one order stays at each level throughout, so no level ever empties."""
    rng = random.Random(15)
    d = Driver(Bench(accounts=4, max_num_orders=1_000))
    for i in range(5):
        d.place(1, "BUY", 1, 100 + i)
        d.place(1, "SELL", 1, 200 + i)
    pool: list[tuple[int, int]] = []  # (account, order id) of open orders
    for i in range(CYCLES):
        acct = rng.randint(1, 4)
        if rng.random() < 0.5:
            pool.append((acct, d.place(acct, "BUY", rng.randint(1, 5), 100 + rng.randrange(5))))
        else:
            pool.append((acct, d.place(acct, "SELL", rng.randint(1, 5), 200 + rng.randrange(5))))
        if len(pool) > 40:
            d.cancel(*pool.pop(rng.randrange(len(pool))))
        if i % 5_000 == 0:
            assert_bounded(d.engine)
    assert_bounded(d.engine)
    assert len(sym_of(d.engine).book.orders) == 50
    assert queue_entries(d.engine) <= 100  # was 50,010
    assert_round_trip(d.engine)


def test_iceberg_refills_and_cancels_stay_bounded() -> None:
    """Icebergs are refilled (re-queued at the back) by takers and canceled wherever they
    sit: at a level that trades and at a far one that never does."""
    rng = random.Random(5)
    bench = Bench(
        accounts=4, btc=10_000, max_num_orders=1_000, max_num_iceberg_orders=100,
        iceberg_parts=1_000_000,
    )  # fmt: skip
    d = Driver(bench)
    d.place(1, "SELL", 90_000, 200, iceberg_qty=LOT)  # refilled one lot at a time
    d.place(1, "SELL", 10, 1_000, iceberg_qty=LOT)
    pool: list[int] = []
    for i in range(CYCLES):
        price = 200 if i % 2 else 1_000
        pool.append(d.place(3, "SELL", 3, price, iceberg_qty=LOT))
        # A taker takes the front slice at 200; that iceberg goes to the back of the queue.
        d.place(2, "BUY", 1, 200, time_in_force=TimeInForce.IOC)
        if len(pool) > 20:
            order_id = pool.pop(rng.randrange(len(pool)))
            if order_id in sym_of(d.engine).book.orders:  # not filled meanwhile
                d.cancel(3, order_id)
        if i % 5_000 == 0:
            assert_bounded(d.engine)
    assert_bounded(d.engine)
    assert queue_entries(d.engine) <= 2 * len(sym_of(d.engine).book.orders)
    assert_round_trip(d.engine)


def test_stop_cycles_leave_nothing_behind() -> None:
    """Untriggered stops placed and canceled: stops and the per-account index empty out."""
    d = Driver(Bench())
    d.place(1, "BUY", 1, 100)
    d.place(3, "SELL", 1, 101)
    d.place(2, "BUY", 1, 101, time_in_force=TimeInForce.IOC)  # last price 101
    for _ in range(CYCLES // 5):
        d.n += 1
        events = d.process(
            NewOrder(f"q{d.n}", d.n, 2, SYMBOL, Side.SELL, OrderType.STOP_LOSS_LIMIT,
                     f"s{d.n}", quantity=LOT, price=90 * E8, stop_price=95 * E8,
                     time_in_force=GTC)
        )  # fmt: skip
        d.cancel(2, reports(events)[0][0])
    sym = sym_of(d.engine)
    assert len(sym.stops) == 0 and len(sym.book.orders) == 1
    assert_bounded(d.engine)


def test_compaction_keeps_time_priority() -> None:
    """Canceling from the middle (enough to compact the queue) keeps arrival order, and an
    engine restored from a snapshot matches exactly as the compacted one does."""
    b = Bench()
    ids = [reports(b.order(1 + i % 3, "SELL", 1, 100))[0][0] for i in range(7)]
    for order_id in (ids[1], ids[3], ids[2], ids[5]):
        b.cancel(1 + (order_id - 1) % 3, order_id)
    level = sym_of(b.engine).book.asks.levels[100 * E8]
    assert level.live == 3 and len(level.orders) <= 6
    restored = Engine.restore(b.engine.snapshot())
    assert restored.state_hash() == b.engine.state_hash()
    taker = NewOrder("t", 99, 4, SYMBOL, Side.BUY, OrderType.LIMIT, "t", quantity=3 * LOT,
                     price=100 * E8, time_in_force=GTC)  # fmt: skip
    events = b.run(taker)
    assert trades(events) == [(100, 1)] * 3
    assert [r[0] for r in reports(events) if r[1] == "TRADE"] == [
        ids[0], 8, ids[4], 8, ids[6], 8,
    ]  # fmt: skip
    again = restored.process(taker)
    assert [e.seq for e in again] == [e.seq for e in events]
    assert again == events
    assert restored.state_hash() == b.engine.state_hash()


def test_deep_queues_with_cancels_from_the_middle_match_the_reference() -> None:
    """The random differential streams rarely cancel from the middle of a queue (levels are
    thin there), so this stream builds deep levels on purpose: icebergs that refill, every
    STP mode, cancels by id and client id from anywhere in a queue, cancel-replace and
    cancel-all, takers that sweep. The fast engine (compacting its queues; restored from a
    snapshot every 250 commands) must give the reference's events for every command."""
    rng = random.Random(20_261_207)
    checker = Checker()
    checker.run(AddSymbol("add", 0, spec(max_num_orders=1_000, max_num_iceberg_orders=1_000)))
    accounts = (1, 2, 3)
    for acct in accounts:
        checker.run(CreateAccount(f"acct-{acct}", 0, acct))
        checker.run(Deposit(f"dep-{acct}-usdt", 0, acct, "USDT", 10**7 * E8))
        checker.run(Deposit(f"dep-{acct}-btc", 0, acct, "BTC", 10**5 * E8))
    stp_modes = (None, StpMode.NONE, StpMode.EXPIRE_MAKER, StpMode.EXPIRE_TAKER,
                 StpMode.EXPIRE_BOTH)  # fmt: skip
    placed: list[tuple[int, int, str]] = []  # (account, order id, client id), maybe closed
    middle = 0  # cancels of an order at neither end of its queue
    for n in range(1, 3_001):
        acct = rng.choice(accounts)
        roll = rng.random()
        book = sym_of(checker.fast).book
        if roll < 0.55 or not placed:
            is_buy = rng.random() < 0.5
            crossing = rng.random() < 0.06
            if is_buy:
                price = rng.choice((101, 102)) if crossing else rng.choice((98, 99, 100))
            else:
                price = rng.choice((99, 100)) if crossing else rng.choice((101, 102, 103))
            qty = rng.randint(1, 20) if crossing else rng.randint(2, 6)
            iceberg = LOT if not crossing and rng.random() < 0.3 else None
            cmd: Any = NewOrder(
                f"n{n}", n, acct, SYMBOL, Side.BUY if is_buy else Side.SELL, OrderType.LIMIT,
                f"c{n}", quantity=qty * LOT, price=price * E8, iceberg_qty=iceberg,
                time_in_force=TimeInForce.IOC if crossing and rng.random() < 0.5 else GTC,
                stp_mode=rng.choice(stp_modes),
            )  # fmt: skip
            events = checker.run(cmd)
            if isinstance(events[0], ExecutionReport) and events[0].order.order_id:
                placed.append((acct, events[0].order.order_id, f"c{n}"))
            continue
        if roll < 0.96:
            owner, order_id, cid = placed.pop(rng.randrange(len(placed)))
            order = book.orders.get(order_id)
            if order is not None:
                queue = book.side(order.is_buy).levels[order.price].orders
                middle += queue[0] is not order and queue[-1] is not order
            by_cid = rng.random() < 0.3
            cancel = CancelOrder(f"x{n}", n, owner, SYMBOL, None if by_cid else order_id,
                                 cid if by_cid else None, f"cx{n}")  # fmt: skip
            if rng.random() < 0.15:
                new = NewOrder(f"x{n}", n, owner, SYMBOL, Side.SELL, OrderType.LIMIT, f"r{n}",
                               quantity=2 * LOT, price=103 * E8, time_in_force=GTC)  # fmt: skip
                mode = rng.choice(tuple(CancelReplaceMode))
                checker.run(CancelReplace(f"x{n}", n, mode, cancel, new))
            else:
                checker.run(cancel)
        else:
            checker.run(CancelAll(f"a{n}", n, acct, SYMBOL))
        if n % 250 == 0:
            checker.compare_queries(list(accounts))
            restored = Engine.restore(checker.fast.snapshot())
            assert restored.state_hash() == checker.fast.state_hash()
            checker.fast = restored
        assert_queues_bounded(checker.fast)
    checker.compare_queries(list(accounts))
    checker.finish()
    assert middle > 100, middle  # 149
    assert checker.counts.get("Trade", 0) > 300
    assert checker.counts.get("PreventedMatch", 0) > 50


def assert_queues_bounded(engine: Engine) -> None:
    book = sym_of(engine).book
    for side in (book.bids, book.asks):
        for level in side.levels.values():
            assert len(level.orders) <= 2 * level.live, (level.price, len(level.orders))
