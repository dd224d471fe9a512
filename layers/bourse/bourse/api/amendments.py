"""Order amend keep priority (Binance's faqs/order_amend_keep_priority.md):

- ``PUT /api/v3/order/amend/keepPriority`` reduces an open order's quantity without losing its
  place in the queue: an AMEND_ORDER command, sequenced like every order command;
- ``GET /api/v3/order/amendments`` lists an order's amendments from the record
  (``order_amendments``, written by the recorder from ``OrderAmended`` events).

Pure: the command bus and the record come in ``Deps``.
"""

from __future__ import annotations

import json
from typing import Any, Protocol, runtime_checkable

from bourse.api.handlers import (
    SIGNED_COMMON,
    TRADE,
    USER_DATA,
    Deps,
    Request,
    _either_id,
    _execute,
    _failed,
)
from bourse.api.history import MAX_LIMIT, _symbol
from bourse.api.orders import (
    check_known,
    generate_client_order_id,
    request_deadline,
    symbol_param,
)
from bourse.domain import errors
from bourse.domain.amounts import format_units
from bourse.domain.commands import CLIENT_ORDER_ID_RE, AmendOrder
from bourse.domain.events import OrderResult
from bourse.record.views import AmendmentRow

AMEND_PARAMS = SIGNED_COMMON | {
    "symbol",
    "orderId",
    "origClientOrderId",
    "newClientOrderId",
    "newQty",
}
AMENDMENTS_PARAMS = SIGNED_COMMON | {"symbol", "orderId", "fromExecutionId", "limit"}
DEFAULT_LIMIT = 500


@runtime_checkable
class AmendmentsView(Protocol):
    """The record's read (``RecordHistory.order_amendments``), in execution id order."""

    def order_amendments(
        self, account_id: int, symbol: str, order_id: int, *, from_id: int | None, limit: int
    ) -> list[AmendmentRow]: ...


def amended_order(result: OrderResult, orig_client_order_id: str, prevented: int) -> dict[str, Any]:
    """Binance's ``amendedOrder`` (rest-api.md "Order Amend Keep Priority")."""
    order = result.order
    body: dict[str, Any] = {
        "symbol": order.symbol,
        "orderId": order.order_id,
        "orderListId": -1,
        "origClientOrderId": orig_client_order_id,
        "clientOrderId": order.client_order_id,
        "price": format_units(order.price),
        "qty": format_units(order.quantity),
        "executedQty": format_units(result.executed_qty),
        "preventedQty": format_units(prevented),
        "quoteOrderQty": format_units(order.quote_order_qty),
        "cumulativeQuoteQty": format_units(result.cum_quote),
        "status": str(result.status),
        "timeInForce": str(order.time_in_force or "GTC"),
        "type": str(order.type),
        "side": str(order.side),
    }
    if result.working_ts >= 0:
        body["workingTime"] = result.working_ts
    body["selfTradePreventionMode"] = str(order.stp_mode)
    return body


def amend_keep_priority(req: Request, deps: Deps) -> dict[str, Any]:
    caller, params = req.signed(deps, TRADE)
    check_known(params, AMEND_PARAMS)
    symbol = symbol_param(params)
    order_id = params.optional_int("orderId")
    orig = params.optional_str("origClientOrderId")
    if order_id is None and orig is None:
        raise _either_id("orderId", "origClientOrderId")
    new_id = params.optional_str("newClientOrderId") or generate_client_order_id()
    if not CLIENT_ORDER_ID_RE.match(new_id):
        raise errors.illegal_chars("newClientOrderId", "^[\\.A-Z\\:/a-z0-9_-]{1,36}$")
    new_qty = params.required_decimal("newQty")
    if new_qty <= 0:
        raise errors.INVALID_QUANTITY_ERROR
    command = AmendOrder(
        request_id=deps.new_request_id(),
        ts=deps.clock(),
        account_id=caller.account_id,
        symbol=symbol,
        new_qty=new_qty,
        new_client_order_id=new_id,
        order_id=order_id,
        orig_client_order_id=orig,
        deadline=request_deadline(params),
    )
    reply = _execute(deps, command)
    if reply.code != 0 or not reply.parts or reply.parts[0].result is None:
        raise _failed(reply)
    detail = json.loads(reply.detail)
    return {
        "transactTime": reply.ts,
        "executionId": detail["executionId"],
        "amendedOrder": amended_order(
            reply.parts[0].result, detail["origClientOrderId"], detail["preventedQty"]
        ),
    }


def amendment(row: AmendmentRow) -> dict[str, Any]:
    return {
        "symbol": row.symbol,
        "orderId": row.order_id,
        "executionId": row.execution_id,
        "origClientOrderId": row.orig_client_order_id,
        "newClientOrderId": row.new_client_order_id,
        "origQty": format_units(row.orig_qty),
        "newQty": format_units(row.new_qty),
        "time": row.ts,
    }


def order_amendments(req: Request, deps: Deps) -> list[dict[str, Any]]:
    caller, params = req.signed(deps, USER_DATA)
    check_known(params, AMENDMENTS_PARAMS)
    symbol = _symbol(deps, params)
    order_id = params.required_int("orderId")
    limit = params.optional_int("limit", minimum=1)
    history = deps.history
    if not isinstance(history, AmendmentsView):
        raise RuntimeError("this function has no amendments view (Deps.history)")
    rows = history.order_amendments(
        caller.account_id,
        symbol,
        order_id,
        from_id=params.optional_int("fromExecutionId"),
        limit=DEFAULT_LIMIT if limit is None else min(limit, MAX_LIMIT),
    )
    return [amendment(r) for r in rows]
