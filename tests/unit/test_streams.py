"""Binance stream payloads from engine events (bourse.streams): shapes, the diff depth stream
against Binance's documented local-book procedure, klines and the 24 h window against the
trades, size limits."""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bourse.domain.amounts import format_units
from bourse.domain.events import DepthUpdate, Event, Trade
from bourse.engine import Engine
from bourse.record.intervals import INTERVALS, bucket
from bourse.streams import frames, payloads
from bourse.streams.market import MINI_TICKER_ARR, Batch, StreamState
from matching_service.workload import commands
from tests.binance_book import LocalOrderBook

pytestmark = pytest.mark.unit

SYMBOL = "BTCUSDT"


def _run(count: int, seed: int, batch: int = 40) -> Iterator[tuple[Engine, list[Event]]]:
    """The workload through the engine, ``batch`` commands per yielded run of events."""
    engine = Engine()
    pending: list[Event] = []
    for i, cmd in enumerate(commands(count, seed=seed), 1):
        pending.extend(engine.process(cmd))
        if i % batch == 0:
            yield engine, pending
            pending = []
    yield engine, pending


def _json(data: bytes) -> Any:
    return json.loads(data)


def _messages(out: Batch, stream: str) -> list[Any]:
    return [_json(m.data) for m in out.market if m.stream == stream]


def _engine_levels(engine: Engine, symbol: str) -> tuple[list[Any], list[Any]]:
    _, bids, asks = engine.depth(symbol, 1_000_000)
    fmt = [(format_units(p), format_units(q)) for p, q in bids]
    return fmt, [(format_units(p), format_units(q)) for p, q in asks]


def test_local_book_by_binance_procedure_equals_engine_after_5000_commands() -> None:
    """Snapshots are taken in the middle of a batch, so the first diff after them straddles
    lastUpdateId (U <= lastUpdateId + 1 <= u), as on Binance."""
    state = StreamState()
    engine = Engine()
    clients = {s: LocalOrderBook() for s in ("BTCUSDT", "ETHUSDT", "ETHBTC")}
    snapshot_at = {"BTCUSDT": 137, "ETHUSDT": 1_215, "ETHBTC": 2_508}  # command numbers
    snapshots: dict[str, dict[str, Any]] = {}
    pending: list[Event] = []
    for i, cmd in enumerate(commands(5_000, seed=7), 1):
        pending.extend(engine.process(cmd))
        for symbol, at in snapshot_at.items():
            if i == at:
                last, bids, asks = engine.depth(symbol, 5000)
                snapshots[symbol] = payloads.partial_depth(last, bids, asks)
        if i % 40 and i != 5_000:
            continue
        out = state.apply(pending)
        pending = []
        for symbol, client in clients.items():
            for diff in _messages(out, f"{symbol.lower()}@depth@100ms"):
                client.on_event(diff)
            if symbol in snapshots and client.last is None:
                client.on_snapshot(snapshots[symbol])
    for symbol, client in clients.items():
        assert client.straddled, symbol
        assert client.last == engine.depth(symbol, 1)[0]
        assert client.top() == _engine_levels(engine, symbol), symbol


def test_partial_depth_and_book_ticker_follow_the_engine() -> None:
    state = StreamState()
    for engine, events in _run(1_500, seed=3):
        out = state.apply(events)
        for symbol in engine.symbols():
            name = symbol.lower()
            partial = _messages(out, f"{name}@depth20@100ms")
            if not partial:
                continue
            last, bids, asks = engine.depth(symbol, 20)
            assert partial[-1] == payloads.partial_depth(last, bids, asks)
            assert _messages(out, f"{name}@depth5") == [
                payloads.partial_depth(last, bids[:5], asks[:5])
            ]
            tickers = _messages(out, f"{name}@bookTicker")
            if tickers:
                t = tickers[-1]
                assert t["s"] == symbol
                assert (t["b"], t["B"]) == (
                    (format_units(bids[0][0]), format_units(bids[0][1]))
                    if bids
                    else ("0.00000000",) * 2
                )
                assert (t["a"], t["A"]) == (
                    (format_units(asks[0][0]), format_units(asks[0][1]))
                    if asks
                    else ("0.00000000",) * 2
                )


def _all_events(count: int, seed: int) -> list[Event]:
    engine = Engine()
    out: list[Event] = []
    for cmd in commands(count, seed=seed):
        out.extend(engine.process(cmd))
    return out


