"""Which endpoint each function serves. template.yaml declares the same routes (a unit test
keeps the two in step), and the local gateway serves exactly what the template declares."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bourse.api import amendments as am
from bourse.api import event_replay as ev
from bourse.api import handlers as h
from bourse.api import history as hist
from bourse.api import order_lists as ol
from bourse.api import prevented_matches as pm
from bourse.api import rate_limits as rl
from bourse.api import trading_day as td
from bourse.api import user_data as ud
from bourse.api import webhooks as wh


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Callable[[h.Request, h.Deps], Any]
    signed: bool  # needs X-MBX-APIKEY (the authorizer) and a signature
    # Binance's USER_STREAM: X-MBX-APIKEY (the authorizer) without a signature
    api_key_only: bool = False

    @property
    def needs_api_key(self) -> bool:
        return self.signed or self.api_key_only


MARKET_DATA: tuple[Route, ...] = (
    Route("GET", "/api/v3/ping", h.ping, False),
    Route("GET", "/api/v3/time", h.server_time, False),
    Route("GET", "/api/v3/exchangeInfo", h.exchange_info, False),
    Route("GET", "/api/v3/depth", h.depth, False),
    Route("GET", "/api/v3/ticker/price", h.ticker_price, False),
    Route("GET", "/api/v3/ticker/bookTicker", h.book_ticker, False),
    Route("GET", "/api/v3/trades", hist.trades, False),
    Route("GET", "/api/v3/historicalTrades", hist.historical_trades, False),
    Route("GET", "/api/v3/aggTrades", hist.agg_trades, False),
    Route("GET", "/api/v3/klines", hist.klines, False),
    Route("GET", "/api/v3/uiKlines", hist.klines, False),
    Route("GET", "/api/v3/avgPrice", hist.avg_price, False),
    Route("GET", "/api/v3/ticker/24hr", hist.ticker_24hr, False),
    Route("GET", "/api/v3/ticker", hist.rolling_ticker, False),
    Route("GET", "/api/v3/ticker/tradingDay", td.trading_day_ticker, False),
    Route("GET", "/api/v3/bourse/marketEvents", ev.market_events, False),
)
ORDERS: tuple[Route, ...] = (
    Route("POST", "/api/v3/order", h.new_order, True),
    Route("POST", "/api/v3/order/test", h.test_order, True),
    Route("DELETE", "/api/v3/order", h.cancel_order, True),
    Route("DELETE", "/api/v3/openOrders", h.cancel_open_orders, True),
    Route("POST", "/api/v3/order/cancelReplace", h.cancel_replace, True),
    Route("PUT", "/api/v3/order/amend/keepPriority", am.amend_keep_priority, True),
    Route("POST", "/api/v3/orderList/oco", ol.new_oco, True),
    Route("POST", "/api/v3/orderList/oto", ol.new_oto, True),
    Route("POST", "/api/v3/orderList/otoco", ol.new_otoco, True),
    Route("DELETE", "/api/v3/orderList", ol.cancel_order_list, True),
)
ACCOUNT: tuple[Route, ...] = (
    Route("GET", "/api/v3/account", h.account_info, True),
    Route("GET", "/api/v3/account/commission", h.account_commission, True),
    Route("GET", "/api/v3/order", h.query_order, True),
    Route("GET", "/api/v3/openOrders", h.open_orders, True),
    Route("GET", "/api/v3/rateLimit/order", ud.order_rate_limit, True),
    Route("POST", "/api/v3/userDataStream", ud.new_listen_key, False, api_key_only=True),
    Route("PUT", "/api/v3/userDataStream", ud.keepalive_listen_key, False, api_key_only=True),
    Route("DELETE", "/api/v3/userDataStream", ud.close_listen_key, False, api_key_only=True),
    # Push without a socket (docs/webhooks.md)
    Route("POST", "/api/v3/bourse/webhooks", wh.add_webhook, True),
    Route("GET", "/api/v3/bourse/webhooks", wh.list_webhooks, True),
    Route("DELETE", "/api/v3/bourse/webhooks", wh.remove_webhook, True),
    Route("POST", "/api/v3/bourse/queue", wh.open_queue, True),
    Route("DELETE", "/api/v3/bourse/queue", wh.close_queue, True),
    Route("GET", "/api/v3/allOrders", hist.all_orders, True),
    Route("GET", "/api/v3/myTrades", hist.my_trades, True),
    Route("GET", "/api/v3/myPreventedMatches", pm.my_prevented_matches, True),
    Route("GET", "/api/v3/bourse/events", ev.my_events, True),
    Route("GET", "/api/v3/order/amendments", am.order_amendments, True),
    Route("GET", "/api/v3/orderList", ol.query_order_list, True),
    Route("GET", "/api/v3/allOrderList", ol.all_order_lists, True),
    Route("GET", "/api/v3/openOrderList", ol.open_order_lists, True),
)
# The function (template.yaml logical id) that serves each group.
BY_FUNCTION: dict[str, tuple[Route, ...]] = {
    "MarketDataFunction": MARKET_DATA,
    "OrdersFunction": ORDERS,
    "AccountFunction": ACCOUNT,
}

# REQUEST_WEIGHT of each endpoint, Binance's (bourse.api.rate_limits): a number, or a function
# of the request's parameters. A unit test checks that every route above has its weight.
WEIGHTS: dict[tuple[str, str], rl.Weight] = {
    ("GET", "/api/v3/ping"): 1,
    ("GET", "/api/v3/time"): 1,
    ("GET", "/api/v3/exchangeInfo"): 20,
    ("GET", "/api/v3/depth"): rl.depth_weight,
    ("GET", "/api/v3/ticker/price"): rl.one_or_all(2, 4),
    ("GET", "/api/v3/ticker/bookTicker"): rl.one_or_all(2, 4),
    ("GET", "/api/v3/trades"): 25,
    ("GET", "/api/v3/historicalTrades"): 25,
    ("GET", "/api/v3/aggTrades"): 4,
    ("GET", "/api/v3/klines"): 2,
    ("GET", "/api/v3/uiKlines"): 2,
    ("GET", "/api/v3/avgPrice"): 2,
    ("GET", "/api/v3/ticker/24hr"): rl.ticker_24hr_weight,
    ("GET", "/api/v3/ticker"): rl.per_symbol_weight(4, 200),
    ("GET", "/api/v3/ticker/tradingDay"): rl.per_symbol_weight(4, 200),
    ("POST", "/api/v3/order"): 1,
    ("POST", "/api/v3/order/test"): rl.order_test_weight,
    ("DELETE", "/api/v3/order"): 1,
    ("DELETE", "/api/v3/openOrders"): 1,
    ("POST", "/api/v3/order/cancelReplace"): 1,
    ("PUT", "/api/v3/order/amend/keepPriority"): 4,
    ("GET", "/api/v3/order/amendments"): 4,
    ("POST", "/api/v3/orderList/oco"): 1,
    ("POST", "/api/v3/orderList/oto"): 1,
    ("POST", "/api/v3/orderList/otoco"): 1,
    ("DELETE", "/api/v3/orderList"): 1,
    ("GET", "/api/v3/orderList"): 4,
    ("GET", "/api/v3/allOrderList"): 20,
    ("GET", "/api/v3/openOrderList"): 6,
    ("GET", "/api/v3/account"): 20,
    ("GET", "/api/v3/account/commission"): 20,
    ("GET", "/api/v3/order"): 4,
    ("GET", "/api/v3/openOrders"): rl.one_or_all(6, 80),
    ("GET", "/api/v3/allOrders"): 20,
    ("GET", "/api/v3/myTrades"): rl.my_trades_weight,
    ("GET", "/api/v3/myPreventedMatches"): pm.prevented_matches_weight,
    # Replay by seq: one Redis range read per request, up to 1,000 messages.
    ("GET", "/api/v3/bourse/events"): 5,
    ("GET", "/api/v3/bourse/marketEvents"): 5,
    ("GET", "/api/v3/rateLimit/order"): 40,
    ("POST", "/api/v3/userDataStream"): 2,
    ("PUT", "/api/v3/userDataStream"): 2,
    ("DELETE", "/api/v3/userDataStream"): 2,
    ("POST", "/api/v3/bourse/webhooks"): 2,
    ("GET", "/api/v3/bourse/webhooks"): 2,
    ("DELETE", "/api/v3/bourse/webhooks"): 2,
    ("POST", "/api/v3/bourse/queue"): 2,
    ("DELETE", "/api/v3/bourse/queue"): 2,
}
# The endpoints that count against the account's ORDERS limits (order/test counts weight only).
ORDER_PLACEMENT: frozenset[tuple[str, str]] = frozenset(
    {
        ("POST", "/api/v3/order"),
        ("POST", "/api/v3/order/cancelReplace"),
        # Binance counts 2 (OCO, OTO) or 3 (OTOCO) unfilled orders; here each request is one.
        ("POST", "/api/v3/orderList/oco"),
        ("POST", "/api/v3/orderList/oto"),
        ("POST", "/api/v3/orderList/otoco"),
    }
)
