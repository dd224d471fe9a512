"""Account responses: GET /api/v3/account, and orders as GET order / openOrders show them."""

from __future__ import annotations

from typing import Any

from bourse.api.market import rate_to_bps, rate_to_decimal
from bourse.api.responses import trailing_fields
from bourse.domain.amounts import format_units
from bourse.domain.enums import STOP_TYPES, OrderStatus
from bourse.domain.events import OrderResult

# The engine's defaults (docs/engine.md): an account with no fee set pays 0.1% / 0.1%.
DEFAULT_MAKER_RATE = 100_000
DEFAULT_TAKER_RATE = 100_000


def account(
    account_id: int,
    balances: dict[str, tuple[int, int]],
    fees: tuple[int, int] | None,
    permissions: frozenset[str],
    *,
    omit_zero: bool,
    update_time: int,
) -> dict[str, Any]:
    maker, taker = fees or (DEFAULT_MAKER_RATE, DEFAULT_TAKER_RATE)
    rows = [
        {"asset": asset, "free": format_units(free), "locked": format_units(locked)}
        for asset, (free, locked) in balances.items()
        if not (omit_zero and free == 0 and locked == 0)
    ]
    return {
        "makerCommission": rate_to_bps(maker),
        "takerCommission": rate_to_bps(taker),
        "buyerCommission": 0,
        "sellerCommission": 0,
        "commissionRates": {
            "maker": rate_to_decimal(maker),
            "taker": rate_to_decimal(taker),
            "buyer": rate_to_decimal(0),
            "seller": rate_to_decimal(0),
        },
        "canTrade": "TRADE" in permissions,
        "canWithdraw": False,
        "canDeposit": False,
        "brokered": False,
        "requireSelfTradePrevention": False,
        "preventSor": False,
        "updateTime": update_time,
        "accountType": "SPOT",
        "balances": rows,
        "permissions": ["SPOT"],
        "uid": account_id,
    }


def commission(symbol: str, fees: tuple[int, int] | None) -> dict[str, Any]:
    """GET /api/v3/account/commission and order/test?computeCommissionRates=true."""
    maker, taker = fees or (DEFAULT_MAKER_RATE, DEFAULT_TAKER_RATE)
    zero = rate_to_decimal(0)
    return {
        "symbol": symbol,
        "standardCommission": {
            "maker": rate_to_decimal(maker),
            "taker": rate_to_decimal(taker),
            "buyer": zero,
            "seller": zero,
        },
        "taxCommission": {"maker": zero, "taker": zero, "buyer": zero, "seller": zero},
        "discount": {
            "enabledForAccount": False,
            "enabledForSymbol": False,
            "discountAsset": "BNB",
            "discount": zero,
        },
    }


def order_query(result: OrderResult) -> dict[str, Any]:
    """An order as GET /api/v3/order and openOrders show it.

    ``updateTime`` is when it last started working (or was placed): the live view keeps the
    order's state, not the time of its last fill.
    """
    order = result.order
    working = result.working_ts
    return {
        "symbol": order.symbol,
        "orderId": order.order_id,
        "orderListId": order.order_list_id,
        "clientOrderId": order.client_order_id,
        "price": format_units(order.price),
        "origQty": format_units(order.quantity),
        "executedQty": format_units(result.executed_qty),
        "cummulativeQuoteQty": format_units(result.cum_quote),
        "status": str(result.status),
        "timeInForce": str(order.time_in_force or "GTC"),
        "type": str(order.type),
        "side": str(order.side),
        "stopPrice": format_units(order.stop_price if order.type in STOP_TYPES else 0),
        "icebergQty": format_units(order.iceberg_qty),
        "time": order.created_ts,
        "updateTime": max(order.created_ts, working),
        "isWorking": working >= 0 and result.status in (OrderStatus.NEW,
                                                         OrderStatus.PARTIALLY_FILLED),
        "workingTime": working,
        "origQuoteOrderQty": format_units(order.quote_order_qty),
        "selfTradePreventionMode": str(order.stp_mode),
        **trailing_fields(order),
    }  # fmt: skip