def test_trade_and_agg_trade_streams_cover_every_trade() -> None:
    events = _all_events(2_000, seed=5)
    out = StreamState().apply(events)
    trades = [e for e in events if isinstance(e, Trade) and e.symbol == SYMBOL]
    got = _messages(out, "btcusdt@trade")
    assert [m["t"] for m in got] == [t.trade_id for t in trades]
    first = got[0]
    assert set(first) == {"e", "E", "s", "t", "p", "q", "T", "m", "M"}
    assert first["e"] == "trade" and first["p"] == format_units(trades[0].price)
    aggs = _messages(out, "btcusdt@aggTrade")
    # Runs partition the trades: contiguous, in order, quantities add up.
    assert aggs[0]["f"] == trades[0].trade_id and aggs[-1]["l"] == trades[-1].trade_id
    for a, b in itertools.pairwise(aggs):
        assert b["f"] == a["l"] + 1
    by_id = {t.trade_id: t for t in trades}
    for a in aggs:
        run = [by_id[i] for i in range(a["f"], a["l"] + 1)]
        assert a["a"] == a["f"]
        assert {t.price for t in run} == {int(Decimal(a["p"]) * 10**8)}
        assert sum(t.qty for t in run) == int(Decimal(a["q"]) * 10**8)


def test_klines_of_every_interval_match_the_trades() -> None:
    events = _all_events(1_500, seed=11)
    trades = [e for e in events if isinstance(e, Trade) and e.symbol == SYMBOL]
    state = StreamState()
    # Small batches: klines are published per batch, closed ones with x = true.
    last: dict[str, dict[str, Any]] = {}
    closed: dict[str, list[dict[str, Any]]] = {i: [] for i in INTERVALS}
    for i in range(0, len(events), 50):
        out = state.apply(events[i : i + 50])
        for interval in INTERVALS:
            for m in _messages(out, f"btcusdt@kline_{interval}"):
                k = m["k"]
                assert k["i"] == interval and k["s"] == SYMBOL
                if k["x"]:
                    closed[interval].append(k)
                else:
                    last[interval] = k
    for interval in INTERVALS:
        k = last[interval]
        in_bucket = [t for t in trades if bucket(interval, t.ts)[0] == k["t"]]
        assert k["T"] == bucket(interval, trades[-1].ts)[1]
        assert k["n"] == len(in_bucket)
        assert k["f"] == in_bucket[0].trade_id and k["L"] == in_bucket[-1].trade_id
        assert k["o"] == format_units(in_bucket[0].price)
        assert k["c"] == format_units(in_bucket[-1].price)
        assert k["h"] == format_units(max(t.price for t in in_bucket))
        assert k["l"] == format_units(min(t.price for t in in_bucket))
        assert k["v"] == format_units(sum(t.qty for t in in_bucket))
        taker_buys = [t for t in in_bucket if not t.is_buyer_maker]
        assert k["V"] == format_units(sum(t.qty for t in taker_buys))
        # Every closed kline plus the open one cover every trade exactly once.
        assert sum(c["n"] for c in closed[interval]) + k["n"] == len(trades)


def test_ticker_and_mini_ticker_arr() -> None:
    events = _all_events(1_500, seed=13)
    trades = [e for e in events if isinstance(e, Trade) and e.symbol == SYMBOL]
    out = StreamState().apply(events)
    (ticker,) = _messages(out, "btcusdt@ticker")
    assert ticker["e"] == "24hrTicker"
    assert ticker["n"] == len(trades)  # the workload spans far less than a day
    assert ticker["F"] == trades[0].trade_id and ticker["L"] == trades[-1].trade_id
    assert ticker["o"] == format_units(trades[0].price)
    assert ticker["c"] == format_units(trades[-1].price)
    assert ticker["Q"] == format_units(trades[-1].qty)
    assert ticker["q"] == format_units(sum(t.quote_qty for t in trades))
    assert ticker["C"] - ticker["O"] == 86_400_000
    (arr,) = _messages(out, MINI_TICKER_ARR)
    (mini,) = _messages(out, "btcusdt@miniTicker")
    assert mini in arr and {m["s"] for m in arr} >= {SYMBOL}
    assert set(mini) == {"e", "E", "s", "c", "o", "h", "l", "v", "q"}


def test_user_data_goes_to_the_account() -> None:
    events = _all_events(300, seed=17)
    out = StreamState().apply(events)
    kinds = {_json(d)["e"] for msgs in out.user.values() for d in msgs}
    assert kinds == {"executionReport", "outboundAccountPosition", "balanceUpdate"}
    for _account, msgs in out.user.items():
        for data in msgs:
            m = _json(data)
            if m["e"] == "executionReport":
                assert m["I"] > 0 and m["i"] > 0
    assert 0 not in out.user  # the fee account has no stream


def test_a_batch_delivered_again_publishes_nothing() -> None:
    events = _all_events(200, seed=19)
    state = StreamState()
    first = state.apply(events)
    again = state.apply(events)
    assert first.market and not again.market and not again.user


