"""Order amend keep priority end to end: HTTP -> local gateway -> Orders function -> Kafka ->
matching service (the working tree's engine) -> reply; the trade recorder writes the
amendment into a scratch record (migration 0007, as the recorder's own PostgreSQL role) and
GET /api/v3/order/amendments reads it back through the Account function.

Account 711 rests 5.50 BTC at 87 000 behind account 712's 1.00, with 713's 4.00 behind it,
amends its order down to 5.00 and sees a seller of 6.00 meet 712 and then itself: the
amended order kept its place ahead of 713's.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from bourse.settings import Settings
from tests.integration.api_support import ApiStack, Client
from tests.integration.record_support import scratch_database
from tests.integration.ws_support import WsClient, private_tables

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REDIS_DB = int(os.environ.get("BOURSE_TEST_AMEND_REDIS_DB", "62"))
SYMBOL = "BTCUSDT"


@pytest.fixture(scope="module")
def tables(local_stack: Settings, aws_client: Any) -> Iterator[dict[str, str]]:
    with private_tables(aws_client("dynamodb"), local_stack) as env:
        yield env


@pytest.fixture(scope="module")
def stack(
    local_stack: Settings, tables: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiStack]:
    with scratch_database(local_stack.pg_dsn, "test_order_amend") as dsn:
        s = ApiStack(local_stack, tmp_path_factory.mktemp("order-amend"), REDIS_DB, dsn)
        s.env.update(tables)
        try:
            s.start()
            s.spawn_recorder()
            s.spawn_broadcaster()
            yield s
        finally:
            s.stop()


def _ok(response: Any) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def _buy(client: Client, qty: str, cid: str) -> dict[str, Any]:
    body: dict[str, Any] = _ok(client.signed("POST", "/api/v3/order", {
        "symbol": SYMBOL, "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
        "quantity": qty, "price": "87000", "newClientOrderId": cid}))  # fmt: skip
    return body


def _amendments(client: Client, order_id: int, count: int) -> list[dict[str, Any]]:
    """The record's amendments of the order, once the recorder has written ``count``."""
    deadline = time.monotonic() + 60
    while True:
        query = {"symbol": SYMBOL, "orderId": order_id}
        rows: list[dict[str, Any]] = _ok(client.signed("GET", "/api/v3/order/amendments", query))
        if len(rows) >= count:
            return rows
        assert time.monotonic() < deadline, f"the recorder wrote {len(rows)} of {count}"
        time.sleep(0.2)


def test_amend_keeps_priority_and_is_recorded(stack: ApiStack) -> None:
    first = stack.client(stack.trader(712, {"USDT": "1000000"}))
    you = stack.client(stack.trader(711, {"USDT": "1000000"}))
    last = stack.client(stack.trader(713, {"USDT": "1000000"}))
    seller = stack.client(stack.trader(714, {"BTC": "10"}))
    _buy(first, "1", "first")
    mine = _buy(you, "5.5", "mine")
    _buy(last, "4", "last")
    assert (
        _ok(stack.client().public("GET", "/api/v3/exchangeInfo", symbol=SYMBOL))["symbols"][0][
            "amendAllowed"
        ]
        is True
    )

    answer = _ok(you.signed("PUT", "/api/v3/order/amend/keepPriority", {
        "symbol": SYMBOL, "orderId": mine["orderId"], "newQty": "5",
        "newClientOrderId": "mine-5"}))  # fmt: skip
    amended = answer["amendedOrder"]
    assert (amended["orderId"], amended["origClientOrderId"], amended["clientOrderId"]) == (
        mine["orderId"], "mine", "mine-5")  # fmt: skip
    assert (amended["qty"], amended["executedQty"], amended["status"]) == (
        "5.00000000", "0.00000000", "NEW")  # fmt: skip
    assert isinstance(answer["executionId"], int) and answer["transactTime"] > 0
    account = _ok(you.signed("GET", "/api/v3/account", {}))
    usdt = next(b for b in account["balances"] if b["asset"] == "USDT")
    assert usdt["locked"] == "435000.00000000"  # 5 x 87 000: 0.5 BTC's worth released
    (open_order,) = _ok(you.signed("GET", "/api/v3/openOrders", {"symbol": SYMBOL}))
    assert (open_order["clientOrderId"], open_order["origQty"]) == ("mine-5", "5.00000000")

    # by the new client id; the old one is gone
    again = _ok(you.signed("PUT", "/api/v3/order/amend/keepPriority", {
        "symbol": SYMBOL, "origClientOrderId": "mine-5", "newQty": "4.5"}))  # fmt: skip
    assert again["amendedOrder"]["qty"] == "4.50000000"
    assert again["executionId"] > answer["executionId"]
    generated = again["amendedOrder"]["clientOrderId"]
    refused = you.signed("PUT", "/api/v3/order/amend/keepPriority", {
        "symbol": SYMBOL, "origClientOrderId": "mine-5", "newQty": "1"})  # fmt: skip
    assert (refused.status_code, refused.json()) == (
        400, {"code": -2038, "msg": "Unknown order sent."})  # fmt: skip

    # the seller meets 712's 1.00 first, then the amended order, and never 713's
    sold = _ok(seller.signed("POST", "/api/v3/order", {
        "symbol": SYMBOL, "side": "SELL", "type": "MARKET", "quantity": "5.5",
        "newOrderRespType": "FULL"}))  # fmt: skip
    assert [f["qty"] for f in sold["fills"]] == ["1.00000000", "4.50000000"]
    mine_now = _ok(you.signed("GET", "/api/v3/order", {"symbol": SYMBOL,
                                                       "orderId": mine["orderId"]}))  # fmt: skip
    assert (mine_now["status"], mine_now["executedQty"]) == ("FILLED", "4.50000000")
    (still,) = _ok(last.signed("GET", "/api/v3/openOrders", {"symbol": SYMBOL}))
    assert still["executedQty"] == "0.00000000"

    rows = _amendments(you, mine["orderId"], 2)
    assert rows == [
        {"symbol": SYMBOL, "orderId": mine["orderId"], "executionId": answer["executionId"],
         "origClientOrderId": "mine", "newClientOrderId": "mine-5", "origQty": "5.50000000",
         "newQty": "5.00000000", "time": answer["transactTime"]},
        {"symbol": SYMBOL, "orderId": mine["orderId"], "executionId": again["executionId"],
         "origClientOrderId": "mine-5", "newClientOrderId": generated, "origQty": "5.00000000",
         "newQty": "4.50000000", "time": again["transactTime"]},
    ]  # fmt: skip
    query = {"symbol": SYMBOL, "orderId": mine["orderId"], "fromExecutionId": again["executionId"]}
    later = _ok(you.signed("GET", "/api/v3/order/amendments", query))
    assert later == rows[1:]
    # another account sees none of them
    assert _ok(last.signed("GET", "/api/v3/order/amendments",
                           {"symbol": SYMBOL, "orderId": mine["orderId"]})) == []  # fmt: skip


