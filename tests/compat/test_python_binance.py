"""python-binance (PyPI, unmodified) against the local gateway: only its base URL changes.

Two funded accounts on a private exchange (tests/integration/api_support.py) with its trade
recorder writing a scratch record: exchange info, depth, a resting LIMIT order from one account
filled by a MARKET order from the other, cancel, open orders, account balances, then the
history the record keeps (klines, aggregate trades, the 24 h ticker, all orders, my trades, a
closed order), and Binance's exceptions for rejected requests.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from binance.client import Client
from binance.exceptions import BinanceAPIException

from bourse.domain.amounts import parse_units
from bourse.settings import Settings
from tests.integration.api_support import ApiStack, Trader
from tests.integration.record_support import scratch_database

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REDIS_DB = int(os.environ.get("BOURSE_TEST_COMPAT_REDIS_DB", "10"))


@pytest.fixture(scope="module")
def stack(local_stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiStack]:
    with scratch_database(local_stack.pg_dsn, "test_compat") as dsn:
        s = ApiStack(local_stack, tmp_path_factory.mktemp("compat"), REDIS_DB, dsn)
        try:
            s.start()
            s.spawn_recorder()
            yield s
        finally:
            s.stop()


def binance(stack: ApiStack, trader: Trader) -> Client:
    # ping=False: the constructor would otherwise reach api.binance.com before we can point it
    # at the gateway.
    client = Client(trader.api_key, trader.secret, ping=False)
    client.API_URL = stack.base_url + "/api"
    return client


def _balance(client: Client, asset: str) -> tuple[str, str]:
    row = client.get_asset_balance(asset=asset)
    return row["free"], row["locked"]


def test_python_binance_round_trip(stack: ApiStack) -> None:
    maker = binance(stack, stack.trader(1, {"BTC": "1"}))
    taker = binance(stack, stack.trader(2, {"USDT": "10000"}))

    maker.ping()
    assert abs(maker.get_server_time()["serverTime"] - taker.get_server_time()["serverTime"]) < 5000
    info = maker.get_symbol_info("BTCUSDT")
    assert info is not None and info["baseAsset"] == "BTC"
    tick = next(f for f in info["filters"] if f["filterType"] == "PRICE_FILTER")["tickSize"]
    assert tick == "0.01000000"

    resting = maker.order_limit_sell(symbol="BTCUSDT", quantity="0.1", price="30000")
    assert resting["status"] == "NEW"
    book = taker.get_order_book(symbol="BTCUSDT", limit=5)
    assert book["asks"] == [["30000.00000000", "0.10000000"]]
    assert [o["orderId"] for o in maker.get_open_orders(symbol="BTCUSDT")] == [resting["orderId"]]
    assert _balance(maker, "BTC") == ("0.90000000", "0.10000000")

    filled = taker.order_market_buy(symbol="BTCUSDT", quantity="0.04")
    assert filled["status"] == "FILLED" and filled["fills"][0]["price"] == "30000.00000000"
    assert taker.get_symbol_ticker(symbol="BTCUSDT") == {
        "symbol": "BTCUSDT",
        "price": "30000.00000000",
    }
    assert taker.get_orderbook_ticker(symbol="BTCUSDT")["askQty"] == "0.06000000"
    order = maker.get_order(symbol="BTCUSDT", orderId=resting["orderId"])
    assert order["status"] == "PARTIALLY_FILLED" and order["executedQty"] == "0.04000000"

    canceled = maker.cancel_order(symbol="BTCUSDT", orderId=resting["orderId"])
    assert canceled["status"] == "CANCELED"
    assert maker.get_open_orders() == []
    # 0.04 BTC at 30000 = 1200 USDT; commissions 0.1% in the asset received.
    assert _balance(maker, "BTC") == ("0.96000000", "0.00000000")
    assert _balance(maker, "USDT") == ("1198.80000000", "0.00000000")
    assert _balance(taker, "BTC") == ("0.03996000", "0.00000000")
    assert _balance(taker, "USDT") == ("8800.00000000", "0.00000000")
    account = taker.get_account()
    assert account["canTrade"] is True and account["accountType"] == "SPOT"

    stack.wait_recorded()
    klines = taker.get_klines(symbol="BTCUSDT", interval=Client.KLINE_INTERVAL_1MINUTE, limit=5)
    assert sum(parse_units(k[5]) for k in klines) == parse_units("0.04")
    assert klines[-1][4] == "30000.00000000" and sum(k[8] for k in klines) == 1
    (agg,) = taker.get_aggregate_trades(symbol="BTCUSDT")
    assert (agg["p"], agg["q"], agg["m"]) == ("30000.00000000", "0.04000000", False)
    day = taker.get_ticker(symbol="BTCUSDT")
    assert (day["lastPrice"], day["volume"], day["count"]) == ("30000.00000000", "0.04000000", 1)
    (bought,) = taker.get_my_trades(symbol="BTCUSDT")
    assert (bought["price"], bought["qty"], bought["isBuyer"], bought["isMaker"]) == (
        "30000.00000000", "0.04000000", True, False
    )  # fmt: skip
    assert (bought["commission"], bought["commissionAsset"]) == ("0.00004000", "BTC")
    (sold,) = maker.get_my_trades(symbol="BTCUSDT")
    assert (sold["id"], sold["orderId"]) == (bought["id"], resting["orderId"])
    assert (sold["commission"], sold["commissionAsset"]) == ("1.20000000", "USDT")
    (placed,) = maker.get_all_orders(symbol="BTCUSDT")
    assert (placed["orderId"], placed["status"], placed["executedQty"]) == (
        resting["orderId"], "CANCELED", "0.04000000"
    )  # fmt: skip
    # No longer open: GET order answers from the record.
    assert maker.get_order(symbol="BTCUSDT", orderId=resting["orderId"]) == placed

    with pytest.raises(BinanceAPIException) as exc:
        taker.order_limit_buy(symbol="BTCUSDT", quantity="1", price="30000")
    assert (exc.value.status_code, exc.value.code) == (400, -2010)
    with pytest.raises(BinanceAPIException) as exc:
        taker.cancel_order(symbol="BTCUSDT", orderId=12345)
    assert exc.value.code == -2011
    with pytest.raises(BinanceAPIException) as exc:
        binance(stack, Trader(2, taker.API_KEY, "wrong" * 12)).get_account()
    assert exc.value.code == -1022
