"""The streams added for issue 16 (bourse.streams.market): ``<s>@avgPrice``, the rolling window
tickers ``<s>@ticker_<w>`` and ``!ticker_<w>@arr`` (1h, 4h, 1d), and the diff depth streams
at their own speeds (``@depth`` merges a second of event time, ``@depth@100ms`` 100 ms),
checked against the trades and updates themselves."""

from __future__ import annotations

import itertools
import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bourse.domain.amounts import format_units
from bourse.domain.events import DepthUpdate, Event, Trade
from bourse.streams.market import StreamState

pytestmark = pytest.mark.unit

MINUTE = 60_000
HOUR = 3_600_000
T0 = 1_700_000_000_000 - 1_700_000_000_000 % MINUTE
WINDOWS = {"1h": HOUR, "4h": 4 * HOUR, "1d": 24 * HOUR}


def _trade(seq: int, ts: int, trade_id: int, price: int, qty: int) -> Trade:
    return Trade(seq, ts, "BTCUSDT", trade_id, price, qty, price * qty // 10**8, 1, 2, 1, 2,
                 trade_id % 2 == 0)  # fmt: skip


def _messages(out: Any, stream: str) -> list[Any]:
    return [json.loads(m.data) for m in out.market if m.stream == stream]


trades = st.lists(
    st.tuples(
        st.integers(0, 30 * HOUR),  # gap to the previous trade
        st.integers(1, 1000),  # price, whole units
        st.integers(1, 10**8),  # quantity, 1e-8 units
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(trades=trades, batch=st.integers(1, 5))
def test_rolling_window_tickers_and_avg_price_are_the_trades_of_their_window(
    trades: list[tuple[int, int, int]], batch: int
) -> None:
    state = StreamState()
    history: list[Trade] = []
    ts = T0
    pending: list[Event] = []
    for n, (gap, price, qty) in enumerate(trades, 1):
        ts += gap
        ev = _trade(n, ts, n, price * 10**8, qty)
        history.append(ev)
        pending.append(ev)
        if len(pending) < batch and n < len(trades):
            continue
        out = state.apply(pending)
        pending = []
        now = ev.ts
        for size, span in WINDOWS.items():
            start = (now - span) - (now - span) % MINUTE  # Binance: O starts on a minute
            inside = [t for t in history if start <= t.ts <= now]
            (got,) = _messages(out, f"btcusdt@ticker_{size}")
            (arr,) = _messages(out, f"!ticker_{size}@arr")
            assert arr == [got]
            volume = sum(t.qty for t in inside)
            quote = sum(t.quote_qty for t in inside)
            assert got["e"] == f"{size}Ticker" and got["E"] == now and got["s"] == "BTCUSDT"
            assert (got["O"], got["C"]) == (start, now)
            assert (got["F"], got["L"], got["n"]) == (
                inside[0].trade_id, inside[-1].trade_id, len(inside)
            )  # fmt: skip
            assert got["o"] == format_units(inside[0].price)
            assert got["c"] == format_units(inside[-1].price)
            assert got["h"] == format_units(max(t.price for t in inside))
            assert got["l"] == format_units(min(t.price for t in inside))
            assert (got["v"], got["q"]) == (format_units(volume), format_units(quote))
            assert got["w"] == format_units(quote * 10**8 // volume if volume else 0)
            change = inside[-1].price - inside[0].price
            assert got["p"] == format_units(change)
            assert Decimal(got["P"]) == pytest.approx(
                Decimal(change) * 100 / Decimal(inside[0].price), abs=Decimal("0.001")
            )
        start = (now - 5 * MINUTE) - (now - 5 * MINUTE) % MINUTE
        inside = [t for t in history if start <= t.ts <= now]
        volume = sum(t.qty for t in inside)
        (avg,) = _messages(out, "btcusdt@avgPrice")
        expected = sum(t.quote_qty for t in inside) * 10**8 // volume if volume else 0
        assert avg == {"e": "avgPrice", "E": now, "s": "BTCUSDT", "i": "5m",
                       "w": format_units(expected), "T": now}  # fmt: skip


def _update(seq: int, ts: int, first: int, price: int, qty: int) -> DepthUpdate:
    return DepthUpdate(seq, ts, "BTCUSDT", first, first, ((price, qty),), ())


@settings(max_examples=60, deadline=None)
@given(gaps=st.lists(st.integers(0, 700), min_size=1, max_size=60), batch=st.integers(1, 20))
def test_diff_depth_streams_merge_their_own_period_and_stay_contiguous(
    gaps: list[int], batch: int
) -> None:
    state = StreamState()
    events: list[DepthUpdate] = []
    ts = T0
    for n, gap in enumerate(gaps, 1):
        ts += gap
        events.append(_update(n, ts, n, (100 + n % 7) * 10**8, n * 10**6))
    got: dict[str, list[Any]] = {"btcusdt@depth": [], "btcusdt@depth@100ms": []}
    for i in range(0, len(events), batch):
        out = state.apply(events[i : i + batch])
        for stream, messages in got.items():
            messages.extend(_messages(out, stream))
    by_id = {ev.first_update_id: ev for ev in events}
    for stream, period in (("btcusdt@depth", 1000), ("btcusdt@depth@100ms", 100)):
        messages = got[stream]
        # Every update once, in order, U == previous u + 1 (Binance's local book rule).
        assert messages[0]["U"] == 1 and messages[-1]["u"] == len(events)
        for before, after in itertools.pairwise(messages):
            assert after["U"] == before["u"] + 1
        for m in messages:
            periods = {by_id[i].ts // period for i in range(m["U"], m["u"] + 1)}
            assert len(periods) == 1, (stream, m)  # one period of event time, no more
            assert m["E"] == by_id[m["u"]].ts
    # @depth merges at least as much as @depth@100ms.
    assert len(got["btcusdt@depth"]) <= len(got["btcusdt@depth@100ms"])
