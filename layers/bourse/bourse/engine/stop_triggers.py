"""Stops set off by trades: triggered in the order ``stops.Stops`` gives, each run as a taker
as it triggers (so its trades can trigger more), and trailing stops shown every trade."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bourse.domain.enums import ExecutionType, OrderStatus, OrderType
from bourse.domain.events import ExecutionReport, Trade
from bourse.engine import acceptance
from bourse.engine.command_output import touch
from bourse.engine.matching import take
from bourse.engine.symbol_state import SymbolState

if TYPE_CHECKING:
    from bourse.engine.state import EngineState

_NEW = ExecutionType.NEW
_EXPIRED = ExecutionType.EXPIRED
_S_NEW = OrderStatus.NEW
_S_EXPIRED = OrderStatus.EXPIRED
_MARKET_TYPES = frozenset({OrderType.MARKET, OrderType.STOP_LOSS, OrderType.TAKE_PROFIT})


def run_stops(eng: EngineState, sym: SymbolState) -> None:
    stops = sym.stops
    ts = eng._ts
    while True:
        order = stops.next_triggered(sym.last_price)
        if order is None:
            return
        stops.remove(order.order_id)
        del sym.by_account[order.account_id][order.info.client_order_id]
        order.working_ts = ts
        info = order.info
        eng._events.append(
            ExecutionReport(0, ts, info, _NEW, _S_NEW, "NONE", 0, 0, 0, 0, 0, 0, "", -1,
                            True, False, ts)
        )  # fmt: skip
        if info.order_list_id >= 0:
            eng._lists.on_trigger(eng, sym, order)  # an OCO leg: the other one expires
        if info.type in _MARKET_TYPES:
            order.is_market = True
            if order.is_buy:
                cost = acceptance.walk_cost_for_qty(sym.book.asks, order.remaining)
                entry = order.lock_bal
                if entry[0] < cost:
                    order.status = _S_EXPIRED
                    eng._events.append(
                        ExecutionReport(
                            0, ts, info, _EXPIRED, _S_EXPIRED, "INSUFFICIENT_BALANCE", 0, 0,
                            0, 0, 0, 0, "", -1, True, False, ts,
                        )
                    )  # fmt: skip
                    continue
                if cost:
                    touch(eng, entry, order.account_id, order.lock_key[1])
                    entry[0] -= cost
                    entry[1] += cost
                    order.lock = cost
        mark = len(eng._events)
        take(eng, sym, order, None)
        if stops.trailing:
            observe_trades(eng, sym, mark)


def observe_trades(eng: EngineState, sym: SymbolState, start: int) -> None:
    """Show the trailing stops each trade since ``eng._events[start]``, in order."""
    stops = sym.stops
    for event in eng._events[start:]:
        if type(event) is Trade:
            stops.observe(event.price, eng._ts)
