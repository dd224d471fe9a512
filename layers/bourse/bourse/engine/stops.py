"""Untriggered stop orders of one symbol and the choice of the next one to trigger.

Per docs/engine.md, the next stop is the one with the smallest order id among those whose
condition holds for the last trade price. Stops are stored in two dicts by direction;
insertion order is acceptance order, which is ascending order id, so the first holding
entry of each dict is that direction's candidate.
"""

from __future__ import annotations

from bourse.domain.enums import OrderType
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


class Stops:
    __slots__ = ("falls", "rises")

    def __init__(self) -> None:
        self.rises: dict[int, Order] = {}  # trigger when last >= stop price
        self.falls: dict[int, Order] = {}  # trigger when last <= stop price

    def __len__(self) -> int:
        return len(self.rises) + len(self.falls)

    def __contains__(self, order_id: int) -> bool:
        return order_id in self.rises or order_id in self.falls

    def get(self, order_id: int) -> Order | None:
        return self.rises.get(order_id) or self.falls.get(order_id)

    def add(self, order: Order) -> None:
        info = order.info
        if triggers_on_rise(info.type, order.is_buy):
            self.rises[order.order_id] = order
        else:
            self.falls[order.order_id] = order

    def remove(self, order_id: int) -> None:
        if self.rises.pop(order_id, None) is None:
            del self.falls[order_id]

    def all_sorted(self) -> list[Order]:
        return sorted([*self.rises.values(), *self.falls.values()], key=_order_id)

    def next_triggered(self, last_price: int) -> Order | None:
        """The holding stop with the smallest order id, or None."""
        best: Order | None = None
        for order in self.rises.values():
            if last_price >= order.info.stop_price:
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
