"""MARKET orders by quoteOrderQty end FILLED when the budget was spent as closely as LOT_SIZE
allows, EXPIRED only when the book ran out (rest-api.md: such an order "will execute a
quantity that will have the notional value as close as possible to quoteOrderQty")."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bourse.domain.enums import OrderType
from bourse.domain.events import ExecutionReport
from tests.unit.test_engine_helpers import E8, LOT, Bench, first_result, reports, trades

pytestmark = pytest.mark.unit

MARKET = OrderType.MARKET


def test_buy_leaving_less_than_a_step_is_filled() -> None:
    b = Bench()
    b.order(2, "SELL", 100, 300)
    events = b.order(1, "BUY", type=MARKET, quote_order_qty=40 * E8)
    # 40 USDT buys 0.13 BTC at 300 (39 USDT); 1 USDT cannot buy 0.01 more there.
    assert trades(events) == [(300, 13)]
    assert reports(events)[-1] == (2, "TRADE", "FILLED")
    assert first_result(events).status == "FILLED"
    assert b.locked(1, "USDT") == 0 and b.free(1, "USDT") == (1_000_000 - 39) * E8


def test_buy_that_empties_the_book_expires() -> None:
    b = Bench()
    b.order(2, "SELL", 10, 100)
    events = b.order(1, "BUY", type=MARKET, quote_order_qty=40 * E8)
    assert trades(events) == [(100, 10)]
    assert reports(events)[-2:] == [(2, "TRADE", "PARTIALLY_FILLED"), (2, "EXPIRED", "EXPIRED")]


def test_the_next_level_decides_not_the_one_just_emptied() -> None:
    b = Bench()
    b.order(2, "SELL", 10, 100)
    b.order(2, "SELL", 10, 101)
    # 10.5 USDT: 0.10 at 100 empties that level; 0.5 USDT left cannot buy 0.01 at 101.
    events = b.order(1, "BUY", type=MARKET, quote_order_qty=105 * E8 // 10)
    assert trades(events) == [(100, 10)]
    assert reports(events)[-1] == (3, "TRADE", "FILLED")


def test_sell_leaving_less_than_a_step_is_filled() -> None:
    b = Bench()
    b.order(2, "BUY", 100, 300)
    events = b.order(1, "SELL", type=MARKET, quote_order_qty=40 * E8)
    assert trades(events) == [(300, 13)]
    assert first_result(events).status == "FILLED"
    assert b.locked(1, "BTC") == 0


def test_nothing_bought_is_expired_not_filled() -> None:
    b = Bench()
    b.order(2, "SELL", 10, 300)
    events = b.order(1, "BUY", type=MARKET, quote_order_qty=2 * E8)  # 0.01 costs 3 USDT
    assert trades(events) == []
    assert first_result(events).status == "EXPIRED"


@settings(max_examples=200, deadline=None)
@given(
    levels=st.lists(st.tuples(st.integers(50, 400), st.integers(1, 30)), min_size=0, max_size=6),
    budget=st.integers(1, 20_000),
    buy=st.booleans(),
)
def test_filled_exactly_when_the_rest_cannot_take_a_step(
    levels: list[tuple[int, int]], budget: int, buy: bool
) -> None:
    b = Bench()
    for price, lots in levels:
        b.order(2, "BUY" if not buy else "SELL", lots, price)
    events = b.order(1, "BUY" if buy else "SELL", type=MARKET, quote_order_qty=budget * E8)
    result = first_result(events)
    spent = result.cum_quote
    assert spent <= budget * E8
    _, bids, asks = b.engine.depth("BTCUSDT", 100)
    left = asks if buy else bids
    if result.status == "FILLED":
        assert result.executed_qty > 0
        best = left[0][0] if left else None
        # the budget left cannot buy one more lot at the best price left (if any is left)
        assert best is None or (budget * E8 - spent) * E8 // best < LOT
    else:
        assert result.status == "EXPIRED"
        assert not left or result.executed_qty == 0
    last = [e for e in events if isinstance(e, ExecutionReport)][-1]
    assert last.status == result.status
    assert b.locked(1, "USDT") == 0 and b.locked(1, "BTC") == 0
