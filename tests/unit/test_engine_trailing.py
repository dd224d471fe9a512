"""Trailing stops (trailingDelta): Binance's trailing stop FAQ scenarios, the TRAILING_DELTA
filter, the trailing path's properties, and the state surviving a snapshot."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bourse.domain.commands import NewOrder
from bourse.domain.enums import OrderType, Side, TimeInForce
from bourse.domain.events import ExecutionReport, Reply, Trade
from bourse.domain.symbols import BIPS
from bourse.engine import Engine
from bourse.engine.stops import trail
from tests.unit.test_engine_helpers import E8, LOT, Bench

pytestmark = pytest.mark.unit

SL_LIMIT, TP_LIMIT = OrderType.STOP_LOSS_LIMIT, OrderType.TAKE_PROFIT_LIMIT
TRADER = 3  # the trailing stop's owner; accounts 1 and 2 make the market


def trade_at(b: Bench, price: int) -> list[object]:
    """One trade at ``price`` (whole USDT) between accounts 1 and 2."""
    b.order(1, "SELL", 1, price)
    return b.order(2, "BUY", 1, price)


def walk(b: Bench, *prices: int) -> list[object]:
    events: list[object] = []
    for price in prices:
        events += trade_at(b, price)
    return events


def working(events: list[object], order_id: int) -> bool:
    """Whether the stop ``order_id`` was triggered (became working) in ``events``."""
    return any(
        isinstance(e, ExecutionReport) and e.order.order_id == order_id and e.is_working
        for e in events
    )


def place(b: Bench, side: str, order_type: OrderType, price: int, delta: int,
          stop: int | None = None) -> int:  # fmt: skip
    events = b.order(
        TRADER, side, 1, price, type=order_type, trailing_delta=delta,
        stop_price=None if stop is None else stop * E8,
    )  # fmt: skip
    reply = events[-1]
    assert isinstance(reply, Reply) and reply.code == 0, reply
    result = reply.parts[0].result
    assert result is not None
    return result.order.order_id


def test_scenario_a_stop_loss_limit_buy_tracks_from_the_stop_price() -> None:
    b = Bench()
    trade_at(b, 40_000)
    oid = place(b, "BUY", SL_LIMIT, 45_000, 500, stop=44_000)
    # A fall of 7.5% is ignored: the order is not tracking before the stop price is met.
    assert not working(walk(b, 39_000, 37_000, 40_000), oid)
    assert b.engine._symbols["BTCUSDT"].stops.get(oid).info.trailing_time == -1  # type: ignore[union-attr]
    # 44,000 meets the stop price and sets the lowest price; 46,000 is ~454 BIPS above it.
    assert not working(walk(b, 44_000, 45_000, 46_000), oid)
    assert not working(walk(b, 44_000, 42_000), oid)  # a new lowest price
    assert not working(walk(b, 44_099), oid)
    assert working(walk(b, 44_100), oid)  # 42,000 * 1.05


def test_scenario_b_stop_loss_limit_sell() -> None:
    b = Bench()
    trade_at(b, 40_000)
    oid = place(b, "SELL", SL_LIMIT, 38_000, 1000, stop=39_000)
    assert not working(walk(b, 41_500, 39_000, 37_000, 41_000), oid)
    assert working(walk(b, 36_900), oid)  # 41,000 * 0.90


def test_scenario_c_take_profit_limit_buy() -> None:
    b = Bench()
    trade_at(b, 40_000)
    oid = place(b, "BUY", TP_LIMIT, 38_500, 850, stop=38_000)
    assert not working(walk(b, 42_000, 38_000, 37_000, 39_000, 38_000, 40_144), oid)
    assert working(walk(b, 40_145), oid)  # 37,000 * 1.085


def test_scenario_d_take_profit_limit_sell_at_an_untruncated_price() -> None:
    b = Bench(tick_size=E8 // 2, min_price=E8 // 2)  # 43,012.5 must be a price
    trade_at(b, 40_000)
    oid = place(b, "SELL", TP_LIMIT, 41_000, 750, stop=42_000)
    assert not working(walk(b, 41_500, 39_000, 42_000, 45_000, 44_000, 46_500), oid)
    assert not working(trade_units(b, 43_013 * E8), oid)
    assert working(trade_units(b, 43_012 * E8 + E8 // 2), oid)  # 46,500 * 0.925


def test_scenario_e_without_a_stop_price_tracks_from_the_last_price_at_once() -> None:
    b = Bench()
    trade_at(b, 40_000)
    oid = place(b, "SELL", SL_LIMIT, 39_000, 700)
    stop = b.engine._symbols["BTCUSDT"].stops.get(oid)
    assert stop is not None and stop.info.trailing_time == b.ts  # tracking since placement
    assert not working(walk(b, 42_000, 39_500, 45_500, 42_316), oid)
    events = walk(b, 42_315)  # 45,500 * 0.93
    assert working(events, oid)
    report = next(e for e in events if isinstance(e, ExecutionReport) and e.order.order_id == oid)
    assert (report.order.trailing_delta, report.order.trailing_time) == (
        700,
        stop.info.trailing_time,
    )


def trade_units(b: Bench, price_units: int) -> list[object]:
    """One trade at a price given in 1e-8 units."""
    events: list[object] = []
    for acct, side in ((1, "SELL"), (2, "BUY")):
        b.ts += 1
        b.oid += 1
        events += b.run(
            NewOrder(f"r{b.ts}", b.ts, acct, "BTCUSDT", Side(side), OrderType.LIMIT,
                     f"c{b.oid}", quantity=LOT, price=price_units, time_in_force=TimeInForce.GTC)
        )  # fmt: skip
    return events


def test_without_any_trade_yet_tracking_starts_at_the_first_trade() -> None:
    b = Bench()
    oid = place(b, "BUY", OrderType.STOP_LOSS_LIMIT, 2_000, 1000)
    assert not working(walk(b, 1_000, 1_099), oid)
    assert working(walk(b, 1_100), oid)


def test_trailing_market_stop_sells_at_market_when_triggered() -> None:
    b = Bench()
    trade_at(b, 100)
    b.order(1, "BUY", 5, 80)  # the bid the stop will sell into
    oid = place_market(b, "SELL", OrderType.STOP_LOSS, 1000)
    events = walk(b, 120, 108)  # 120 * 0.9
    assert working(events, oid)
    sold = [e for e in events if isinstance(e, Trade) and e.seller_order_id == oid]
    assert [t.price for t in sold] == [80 * E8]


def place_market(b: Bench, side: str, order_type: OrderType, delta: int) -> int:
    events = b.order(TRADER, side, 1, None, type=order_type, trailing_delta=delta)
    reply = events[-1]
    assert isinstance(reply, Reply) and reply.code == 0, reply
    assert reply.parts[0].result is not None
    return reply.parts[0].result.order.order_id


@pytest.mark.parametrize(
    ("side", "order_type", "delta", "code", "msg"),
    [
        # STOP_LOSS BUY is governed by the "above" bounds, STOP_LOSS SELL by the "below" ones.
        ("BUY", OrderType.STOP_LOSS_LIMIT, 2001, -1013, "Filter failure: TRAILING_DELTA"),
        ("BUY", OrderType.STOP_LOSS_LIMIT, 2000, 0, ""),
        ("SELL", OrderType.STOP_LOSS_LIMIT, 30, -1013, "Filter failure: TRAILING_DELTA"),
        ("SELL", OrderType.STOP_LOSS_LIMIT, 50, 0, ""),
        ("SELL", OrderType.TAKE_PROFIT_LIMIT, 30, 0, ""),  # TAKE_PROFIT SELL: above
        ("BUY", OrderType.TAKE_PROFIT_LIMIT, 3000, -1013, "Filter failure: TRAILING_DELTA"),
        ("BUY", OrderType.LIMIT, 100, -1106, "Parameter 'trailingDelta' sent when not required."),
    ],
)
def test_trailing_delta_filter(side: str, order_type: OrderType, delta: int, code: int,
                               msg: str) -> None:  # fmt: skip
    b = Bench(min_trailing_above_delta=10, max_trailing_above_delta=2000,
              min_trailing_below_delta=50, max_trailing_below_delta=2500)  # fmt: skip
    trade_at(b, 100)
    before = (b.engine.balances(), b.engine.open_orders(TRADER))
    reply = b.order(TRADER, side, 1, 100, type=order_type, trailing_delta=delta)[-1]
    assert isinstance(reply, Reply)
    assert (reply.code, reply.msg) == (code, msg)
    if code:
        assert (b.engine.balances(), b.engine.open_orders(TRADER)) == before  # unchanged


def test_a_symbol_without_trailing_stops_refuses_them() -> None:
    b = Bench(allow_trailing_stop=False)
    reply = b.order(TRADER, "SELL", 1, 90, type=SL_LIMIT, trailing_delta=100)[-1]
    assert isinstance(reply, Reply)
    assert (reply.code, reply.msg) == (
        -2010,
        "Trailing stop orders are not supported for this symbol.",
    )


def test_a_stop_needs_a_stop_price_or_a_trailing_delta() -> None:
    b = Bench()
    reply = b.order(TRADER, "SELL", 1, 90, type=SL_LIMIT)[-1]
    assert isinstance(reply, Reply) and reply.code == -1102


def test_a_stop_price_already_met_is_refused_as_for_any_stop() -> None:
    b = Bench()
    trade_at(b, 100)
    reply = b.order(TRADER, "SELL", 1, 90, type=SL_LIMIT, trailing_delta=100,
                    stop_price=110 * E8)[-1]  # fmt: skip
    assert isinstance(reply, Reply) and reply.msg == "Order would trigger immediately."


def test_tracking_state_survives_a_snapshot() -> None:
    b = Bench()
    trade_at(b, 100)
    oid = place(b, "SELL", SL_LIMIT, 50, 1000)
    walk(b, 130)  # the highest price is now 130: 117 triggers
    restored = Engine.restore(b.engine.snapshot())
    assert restored.state_hash() == b.engine.state_hash()
    b.engine = restored
    assert not working(walk(b, 118), oid)
    assert working(walk(b, 117), oid)


def test_one_sweep_sees_every_price_it_trades_at() -> None:
    """A buy sweeping 100 -> 120 activates a BUY trailing stop (stop price 105) at the first
    trade that meets it (110), not at the sweep's last price."""
    b = Bench()
    trade_at(b, 100)
    oid = place(b, "BUY", SL_LIMIT, 200, 1000, stop=105)
    for price in (110, 120):
        b.order(1, "SELL", 1, price)
    assert not working(b.order(2, "BUY", 2, 120), oid)  # lowest since activation: 110
    assert working(walk(b, 121), oid)  # 110 * 1.1


