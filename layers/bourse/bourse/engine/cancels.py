"""Taking orders off: CANCEL_ORDER, CANCEL_ALL, the cancel half of CANCEL_REPLACE (its new
order is ``placing``'s), and the delisting's cancels. An order of an order list is cancelled
with its whole list (``order_lists``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bourse.domain import errors
from bourse.domain.commands import CancelAll, CancelOrder, CancelReplace, validate_new_order_shape
from bourse.domain.enums import CancelReplaceMode, ExecutionType, OrderStatus, Outcome
from bourse.domain.errors import BinanceError
from bourse.domain.events import ExecutionReport, OrderResult, ReplyPart
from bourse.engine.command_output import order_id_of, order_result, release
from bourse.engine.orders import Order
from bourse.engine.placing import place
from bourse.engine.symbol_state import SymbolState

if TYPE_CHECKING:
    from bourse.engine.state import EngineState, Result

_CANCELED = ExecutionType.CANCELED
_S_CANCELED = OrderStatus.CANCELED
# An order already closed with its order list, met later in the same command's loop.
CLOSED = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.EXPIRED, OrderStatus.EXPIRED_IN_MATCH}
)
_SUCCESS = Outcome.SUCCESS


def find_open(eng: EngineState, sym: SymbolState, cmd: CancelOrder) -> Order:
    if cmd.order_id is not None:
        order = (
            sym.book.orders.get(cmd.order_id)
            or sym.stops.get(cmd.order_id)
            or eng._lists.find_pending(sym.spec.symbol, cmd.order_id)
        )
        if order is None or order.account_id != cmd.account_id:
            raise errors.cancel_rejected()
        return order
    open_orders = sym.by_account.get(cmd.account_id)
    order = open_orders.get(cmd.orig_client_order_id or "") if open_orders else None
    if order is None:
        raise errors.cancel_rejected()
    return order


def cancel_order(
    eng: EngineState, sym: SymbolState, order: Order, cancel_client_id: str
) -> OrderResult:
    """Cancel an open order; one of an order list cancels its whole list."""
    lst = eng._lists.list_of(order)
    if lst is not None:
        return eng._lists.cancel_leg(eng, sym, lst, order, cancel_client_id)
    return cancel_one(eng, sym, order, cancel_client_id)


def cancel_one(
    eng: EngineState, sym: SymbolState, order: Order, cancel_client_id: str
) -> OrderResult:
    """Take an open order (resting or untriggered stop) off and release its lock."""
    eng._cmd_sym = sym
    is_stop = order.order_id in sym.stops
    if is_stop:
        sym.stops.remove(order.order_id)
    else:
        side = sym.book.bids if order.is_buy else sym.book.asks
        touched = eng._touched_bids if order.is_buy else eng._touched_asks
        price = order.price
        if price not in touched:
            touched[price] = side.levels[price].qty
        side.unlink(order)
        del sym.book.orders[order.order_id]
    del sym.by_account[order.account_id][order.info.client_order_id]
    release(eng, order)
    order.status = _S_CANCELED
    eng._events.append(
        ExecutionReport(
            0, eng._ts, order.info, _CANCELED, _S_CANCELED, "NONE", 0, 0, 0,
            order.executed, order.cum_quote, 0, "", -1, not is_stop, False,
            order.working_ts, cancel_client_id, -1, order.prevented_qty, 0, -1,
        )
    )  # fmt: skip
    return order_result(order, (), cancel_client_id)


def take_off(eng: EngineState, sym: SymbolState, order: Order, is_stop: bool) -> None:
    """Take an open order off its book (or the stops); the caller releases its lock."""
    if is_stop:
        sym.stops.remove(order.order_id)
        return
    side = sym.book.bids if order.is_buy else sym.book.asks
    touched = eng._touched_bids if order.is_buy else eng._touched_asks
    if order.price not in touched:
        touched[order.price] = side.levels[order.price].qty
    side.unlink(order)
    del sym.book.orders[order.order_id]


def on_cancel(eng: EngineState, cmd: CancelOrder) -> Result:
    sym = eng._symbol(cmd.symbol)
    if cmd.order_id is None and cmd.orig_client_order_id is None:
        raise errors.mandatory("orderId")
    order = find_open(eng, sym, cmd)
    result = cancel_order(eng, sym, order, cmd.cancel_client_order_id)
    return 0, "", (ReplyPart(_SUCCESS, 0, "", result),)


def on_cancel_all(eng: EngineState, cmd: CancelAll) -> Result:
    sym = eng._symbol(cmd.symbol)
    open_orders = sym.by_account.get(cmd.account_id)
    if not open_orders:
        raise errors.cancel_rejected()
    parts = []
    for order in sorted(open_orders.values(), key=order_id_of):
        if order.status in CLOSED:
            continue  # already cancelled with its order list
        result = cancel_order(eng, sym, order, "")
        parts.append(ReplyPart(_SUCCESS, 0, "", result))
        parts.extend(eng._lists.take_cascaded())
    return 0, "", tuple(parts)


def on_cancel_replace(eng: EngineState, cmd: CancelReplace) -> Result:
    cancel, new = cmd.cancel, cmd.new_order
    if cancel.order_id is None and cancel.orig_client_order_id is None:
        raise errors.mandatory("orderId")
    validate_new_order_shape(new)
    if (cancel.account_id, cancel.symbol) != (new.account_id, new.symbol):
        # Binance's cancelReplace names one symbol for both; one account and one symbol
        # per command also keeps a single depth diff per command.
        raise errors.invalid_parameter()
    cancel_part: ReplyPart
    try:
        sym = eng._symbol(cancel.symbol)
        order = find_open(eng, sym, cancel)
        result = cancel_order(eng, sym, order, cancel.cancel_client_order_id)
        cancel_part = ReplyPart(Outcome.SUCCESS, 0, "", result)
        cancel_ok = True
    except BinanceError as exc:
        cancel_part = ReplyPart(Outcome.FAILURE, exc.code, exc.msg, None)
        cancel_ok = False
    if not cancel_ok and cmd.mode == CancelReplaceMode.STOP_ON_FAILURE:
        new_part = ReplyPart(Outcome.NOT_ATTEMPTED, 0, "", None)
        err = errors.CANCEL_REPLACE_FAILED_ERROR
        return err.code, err.msg, (cancel_part, new_part)
    try:
        new_result = place(eng, new)
        new_part = ReplyPart(Outcome.SUCCESS, 0, "", new_result)
        new_ok = True
    except BinanceError as exc:
        new_part = ReplyPart(Outcome.FAILURE, exc.code, exc.msg, None)
        new_ok = False
    if cancel_ok and new_ok:
        return 0, "", (cancel_part, new_part)
    err = (
        errors.CANCEL_REPLACE_PARTIAL_ERROR
        if cancel_ok or new_ok
        else errors.CANCEL_REPLACE_FAILED_ERROR
    )
    return err.code, err.msg, (cancel_part, new_part)
