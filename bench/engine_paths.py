"""`make bench-engine-paths`: what each path through ``Engine.process`` costs, in isolation.

For each path (resting LIMIT, LIMIT with one fill, cancel, MARKET by quantity and by quote,
stop trigger, a fill that 100 trailing stops watch, iceberg refill, self-trade prevention, a
dry run) a
fresh engine with the standard
workload's symbol and a background book of 400 resting orders (far from the prices the path
uses) runs ``--commands`` iterations. An iteration may place what the path needs untimed (the
maker a taker fills, the stop a trade triggers) and times one command, checking that it did
what the path says (one trade, one trigger, one refill, one prevented match, a success);
a command that did not is counted as failed. The garbage collector runs as in the matching
service. Prints one table row per path (mean, p50 and p99 microseconds per timed command,
events per timed command) and, with ``--profile N``, cProfile's top N functions per path (a
second run of the path with the profiler on around the timed commands only).

Ends with ``engine-paths: <P> paths, <N> commands each, <F> failed``.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import time
from array import array
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "bourse")]

from bench.production_gc import production_gc  # noqa: E402
from bench.workload import E8, SPEC, START_MID_TICKS, STEP, SYMBOL, TICK  # noqa: E402
from bourse.domain.commands import (  # noqa: E402
    AddSymbol,
    CancelOrder,
    Command,
    CreateAccount,
    Deposit,
    DryRunOrder,
    NewOrder,
)
from bourse.domain.enums import STOP_TYPES, ExecutionType, OrderType, Side, TimeInForce  # noqa: E402
from bourse.domain.events import (  # noqa: E402
    Event,
    ExecutionReport,
    PreventedMatch,
    Reply,
    Trade,
)
from bourse.engine import Engine  # noqa: E402

MID = START_MID_TICKS
MAKERS = 100  # accounts 1..100 place makers round-robin (per-account order limits)
TAKER = 101
QTY = 1_000 * STEP  # 0.01 BTC
BUY, SELL = Side.BUY, Side.SELL
LIMIT, GTC = OrderType.LIMIT, TimeInForce.GTC

Check = Callable[[list[Event]], bool]


class Runner:
    """One path's engine; ``timed`` runs and times a command, ``untimed`` just runs it."""

    def __init__(self) -> None:
        self.engine = Engine()
        self.n = 0
        self.latencies = array("q")
        self.events = 0
        self.failed = 0
        self.profile: cProfile.Profile | None = None
        for cmd in _setup():
            self.engine.process(cmd)

    def rid(self) -> str:
        self.n += 1
        return f"p{self.n}"

    def untimed(self, cmd: Command) -> list[Event]:
        events = self.engine.process(cmd)
        if _reply(events).code:
            self.failed += 1
        return events

    def timed(self, cmd: Command, check: Check) -> list[Event]:
        process = self.engine.process
        profile = self.profile
        clock = time.perf_counter_ns
        if profile is not None:
            profile.enable()
        t0 = clock()
        events = process(cmd)
        elapsed = clock() - t0
        if profile is not None:
            profile.disable()
        self.latencies.append(elapsed)
        self.events += len(events)
        if _reply(events).code or not check(events):
            self.failed += 1
        return events


def _setup() -> list[Command]:
    out: list[Command] = [AddSymbol("setup", 0, SPEC)]
    for acct in range(1, TAKER + 1):
        out.append(CreateAccount(f"a{acct}", 0, acct))
        out.append(Deposit(f"u{acct}", 0, acct, "USDT", 1_000_000_000 * E8))
        out.append(Deposit(f"b{acct}", 0, acct, "BTC", 100_000 * E8))
    # A background book, far from where the paths trade, and a last price at the mid.
    for k in range(200):
        acct = k % MAKERS + 1
        out.append(_limit(f"bb{k}", acct, BUY, MID - 50_000 - k, QTY))
        out.append(_limit(f"ba{k}", acct, SELL, MID + 50_000 + k, QTY))
    out.append(_limit("last-maker", 1, SELL, MID + 1, QTY))
    out.append(_limit("last-taker", TAKER, BUY, MID + 1, QTY))
    return out


