"""The WebSocket API's order list methods (orderList.place.oco / .oto / .otoco,
orderList.cancel, orderList.status, allOrderLists, openOrderLists.status): REST's handlers
under Binance's names, with REST's weights and order counting, over a real engine."""

from __future__ import annotations

from typing import Any

import pytest

from bourse.domain.commands import Command, NewOrderList
from bourse.domain.events import Reply
from bourse.ws import api as ws_api
from bourse.ws.order_list_methods import ORDER_LIST_METHODS
from tests.unit.test_api_order_lists import OCO
from tests.unit.test_engine_helpers import Bench
from tests.unit.test_ws_api_limits import IP, Exchange
from tests.unit.test_ws_transport import _ws_signed

pytestmark = pytest.mark.unit


def test_every_order_list_method_is_registered_with_its_rest_endpoint() -> None:
    assert set(ORDER_LIST_METHODS) == {
        "orderList.place.oco",
        "orderList.place.oto",
        "orderList.place.otoco",
        "orderList.cancel",
        "orderList.status",
        "allOrderLists",
        "openOrderLists.status",
    }
    for name in ORDER_LIST_METHODS:
        assert name in ws_api.METHODS and name in ws_api.ALL_METHODS
    assert ws_api.METHODS["orderList.place.otoco"].places_orders
    assert not ws_api.METHODS["orderList.cancel"].places_orders
    assert ws_api.METHODS["allOrderLists"].weight({}) == 20


def _engine_exchange() -> tuple[Exchange, list[Command]]:
    exchange = Exchange()
    bench = Bench(accounts=7)
    bench.order(1, "SELL", 1, 100)
    bench.order(2, "BUY", 1, 100)
    sent: list[Command] = []

    def answer(cmd: Command) -> Reply:
        sent.append(cmd)
        events = bench.run(cmd)
        reply = events[-1]
        assert isinstance(reply, Reply)
        return reply

    exchange.bus.answer = answer
    return exchange, sent


def test_oco_over_the_websocket_api_places_a_list_and_counts_an_order() -> None:
    exchange, sent = _engine_exchange()
    answer: dict[str, Any] = exchange.ws("orderList.place.oco", _ws_signed(OCO))
    assert answer["status"] == 200, answer
    assert isinstance(sent[-1], NewOrderList)
    result = answer["result"]
    assert result["contingencyType"] == "OCO" and len(result["orderReports"]) == 2
    assert exchange.limiter.orders  # counted against the account's ORDERS
    assert exchange.limiter.weight[IP] == answer["rateLimits"][-1]["count"]
    cancel = exchange.ws("orderList.cancel", _ws_signed({"symbol": "BTCUSDT", "orderListId": "0"}))
    assert cancel["status"] == 200 and cancel["result"]["listOrderStatus"] == "ALL_DONE"
    again = exchange.ws("orderList.cancel", _ws_signed({"symbol": "BTCUSDT", "orderListId": "0"}))
    assert again["status"] == 400 and again["error"]["code"] == -2011
