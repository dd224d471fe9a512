"""Which endpoint each function serves. template.yaml declares the same routes (a unit test
keeps the two in step), and the local gateway serves exactly what the template declares."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bourse.api import handlers as h


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Callable[[h.Request, h.Deps], Any]
    signed: bool  # needs X-MBX-APIKEY (the authorizer) and a signature


MARKET_DATA: tuple[Route, ...] = (
    Route("GET", "/api/v3/ping", h.ping, False),
    Route("GET", "/api/v3/time", h.server_time, False),
    Route("GET", "/api/v3/exchangeInfo", h.exchange_info, False),
    Route("GET", "/api/v3/depth", h.depth, False),
    Route("GET", "/api/v3/ticker/price", h.ticker_price, False),
    Route("GET", "/api/v3/ticker/bookTicker", h.book_ticker, False),
)
ORDERS: tuple[Route, ...] = (
    Route("POST", "/api/v3/order", h.new_order, True),
    Route("POST", "/api/v3/order/test", h.test_order, True),
    Route("DELETE", "/api/v3/order", h.cancel_order, True),
    Route("DELETE", "/api/v3/openOrders", h.cancel_open_orders, True),
    Route("POST", "/api/v3/order/cancelReplace", h.cancel_replace, True),
)
ACCOUNT: tuple[Route, ...] = (
    Route("GET", "/api/v3/account", h.account_info, True),
    Route("GET", "/api/v3/account/commission", h.account_commission, True),
    Route("GET", "/api/v3/order", h.query_order, True),
    Route("GET", "/api/v3/openOrders", h.open_orders, True),
)
# The function (template.yaml logical id) that serves each group.
BY_FUNCTION: dict[str, tuple[Route, ...]] = {
    "MarketDataFunction": MARKET_DATA,
    "OrdersFunction": ORDERS,
    "AccountFunction": ACCOUNT,
}
