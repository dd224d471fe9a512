"""Order lists end to end, on a private exchange of this worktree's code (bench.chaos's
PrivateStack: ``python -m devstack run`` in a fresh stack dir on free ports, seeded as
``make run`` seeds, demo market off): an OCO through REST, seen among the open orders and
cancelled as a list, then read back from the record; an OTO through the WebSocket API whose
working order fills, so its pending order is placed; exchangeInfo's ocoAllowed/otoAllowed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from bench.chaos.private_stack import PrivateStack
from tests.integration.api_support import Client, Trader
from tests.integration.ws_support import WsClient, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SYMBOL = "BTCUSDT"
QTY = "0.001"


@pytest.fixture(scope="module")
def exchange() -> Iterator[PrivateStack]:
    stack = PrivateStack()
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def demo(exchange: PrivateStack) -> Client:
    saved = json.loads((exchange.stack_dir / "demo-credentials.json").read_text())
    return Client(exchange.base_url, Trader(saved["accountId"], saved["apiKey"], saved["secret"]))


def _ok(answer: Any) -> Any:
    assert answer.status_code == 200, answer.text
    return answer.json()


def _trade_at(client: Client, price: str) -> None:
    """A self-trade of the demo account (STP off for it) makes ``price`` the last price."""
    for side in ("SELL", "BUY"):
        _ok(client.signed("POST", "/api/v3/order", {
            "symbol": SYMBOL, "side": side, "type": "LIMIT", "timeInForce": "GTC",
            "quantity": QTY, "price": price, "selfTradePreventionMode": "NONE",
        }))  # fmt: skip


def test_exchange_info_allows_order_lists(exchange: PrivateStack, demo: Client) -> None:
    body = _ok(demo.public("GET", "/api/v3/exchangeInfo", symbol=SYMBOL))
    (symbol,) = body["symbols"]
    assert symbol["ocoAllowed"] is True and symbol["otoAllowed"] is True


def test_oco_over_rest_is_placed_listed_cancelled_and_recorded(demo: Client) -> None:
    _trade_at(demo, "30000")
    placed = _ok(demo.signed("POST", "/api/v3/orderList/oco", {
        "symbol": SYMBOL, "side": "SELL", "quantity": QTY, "listClientOrderId": "rest-oco",
        "aboveType": "LIMIT_MAKER", "abovePrice": "33000",
        "belowType": "STOP_LOSS_LIMIT", "belowPrice": "26900", "belowStopPrice": "27000",
        "belowTimeInForce": "GTC",
    }))  # fmt: skip
    assert (placed["contingencyType"], placed["listOrderStatus"]) == ("OCO", "EXECUTING")
    list_id = placed["orderListId"]
    ids = [o["orderId"] for o in placed["orders"]]
    open_orders = _ok(demo.signed("GET", "/api/v3/openOrders", {"symbol": SYMBOL}))
    in_list = {o["orderId"]: o["orderListId"] for o in open_orders if o["orderId"] in ids}
    assert in_list == {i: list_id for i in ids}
    # A wrong price relationship is refused with Binance's message, and changes nothing.
    refused = demo.signed("POST", "/api/v3/orderList/oco", {
        "symbol": SYMBOL, "side": "SELL", "quantity": QTY, "aboveType": "LIMIT_MAKER",
        "abovePrice": "29000", "belowType": "STOP_LOSS", "belowStopPrice": "27000",
    })  # fmt: skip
    assert refused.status_code == 400
    assert refused.json() == {
        "code": -2010,
        "msg": "The relationship of the prices for the orders is not correct.",
    }
    cancelled = _ok(demo.signed("DELETE", "/api/v3/orderList",
                                {"symbol": SYMBOL, "orderListId": list_id}))  # fmt: skip
    assert cancelled["listStatusType"] == "ALL_DONE"
    assert [r["status"] for r in cancelled["orderReports"]] == ["CANCELED", "CANCELED"]

    def recorded_done() -> bool:
        answer = demo.signed("GET", "/api/v3/orderList", {"orderListId": list_id})
        return answer.status_code == 200 and answer.json()["listOrderStatus"] == "ALL_DONE"

    assert wait_for(recorded_done, timeout=60), "the recorder never wrote the list"
    lists = _ok(demo.signed("GET", "/api/v3/allOrderList", {"fromId": list_id}))
    assert lists[0]["listClientOrderId"] == "rest-oco"
    assert all(o["orderListId"] != list_id
               for o in _ok(demo.signed("GET", "/api/v3/openOrderList")))  # fmt: skip


def test_oto_over_the_websocket_api_places_its_pending_order(
    exchange: PrivateStack, demo: Client
) -> None:
    trader = demo.trader
    assert trader is not None
    ws = WsClient(exchange.base_url.replace("http://", "ws://") + "/ws-api/v3")
    try:
        # The demo account rests a sell at 30000; the OTO's working buy takes it at once.
        _ok(demo.signed("POST", "/api/v3/order", {
            "symbol": SYMBOL, "side": "SELL", "type": "LIMIT", "timeInForce": "GTC",
            "quantity": QTY, "price": "30000", "selfTradePreventionMode": "NONE",
        }))  # fmt: skip
        answer = ws.signed("orderList.place.oto", trader, {
            "symbol": SYMBOL, "listClientOrderId": "ws-oto", "selfTradePreventionMode": "NONE",
            "workingType": "LIMIT", "workingSide": "BUY", "workingPrice": "30000",
            "workingQuantity": QTY, "workingTimeInForce": "GTC",
            "pendingType": "LIMIT_MAKER", "pendingSide": "SELL", "pendingPrice": "35000",
            "pendingQuantity": QTY,
        })  # fmt: skip
        assert answer["status"] == 200, answer
        result = answer["result"]
        assert [r["status"] for r in result["orderReports"]] == ["FILLED", "PENDING_NEW"]
        pending_id = result["orders"][1]["orderId"]

        def pending_placed() -> bool:
            open_orders = _ok(demo.signed("GET", "/api/v3/openOrders", {"symbol": SYMBOL}))
            return any(o["orderId"] == pending_id and o["status"] == "NEW" for o in open_orders)

        assert wait_for(pending_placed, timeout=30)

        def recorded_done() -> bool:
            status = ws.signed("orderList.status", trader, {"origClientOrderId": "ws-oto"})
            return bool(status["status"] == 200
                        and status["result"]["listOrderStatus"] == "ALL_DONE")  # fmt: skip

        assert wait_for(recorded_done, timeout=60), "the recorder never wrote the list"
    finally:
        ws.close()
