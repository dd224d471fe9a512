"""The WebSocket API's order list methods (web-socket-api.md "Order list requests"): the REST
handlers of ``bourse.api.order_lists`` under Binance's method names, each with the REST
endpoint it equals (its weight, whether it counts as an order). ``bourse.ws.api`` registers
them beside its own methods."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bourse.api import handlers as h
from bourse.api import order_lists as ol

Spec = tuple[Callable[[h.Request, h.Deps], Any], str, tuple[str, str]]

ORDER_LIST_METHODS: dict[str, Spec] = {
    "orderList.place.oco": (ol.new_oco, h.TRADE, ("POST", "/api/v3/orderList/oco")),
    "orderList.place.oto": (ol.new_oto, h.TRADE, ("POST", "/api/v3/orderList/oto")),
    "orderList.place.otoco": (ol.new_otoco, h.TRADE, ("POST", "/api/v3/orderList/otoco")),
    "orderList.cancel": (ol.cancel_order_list, h.TRADE, ("DELETE", "/api/v3/orderList")),
    "orderList.status": (ol.query_order_list, h.USER_DATA, ("GET", "/api/v3/orderList")),
    "allOrderLists": (ol.all_order_lists, h.USER_DATA, ("GET", "/api/v3/allOrderList")),
    "openOrderLists.status": (ol.open_order_lists, h.USER_DATA, ("GET", "/api/v3/openOrderList")),
}
