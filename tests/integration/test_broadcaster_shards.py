"""A fan-out sharded over pusher invocations, end to end: with ``BOURSE_PUSHER_SHARD_SIZE=1``
the broadcaster posts to one connection itself and hands every other one to PusherFunction
through Lambda's Invoke API (locally the gateway's), which posts through @connections. Every
connection receives every trade, once and in order (the broadcaster waits for its shards
before the next batch)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from bourse.settings import Settings
from tests.integration.api_support import ApiStack
from tests.integration.ws_support import WsClient, ws_exchange

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REDIS_DB = int(os.environ.get("BOURSE_TEST_SHARDS_REDIS_DB", "35"))
ORDER = {"symbol": "BTCUSDT", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.001",
         "price": "30000", "newOrderRespType": "ACK"}  # fmt: skip


@pytest.fixture(scope="module")
def stack(
    local_stack: Settings, aws_client: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiStack]:
    env = {"BOURSE_PUSHER_SHARD_SIZE": "1"}
    logs = tmp_path_factory.mktemp("broadcaster-shards")
    with ws_exchange(local_stack, aws_client("dynamodb"), logs, REDIS_DB, env=env) as s:
        yield s


def test_every_shard_receives_every_trade_in_order(stack: ApiStack) -> None:
    sell = stack.client(stack.trader(1, {"BTC": "10"}))
    buy = stack.client(stack.trader(2, {"USDT": "1000000"}))
    clients = [WsClient(f"ws://127.0.0.1:{stack.port}/ws/btcusdt@trade") for _ in range(5)]
    try:
        for _ in range(3):
            assert sell.signed("POST", "/api/v3/order", {**ORDER, "side": "SELL"}).ok
            assert buy.signed("POST", "/api/v3/order", {**ORDER, "side": "BUY"}).ok
        received = [[client.recv(timeout=60) for _ in range(3)] for client in clients]
    finally:
        for client in clients:
            client.conn.close()
    for messages in received:
        assert [m["e"] for m in messages] == ["trade"] * 3
        ids = [m["t"] for m in messages]
        assert ids == sorted(ids) and len(set(ids)) == 3
    assert len({tuple(m["t"] for m in messages) for messages in received}) == 1
    invocations = (stack.logs / "gateway.log").read_text().count("-PusherFunction/invocations")
    assert invocations >= 3  # a trade's fan-out to 5 connections: 4 shards of 1
