"""Trailing stops end to end through REST: place a trailing STOP_LOSS_LIMIT SELL without a stop
price, move the market up and then down by its trailingDelta, and see it trigger — in the
REST answers (trailingDelta, trailingTime), in exchangeInfo, and in the executionReports on
the listen key's user data stream (``d``, ``D``).

One private exchange for the module (private DynamoDB tables, topics, Redis database 37;
``ws_support``), with the broadcaster running beside it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from bourse.settings import Settings
from tests.integration.api_support import ApiStack, Client
from tests.integration.ws_support import WsClient, ws_exchange

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REDIS_DB = int(os.environ.get("BOURSE_TEST_TRAILING_REDIS_DB", "37"))


@pytest.fixture(scope="module")
def stack(
    local_stack: Settings, aws_client: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiStack]:
    logs = tmp_path_factory.mktemp("trailing")
    with ws_exchange(local_stack, aws_client("dynamodb"), logs, REDIS_DB) as s:
        yield s


def _order(client: Client, **params: Any) -> dict[str, Any]:
    answer = client.signed("POST", "/api/v3/order", {"symbol": "BTCUSDT", **params})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _trade_at(maker: Client, taker: Client, price: str) -> None:
    _order(maker, side="SELL", type="LIMIT", timeInForce="GTC", quantity="0.001", price=price)
    _order(taker, side="BUY", type="MARKET", quantity="0.001")


def test_exchange_info_allows_trailing_stops(stack: ApiStack) -> None:
    body = requests.get(f"{stack.base_url}/api/v3/exchangeInfo?symbol=BTCUSDT", timeout=30).json()
    (symbol,) = body["symbols"]
    assert symbol["allowTrailingStop"] is True
    kinds = {f["filterType"]: f for f in symbol["filters"]}
    assert kinds["TRAILING_DELTA"]["maxTrailingBelowDelta"] == 2000
    assert [f["filterType"] for f in body["exchangeFilters"]] == [
        "EXCHANGE_MAX_NUM_ORDERS",
        "EXCHANGE_MAX_NUM_ALGO_ORDERS",
        "EXCHANGE_MAX_NUM_ICEBERG_ORDERS",
    ]


def test_a_trailing_delta_outside_the_filter_is_refused(stack: ApiStack) -> None:
    trader = stack.client(stack.trader(311, {"BTC": "1"}))
    answer = trader.signed("POST", "/api/v3/order", {"symbol": "BTCUSDT", "side": "SELL",
        "type": "STOP_LOSS", "quantity": "0.001", "trailingDelta": 5})  # fmt: skip
    assert answer.status_code == 400
    assert answer.json() == {"code": -1013, "msg": "Filter failure: TRAILING_DELTA"}
    assert trader.signed("GET", "/api/v3/openOrders", {"symbol": "BTCUSDT"}).json() == []


def test_trailing_stop_triggers_on_the_reversal(stack: ApiStack) -> None:
    maker = stack.client(stack.trader(301, {"BTC": "1"}))
    taker = stack.client(stack.trader(302, {"USDT": "100000"}))
    owner = stack.trader(303, {"BTC": "1"})
    trailer = stack.client(owner)
    _trade_at(maker, taker, "40000")
    answer = requests.post(
        f"{stack.base_url}/api/v3/userDataStream",
        headers={"X-MBX-APIKEY": owner.api_key},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    user = WsClient(f"ws://127.0.0.1:{stack.port}/ws/{answer.json()['listenKey']}")
    try:
        placed = _order(trailer, side="SELL", type="STOP_LOSS_LIMIT", timeInForce="GTC",
                        quantity="0.001", price="30000", trailingDelta=500,
                        newClientOrderId="trail-1", newOrderRespType="RESULT")  # fmt: skip
        assert placed["status"] == "NEW" and placed["trailingDelta"] == 500
        assert placed["trailingTime"] == placed["transactTime"]  # tracks from the last price
        assert placed["stopPrice"] == "0.00000000"
        order_id = placed["orderId"]
        new = _report(user, lambda r: r["x"] == "NEW")
        assert (new["d"], new["D"], new["w"]) == (500, placed["trailingTime"], False)

        _trade_at(maker, taker, "42000")  # the highest price: 5% below it is 39,900
        _trade_at(maker, taker, "39901")
        (still,) = trailer.signed("GET", "/api/v3/openOrders", {"symbol": "BTCUSDT"}).json()
        assert (still["orderId"], still["isWorking"]) == (order_id, False)
        assert still["trailingDelta"] == 500
        _trade_at(maker, taker, "39900")  # 42,000 * 0.95: triggered, it sells at its limit
        triggered = _report(user, lambda r: r["x"] == "NEW" and r["w"] is True)
        assert (triggered["i"], triggered["d"]) == (order_id, 500)
        query = trailer.signed("GET", "/api/v3/order", {"symbol": "BTCUSDT", "orderId": order_id})
        assert query.status_code == 200, query.text
        assert query.json()["isWorking"] is True
    finally:
        user.close()


def _report(user: WsClient, match: Any) -> dict[str, Any]:
    """The next executionReport of ``trail-1`` on the user data stream that ``match``es."""
    while True:
        message: dict[str, Any] = user.recv(timeout=60)
        ours = message.get("e") == "executionReport" and message.get("c") == "trail-1"
        if ours and match(message):
            return message
