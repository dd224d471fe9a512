"""The trailing stops' index (``stops._Trails``) against the per-order rule it replaces.

``Stops.observe`` keeps trailing stops in buckets of equal extremes instead of showing every
trade to every stop; a naive model here applies ``stops.trail`` and ``stops.would_trigger``
to each stop at each trade, as the engine did before the index. Random adds, cancels and
trade paths must fire the same stops at the same trades, with the same extremes and the same
``trailing_time``, and the next triggered stop must be the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bourse.domain.enums import OrderType, Side, StpMode, TimeInForce
from bourse.domain.events import OrderInfo
from bourse.engine.orders import Order
from bourse.engine.stops import Stops, trail, would_trigger

_TYPES = (OrderType.STOP_LOSS, OrderType.TAKE_PROFIT, OrderType.STOP_LOSS_LIMIT,
          OrderType.TAKE_PROFIT_LIMIT)  # fmt: skip


@dataclass
class _Model:
    """One trailing stop as the engine used to keep it."""

    order: Order
    extreme: int
    started: int


def _order(order_id: int, is_buy: bool, kind: int, stop: int, delta: int) -> Order:
    order_type = _TYPES[kind]
    limit = order_type in (OrderType.STOP_LOSS_LIMIT, OrderType.TAKE_PROFIT_LIMIT)
    info = OrderInfo(
        order_id, 1, "BTCUSDT", f"c{order_id}", Side.BUY if is_buy else Side.SELL, order_type,
        TimeInForce.GTC if limit else None, 100, stop if limit else 0, stop, 0, 0,
        StpMode.NONE, 0, delta, -1,
    )  # fmt: skip
    entry = [0, 0]
    return Order(info, is_buy, (1, "USDT"), entry, (1, "BTC"), entry)


_step = st.one_of(
    # a new trailing stop: side, type, stop price (0: none), delta in BIPS
    st.tuples(
        st.just("add"),
        st.booleans(),
        st.integers(0, 3),
        st.integers(0, 140),
        st.sampled_from((1, 7, 100, 200, 500)),
    ),
    st.tuples(st.just("cancel"), st.integers(0, 200)),
    # a trade at 10,000 +/- 1% steps: with 1%, 2% and 5% deltas, reversals land exactly on
    # the trigger price (the boundary, where > and >= differ)
    st.tuples(st.just("trade"), st.integers(-12, 12)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_step, max_size=120), st.sampled_from((0, 9_900, 10_000, 10_100)))
def test_index_fires_what_the_per_order_rule_fires(
    steps: list[tuple[Any, ...]], start_price: int
) -> None:
    stops = Stops()
    model: dict[int, _Model] = {}
    fired_model: set[int] = set()
    last = start_price  # 0: no trade yet
    next_id = 0
    ts = 0
    for step in steps:
        ts += 1
        if step[0] == "add":
            _, is_buy, kind, stop_ticks, delta = step
            stop = stop_ticks * 100
            order = _order(next_id, is_buy, kind, stop, delta)
            next_id += 1
            if stop and would_trigger(order.info.type, is_buy, stop, last):
                continue  # refused at placement, as the engine does
            extreme = last if not stop and last else 0
            stops.add(order, extreme)
            model[order.order_id] = _Model(order, extreme, -1)  # placing stamps its time
        elif step[0] == "cancel":
            victim = step[1] % max(1, next_id)
            if victim in model:
                del model[victim]
                stops.remove(victim)
        else:
            price = 10_000 + step[1] * 100
            last = price
            for oid, m in list(model.items()):
                info = m.order.info
                if m.extreme == 0:
                    if info.stop_price and not would_trigger(
                        info.type, m.order.is_buy, info.stop_price, price
                    ):
                        continue
                    m.extreme, m.started = price, ts
                    continue
                m.extreme, hit = trail(m.order.is_buy, info.trailing_delta, m.extreme, price)
                if hit:
                    fired_model.add(oid)
                    del model[oid]
            stops.observe(price, ts)
            assert set(stops.fired) == fired_model
            # Take the fired ones out as run_stops does, smallest id first.
            while stops.fired:
                first = stops.next_triggered(last)
                assert first is not None and first.order_id == min(fired_model)
                fired_model.discard(first.order_id)
                stops.remove(first.order_id)
        assert set(stops.trailing) == set(model)
        for oid, m in model.items():
            assert stops.trail_extreme(oid) == m.extreme
            if m.started >= 0:
                assert stops.trailing[oid].info.trailing_time == m.started


def test_a_reversal_of_exactly_the_delta_fires() -> None:
    """Binance triggers at the delta reached, not passed: both sides, the boundary exactly."""
    stops = Stops()
    buy, sell = _order(1, True, 0, 0, 100), _order(2, False, 0, 0, 100)  # 1%
    stops.add(buy, 10_000)
    stops.add(sell, 10_000)
    stops.observe(10_099, 1)  # BUY: 10,099 < 10,000 * 1.01
    assert not stops.fired and stops.trail_extreme(2) == 10_099
    stops.observe(10_100, 2)  # BUY: exactly 1% up from 10,000; SELL now tracks 10,100
    assert list(stops.fired) == [1] and stops.trail_extreme(2) == 10_100
    stops.remove(1)
    stops.observe(10_000, 3)  # SELL: 10,000 > 10,100 * 0.99 = 9,999
    assert not stops.fired
    stops.observe(9_999, 4)  # exactly 1% down from 10,100
    assert list(stops.fired) == [2]


def test_plain_stops_stay_in_id_order_when_a_smaller_id_comes_late() -> None:
    """An order list's pending leg is placed after larger ids; the smallest holding id
    still triggers first."""
    stops = Stops()
    later = _order(5, True, 0, 1_000, 0)  # STOP_LOSS BUY: rises
    earlier = _order(3, True, 0, 1_200, 0)
    stops.add(later)
    stops.add(earlier)
    assert list(stops.rises) == [3, 5]
    assert stops.next_triggered(1_100) is later
    first = stops.next_triggered(1_300)
    assert first is earlier


def test_cancelled_stops_do_not_trigger_through_stale_heap_entries() -> None:
    stops = Stops()
    for oid in range(200):
        stops.add(_order(oid, False, 0, 1_000 + oid, 0))  # STOP_LOSS SELL: falls
    for oid in range(200):
        stops.remove(oid)
    assert stops.next_triggered(1) is None
    assert len(stops.heap_falls) <= 64 + 1
