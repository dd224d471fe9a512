"""Self-trade prevention modes, and stop orders: triggers, cascades, balance failures."""

from __future__ import annotations

import pytest

from bourse.domain.enums import OrderType, StpMode
from bourse.domain.events import ExecutionReport, PreventedMatch
from tests.unit.test_engine_helpers import (
    E8,
    LOT,
    SYMBOL,
    Bench,
    first_result,
    of,
    reports,
    trades,
)

pytestmark = pytest.mark.unit

STOP_LOSS, STOP_LOSS_LIMIT = OrderType.STOP_LOSS, OrderType.STOP_LOSS_LIMIT
TAKE_PROFIT = OrderType.TAKE_PROFIT


def _own_book() -> Bench:
    b = Bench()
    b.order(1, "SELL", 10, 100)  # own, first in time
    b.order(2, "SELL", 10, 100)
    return b


def test_stp_expire_taker() -> None:
    b = _own_book()
    events = b.order(1, "BUY", 15, 100, stp_mode=StpMode.EXPIRE_TAKER)
    pm = of(events, PreventedMatch)[0]
    assert (pm.maker_order_id, pm.taker_order_id, pm.maker_prevented_qty,
            pm.taker_prevented_qty) == (1, 3, 0, 15 * LOT)  # fmt: skip
    assert reports(events) == [
        (3, "NEW", "NEW"),
        (3, "TRADE_PREVENTION", "EXPIRED_IN_MATCH"),
    ]
    taker = of(events, ExecutionReport)[-1]
    assert (taker.prevented_match_id, taker.counter_order_id, taker.last_prevented_qty) == (
        1,
        1,
        15 * LOT,
    )
    assert b.locked(1, "USDT") == 0 and len(b.engine.open_orders(1, SYMBOL)) == 1


def test_stp_expire_maker_continues() -> None:
    b = _own_book()
    events = b.order(1, "BUY", 15, 100, stp_mode=StpMode.EXPIRE_MAKER)
    assert reports(events) == [
        (3, "NEW", "NEW"),
        (1, "TRADE_PREVENTION", "EXPIRED_IN_MATCH"),
        (2, "TRADE", "FILLED"),
        (3, "TRADE", "PARTIALLY_FILLED"),
    ]
    maker = of(events, ExecutionReport)[1]
    assert maker.is_maker and maker.prevented_qty == 10 * LOT
    assert b.locked(1, "BTC") == 0  # the expired maker's lock is released


def test_stp_expire_both() -> None:
    b = _own_book()
    events = b.order(1, "BUY", 15, 100, stp_mode=StpMode.EXPIRE_BOTH)
    assert reports(events)[1:] == [
        (1, "TRADE_PREVENTION", "EXPIRED_IN_MATCH"),
        (3, "TRADE_PREVENTION", "EXPIRED_IN_MATCH"),
    ]
    assert trades(events) == []


def test_stp_none_self_trades() -> None:
    b = _own_book()
    events = b.order(1, "BUY", 10, 100, stp_mode=StpMode.NONE)
    assert trades(events) == [(100, 10)]
    assert of(events, type(events[1]))[0].buyer_account_id == 1


def test_symbol_default_stp_applies_when_order_sends_none() -> None:
    b = Bench(default_stp=StpMode.EXPIRE_TAKER)
    b.order(1, "SELL", 10, 100)
    events = b.order(1, "BUY", 10, 100)
    assert events[0].order.stp_mode == StpMode.EXPIRE_TAKER
    assert reports(events)[-1] == (2, "TRADE_PREVENTION", "EXPIRED_IN_MATCH")


def test_market_buy_never_spends_more_than_it_locked() -> None:
    b = Bench()
    b.order(1, "SELL", 10, 100)  # own: counted in the walk, expired in match
    b.order(2, "SELL", 10, 200)
    events = b.order(1, "BUY", 10, type=OrderType.MARKET)  # locks 10 USDT (the walk)
    # 10 USDT left buys 0.05 at 200.
    assert trades(events) == [(200, 5)]
    assert reports(events)[-1][1:] == ("EXPIRED", "EXPIRED")
    assert b.locked(1, "USDT") == 0


def _with_last_price(price: int) -> Bench:
    b = Bench()
    b.order(3, "SELL", 1, price)
    b.order(4, "BUY", 1, price)
    return b


def test_stop_loss_sell_triggers_as_market_when_price_falls() -> None:
    b = _with_last_price(100)
    events = b.order(1, "SELL", 10, type=STOP_LOSS, stop_price=95 * E8)
    assert events[0].is_working is False and events[0].working_ts == -1
    assert b.locked(1, "BTC") == 10 * LOT
    stop_id = events[0].order.order_id
    b.order(2, "BUY", 20, 90)  # resting bid for the stop to hit
    b.order(3, "BUY", 1, 95)
    events = b.order(4, "SELL", 1, 95)  # last price 95: triggers
    ids = [r for r in reports(events) if r[0] == stop_id]
    assert ids[0] == (stop_id, "NEW", "NEW")
    assert ids[-1] == (stop_id, "TRADE", "FILLED")
    new_report = next(e for e in of(events, ExecutionReport) if e.order.order_id == stop_id)
    assert new_report.is_working and new_report.working_ts == b.ts
    assert new_report.order.type == STOP_LOSS


