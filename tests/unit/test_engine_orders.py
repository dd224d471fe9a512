"""Each order type's behaviour, priority, icebergs, locks and fees (docs/engine.md)."""

from __future__ import annotations

import pytest

from bourse.domain.enums import OrderType, TimeInForce
from bourse.domain.events import AccountBalances, DepthUpdate, ExecutionReport
from tests.unit.test_engine_helpers import (
    E8,
    LOT,
    SYMBOL,
    Bench,
    first_result,
    of,
    reply,
    reports,
    trades,
)

pytestmark = pytest.mark.unit

GTC, IOC, FOK = TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK


def test_limit_rests_then_crosses_at_the_maker_price() -> None:
    b = Bench()
    events = b.order(1, "BUY", 100, 100)
    assert reports(events) == [(1, "NEW", "NEW")]
    assert b.locked(1, "USDT") == 100 * E8  # 1 BTC at 100
    depth = of(events, DepthUpdate)[0]
    assert (depth.first_update_id, depth.final_update_id) == (1, 1)
    assert depth.bids == ((100 * E8, 100 * LOT),)

    events = b.order(2, "SELL", 150, 99)
    assert trades(events) == [(100, 100)]
    assert reports(events) == [
        (2, "NEW", "NEW"),
        (1, "TRADE", "FILLED"),
        (2, "TRADE", "PARTIALLY_FILLED"),
    ]
    part = first_result(events)
    assert part.status == "PARTIALLY_FILLED" and part.executed_qty == 100 * LOT
    assert b.engine.depth(SYMBOL, 5) == (3, (), ((99 * E8, 50 * LOT),))
    assert b.locked(1, "USDT") == 0


