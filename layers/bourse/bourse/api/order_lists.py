"""Order lists over REST (rest-api.md "Order lists"; docs/api.md "Order lists"):

- ``POST /api/v3/orderList/oco``, ``/oto``, ``/otoco``: one NEW_ORDER_LIST command each;
- ``DELETE /api/v3/orderList``: CANCEL_ORDER_LIST;
- ``GET /api/v3/orderList``, ``/allOrderList``, ``/openOrderList``: the record's
  ``order_lists`` (migration 0008), written by the recorder from ``ListStatus`` events.

The legs' Binance parameters (``abovePrice``, ``pendingQuantity``...) become ``NewOrder``s
checked by the same shape rules as ``POST /api/v3/order``. Pure: I/O comes in ``Deps``.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from bourse.api.handlers import SIGNED_COMMON, TRADE, USER_DATA, Deps, Request, _execute, _failed
from bourse.api.history import MAX_LIMIT
from bourse.api.orders import (
    RespType,
    check_known,
    generate_client_order_id,
    request_deadline,
    symbol_param,
)
from bourse.api.params import Params
from bourse.api.responses import cancel_response, new_order_response
from bourse.domain import errors
from bourse.domain.commands import (
    BINANCE_PARAM,
    CLIENT_ORDER_ID_RE,
    CancelOrderList,
    NewOrder,
    NewOrderList,
    validate_new_order_shape,
)
from bourse.domain.enums import OrderType, Side, StpMode, TimeInForce
from bourse.domain.events import OrderListInfo, Reply
from bourse.domain.order_lists import validate_order_list_shape
from bourse.record.views import OrderListRow

_CLIENT_ID_RANGE = "^[\\.A-Z\\:/a-z0-9_-]{1,36}$"
# Per leg, Binance's suffixes after the leg's prefix ("above", "pendingBelow"...). Strategy
# ids are read and kept nowhere, as for POST /api/v3/order; pegs are not built (-1104).
_LEG_FIELDS = (
    "Type", "Side", "ClientOrderId", "Price", "StopPrice", "TrailingDelta", "Quantity",
    "IcebergQty", "TimeInForce", "StrategyId", "StrategyType",
)  # fmt: skip
_LIST_COMMON = SIGNED_COMMON | {
    "symbol",
    "listClientOrderId",
    "newOrderRespType",
    "selfTradePreventionMode",
}


def _leg_params(*prefixes: str, without: frozenset[str] = frozenset()) -> frozenset[str]:
    names = {p + f for p in prefixes for f in _LEG_FIELDS}
    return frozenset(names - without)


_ONCE_PER_PAIR = frozenset({"Side", "Quantity"})  # sent once for both orders of a pair
OCO_PARAMS = (
    _LIST_COMMON
    | {"side", "quantity"}
    | _leg_params("above", "below", without=frozenset(
        p + f for p in ("above", "below") for f in _ONCE_PER_PAIR
    ))
)  # fmt: skip
OTO_PARAMS = _LIST_COMMON | _leg_params("working", "pending") - {
    "workingStopPrice",
    "workingTrailingDelta",
}
OTOCO_PARAMS = (
    _LIST_COMMON
    | {"pendingSide", "pendingQuantity"}
    | _leg_params("working")
    | _leg_params(
        "pendingAbove", "pendingBelow",
        without=frozenset({"pendingAboveSide", "pendingBelowSide", "pendingAboveQuantity",
                           "pendingBelowQuantity"}),
    )
) - {"workingStopPrice", "workingTrailingDelta"}  # fmt: skip
CANCEL_LIST_PARAMS = SIGNED_COMMON | {
    "symbol",
    "orderListId",
    "listClientOrderId",
    "newClientOrderId",
}
QUERY_LIST_PARAMS = SIGNED_COMMON | {"orderListId", "origClientOrderId"}
ALL_LISTS_PARAMS = SIGNED_COMMON | {"fromId", "startTime", "endTime", "limit"}
OPEN_LISTS_PARAMS = SIGNED_COMMON
DAY_MS = 24 * 60 * 60 * 1000
DEFAULT_LIMIT = 500
ORDER_LIST_DOES_NOT_EXIST = errors.BinanceError(errors.NO_SUCH_ORDER, "Order list does not exist.")


@runtime_checkable
class OrderListsView(Protocol):
    """The record's reads of ``order_lists`` (``RecordHistory``), ascending list id."""

    def order_list(
        self, account_id: int, order_list_id: int | None, list_client_order_id: str | None
    ) -> OrderListRow | None: ...

    def order_lists(
        self,
        account_id: int,
        *,
        from_id: int | None,
        start_time: int | None,
        end_time: int | None,
        limit: int,
    ) -> list[OrderListRow]: ...

    def open_order_lists(self, account_id: int) -> list[OrderListRow]: ...


