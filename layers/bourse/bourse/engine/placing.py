"""A new order: its checks (``acceptance``), what it locks, then its run — a stop order waits
with its symbol's stops, any other is matched (``matching``) — and the stops and OTO orders
its trades set off."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bourse.domain import errors
from bourse.domain.amounts import SCALE
from bourse.domain.commands import NewOrder, validate_new_order_shape
from bourse.domain.enums import ExecutionType, OrderStatus, OrderType, Outcome, SymbolStatus
from bourse.domain.events import ExecutionReport, Fill, OrderInfo, OrderResult, ReplyPart
from bourse.engine import acceptance
from bourse.engine.acceptance import (
    check_combination,
    check_exchange_filters,
    check_filters,
    check_state,
    shape_is_plainly_valid,
)
from bourse.engine.command_output import order_result
from bourse.engine.matching import take
from bourse.engine.orders import Order
from bourse.engine.stop_triggers import observe_trades, run_stops

if TYPE_CHECKING:
    from bourse.engine.state import EngineState, Result

_NEW = ExecutionType.NEW
_S_NEW = OrderStatus.NEW
_MARKET_TYPES = frozenset({OrderType.MARKET, OrderType.STOP_LOSS, OrderType.TAKE_PROFIT})
_SUCCESS = Outcome.SUCCESS
_TRADING = SymbolStatus.TRADING


def on_new_order(eng: EngineState, cmd: NewOrder) -> Result:
    if not shape_is_plainly_valid(cmd):
        validate_new_order_shape(cmd)
    result = place(eng, cmd)
    return 0, "", (ReplyPart(_SUCCESS, 0, "", result),)


def place(eng: EngineState, cmd: NewOrder) -> OrderResult:
    """Check, accept and run a (shape-valid) new order; raise before any change."""
    if eng._reg.accounts.get(cmd.account_id):
        raise errors.rejected(errors.MSG_ACCOUNT_DISABLED)  # frozen
    sym = eng._symbols.get(cmd.symbol)
    if sym is None:
        raise errors.INVALID_SYMBOL_ERROR
    spec = sym.spec
    if spec.status != _TRADING:
        raise errors.rejected(errors.MSG_MARKET_CLOSED)
    stp_mode = check_combination(spec, cmd)
    check_filters(sym, cmd)
    check_exchange_filters(eng._symbols.values(), cmd)
    check_state(sym, cmd)
    is_buy = cmd.side == "BUY"
    order_type = cmd.type
    is_stop = order_type in acceptance.STOP_TYPES
    is_market = order_type == OrderType.MARKET
    quantity = cmd.quantity or 0
    qoq = cmd.quote_order_qty or 0
    # What the order locks at acceptance (docs/engine.md, "Orders").
    if is_buy:
        if order_type in _MARKET_TYPES:
            if is_stop:
                lock = 0
            elif qoq:
                lock = qoq
            else:
                lock = acceptance.walk_cost_for_qty(sym.book.asks, quantity)
        else:
            lock = (cmd.price or 0) * quantity // SCALE
    elif qoq:
        lock = acceptance.walk_base_for_quote(sym.book.bids, qoq, sym.step)
    else:
        lock = quantity
    bal = eng._bal
    acct = cmd.account_id
    lock_asset, recv_asset = (sym.quote, sym.base) if is_buy else (sym.base, sym.quote)
    lock_key = (acct, lock_asset)
    lock_entry = bal.accounts.get(lock_key)
    if lock and (lock_entry is None or lock_entry[0] < lock):
        raise errors.rejected(errors.MSG_INSUFFICIENT_BALANCE)

    # Accepted: from here on state changes.
    eng._cmd_sym = sym
    ts = eng._ts
    order_id = sym.next_order_id
    sym.next_order_id = order_id + 1
    info = OrderInfo(
        order_id, acct, spec.symbol, cmd.client_order_id, cmd.side, order_type,
        cmd.time_in_force, quantity, cmd.price or 0, cmd.stop_price or 0,
        cmd.iceberg_qty or 0, qoq, stp_mode, ts, cmd.trailing_delta or 0,
        ts if cmd.trailing_delta and not cmd.stop_price and sym.last_price else -1,
    )  # fmt: skip
    if lock_entry is None:
        lock_entry = bal.entry(acct, lock_asset)
    recv_entry = bal.entry(acct, recv_asset)
    order = Order(info, is_buy, lock_key, lock_entry, (acct, recv_asset), recv_entry)
    if lock:
        touched = eng._touched_bal
        if lock_key not in touched:
            touched[lock_key] = (lock_entry, lock_entry[0], lock_entry[1])
        lock_entry[0] -= lock
        lock_entry[1] += lock
        order.lock = lock
    if is_stop:
        # No stop price after a trade: it tracks from the last price.
        sym.stops.add(order, sym.last_price if info.trailing_time >= 0 else 0)
        sym.open_of(acct)[cmd.client_order_id] = order
        eng._events.append(
            ExecutionReport(
                0, ts, info, _NEW, _S_NEW, "NONE", 0, 0, 0, 0, 0, 0, "", -1, False, False,
                -1,
            )
        )  # fmt: skip
        return order_result(order, ())
    order.is_market = is_market
    order.working_ts = ts
    eng._events.append(
        ExecutionReport(0, ts, info, _NEW, _S_NEW, "NONE", 0, 0, 0, 0, 0, 0, "", -1, True,
                        False, ts)
    )  # fmt: skip
    fills: list[Fill] = []
    last_before = sym.last_price
    mark = len(eng._events)
    take(eng, sym, order, fills)
    stops = sym.stops
    if stops.trailing and fills:
        observe_trades(eng, sym, mark)
    if (sym.last_price != last_before and (stops.rises or stops.falls)) or stops.fired:
        eng._reply_order = order
        eng._reply_fills = fills
        try:
            run_stops(eng, sym)
        finally:
            eng._reply_order = None
    if eng._lists.due:
        eng._lists.run_due(eng)  # OTO working orders this order filled
    return order_result(order, tuple(fills))
