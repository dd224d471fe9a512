"""STP mode DECREMENT (Binance's stp_faq.md): both orders' prevented quantity grows by the
prevented match's quantity; the smaller order expires (EXPIRED_IN_MATCH), both if equal;
the other keeps its place with less to trade."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bourse.domain.enums import OrderType, StpMode
from bourse.domain.events import ExecutionReport, PreventedMatch
from tests.unit.test_engine_helpers import E8, LOT, SYMBOL, Bench, of, reports, trades

pytestmark = pytest.mark.unit

DECREMENT = StpMode.DECREMENT


def test_scenario_g_taker_smaller_expires_maker_stays() -> None:
    # stp_faq.md Scenario G: maker BUY 6 @ 2, taker SELL 2 @ 2 DECREMENT.
    b = Bench()
    b.order(1, "BUY", 600, 2)
    events = b.order(1, "SELL", 200, 2, stp_mode=DECREMENT)
    pm = of(events, PreventedMatch)[0]
    assert (pm.maker_prevented_qty, pm.taker_prevented_qty) == (200 * LOT, 200 * LOT)
    assert pm.stp_mode == DECREMENT
    assert reports(events) == [
        (2, "NEW", "NEW"),
        (1, "TRADE_PREVENTION", "NEW"),
        (2, "TRADE_PREVENTION", "EXPIRED_IN_MATCH"),
    ]
    maker, taker = of(events, ExecutionReport)[1:]
    assert maker.prevented_qty == maker.last_prevented_qty == 200 * LOT
    assert maker.prevented_match_id == taker.prevented_match_id == pm.prevented_match_id
    assert taker.prevented_qty == 200 * LOT
    assert trades(events) == []
    # the maker keeps 4 at 2 on the book, locking only what 4 needs
    assert b.engine.depth(SYMBOL, 5)[1] == ((2 * E8, 400 * LOT),)
    assert b.locked(1, "USDT") == 8 * E8 and b.locked(1, "BTC") == 0


def test_maker_smaller_expires_taker_goes_on_to_trade() -> None:
    b = Bench()
    b.order(1, "SELL", 5, 100)  # own
    b.order(2, "SELL", 10, 100)  # someone else's, behind it
    events = b.order(1, "BUY", 8, 100, stp_mode=DECREMENT)
    assert reports(events) == [
        (3, "NEW", "NEW"),
        (1, "TRADE_PREVENTION", "EXPIRED_IN_MATCH"),
        (3, "TRADE_PREVENTION", "NEW"),
        (2, "TRADE", "PARTIALLY_FILLED"),
        (3, "TRADE", "FILLED"),
    ]
    assert trades(events) == [(100, 3)]  # 8 - 5 prevented
    taker_last = of(events, ExecutionReport)[-1]
    assert taker_last.prevented_qty == 5 * LOT and taker_last.cum_qty == 3 * LOT
    assert b.locked(1, "USDT") == 0 and b.locked(1, "BTC") == 0


def test_equal_quantities_expire_both() -> None:
    b = Bench()
    b.order(1, "SELL", 5, 100)
    events = b.order(1, "BUY", 5, 100, stp_mode=DECREMENT)
    assert reports(events)[1:] == [
        (1, "TRADE_PREVENTION", "EXPIRED_IN_MATCH"),
        (2, "TRADE_PREVENTION", "EXPIRED_IN_MATCH"),
    ]
    assert b.engine.open_orders(1, SYMBOL) == []


def test_iceberg_maker_display_shrinks_with_it() -> None:
    b = Bench()
    b.order(1, "SELL", 10, 100, iceberg_qty=4 * LOT)
    events = b.order(1, "BUY", 8, 100, stp_mode=DECREMENT)
    assert reports(events)[-1] == (2, "TRADE_PREVENTION", "EXPIRED_IN_MATCH")
    assert b.engine.depth(SYMBOL, 5)[2] == ((100 * E8, 2 * LOT),)  # 2 left, all shown


def test_market_buy_by_quote_loses_the_prevented_notional() -> None:
    b = Bench()
    b.order(1, "SELL", 5, 100)  # own: 5 USDT of it prevented
    b.order(2, "SELL", 10, 100)
    events = b.order(1, "BUY", type=OrderType.MARKET, quote_order_qty=10 * E8,
                     stp_mode=DECREMENT)  # fmt: skip
    assert trades(events) == [(100, 5)]
    assert reports(events)[-1] == (3, "TRADE", "FILLED")
    assert b.locked(1, "USDT") == 0 and b.free(1, "USDT") == (1_000_000 - 5) * E8


@settings(max_examples=150, deadline=None)
@given(
    own=st.lists(st.integers(1, 20), min_size=1, max_size=4),
    others=st.integers(0, 20),
    taker_lots=st.integers(1, 60),
)
def test_quantities_add_up(own: list[int], others: int, taker_lots: int) -> None:
    """orig = executed + prevented + open, for every order, and no money moves on STP."""
    b = Bench()
    for lots in own:
        b.order(1, "SELL", lots, 100)
    if others:
        b.order(2, "SELL", others, 100)
    events = b.order(1, "BUY", taker_lots, 100, stp_mode=DECREMENT)
    last: dict[int, ExecutionReport] = {}
    for e in of(events, ExecutionReport):
        last[e.order.order_id] = e
    resting = {r.order.order_id: r for r in b.engine.open_orders(1, SYMBOL)}
    for oid, e in last.items():
        left = 0
        if oid in resting:
            left = (resting[oid].order.quantity - resting[oid].executed_qty) - e.prevented_qty
        if e.status in ("FILLED", "EXPIRED_IN_MATCH"):
            assert left == 0
            assert e.cum_qty + e.prevented_qty == e.order.quantity
    prevented = sum(pm.taker_prevented_qty for pm in of(events, PreventedMatch))
    traded = sum(t.qty for t in events if type(t).__name__ == "Trade")
    assert prevented + traded <= taker_lots * LOT
    assert traded == min(others * LOT, taker_lots * LOT - prevented)


def test_exchange_info_offers_decrement_by_default() -> None:
    from bourse.api.market import symbol_info
    from tests.unit.test_engine_helpers import spec

    assert "DECREMENT" in symbol_info(spec())["allowedSelfTradePreventionModes"]


def test_a_symbol_may_leave_decrement_out() -> None:
    b = Bench(allowed_stp_modes=(StpMode.NONE, StpMode.EXPIRE_MAKER))
    events = b.order(1, "BUY", 1, 100, stp_mode=DECREMENT)
    assert events[-1].code == -2010