# ---------------------------------------------------------------------------------------------
# Parsing


def _leg(
    params: Params,
    prefix: str,
    account_id: int,
    symbol: str,
    side: Side | None = None,
    quantity: int | None = None,
) -> NewOrder:
    """One leg from ``<prefix>Type``, ``<prefix>Price``...; ``side`` / ``quantity`` when the
    list names them once for several legs (OCO, OTOCO's pending pair)."""
    order_type = params.required_enum(prefix + "Type", OrderType, errors.INVALID_ORDER_TYPE_ERROR)
    if side is None:
        side = params.required_enum(prefix + "Side", Side, errors.INVALID_SIDE_ERROR)
    if quantity is None:
        quantity = params.required_decimal(prefix + "Quantity")
    if prefix + "TrailingDelta" in params:
        raise errors.rejected("Trailing stop orders are not supported in order lists.")
    tif = params.optional_enum(prefix + "TimeInForce", TimeInForce, errors.INVALID_TIF_ERROR)
    if order_type is OrderType.LIMIT_MAKER and tif is TimeInForce.GTC:
        tif = None  # Binance shows a limit maker as GTC and accepts it sent so
    client_id = params.optional_str(prefix + "ClientOrderId") or generate_client_order_id()
    return NewOrder(
        request_id="",
        ts=0,
        account_id=account_id,
        symbol=symbol,
        side=side,
        type=order_type,
        client_order_id=client_id,
        quantity=quantity,
        price=params.optional_decimal(prefix + "Price"),
        stop_price=params.optional_decimal(prefix + "StopPrice"),
        time_in_force=tif,
        iceberg_qty=params.optional_decimal(prefix + "IcebergQty"),
        stp_mode=params.optional_enum("selfTradePreventionMode", StpMode),
    )


def parse_order_list(
    params: Params, kind: str, *, account_id: int, request_id: str, ts: int
) -> tuple[NewOrderList, RespType]:
    """A NEW_ORDER_LIST from ``orderList/<kind>``'s parameters; -1104 for any other."""
    check_known(params, {"OCO": OCO_PARAMS, "OTO": OTO_PARAMS, "OTOCO": OTOCO_PARAMS}[kind])
    symbol = symbol_param(params)
    legs: tuple[NewOrder, ...]
    if kind == "OCO":
        side = params.required_enum("side", Side, errors.INVALID_SIDE_ERROR)
        qty = params.required_decimal("quantity")
        legs = (
            _leg(params, "above", account_id, symbol, side, qty),
            _leg(params, "below", account_id, symbol, side, qty),
        )
    else:
        working = _leg(params, "working", account_id, symbol)
        if kind == "OTO":
            legs = (working, _leg(params, "pending", account_id, symbol))
        else:
            side = params.required_enum("pendingSide", Side, errors.INVALID_SIDE_ERROR)
            qty = params.required_decimal("pendingQuantity")
            legs = (
                working,
                _leg(params, "pendingAbove", account_id, symbol, side, qty),
                _leg(params, "pendingBelow", account_id, symbol, side, qty),
            )
    list_client_id = params.optional_str("listClientOrderId") or generate_client_order_id()
    command = NewOrderList(request_id, ts, account_id, symbol, kind, list_client_id, legs,
                           request_deadline(params))  # fmt: skip
    try:
        validate_order_list_shape(command)
    except errors.BinanceError as err:
        raise _named_for_leg(err, legs, _PREFIXES[kind]) from None
    # Binance's examples answer RESULT; its default for lists is not documented.
    resp_type = params.optional_enum("newOrderRespType", RespType) or RespType.RESULT
    return command, resp_type


