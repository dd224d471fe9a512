"""Binance response shapes for orders, built from the engine's ``OrderResult``.

Numbers are strings with 8 decimals, exactly as Binance formats them; ids and times are
integers. ``timeInForce`` is "GTC" for types without one (MARKET, LIMIT_MAKER, stops), as
Binance shows it.
"""

from __future__ import annotations

from typing import Any

from bourse.api.orders import RespType
from bourse.domain.amounts import format_units
from bourse.domain.enums import STOP_TYPES
from bourse.domain.events import OrderInfo, OrderResult


def order_ack(result: OrderResult, transact_time: int) -> dict[str, Any]:
    order = result.order
    return {
        "symbol": order.symbol,
        "orderId": order.order_id,
        "orderListId": order.order_list_id,
        "clientOrderId": order.client_order_id,
        "transactTime": transact_time,
    }


def order_result(result: OrderResult, transact_time: int) -> dict[str, Any]:
    order = result.order
    body = order_ack(result, transact_time)
    body.update(
        {
            "price": format_units(order.price),
            "origQty": format_units(order.quantity),
            "executedQty": format_units(result.executed_qty),
            "origQuoteOrderQty": format_units(order.quote_order_qty),
            "cummulativeQuoteQty": format_units(result.cum_quote),
            "status": str(result.status),
            "timeInForce": str(order.time_in_force or "GTC"),
            "type": str(order.type),
            "side": str(order.side),
        }
    )
    if order.type in STOP_TYPES:
        body["stopPrice"] = format_units(order.stop_price)
    if order.iceberg_qty:
        body["icebergQty"] = format_units(order.iceberg_qty)
    body["workingTime"] = result.working_ts
    body["selfTradePreventionMode"] = str(order.stp_mode)
    body.update(trailing_fields(order))
    return body


def trailing_fields(order: OrderInfo) -> dict[str, int]:
    """Binance's ``trailingDelta`` and ``trailingTime`` (-1 until the stop tracks prices),
    present on trailing stops only."""
    if not order.trailing_delta:
        return {}
    return {"trailingDelta": order.trailing_delta, "trailingTime": order.trailing_time}


def order_full(result: OrderResult, transact_time: int) -> dict[str, Any]:
    body = order_result(result, transact_time)
    body["fills"] = [
        {
            "price": format_units(fill.price),
            "qty": format_units(fill.qty),
            "commission": format_units(fill.commission),
            "commissionAsset": fill.commission_asset,
            "tradeId": fill.trade_id,
        }
        for fill in result.fills
    ]
    return body


def new_order_response(
    result: OrderResult, resp_type: RespType, transact_time: int
) -> dict[str, Any]:
    if resp_type is RespType.ACK:
        return order_ack(result, transact_time)
    if resp_type is RespType.RESULT:
        return order_result(result, transact_time)
    return order_full(result, transact_time)


def cancel_response(result: OrderResult, transact_time: int) -> dict[str, Any]:
    """DELETE /api/v3/order: ``clientOrderId`` is the cancel's own id, the order's is
    ``origClientOrderId``."""
    body = order_result(result, transact_time)
    body["origClientOrderId"] = result.order.client_order_id
    body["clientOrderId"] = result.cancel_client_order_id
    return body