def _limit(cid: str, acct: int, side: Side, ticks: int, qty: int, **extra: object) -> NewOrder:
    return NewOrder(cid, 0, acct, SYMBOL, side, LIMIT, cid, qty, None, ticks * TICK, None, GTC,
                    **extra)  # type: ignore[arg-type]  # fmt: skip


def _reply(events: Sequence[Event]) -> Reply:
    reply = events[-1]
    assert isinstance(reply, Reply)
    return reply


def _order_id(events: Sequence[Event]) -> int:
    result = _reply(events).parts[0].result
    assert result is not None
    return result.order.order_id


def _trades(n: int) -> Check:
    return lambda events: sum(type(e) is Trade for e in events) == n


def _maker(run: Runner, i: int, side: Side, ticks: int, qty: int = QTY, **extra: object) -> int:
    cid = run.rid()
    return _order_id(run.untimed(_limit(cid, i % MAKERS + 1, side, ticks, qty, **extra)))


def resting_limit(run: Runner, i: int) -> None:
    cid = run.rid()
    cmd = _limit(cid, i % MAKERS + 1, BUY, MID - 1_000 - i % 500, QTY)
    run.timed(cmd, _trades(0))


def limit_one_fill(run: Runner, i: int) -> None:
    _maker(run, i, SELL, MID)
    cid = run.rid()
    run.timed(_limit(cid, TAKER, BUY, MID, QTY), _trades(1))


def cancel(run: Runner, i: int) -> None:
    order_id = _maker(run, i, BUY, MID - 1_000 - i % 500)
    cmd = CancelOrder(run.rid(), 0, i % MAKERS + 1, SYMBOL, order_id)
    run.timed(cmd, lambda events: True)


def market_one_fill(run: Runner, i: int) -> None:
    _maker(run, i, SELL, MID)
    cid = run.rid()
    run.timed(NewOrder(cid, 0, TAKER, SYMBOL, BUY, OrderType.MARKET, cid, QTY), _trades(1))


def market_by_quote(run: Runner, i: int) -> None:
    _maker(run, i, SELL, MID)
    cid = run.rid()
    quote = MID * TICK * QTY // E8
    cmd = NewOrder(cid, 0, TAKER, SYMBOL, BUY, OrderType.MARKET, cid, None, quote)
    run.timed(cmd, _trades(1))


def stop_trigger(run: Runner, i: int) -> None:
    """A SELL trade at a price one tick lower each time triggers the STOP_LOSS_LIMIT placed
    at that price; triggered, it rests as an ask far above."""
    price = MID - i
    _maker(run, i, BUY, price)
    cid = run.rid()
    stop = NewOrder(cid, 0, (i + 1) % MAKERS + 1, SYMBOL, SELL, OrderType.STOP_LOSS_LIMIT, cid,
                    QTY, None, (price + 10_000) * TICK, price * TICK, GTC)  # fmt: skip
    run.untimed(stop)
    cid = run.rid()
    run.timed(_limit(cid, TAKER, SELL, price, QTY), lambda ev: _trades(1)(ev) and _triggered(ev))


def fill_watched_by_trailing_stops(run: Runner, i: int) -> None:
    """LIMIT with one fill while 100 trailing stops (20%: none fires) watch every trade."""
    if i == 0:
        for k in range(100):
            cid = run.rid()
            run.untimed(NewOrder(cid, 0, k % MAKERS + 1, SYMBOL, SELL, OrderType.STOP_LOSS, cid,
                                 QTY, trailing_delta=2_000))  # fmt: skip
    limit_one_fill(run, i)


def _triggered(events: Sequence[Event]) -> bool:
    return any(
        type(e) is ExecutionReport
        and e.exec_type is ExecutionType.NEW
        and e.is_working
        and e.order.type in STOP_TYPES
        for e in events
    )


def iceberg_refill(run: Runner, i: int) -> None:
    """The taker takes the iceberg's visible slice: the engine shows the next one."""
    acct = i % MAKERS + 1
    order_id = _maker(run, i, SELL, MID, 2 * QTY, iceberg_qty=QTY)
    cid = run.rid()
    run.timed(_limit(cid, TAKER, BUY, MID, QTY), lambda ev: _trades(1)(ev) and _refilled(ev))
    run.untimed(CancelOrder(run.rid(), 0, acct, SYMBOL, order_id))