_PREFIXES = {
    "OCO": ("above", "below"),
    "OTO": ("working", "pending"),
    "OTOCO": ("working", "pendingAbove", "pendingBelow"),
}


def _named_for_leg(
    err: errors.BinanceError, legs: tuple[NewOrder, ...], prefixes: tuple[str, ...]
) -> errors.BinanceError:
    """A leg's shape error names the leg's parameter (``belowTimeInForce``, not
    ``timeInForce``): the first leg whose own check raises it."""
    for leg, prefix in zip(legs, prefixes, strict=True):
        try:
            validate_new_order_shape(leg)
        except errors.BinanceError as own:
            if own == err:
                for name in BINANCE_PARAM.values():
                    quoted = f"'{name}'"
                    if quoted in err.msg:
                        named = f"'{prefix}{name[0].upper()}{name[1:]}'"
                        return errors.BinanceError(err.code, err.msg.replace(quoted, named))
            return err
    return err


# ---------------------------------------------------------------------------------------------
# Response shapes


def list_status(info: OrderListInfo, transaction_time: int | None = None) -> dict[str, Any]:
    """Binance's order list object without its orderReports."""
    return {
        "orderListId": info.order_list_id,
        "contingencyType": str(info.contingency_type),
        "listStatusType": str(info.list_status_type),
        "listOrderStatus": str(info.list_order_status),
        "listClientOrderId": info.list_client_order_id,
        "transactionTime": info.transaction_ts if transaction_time is None else transaction_time,
        "symbol": info.symbol,
        "orders": [
            {"symbol": info.symbol, "orderId": oid, "clientOrderId": cid}
            for oid, cid in info.orders
        ],
    }


def list_answer(reply: Reply, resp_type: RespType | None) -> dict[str, Any]:
    """A placement (``resp_type``) or a cancel (None) of a list, as Binance answers it."""
    if reply.code != 0 or reply.order_list is None:
        raise _failed(reply)
    body = list_status(reply.order_list, reply.ts)
    results = [p.result for p in reply.parts if p.result is not None]
    if resp_type is None:
        body["orderReports"] = [cancel_response(r, reply.ts) for r in results]
    else:
        body["orderReports"] = [new_order_response(r, resp_type, reply.ts) for r in results]
    return body


def record_list(row: OrderListRow) -> dict[str, Any]:
    return {
        "orderListId": row.order_list_id,
        "contingencyType": row.contingency_type,
        "listStatusType": row.list_status_type,
        "listOrderStatus": row.list_order_status,
        "listClientOrderId": row.list_client_order_id,
        "transactionTime": row.transaction_time,
        "symbol": row.symbol,
        "orders": [
            {"symbol": row.symbol, "orderId": oid, "clientOrderId": cid} for oid, cid in row.orders
        ],
    }


# ---------------------------------------------------------------------------------------------
# Endpoints


def _place(req: Request, deps: Deps, kind: str) -> dict[str, Any]:
    caller, params = req.signed(deps, TRADE)
    command, resp_type = parse_order_list(
        params, kind, account_id=caller.account_id, request_id=deps.new_request_id(),
        ts=deps.clock(),
    )  # fmt: skip
    return list_answer(_execute(deps, command), resp_type)