def test_cascade_fires_in_smallest_order_id_order() -> None:
    b = _with_last_price(100)
    b.order(2, "BUY", 50, 80)  # liquidity below
    first = b.order(1, "SELL", 1, type=STOP_LOSS, stop_price=90 * E8)[0].order.order_id
    second = b.order(1, "SELL", 1, type=STOP_LOSS, stop_price=98 * E8)[0].order.order_id
    # Dropping to 85 satisfies both; order id decides, not stop price.
    b.order(3, "BUY", 1, 85)
    events = b.order(4, "SELL", 1, 85)
    triggered = [r[0] for r in reports(events) if r[1] == "NEW" and r[0] in (first, second)]
    assert triggered == [first, second]


def test_cascade_a_triggered_stop_triggers_another() -> None:
    b = _with_last_price(100)
    b.order(2, "BUY", 1, 95)
    b.order(2, "BUY", 1, 90)
    a = b.order(1, "SELL", 1, type=STOP_LOSS, stop_price=95 * E8)[0].order.order_id
    c = b.order(1, "SELL", 1, type=STOP_LOSS, stop_price=90 * E8)[0].order.order_id
    events = b.order(3, "SELL", 1, 99)
    assert trades(events) == []  # nothing crossed: the price did not change
    b.order(2, "BUY", 1, 96)
    events = b.order(3, "SELL", 1, 96)  # last 96: nothing yet
    assert len([r for r in reports(events) if r[0] in (a, c)]) == 0
    b.order(2, "BUY", 1, 95)  # a second bid at 95 so the cascade can be checked
    events = b.order(3, "SELL", 1, 95)  # 95 triggers a, a sells at 95, then...
    fired = [r[0] for r in reports(events) if r[1] == "NEW" and r[0] in (a, c)]
    assert fired == [a]
    events = b.order(3, "SELL", 1, 90)  # 90 triggers c, which finds no bid: expires
    assert [r for r in reports(events) if r[0] == c][-1][1:] == ("EXPIRED", "EXPIRED")


def test_triggered_market_buy_stop_without_balance_expires() -> None:
    b = Bench(usdt=50)
    b.order(3, "SELL", 1, 100)
    b.order(4, "BUY", 1, 100)
    events = b.order(1, "BUY", 100, type=STOP_LOSS, stop_price=101 * E8)  # locks nothing
    stop_id = events[0].order.order_id
    b.order(2, "SELL", 100, 101)
    events = b.order(3, "BUY", 1, 101)
    report = [e for e in of(events, ExecutionReport) if e.order.order_id == stop_id]
    assert [(r.exec_type, r.status) for r in report] == [("NEW", "NEW"), ("EXPIRED", "EXPIRED")]
    assert report[-1].reject_reason == "INSUFFICIENT_BALANCE"
    assert b.engine.open_orders(1, SYMBOL) == []


def test_take_profit_limit_rests_after_trigger() -> None:
    b = _with_last_price(100)
    events = b.order(1, "SELL", 10, 110, type=OrderType.TAKE_PROFIT_LIMIT, stop_price=105 * E8)
    stop_id = events[0].order.order_id
    b.order(2, "SELL", 1, 106)
    b.order(3, "BUY", 1, 106)
    assert [o.order.order_id for o in b.engine.open_orders(1, SYMBOL)] == [stop_id]
    assert b.engine.depth(SYMBOL, 5)[2] == ((110 * E8, 10 * LOT),)


def test_reply_of_new_order_includes_its_maker_fills_against_triggered_stops() -> None:
    b = _with_last_price(100)
    b.order(1, "BUY", 5, type=TAKE_PROFIT, stop_price=99 * E8)
    b.order(2, "BUY", 1, 99)
    # Account 3 sells 1 at 99 (last 99), rests 5 at 99; the stop buys those 5.
    events = b.order(3, "SELL", 6, 99)
    result = first_result(events)
    assert [(f.price // E8, f.qty // LOT) for f in result.fills] == [(99, 1), (99, 5)]
    assert result.status == "FILLED"


def test_stop_cancel_releases_its_lock() -> None:
    b = Bench()
    events = b.order(1, "SELL", 10, 90, type=STOP_LOSS_LIMIT, stop_price=95 * E8)
    assert b.locked(1, "BTC") == 10 * LOT
    events = b.cancel(1, events[0].order.order_id)
    report = of(events, ExecutionReport)[0]
    assert (report.is_working, report.working_ts) == (False, -1)
    assert b.locked(1, "BTC") == 0
