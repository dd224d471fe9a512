"""AMEND_ORDER: reduce an open order's quantity in place (Binance's order amend keep
priority; docs/engine.md "Amend keep priority"): the checks it passes before it changes
anything, which only read state, then the change."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from bourse.domain import errors
from bourse.domain.amounts import SCALE
from bourse.domain.commands import CLIENT_ORDER_ID_RE, AmendOrder
from bourse.domain.enums import ExecutionType, OrderStatus, Outcome, SymbolStatus
from bourse.domain.events import ExecutionReport, OrderAmended, ReplyPart
from bourse.domain.symbols import check_lot
from bourse.engine.acceptance import MARKET_STOP_TYPES
from bourse.engine.cancels import take_off
from bourse.engine.command_output import order_result, release, release_part
from bourse.engine.orders import Order
from bourse.engine.symbol_state import SymbolState

if TYPE_CHECKING:
    from bourse.engine.state import EngineState, Result

_REPLACED = ExecutionType.REPLACED
_S_EXPIRED = OrderStatus.EXPIRED
_SUCCESS = Outcome.SUCCESS
_json = msgspec.json.Encoder()


def check_request(cmd: AmendOrder, frozen: bool, sym: SymbolState) -> None:
    """What the request must be, whatever the order."""
    if cmd.order_id is None and cmd.orig_client_order_id is None:
        raise errors.mandatory("orderId")
    if not CLIENT_ORDER_ID_RE.match(cmd.new_client_order_id):
        raise errors.illegal_chars("newClientOrderId", "^[\\.A-Z\\:/a-z0-9_-]{1,36}$")
    if cmd.new_qty <= 0:
        raise errors.INVALID_QUANTITY_ERROR
    if frozen:
        raise errors.amend_rejected(errors.MSG_ACCOUNT_DISABLED)
    if sym.spec.status != SymbolStatus.TRADING:
        raise errors.amend_rejected(errors.MSG_MARKET_CLOSED)


def find_open(sym: SymbolState, cmd: AmendOrder) -> Order:
    """The account's open order (resting or untriggered stop) the request names."""
    if cmd.order_id is not None:
        order = sym.book.orders.get(cmd.order_id) or sym.stops.get(cmd.order_id)
        if order is None or order.account_id != cmd.account_id:
            raise errors.amend_rejected()
        return order
    open_orders = sym.by_account.get(cmd.account_id)
    found = open_orders.get(cmd.orig_client_order_id or "") if open_orders else None
    if found is None:
        raise errors.amend_rejected()
    return found


def check_new_qty(sym: SymbolState, order: Order, cmd: AmendOrder) -> None:
    """newQty strictly below the order's quantity and on its LOT_SIZE grid; the new client
    id free among the account's other open orders of the symbol."""
    quantity = order.info.quantity
    if cmd.new_qty == quantity:
        raise errors.amend_rejected(errors.MSG_NO_STATE_CHANGE)
    if cmd.new_qty > quantity:
        raise errors.amend_rejected(errors.MSG_AMEND_INCREASE)
    check_lot(sym.spec, cmd.new_qty, market=order.info.type in MARKET_STOP_TYPES)
    other = sym.by_account.get(cmd.account_id, {}).get(cmd.new_client_order_id)
    if other is not None and other is not order:
        raise errors.amend_rejected(errors.MSG_DUPLICATE_ORDER)


def on_amend(eng: EngineState, cmd: AmendOrder) -> Result:
    """Reduce an open order's quantity in place: it keeps its queue position (docs/engine.md
    "Amend keep priority")."""
    sym = eng._symbol(cmd.symbol)
    check_request(cmd, bool(eng._reg.accounts.get(cmd.account_id)), sym)
    order = find_open(sym, cmd)
    if eng._lists.list_of(order) is not None:
        # Binance amends an OCO pair together and a pending order alone; not built yet.
        raise errors.amend_rejected(errors.MSG_AMEND_ORDER_LIST)
    check_new_qty(sym, order, cmd)

    # Accepted: from here on state changes.
    eng._cmd_sym = sym
    old = order.info
    info = msgspec.structs.replace(
        old, quantity=cmd.new_qty, client_order_id=cmd.new_client_order_id
    )
    order.info = info
    open_orders = sym.by_account[order.account_id]
    del open_orders[old.client_order_id]
    is_stop = order.order_id in sym.stops
    left = cmd.new_qty - order.executed - order.prevented_qty
    if left <= 0:
        # Amended to no more than it already traded: nothing left to work, it expires.
        take_off(eng, sym, order, is_stop)
        order.remaining = 0
        release(eng, order)
        order.status = _S_EXPIRED
    else:
        if not is_stop:
            side = sym.book.bids if order.is_buy else sym.book.asks
            touched = eng._touched_bids if order.is_buy else eng._touched_asks
            level = side.levels[order.price]
            if order.price not in touched:
                touched[order.price] = level.qty
            level.total -= order.remaining - left
            if order.displayed > left:
                level.qty -= order.displayed - left
                order.displayed = left
        order.remaining = left
        keep = order.price * left // SCALE if order.is_buy else left
        release_part(eng, order, order.lock - keep)
        open_orders[info.client_order_id] = order
    # Seqs are stamped in list order at the end of process(): this is the report's.
    execution_id = eng._seq + len(eng._events) + 1
    ts = eng._ts
    eng._events.append(
        ExecutionReport(
            0, ts, info, _REPLACED, order.status, "NONE", 0, 0, 0, order.executed,
            order.cum_quote, 0, "", -1, not is_stop, False, order.working_ts,
            old.client_order_id, -1, order.prevented_qty, 0, -1,
        )
    )  # fmt: skip
    eng._events.append(
        OrderAmended(0, ts, info.symbol, info.order_id, info.account_id, execution_id,
                     old.client_order_id, info.client_order_id, old.quantity, cmd.new_qty)
    )  # fmt: skip
    eng._detail = _json.encode(
        {"executionId": execution_id, "origClientOrderId": old.client_order_id,
         "preventedQty": order.prevented_qty}
    ).decode()  # fmt: skip
    return 0, "", (ReplyPart(_SUCCESS, 0, "", order_result(order, ())),)