def test_percent() -> None:
    assert payloads.percent(150, 100) == "150.000"
    assert payloads.percent(-1, 3) == "-33.333"
    assert payloads.percent(0, 0) == "0.000"
    assert payloads.percent(-1, 1_000_000) == "0.000"


# ------------------------------------------------------------------------ size limits


def _big_update(n: int, first: int = 1) -> DepthUpdate:
    bids = tuple((10**12 - i * 10**6, 10**8 + i) for i in range(n))
    asks = tuple((10**12 + i * 10**6, 10**8 + i) for i in range(n))
    return DepthUpdate(1, 1_700_000_000_000, SYMBOL, first, first + 2 * n - 1, bids, asks)


def test_a_sweep_too_big_for_one_message_is_cut_into_contiguous_diffs() -> None:
    ev = _big_update(3_000, first=101)
    parts = list(frames.depth_diffs(SYMBOL, [ev]))
    assert len(parts) > 1
    assert parts[0]["U"] == 101 and parts[-1]["u"] == ev.final_update_id
    for a, b in itertools.pairwise(parts):
        assert b["U"] == a["u"] + 1
    for p in parts:
        assert len(json.dumps(p, separators=(",", ":"))) <= frames.BUDGET
        assert p["u"] - p["U"] + 1 == len(p["b"]) + len(p["a"])
    assert sum(len(p["b"]) for p in parts) == 3_000


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(0, 1_500), min_size=1, max_size=8))
def test_merged_diffs_fit_and_replay_to_the_same_book(sizes: list[int]) -> None:
    rnd = random.Random(sum(sizes))
    updates, nxt = [], 1
    for n in sizes:
        n = max(n, 1)
        bids = tuple(sorted(((rnd.randrange(1, 4000) * 10**6, rnd.randrange(0, 3) * 10**8)
                             for _ in range(n)), reverse=True))  # fmt: skip
        bids = tuple(dict(bids).items())
        updates.append(DepthUpdate(1, 1, SYMBOL, nxt, nxt + len(bids) - 1, bids, ()))
        nxt += len(bids)
    expect: dict[str, str] = {}
    for u in updates:
        for p, q in u.bids:
            expect[format_units(p)] = format_units(q)
    got: dict[str, str] = {}
    last = 0
    for diff in frames.depth_diffs(SYMBOL, updates):
        assert len(json.dumps(diff, separators=(",", ":"))) <= frames.BUDGET
        assert diff["U"] == last + 1
        last = diff["u"]
        got.update(dict(diff["b"]))
    assert last == nxt - 1 and got == expect


def test_mini_ticker_arr_is_split_into_arrays_under_the_limit() -> None:
    items = [json.dumps({"s": f"SYM{i}", "pad": "x" * 200}).encode() for i in range(2_000)]
    groups = list(frames.chunks(items))
    assert len(groups) > 1 and sum(len(g) for g in groups) == 2_000
    for g in groups:
        assert len(b"[" + b",".join(g) + b"]") <= frames.BUDGET


class _EngineSeed:
    """A seed that reads the engine's current book, as RedisSeed reads the matching
    service's (which may be ahead of the batch the broadcaster is handling)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.reads = 0

    def book(self, symbol: str) -> tuple[int, list[Any], list[Any]] | None:
        self.reads += 1
        last, bids, asks = self.engine.depth(symbol, 5000)
        return last, list(bids), list(asks)

    def klines(self, symbol: str) -> dict[str, Any]:
        return {}


def test_a_cold_start_mid_stream_catches_up_from_the_seed() -> None:
    engine = Engine()
    seed = _EngineSeed(engine)
    state = StreamState(seed)
    history = [ev for cmd in commands(1_000, seed=23) for ev in engine.process(cmd)]
    # The container starts in the middle of the stream, with the live view ahead of it.
    tail = history[len(history) // 2 :]
    out = state.apply(tail)
    # Every symbol's partial depth is the current book, although most diffs were old.
    for symbol in engine.symbols():
        last, bids, asks = engine.depth(symbol, 20)
        got = _messages(out, f"{symbol.lower()}@depth20")
        assert got and got[-1] == payloads.partial_depth(last, bids, asks)
    # Later batches continue from the seeded book without reading it again.
    reads = seed.reads
    later: list[Event] = []
    for cmd in list(commands(1_300, seed=23))[1_000:]:
        later.extend(engine.process(cmd))
    out = state.apply(later)
    assert seed.reads == reads
    for symbol in engine.symbols():
        last, bids, asks = engine.depth(symbol, 20)
        got = _messages(out, f"{symbol.lower()}@depth20")
        if got:
            assert got[-1] == payloads.partial_depth(last, bids, asks)
