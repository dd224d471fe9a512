"""Quote-quantity MARKET orders and STP DECREMENT through REST against the real stack (gateway,
Kafka, the working tree's matching service): a MARKET BUY by quoteOrderQty that spent its
budget as closely as LOT_SIZE allows is FILLED, one that emptied the book EXPIRED; a LIMIT
with selfTradePreventionMode=DECREMENT against the account's own bigger order expires in
match and leaves that order on the book with less (Binance's STP FAQ, scenario G)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from bourse.settings import Settings
from tests.integration.api_support import ApiStack, Client

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REDIS_DB = int(os.environ.get("BOURSE_TEST_ORDER_SEMANTICS_REDIS_DB", "63"))


@pytest.fixture(scope="module")
def stack(local_stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiStack]:
    s = ApiStack(local_stack, tmp_path_factory.mktemp("order-semantics"), REDIS_DB)
    try:
        s.start()
        yield s
    finally:
        s.stop()


def _order(client: Client, symbol: str, **params: Any) -> dict[str, Any]:
    answer = client.signed("POST", "/api/v3/order", {"symbol": symbol, **params})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_quote_market_buy_is_filled_when_the_rest_cannot_buy_a_step(stack: ApiStack) -> None:
    maker = stack.client(stack.trader(721, {"BTC": "1"}))
    taker = stack.client(stack.trader(722, {"USDT": "1000"}))
    _order(maker, "BTCUSDT", side="SELL", type="LIMIT", timeInForce="GTC", quantity="1",
           price="30000")  # fmt: skip
    # 100.1 USDT buys 0.00333 BTC (99.90 USDT); 0.20 left cannot buy one more 0.00001 (0.30)
    bought = _order(taker, "BTCUSDT", side="BUY", type="MARKET", quoteOrderQty="100.1",
                    newOrderRespType="FULL")  # fmt: skip
    assert (bought["status"], bought["executedQty"], bought["cummulativeQuoteQty"]) == (
        "FILLED", "0.00333000", "99.90000000")  # fmt: skip
    account = taker.signed("GET", "/api/v3/account", {}).json()
    usdt = next(b for b in account["balances"] if b["asset"] == "USDT")
    assert (usdt["free"], usdt["locked"]) == ("900.10000000", "0.00000000")


def test_quote_market_buy_that_empties_the_book_expires(stack: ApiStack) -> None:
    maker = stack.client(stack.trader(723, {"ETH": "1"}))
    taker = stack.client(stack.trader(724, {"USDT": "10000"}))
    _order(maker, "ETHUSDT", side="SELL", type="LIMIT", timeInForce="GTC", quantity="0.1",
           price="2000")  # fmt: skip
    bought = _order(taker, "ETHUSDT", side="BUY", type="MARKET", quoteOrderQty="500")
    assert (bought["status"], bought["executedQty"]) == ("EXPIRED", "0.10000000")


def test_stp_decrement_scenario_g(stack: ApiStack) -> None:
    info = stack.client().public("GET", "/api/v3/exchangeInfo", symbol="ETHBTC").json()
    assert "DECREMENT" in info["symbols"][0]["allowedSelfTradePreventionModes"]
    me = stack.client(stack.trader(725, {"BTC": "1", "ETH": "10"}))
    maker = _order(me, "ETHBTC", side="BUY", type="LIMIT", timeInForce="GTC", quantity="6",
                   price="0.05")  # fmt: skip
    taker = _order(me, "ETHBTC", side="SELL", type="LIMIT", timeInForce="GTC", quantity="2",
                   price="0.05", selfTradePreventionMode="DECREMENT")  # fmt: skip
    assert (taker["status"], taker["executedQty"], taker["fills"]) == (
        "EXPIRED_IN_MATCH", "0.00000000", [])  # fmt: skip
    (resting,) = me.signed("GET", "/api/v3/openOrders", {"symbol": "ETHBTC"}).json()
    assert (resting["orderId"], resting["status"], resting["executedQty"]) == (
        maker["orderId"], "NEW", "0.00000000")  # fmt: skip
    account = me.signed("GET", "/api/v3/account", {}).json()
    btc = next(b for b in account["balances"] if b["asset"] == "BTC")
    assert btc["locked"] == "0.20000000"  # 4 ETH left at 0.05: 2's lock released
    depth = stack.client().public("GET", "/api/v3/depth", symbol="ETHBTC").json()
    assert depth["bids"] == [["0.05000000", "4.00000000"]]