def test_price_time_priority() -> None:
    b = Bench()
    b.order(1, "SELL", 10, 101)
    b.order(2, "SELL", 10, 100)
    b.order(3, "SELL", 10, 100)
    events = b.order(4, "BUY", 25, 101)
    assert [(t.seller_order_id, t.price // E8) for t in of(events, type(events[1]))] == [
        (2, 100),
        (3, 100),
        (1, 101),
    ]
    assert trades(events) == [(100, 10), (100, 10), (101, 5)]


def test_buy_below_its_limit_releases_the_difference() -> None:
    b = Bench()
    b.order(2, "SELL", 100, 90)
    before = b.free(1, "USDT")
    b.order(1, "BUY", 100, 100, tif=IOC)
    # Paid 90 for 1 BTC; the lock at 100 was released at the fill.
    assert b.free(1, "USDT") == before - 90 * E8
    assert b.locked(1, "USDT") == 0


def test_ioc_expires_its_rest() -> None:
    b = Bench()
    b.order(2, "SELL", 10, 100)
    events = b.order(1, "BUY", 30, 100, tif=IOC)
    assert reports(events)[-1] == (2, "EXPIRED", "EXPIRED")
    assert first_result(events).executed_qty == 10 * LOT
    assert b.locked(1, "USDT") == 0


def test_fok_all_or_nothing() -> None:
    b = Bench()
    b.order(2, "SELL", 10, 100)
    b.order(3, "SELL", 10, 101)
    events = b.order(1, "BUY", 25, 101, tif=FOK)
    assert trades(events) == []
    assert reports(events) == [(3, "NEW", "NEW"), (3, "EXPIRED", "EXPIRED")]
    events = b.order(1, "BUY", 20, 101, tif=FOK)
    assert trades(events) == [(100, 10), (101, 10)]


def test_fok_does_not_count_own_orders_under_stp() -> None:
    b = Bench()
    b.order(1, "SELL", 10, 100)
    b.order(2, "SELL", 10, 100)
    events = b.order(1, "BUY", 20, 100, tif=FOK)  # only 10 fillable from others
    assert trades(events) == []
    assert reports(events)[-1][1:] == ("EXPIRED", "EXPIRED")


def test_market_buy_by_quantity_walks_and_locks_the_walk() -> None:
    b = Bench()
    b.order(2, "SELL", 10, 100)
    b.order(2, "SELL", 10, 110)
    usdt = b.free(1, "USDT")
    events = b.order(1, "BUY", 30, type=OrderType.MARKET)
    assert trades(events) == [(100, 10), (110, 10)]
    assert reports(events)[-1] == (3, "EXPIRED", "EXPIRED")
    assert b.free(1, "USDT") == usdt - 21 * E8
    balances = of(events, AccountBalances)
    assert [a.account_id for a in balances] == [1, 2]


def test_market_buy_by_quantity_rejected_when_walk_costs_too_much() -> None:
    b = Bench(usdt=10)
    b.order(2, "SELL", 100, 100)
    events = b.order(1, "BUY", 20, type=OrderType.MARKET)  # costs 20 USDT
    assert (reply(events).code, reply(events).msg) == (
        -2010,
        "Account has insufficient balance for requested action.",
    )
    assert len(events) == 1


def test_market_on_empty_book_is_accepted_and_expires() -> None:
    b = Bench()
    events = b.order(1, "BUY", 10, type=OrderType.MARKET)
    assert reports(events) == [(1, "NEW", "NEW"), (1, "EXPIRED", "EXPIRED")]
    assert reply(events).code == 0


def test_market_buy_by_quote_spends_at_most_its_budget() -> None:
    b = Bench()
    b.order(2, "SELL", 10, 100)
    b.order(2, "SELL", 100, 300)
    events = b.order(1, "BUY", type=OrderType.MARKET, quote_order_qty=50 * E8)
    # 0.10 BTC at 100 = 10 USDT; then 40 USDT at 300 buys floor(0.1333) = 0.13 BTC = 39 USDT.
    assert trades(events) == [(100, 10), (300, 13)]
    result = first_result(events)
    # The 1 USDT left cannot buy one more 0.01 step at 300: spent as closely as LOT_SIZE
    # allows, so FILLED as on Binance (tests/unit/test_engine_quote_market.py).
    assert result.cum_quote == 49 * E8 and result.status == "FILLED"
    assert b.locked(1, "USDT") == 0


def test_market_buy_by_quote_filled_exactly() -> None:
    b = Bench()
    b.order(2, "SELL", 10, 100)
    events = b.order(1, "BUY", type=OrderType.MARKET, quote_order_qty=10 * E8)
    assert reports(events)[-1] == (2, "TRADE", "FILLED")


def test_market_sell_by_quote() -> None:
    b = Bench()
    b.order(2, "BUY", 10, 100)
    b.order(2, "BUY", 100, 50)
    events = b.order(1, "SELL", type=OrderType.MARKET, quote_order_qty=20 * E8)
    # 10 USDT for 0.10 at 100, then 10 USDT buys 0.20 at 50.
    assert trades(events) == [(100, 10), (50, 20)]
    assert reports(events)[-1] == (3, "TRADE", "FILLED")


def test_limit_maker_rests_or_is_rejected() -> None:
    b = Bench()
    b.order(2, "SELL", 10, 100)
    events = b.order(1, "BUY", 10, 100, type=OrderType.LIMIT_MAKER)
    assert (reply(events).code, reply(events).msg) == (
        -2010,
        "Order would immediately match and take.",
    )
    events = b.order(1, "BUY", 10, 99, type=OrderType.LIMIT_MAKER)
    assert reports(events) == [(2, "NEW", "NEW")]
    assert events[0].order.time_in_force is None


def test_iceberg_shows_a_slice_and_refills_at_the_back() -> None:
    b = Bench()
    events = b.order(1, "SELL", 30, 100, iceberg_qty=10 * LOT)
    assert of(events, DepthUpdate)[0].asks == ((100 * E8, 10 * LOT),)
    b.order(2, "SELL", 5, 100)
    # Takes the slice of 10, the iceberg refills behind order 2, then 5 from order 2,
    # then 5 more from the iceberg's new slice.
    events = b.order(3, "BUY", 20, 100)
    assert [(t.seller_order_id, t.qty // LOT) for t in of(events, type(events[1]))] == [
        (1, 10),
        (2, 5),
        (1, 5),
    ]
    assert b.engine.depth(SYMBOL, 5)[2] == ((100 * E8, 5 * LOT),)


def test_iceberg_taker_uses_its_full_quantity() -> None:
    b = Bench()
    b.order(2, "SELL", 25, 100)
    events = b.order(1, "BUY", 40, 100, iceberg_qty=10 * LOT)
    assert trades(events) == [(100, 25)]
    assert b.engine.depth(SYMBOL, 5)[1] == ((100 * E8, 10 * LOT),)


def test_fees_in_the_received_asset_rounded_up() -> None:
    b = Bench()
    b.order(2, "SELL", 1, 3)  # 0.01 BTC at 3 USDT = 0.03 USDT
    events = b.order(1, "BUY", 1, 3)
    maker, taker = of(events, ExecutionReport)[1:]
    # Buyer (taker) pays 0.1% of 0.01 BTC = 0.00001 BTC; seller 0.1% of 0.03 USDT = 0.00003.
    assert (taker.commission, taker.commission_asset) == (1000, "BTC")
    assert (maker.commission, maker.commission_asset) == (3000, "USDT")
    assert b.engine.balances()[0] == {"BTC": (1000, 0), "USDT": (3000, 0)}


def test_fee_rounding_favours_the_exchange() -> None:
    from bourse.domain.commands import SetAccountFees

    b = Bench()
    b.run(SetAccountFees("f", 0, 1, 0, 7))  # 0.00000007 taker rate
    b.order(2, "SELL", 1, 3)
    events = b.order(1, "BUY", 1, 3)
    taker = of(events, ExecutionReport)[-1]
    assert taker.commission == 1  # ceil(1_000_000 * 7 / 1e8) = ceil(0.07)


def test_cancel_releases_the_lock_and_reports() -> None:
    b = Bench()
    b.order(1, "BUY", 10, 100, cid="mine")
    events = b.cancel(1, orig_client_order_id="mine", cancel_client_order_id="bye")
    assert reports(events) == [(1, "CANCELED", "CANCELED")]
    assert of(events, ExecutionReport)[0].cancel_client_order_id == "bye"
    assert b.locked(1, "USDT") == 0
    assert of(events, DepthUpdate)[0].bids == ((100 * E8, 0),)
    assert first_result(events).cancel_client_order_id == "bye"


def test_cancel_all_in_ascending_order_id() -> None:
    b = Bench()
    b.order(1, "BUY", 10, 100)
    b.order(1, "SELL", 10, 200)
    b.order(1, "SELL", 10, type=OrderType.STOP_LOSS, stop_price=90 * E8)
    events = b.cancel_all(1)
    assert [r[0] for r in reports(events)] == [1, 2, 3]
    assert len(reply(events).parts) == 3
    assert b.engine.open_orders(1, SYMBOL) == []


def test_a_level_changed_and_restored_is_not_in_the_depth_update() -> None:
    b = Bench()
    b.order(2, "SELL", 10, 100, iceberg_qty=5 * LOT)
    b.order(2, "SELL", 10, 101)
    # The taker takes the slice of 5; the refill restores level 100 to 5: only 101 changes.
    events = b.order(1, "BUY", 5, 100)
    assert not of(events, DepthUpdate)
    events = b.order(1, "BUY", 12, 101)
    assert of(events, DepthUpdate)[0].asks == ((100 * E8, 0), (101 * E8, 3 * LOT))


def test_open_orders_lists_resting_and_stops() -> None:
    b = Bench()
    b.order(1, "BUY", 10, 100)
    b.order(1, "SELL", 10, 90, type=OrderType.STOP_LOSS_LIMIT, stop_price=95 * E8)
    b.order(2, "SELL", 4, 100)
    orders = b.engine.open_orders(1, SYMBOL)
    assert [(o.order.order_id, o.status, o.working_ts) for o in orders] == [
        (1, "PARTIALLY_FILLED", 1),
        (2, "NEW", -1),
    ]
