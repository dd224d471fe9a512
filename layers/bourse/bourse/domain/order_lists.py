"""The shape of a NEW_ORDER_LIST (Binance's OCO / OTO / OTOCO), checked by the API before a
command is produced and by the engine again (the log is its only input). Binance's codes:
errors.md -1158..-1199 for the OCO pair's types; docs/engine.md "Order lists" gives the order.
"""

from __future__ import annotations

from bourse.domain import errors
from bourse.domain.commands import (
    CLIENT_ORDER_ID_RE,
    NewOrder,
    NewOrderList,
    validate_new_order_shape,
)
from bourse.domain.enums import OrderType, Side

STOP_LOSS_TYPES = frozenset({OrderType.STOP_LOSS, OrderType.STOP_LOSS_LIMIT})
TAKE_PROFIT_TYPES = frozenset({OrderType.TAKE_PROFIT, OrderType.TAKE_PROFIT_LIMIT})
# rest-api.md lists LIMIT_MAKER for aboveType only, but a buy OCO's limit maker must be
# below (its own rule, and errors.md -1165), so both positions take every OCO type.
OCO_TYPES = STOP_LOSS_TYPES | TAKE_PROFIT_TYPES | {OrderType.LIMIT_MAKER}
WORKING_TYPES = frozenset({OrderType.LIMIT, OrderType.LIMIT_MAKER})
LEG_COUNT = {"OCO": 2, "OTO": 2, "OTOCO": 3}
CLIENT_ID_RANGE = "^[\\.A-Z\\:/a-z0-9_-]{1,36}$"


def validate_order_list_shape(cmd: NewOrderList) -> tuple[NewOrder, ...]:
    """Raise the Binance error for a list that cannot be; return its orders."""
    if cmd.kind not in LEG_COUNT:
        raise errors.invalid_parameter("contingencyType")
    legs = cmd.orders
    if len(legs) != LEG_COUNT[cmd.kind]:
        raise errors.invalid_parameter()
    if not CLIENT_ORDER_ID_RE.match(cmd.list_client_order_id):
        raise errors.illegal_chars("listClientOrderId", CLIENT_ID_RANGE)
    if cmd.kind == "OCO":
        check_oco_pair(legs[0], legs[1])
    else:
        if legs[0].type not in WORKING_TYPES:
            raise errors.INVALID_ORDER_TYPE_ERROR
        if cmd.kind == "OTOCO":
            check_oco_pair(legs[1], legs[2])
    for leg in legs:
        if (leg.account_id, leg.symbol) != (cmd.account_id, cmd.symbol):
            raise errors.invalid_parameter()
        validate_new_order_shape(leg)
        if leg.quote_order_qty is not None or leg.trailing_delta is not None:
            # Trailing legs (Binance's *TrailingDelta) are not built yet (docs/api.md).
            raise errors.rejected(errors.MSG_UNSUPPORTED_COMBINATION)
    return legs


def check_oco_pair(above: NewOrder, below: NewOrder) -> None:
    """Binance's OCO leg rules: types per position, then per side."""
    if above.side != below.side or above.quantity != below.quantity:
        raise errors.invalid_parameter()
    if above.type not in OCO_TYPES or below.type not in OCO_TYPES:
        raise errors.OCO_ORDER_TYPE_ERROR
    if above.type is below.type is OrderType.LIMIT_MAKER:
        raise errors.OCO_BOTH_LIMIT_ERROR
    if above.side == Side.BUY:
        if above.type is OrderType.LIMIT_MAKER:
            raise errors.BUY_OCO_LIMIT_ERROR
        if above.type in TAKE_PROFIT_TYPES:
            raise errors.BUY_OCO_TAKE_PROFIT_ERROR
        if below.type in STOP_LOSS_TYPES:
            raise errors.BUY_OCO_STOP_LOSS_ERROR
    else:
        if above.type in STOP_LOSS_TYPES:
            raise errors.SELL_OCO_STOP_LOSS_ERROR
        if below.type is OrderType.LIMIT_MAKER:
            raise errors.SELL_OCO_LIMIT_ERROR
        if below.type in TAKE_PROFIT_TYPES:
            raise errors.SELL_OCO_TAKE_PROFIT_ERROR