def _refilled(events: Sequence[Event]) -> bool:
    return any(
        type(e) is ExecutionReport and e.is_maker and e.status == "PARTIALLY_FILLED" for e in events
    )


def self_trade_prevented(run: Runner, i: int) -> None:
    """An account's BUY meets its own SELL (EXPIRE_MAKER, the symbol's default)."""
    acct = i % MAKERS + 1
    _maker(run, i, SELL, MID)
    cid = run.rid()
    events = run.timed(
        _limit(cid, acct, BUY, MID, QTY),
        lambda ev: sum(type(e) is PreventedMatch for e in ev) == 1,
    )
    run.untimed(CancelOrder(run.rid(), 0, acct, SYMBOL, _order_id(events)))


def dry_run_one_fill(run: Runner, i: int) -> None:
    """A dry run of a LIMIT that would fill one maker: the copy of the book (400 orders) is
    most of its cost. The maker is cancelled after, so the book stays the same size."""
    acct = i % MAKERS + 1
    order_id = _maker(run, i, SELL, MID)
    cid = run.rid()
    dry = DryRunOrder(cid, 0, _limit(cid, TAKER, BUY, MID, QTY))
    run.timed(dry, _predicted_fills(1))
    run.untimed(CancelOrder(run.rid(), 0, acct, SYMBOL, order_id))


def _predicted_fills(n: int) -> Check:
    def check(events: list[Event]) -> bool:
        result = _reply(events).parts[0].result
        return len(events) == 1 and result is not None and len(result.fills) == n

    return check


PATHS: dict[str, Callable[[Runner, int], None]] = {
    "resting LIMIT": resting_limit,
    "LIMIT with one fill": limit_one_fill,
    "cancel": cancel,
    "MARKET, one fill": market_one_fill,
    "MARKET by quote, one fill": market_by_quote,
    "stop trigger (the trade that triggers)": stop_trigger,
    "LIMIT with one fill, 100 trailing stops watching": fill_watched_by_trailing_stops,
    "iceberg refill (the fill that refills)": iceberg_refill,
    "STP EXPIRE_MAKER (the prevented taker)": self_trade_prevented,
    "dry run of a LIMIT with one fill (order/test dryRun)": dry_run_one_fill,
}


def run_path(path: Callable[[Runner, int], None], count: int, profile: bool) -> Runner:
    run = Runner()
    if profile:
        run.profile = cProfile.Profile()
    with production_gc():
        for i in range(count):
            path(run, i)
    return run


def _row(name: str, run: Runner) -> str:
    ordered = sorted(run.latencies)
    n = len(ordered)
    mean = sum(ordered) / n / 1e3
    p50 = ordered[n // 2] / 1e3
    p99 = ordered[min(n - 1, int(n * 0.99))] / 1e3
    return (
        f"| {name} | {n} | {mean:.1f} | {p50:.1f} | {p99:.1f} | {run.events / n:.2f} "
        f"| {run.failed} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=20_000, help="timed commands per path")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="also print cProfile's top N functions per path")  # fmt: skip
    parser.add_argument("--only", default="", help="run the paths whose name contains this")
    args = parser.parse_args()
    paths = {name: fn for name, fn in PATHS.items() if args.only.lower() in name.lower()}
    load_before = os.getloadavg()[0]
    print(f"{args.commands} timed commands per path; load average {load_before:.2f} "
          f"before, on {os.cpu_count()} CPUs")  # fmt: skip
    print("| path | commands | us/cmd (mean) | p50 us | p99 us | events/cmd | failed |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    failed = 0
    for name, fn in paths.items():
        run = run_path(fn, args.commands, profile=False)
        failed += run.failed
        print(_row(name, run), flush=True)
    if args.profile:
        for name, fn in paths.items():
            run = run_path(fn, args.commands, profile=True)
            assert run.profile is not None
            out = io.StringIO()
            pstats.Stats(run.profile, stream=out).sort_stats("tottime").print_stats(args.profile)
            print(f"\n## {name}: cProfile, top {args.profile} by own time")
            print(out.getvalue().split("\n\n", 1)[-1].rstrip())
    print(f"load average {os.getloadavg()[0]:.2f} after")
    print(f"engine-paths: {len(paths)} paths, {args.commands} commands each, {failed} failed")


if __name__ == "__main__":
    main()
