"""Untriggered stop orders of one symbol and the choice of the next one to trigger.

Per docs/engine.md, the next stop is the one with the smallest order id among those whose
condition holds for the last trade price, or, for a trailing stop, whose reversal reached its
delta. Plain stops are stored in two dicts by direction; insertion order is acceptance order,
which is ascending order id, so the first holding entry of each dict is that direction's
candidate. Trailing stops watch every trade price (``observe``): their trigger depends on the
path of prices, not only on the last one.
"""

from __future__ import annotations

import msgspec

from bourse.domain.enums import OrderType
from bourse.domain.symbols import BIPS
from bourse.engine.orders import Order


def triggers_on_rise(order_type: OrderType, is_buy: bool) -> bool:
    """STOP_LOSS BUY and TAKE_PROFIT SELL trigger when the price rises to the stop price."""
    is_stop_loss = order_type in (OrderType.STOP_LOSS, OrderType.STOP_LOSS_LIMIT)
    return is_stop_loss == is_buy


def would_trigger(order_type: OrderType, is_buy: bool, stop_price: int, last_price: int) -> bool:
    if last_price <= 0:
        return False
    if triggers_on_rise(order_type, is_buy):
        return last_price >= stop_price
    return last_price <= stop_price


def trail(is_buy: bool, delta: int, extreme: int, price: int) -> tuple[int, bool]:
    """One trade price on a tracking trailing stop: its new extreme and whether it triggers.

    A BUY tracks the lowest price and triggers on a rise of ``delta`` BIPS from it; a SELL
    tracks the highest and triggers on a fall of ``delta`` BIPS (Binance's trailing stop FAQ).
    Exact integer comparisons: Binance's own examples trigger at untruncated prices
    (43,012.5 = 46,500 * 0.925).
    """
    if is_buy:
        if price < extreme:
            return price, False
        return extreme, price * BIPS >= extreme * (BIPS + delta)
    if price > extreme:
        return price, False
    return extreme, price * BIPS <= extreme * (BIPS - delta)


class Stops:
    __slots__ = ("falls", "fired", "rises", "trailing")

    def __init__(self) -> None:
        self.rises: dict[int, Order] = {}  # trigger when last >= stop price
        self.falls: dict[int, Order] = {}  # trigger when last <= stop price
        self.trailing: dict[int, Order] = {}  # trailing stops not yet triggered
        # Trailing stops whose reversal reached their delta, waiting their turn in the
        # command that moved the price (never left over between commands).
        self.fired: dict[int, Order] = {}

    def __len__(self) -> int:
        return len(self.rises) + len(self.falls) + len(self.trailing) + len(self.fired)

    def __contains__(self, order_id: int) -> bool:
        return (
            order_id in self.rises
            or order_id in self.falls
            or order_id in self.trailing
            or order_id in self.fired
        )

    def get(self, order_id: int) -> Order | None:
        return (
            self.rises.get(order_id)
            or self.falls.get(order_id)
            or self.trailing.get(order_id)
            or self.fired.get(order_id)
        )

    def add(self, order: Order) -> None:
        info = order.info
        if info.trailing_delta:
            self.trailing[order.order_id] = order
        elif triggers_on_rise(info.type, order.is_buy):
            self.rises[order.order_id] = order
        else:
            self.falls[order.order_id] = order

    def remove(self, order_id: int) -> None:
        for group in (self.rises, self.falls, self.trailing):
            if group.pop(order_id, None) is not None:
                return
        del self.fired[order_id]

    def all_sorted(self) -> list[Order]:
        return sorted(
            [*self.rises.values(), *self.falls.values(), *self.trailing.values(),
             *self.fired.values()],
            key=_order_id,
        )  # fmt: skip

    def observe(self, price: int, ts: int) -> None:
        """One trade at ``price``: every trailing stop starts tracking (if its stop price
        condition now holds), moves its extreme, or fires."""
        fired = None
        for order in self.trailing.values():
            info = order.info
            extreme = order.trail_extreme
            if extreme == 0:
                if info.stop_price and not would_trigger(
                    info.type, order.is_buy, info.stop_price, price
                ):
                    continue
                # The first trade that meets the stop price sets the extreme (FAQ).
                order.trail_extreme = price
                order.info = msgspec.structs.replace(info, trailing_time=ts)
                continue
            order.trail_extreme, hit = trail(order.is_buy, info.trailing_delta, extreme, price)
            if hit:
                if fired is None:
                    fired = []
                fired.append(order)
        if fired:
            for order in fired:
                del self.trailing[order.order_id]
                self.fired[order.order_id] = order

    def next_triggered(self, last_price: int) -> Order | None:
        """The holding stop with the smallest order id, or None."""
        best: Order | None = None
        if self.fired:
            best = min(self.fired.values(), key=_order_id)
        for order in self.rises.values():
            if last_price >= order.info.stop_price:
                if best is None or order.order_id < best.order_id:
                    best = order
                break
        for order in self.falls.values():
            if last_price <= order.info.stop_price:
                if best is None or order.order_id < best.order_id:
                    best = order
                break
        return best


def _order_id(order: Order) -> int:
    return order.order_id
