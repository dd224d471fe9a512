"""The WebSocket API's rate limits end to end: a WebSocket client and a REST client from one
address -> the local gateway -> the functions -> the same DynamoDB (moto) counters, with small
limits set through the environment; and an unknown symbol that never reaches the command log.

One private exchange for the module (ws_support). The weight test connects from its own
loopback address (127.0.0.3), so that its ban stops nobody else.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from kafka import TopicPartition

from bourse.adapters import kafka
from bourse.api import rate_limits as rl
from bourse.settings import Settings
from tests.integration.api_support import ApiStack, Trader
from tests.integration.test_rate_limits_api import _FromAddress, _wait_for_window
from tests.integration.ws_support import WsClient, private_tables

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REDIS_DB = int(os.environ.get("BOURSE_TEST_WS_LIMITS_REDIS_DB", "51"))
# The day's ORDERS limit is the one tested: a 10-second window could end between two requests
# of a loaded machine, a UTC day (with the margin below) cannot.
WEIGHT_LIMIT, ORDERS_10S, ORDERS_DAY = 1000, 1000, 4
BANNED_ADDRESS = "127.0.0.3"
RESTING = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
           "quantity": "0.01", "price": "20000", "newOrderRespType": "ACK"}  # fmt: skip


@pytest.fixture(scope="module")
def stack(
    local_stack: Settings, aws_client: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiStack]:
    with private_tables(aws_client("dynamodb"), local_stack) as tables:
        s = ApiStack(local_stack, tmp_path_factory.mktemp("ws-limits"), REDIS_DB)
        s.env.update(tables)
        s.env["BOURSE_RATE_LIMIT_WEIGHT_PER_MINUTE"] = str(WEIGHT_LIMIT)
        s.env["BOURSE_RATE_LIMIT_ORDERS_PER_10S"] = str(ORDERS_10S)
        s.env["BOURSE_RATE_LIMIT_ORDERS_PER_DAY"] = str(ORDERS_DAY)
        try:
            s.start()
            yield s
        finally:
            s.stop()


def _ws(stack: ApiStack, **options: Any) -> WsClient:
    return WsClient(stack.base_url.replace("http://", "ws://") + "/ws-api/v3", **options)


def _limits(answer: dict[str, Any]) -> dict[tuple[str, str], int]:
    return {(r["rateLimitType"], r["interval"]): r["count"] for r in answer["rateLimits"]}


def _commands_in_log(stack: ApiStack) -> int:
    consumer = kafka.consumer(group_id=None)
    try:
        partition = TopicPartition(stack.commands_topic, 0)
        end: int = consumer.end_offsets([partition])[partition]
        return end
    finally:
        consumer.close(autocommit=False)


def test_orders_count_once_across_rest_and_websocket(stack: ApiStack) -> None:
    trader: Trader = stack.trader(41, {"USDT": "100000"})
    rest = stack.client(trader)
    client = _ws(stack)
    try:
        assert client.api("ping")["status"] == 200  # the function is warm before the count
        _wait_for_window(rl.ORDERS_DAY, 600_000)
        day_counts = []
        for transport in ("rest", "ws", "rest", "ws"):
            if transport == "rest":
                response = rest.signed("POST", "/api/v3/order", RESTING)
                assert response.status_code == 200, response.text
                day_counts.append(int(response.headers["X-MBX-ORDER-COUNT-1D"]))
            else:
                answer = client.signed("order.place", trader, RESTING)
                assert answer["status"] == 200, answer
                day_counts.append(_limits(answer)[("ORDERS", "DAY")])
        assert day_counts == [1, 2, 3, 4]
        refused = client.signed("order.place", trader, RESTING)
        assert refused["status"] == 429, refused
        assert refused["error"]["code"] == -1015
        assert (
            refused["error"]["msg"] == "Too many new orders; current limit is 4 orders per 1 DAY."
        )
        assert refused["error"]["data"]["retryAfter"] == rl.ORDERS_DAY.end(
            refused["error"]["data"]["serverTime"]
        )
        assert _limits(refused)[("ORDERS", "DAY")] == 5
        also_refused = rest.signed("POST", "/api/v3/order", RESTING)
        assert also_refused.status_code == 429 and also_refused.json()["code"] == -1015
        assert also_refused.headers["X-MBX-ORDER-COUNT-1D"] == "6"
        # The refused orders never reached the engine; the account's count says so too.
        opened = client.signed("openOrders.status", trader, {"symbol": "BTCUSDT"})
        assert len(opened["result"]) == 4
        status = rest.signed("GET", "/api/v3/rateLimit/order")
        assert status.json()[1]["count"] == 6
        # returnRateLimits=false hides the array, not the limit.
        hidden = client.signed("order.place", trader, {**RESTING, "returnRateLimits": False})
        assert hidden["status"] == 429 and "rateLimits" not in hidden
    finally:
        client.close()


def test_ip_weight_is_shared_then_banned(stack: ApiStack) -> None:
    session = requests.Session()
    session.mount("http://", _FromAddress(BANNED_ADDRESS))
    depth = f"{stack.base_url}/api/v3/depth?symbol=BTCUSDT&limit=5000"  # weight 250
    client = _ws(stack, source_address=(BANNED_ADDRESS, 0))
    other = _ws(stack)
    try:
        _wait_for_window(rl.WEIGHT_WINDOW, 40_000)
        used = []
        for transport in ("ws", "rest", "ws", "rest"):
            if transport == "ws":
                answer = client.api("depth", {"symbol": "BTCUSDT", "limit": 5000})
                assert answer["status"] == 200, answer
                used.append(_limits(answer)[("REQUEST_WEIGHT", "MINUTE")])
            else:
                response = session.get(depth, timeout=30)
                assert response.status_code == 200, response.text
                used.append(int(response.headers["X-MBX-USED-WEIGHT-1M"]))
        assert used == [250, 500, 750, 1000]
        throttled = client.api("depth", {"symbol": "BTCUSDT", "limit": 5000})
        assert throttled["status"] == 429, throttled
        assert throttled["error"]["code"] == -1003
        assert _limits(throttled)[("REQUEST_WEIGHT", "MINUTE")] == 1250
        data = throttled["error"]["data"]
        assert data["retryAfter"] == rl.WEIGHT_WINDOW.end(data["serverTime"])
        # Sent again without backing off: banned, on both transports.
        banned = client.api("time")
        assert banned["status"] == 418 and banned["error"]["code"] == -1003
        until = banned["error"]["data"]["retryAfter"]
        assert f"IP banned until {until}." in banned["error"]["msg"]
        assert session.get(f"{stack.base_url}/api/v3/ping", timeout=30).status_code == 418
        # Another address is not affected.
        assert other.api("time")["status"] == 200
    finally:
        client.close()
        other.close()


def test_unknown_symbol_never_reaches_the_command_log(stack: ApiStack) -> None:
    trader = stack.trader(42, {"USDT": "100000"})
    client = _ws(stack)
    try:
        assert client.signed("order.place", trader, RESTING)["status"] == 200
        before = _commands_in_log(stack)
        symbol = f"ZZ{uuid.uuid4().hex[:6].upper()}"
        placed = client.signed("order.place", trader, {**RESTING, "symbol": symbol})
        cancelled = client.signed("order.cancel", trader, {"symbol": symbol, "orderId": 1})
        for answer in (placed, cancelled):
            assert answer["status"] == 400, answer
            assert answer["error"] == {"code": -1121, "msg": "Invalid symbol."}
        assert _commands_in_log(stack) == before
    finally:
        client.close()