# ------------------------------------------------------------------ the path's properties

prices = st.integers(min_value=1, max_value=10**6)


@given(is_buy=st.booleans(), delta=st.integers(1, BIPS - 1), start=prices,
       path=st.lists(prices, max_size=40))  # fmt: skip
@settings(max_examples=300, deadline=None)
def test_trail_follows_the_best_price_and_fires_on_the_reversal(
    is_buy: bool, delta: int, start: int, path: list[int]
) -> None:
    extreme = start
    for i, price in enumerate(path):
        new_extreme, fired = trail(is_buy, delta, extreme, price)
        best = min(start, *path[: i + 1]) if is_buy else max(start, *path[: i + 1])
        # The tracked price only ever moves in the trader's favour, to the best price seen.
        assert new_extreme == best
        assert (new_extreme <= extreme) if is_buy else (new_extreme >= extreme)
        # It fires exactly when this price is delta BIPS or more beyond the best before it.
        if is_buy:
            assert fired == (price * BIPS >= extreme * (BIPS + delta))
        else:
            assert fired == (price * BIPS <= extreme * (BIPS - delta))
        if fired:
            return
        extreme = new_extreme


@given(is_buy=st.booleans(), delta=st.sampled_from([100, 500, 1000]),
       path=st.lists(st.integers(50, 150), min_size=1, max_size=12))  # fmt: skip
@settings(max_examples=40, deadline=None)
def test_the_engine_triggers_at_the_first_reversal_of_delta(
    is_buy: bool, delta: int, path: list[int]
) -> None:
    b = Bench()
    trade_at(b, 100)
    oid = place(b, "BUY" if is_buy else "SELL", SL_LIMIT, 400 if is_buy else 30, delta)
    best = 100
    expected = None
    for i, price in enumerate(path):
        if (
            price * BIPS >= best * (BIPS + delta)
            if is_buy
            else price * BIPS <= best * (BIPS - delta)
        ):
            expected = i
            break
        best = min(best, price) if is_buy else max(best, price)
    for i, price in enumerate(path):
        fired = working(trade_at(b, price), oid)
        assert fired == (i == expected)
        if fired:
            break
