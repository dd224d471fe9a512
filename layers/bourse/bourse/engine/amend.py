"""The checks an AMEND_ORDER passes before it changes anything (Binance's order amend keep
priority; docs/engine.md "Amend keep priority"). Everything here only reads state."""

from __future__ import annotations

from bourse.domain import errors
from bourse.domain.commands import CLIENT_ORDER_ID_RE, AmendOrder
from bourse.domain.enums import SymbolStatus
from bourse.domain.symbols import check_lot
from bourse.engine.acceptance import MARKET_STOP_TYPES
from bourse.engine.orders import Order
from bourse.engine.symbol_state import SymbolState


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