def new_oco(req: Request, deps: Deps) -> dict[str, Any]:
    return _place(req, deps, "OCO")


def new_oto(req: Request, deps: Deps) -> dict[str, Any]:
    return _place(req, deps, "OTO")


def new_otoco(req: Request, deps: Deps) -> dict[str, Any]:
    return _place(req, deps, "OTOCO")


def cancel_command(params: Params, *, account_id: int, request_id: str, ts: int) -> CancelOrderList:
    list_id = params.optional_int("orderListId")
    list_client_id = params.optional_str("listClientOrderId")
    if list_id is None and list_client_id is None:
        raise errors.BinanceError(
            errors.MANDATORY_PARAM_EMPTY_OR_MALFORMED,
            "Param 'listClientOrderId' or 'orderListId' must be sent, but both were empty/null!",
        )
    cancel_id = params.optional_str("newClientOrderId") or generate_client_order_id()
    if not CLIENT_ORDER_ID_RE.match(cancel_id):
        raise errors.illegal_chars("newClientOrderId", _CLIENT_ID_RANGE)
    return CancelOrderList(request_id, ts, account_id, symbol_param(params), list_id,
                           list_client_id, cancel_id, request_deadline(params))  # fmt: skip


def cancel_order_list(req: Request, deps: Deps) -> dict[str, Any]:
    caller, params = req.signed(deps, TRADE)
    check_known(params, CANCEL_LIST_PARAMS)
    command = cancel_command(
        params, account_id=caller.account_id, request_id=deps.new_request_id(), ts=deps.clock()
    )
    return list_answer(_execute(deps, command), None)


def _view(deps: Deps) -> OrderListsView:
    history = deps.history
    if not isinstance(history, OrderListsView):
        raise RuntimeError("this function has no order lists view (Deps.history)")
    return history


def query_order_list(req: Request, deps: Deps) -> dict[str, Any]:
    caller, params = req.signed(deps, USER_DATA)
    check_known(params, QUERY_LIST_PARAMS)
    list_id = params.optional_int("orderListId")
    orig = params.optional_str("origClientOrderId")
    if list_id is None and orig is None:
        raise errors.BinanceError(
            errors.MANDATORY_PARAM_EMPTY_OR_MALFORMED,
            "Param 'origClientOrderId' or 'orderListId' must be sent, but both were empty/null!",
        )
    row = _view(deps).order_list(caller.account_id, list_id, orig)
    if row is None:
        raise ORDER_LIST_DOES_NOT_EXIST
    return record_list(row)


def all_order_lists(req: Request, deps: Deps) -> list[dict[str, Any]]:
    caller, params = req.signed(deps, USER_DATA)
    check_known(params, ALL_LISTS_PARAMS)
    from_id = params.optional_int("fromId")
    start = params.optional_int("startTime")
    end = params.optional_int("endTime")
    if from_id is not None and (start is not None or end is not None):
        raise errors.BinanceError(
            errors.OPTIONAL_PARAMS_BAD_COMBO,
            "Combination of optional parameters invalid. fromId cannot be sent with "
            "startTime or endTime.",
        )
    if start is not None and end is not None and (end < start or end - start > DAY_MS):
        raise errors.invalid_parameter("startTime and endTime must be at most 24 hours apart.")
    limit = params.optional_int("limit", minimum=1)
    rows = _view(deps).order_lists(
        caller.account_id, from_id=from_id, start_time=start, end_time=end,
        limit=DEFAULT_LIMIT if limit is None else min(limit, MAX_LIMIT),
    )  # fmt: skip
    return [record_list(r) for r in rows]


def open_order_lists(req: Request, deps: Deps) -> list[dict[str, Any]]:
    caller, params = req.signed(deps, USER_DATA)
    check_known(params, OPEN_LISTS_PARAMS)
    return [record_list(r) for r in _view(deps).open_order_lists(caller.account_id)]
