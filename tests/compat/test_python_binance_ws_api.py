"""python-binance's WebSocket API client (PyPI, unmodified; only its URL changes) against the
local gateway: the ``ws_*`` methods of ``AsyncClient``, which send Binance's WebSocket API
requests (``order.place``, ``depth``, ``ticker.24hr`` ...) signed per request, on one
connection to ``/ws-api/v3``.

A private exchange for the module (its own DynamoDB tables, topics, Redis database, scratch
record, the trade recorder beside it): market data, a resting order filled by another
account, queries, cancel and cancel-replace, the history methods, and Binance's errors.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from typing import Any

import pytest
from binance import AsyncClient
from binance.exceptions import BinanceAPIException

from bourse.settings import Settings
from tests.integration.api_support import ApiStack, Trader
from tests.integration.ws_support import ws_exchange

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REDIS_DB = int(os.environ.get("BOURSE_TEST_PYB_WS_API_REDIS_DB", "13"))
SYMBOL = "PWSUSDT"


@pytest.fixture(scope="module")
def stack(
    local_stack: Settings, aws_client: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiStack]:
    logs = tmp_path_factory.mktemp("pyb-ws-api")
    dynamodb = aws_client("dynamodb")
    with ws_exchange(
        local_stack, dynamodb, logs, REDIS_DB, broadcaster=False, record_prefix="test_pyb_ws"
    ) as s:
        s.list_market(SYMBOL, "PWS")
        yield s


def _client(stack: ApiStack, trader: Trader) -> AsyncClient:
    client = AsyncClient(trader.api_key, trader.secret)
    client.API_URL = stack.base_url + "/api"
    client.ws_api._url = f"ws://127.0.0.1:{stack.port}/ws-api/v3"
    return client


def test_python_binance_websocket_api(stack: ApiStack) -> None:
    maker_trader = stack.trader(401, {"PWS": "1"})
    taker_trader = stack.trader(402, {"USDT": "100000"})

    async def run() -> dict[str, Any]:
        maker, taker = _client(stack, maker_trader), _client(stack, taker_trader)
        got: dict[str, Any] = {}
        try:
            got["ping"] = await maker.ws_ping()
            got["time"] = await maker.ws_get_time()
            got["info"] = await maker.ws_get_exchange_info(symbol=SYMBOL)
            got["test"] = await maker.ws_create_test_order(
                symbol=SYMBOL, side="SELL", type="LIMIT", timeInForce="GTC",
                quantity="0.1", price="30000",
            )  # fmt: skip
            got["resting"] = await maker.ws_order_limit_sell(
                symbol=SYMBOL, quantity="0.1", price="30000", newClientOrderId="pyb-ws-1"
            )
            got["book"] = await taker.ws_get_order_book(symbol=SYMBOL, limit=5)
            got["filled"] = await taker.ws_order_market_buy(symbol=SYMBOL, quantity="0.04")
            got["status"] = await maker.ws_get_order(symbol=SYMBOL, origClientOrderId="pyb-ws-1")
            got["open"] = await maker.ws_get_open_orders(symbol=SYMBOL)
            got["replaced"] = await maker.ws_cancel_and_replace_order(
                symbol=SYMBOL, cancelReplaceMode="STOP_ON_FAILURE",
                cancelOrigClientOrderId="pyb-ws-1", side="SELL", type="LIMIT",
                timeInForce="GTC", quantity="0.05", price="31000", newClientOrderId="pyb-ws-2",
            )  # fmt: skip
            got["canceled"] = await maker.ws_cancel_order(
                symbol=SYMBOL, origClientOrderId="pyb-ws-2"
            )
            got["account"] = await maker.ws_get_account()
            got["commission"] = await maker.ws_get_commission_rates(symbol=SYMBOL)
            got["order_limits"] = await maker.ws_get_account_rate_limits_orders()
            await asyncio.to_thread(stack.wait_recorded)
            got["trades"] = await taker.ws_get_recent_trades(symbol=SYMBOL)
            got["agg"] = await taker.ws_get_aggregate_trades(symbol=SYMBOL)
            got["klines"] = await taker.ws_get_klines(symbol=SYMBOL, interval="1m", limit=5)
            got["avg"] = await taker.ws_get_avg_price(symbol=SYMBOL)
            got["ticker24"] = await taker.ws_get_ticker(symbol=SYMBOL)
            got["trading_day"] = await taker.ws_get_trading_day_ticker(symbol=SYMBOL)
            got["price"] = await taker.ws_get_symbol_ticker(symbol=SYMBOL)
            got["bbo"] = await taker.ws_get_orderbook_ticker(symbol=SYMBOL)
            got["all_orders"] = await maker.ws_get_all_orders(symbol=SYMBOL)
            got["my_trades"] = await taker.ws_get_my_trades(symbol=SYMBOL)
            got["prevented"] = await maker.ws_get_prevented_matches(symbol=SYMBOL, orderId=1)
            with pytest.raises(BinanceAPIException) as exc:
                await taker.ws_order_limit_buy(symbol=SYMBOL, quantity="100", price="30000")
            got["insufficient"] = exc.value
            with pytest.raises(BinanceAPIException) as exc:
                await maker.ws_cancel_order(symbol=SYMBOL, orderId=987654)
            got["unknown"] = exc.value
        finally:
            for client in (maker, taker):
                await client.close_connection()
        return got

    got = asyncio.run(run())
    assert got["ping"] == {} and got["time"]["serverTime"] > 0
    assert [s["symbol"] for s in got["info"]["symbols"]] == [SYMBOL]
    assert got["test"] == {}
    resting = got["resting"]
    assert (resting["status"], resting["clientOrderId"]) == ("NEW", "pyb-ws-1")
    assert got["book"]["asks"] == [["30000.00000000", "0.10000000"]]
    filled = got["filled"]
    assert (filled["status"], filled["executedQty"]) == ("FILLED", "0.04000000")
    assert (got["status"]["status"], got["status"]["executedQty"]) == (
        "PARTIALLY_FILLED", "0.04000000"
    )  # fmt: skip
    assert [o["orderId"] for o in got["open"]] == [resting["orderId"]]
    replaced = got["replaced"]
    assert (replaced["cancelResult"], replaced["newOrderResult"]) == ("SUCCESS", "SUCCESS")
    assert got["canceled"]["status"] == "CANCELED"
    balances = {b["asset"]: b for b in got["account"]["balances"]}
    assert balances["PWS"]["free"] == "0.96000000"
    assert got["commission"]["symbol"] == SYMBOL
    assert {limit["interval"] for limit in got["order_limits"]} >= {"SECOND", "DAY"}
    (trade,) = got["trades"]
    assert (trade["price"], trade["qty"], trade["isBuyerMaker"]) == (
        "30000.00000000", "0.04000000", False
    )  # fmt: skip
    assert got["agg"][0]["p"] == "30000.00000000"
    assert got["klines"][-1][4] == "30000.00000000"
    assert got["avg"]["price"] == "30000.00000000"
    assert got["ticker24"]["lastPrice"] == "30000.00000000"
    assert got["trading_day"]["lastPrice"] == "30000.00000000"
    assert got["price"] == {"symbol": SYMBOL, "price": "30000.00000000"}
    assert got["bbo"]["symbol"] == SYMBOL
    statuses = {o["clientOrderId"]: o["status"] for o in got["all_orders"]}
    assert statuses == {"pyb-ws-1": "CANCELED", "pyb-ws-2": "CANCELED"}
    (mine,) = got["my_trades"]
    assert (mine["isBuyer"], mine["qty"]) == (True, "0.04000000")
    assert got["prevented"] == []
    assert (got["insufficient"].status_code, got["insufficient"].code) == (400, -2010)
    assert got["unknown"].code == -2011