@pytest.mark.parametrize(
    ("params", "code", "msg"),
    [
        ({"newQty": "2"}, -2038, "The requested action would change no state; rejecting"),
        ({"newQty": "3"}, -2038, "Order amend (quantity increase) is not supported."),
        ({"newQty": "0"}, -1013, "Invalid quantity."),
        ({"newQty": "1.000001"}, -1013, "Filter failure: LOT_SIZE"),
    ],
)
def test_refused_amendments_change_nothing(
    stack: ApiStack, params: dict[str, str], code: int, msg: str
) -> None:
    trader = stack.client(stack.trader(715, {"BTC": "10"}))
    placed = _ok(trader.signed("POST", "/api/v3/order", {
        "symbol": SYMBOL, "side": "SELL", "type": "LIMIT", "timeInForce": "GTC",
        "quantity": "2", "price": "99000"}))  # fmt: skip
    refused = trader.signed("PUT", "/api/v3/order/amend/keepPriority",
                            {"symbol": SYMBOL, "orderId": placed["orderId"], **params})  # fmt: skip
    assert (refused.status_code, refused.json()) == (400, {"code": code, "msg": msg})
    order = _ok(trader.signed("GET", "/api/v3/order",
                              {"symbol": SYMBOL, "orderId": placed["orderId"]}))  # fmt: skip
    assert (order["origQty"], order["status"]) == ("2.00000000", "NEW")
    _ok(trader.signed("DELETE", "/api/v3/order", {"symbol": SYMBOL, "orderId": placed["orderId"]}))


def test_websocket_api_amend_and_the_replaced_execution_report(stack: ApiStack) -> None:
    """order.amend.keepPriority and order.amendments over the WebSocket API; the user data
    stream shows the amendment as Binance's executionReport REPLACED."""
    owner = stack.trader(716, {"BTC": "10"})
    trader = stack.client(owner)
    answer = requests.post(f"{stack.base_url}/api/v3/userDataStream",
                           headers={"X-MBX-APIKEY": owner.api_key}, timeout=30)  # fmt: skip
    assert answer.status_code == 200, answer.text
    user = WsClient(f"ws://127.0.0.1:{stack.port}/ws/{answer.json()['listenKey']}")
    api = WsClient(f"ws://127.0.0.1:{stack.port}/ws-api/v3")
    try:
        placed = _ok(trader.signed("POST", "/api/v3/order", {
            "symbol": SYMBOL, "side": "SELL", "type": "LIMIT", "timeInForce": "GTC",
            "quantity": "3", "price": "98000", "newClientOrderId": "ws-old"}))  # fmt: skip
        amended = api.signed("order.amend.keepPriority", owner, {
            "symbol": SYMBOL, "orderId": placed["orderId"], "newQty": "2",
            "newClientOrderId": "ws-new"})  # fmt: skip
        assert amended["status"] == 200, amended
        result = amended["result"]
        assert result["amendedOrder"]["qty"] == "2.00000000"
        report = _replaced(user)
        assert (report["i"], report["c"], report["C"], report["q"], report["X"]) == (
            placed["orderId"], "ws-new", "ws-old", "2.00000000", "NEW")  # fmt: skip
        assert report["I"] == result["executionId"]
        deadline = time.monotonic() + 60
        while True:
            listed = api.signed("order.amendments", owner,
                                {"symbol": SYMBOL, "orderId": placed["orderId"]})  # fmt: skip
            assert listed["status"] == 200, listed
            if listed["result"]:
                break
            assert time.monotonic() < deadline, "the recorder did not write the amendment"
            time.sleep(0.2)
        (row,) = listed["result"]
        assert (row["executionId"], row["origQty"], row["newQty"]) == (
            result["executionId"], "3.00000000", "2.00000000")  # fmt: skip
    finally:
        user.close()
        api.close()


def _replaced(user: WsClient) -> dict[str, Any]:
    """The next executionReport REPLACED on the user data stream."""
    while True:
        message: dict[str, Any] = user.recv(timeout=60)
        if message.get("e") == "executionReport" and message.get("x") == "REPLACED":
            return message
