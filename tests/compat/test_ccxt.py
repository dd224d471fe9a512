"""ccxt and ccxt.pro (PyPI, unmodified) against the local gateway: only their URLs change.

The most used multi-exchange library, as a new user would point it at Bourse (docs/api.md,
"Using ccxt"): ``ccxt.binance`` for REST and ``ccxt.pro.binance`` for the streams and the
WebSocket API, with the three options every spot-only Binance-compatible venue needs (spot
markets only, no wallet endpoints). A private exchange for the module (its own DynamoDB
tables, topics, Redis database, scratch record) with the broadcaster and the trade recorder
beside it, so that history and streams answer too.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import ccxt
import ccxt.pro
import pytest

from bourse.settings import Settings
from tests.integration.api_support import ApiStack, Trader
from tests.integration.ws_support import ws_exchange

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REDIS_DB = int(os.environ.get("BOURSE_TEST_CCXT_REDIS_DB", "12"))
T = TypeVar("T")


@pytest.fixture(scope="module")
def stack(
    local_stack: Settings, aws_client: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiStack]:
    logs = tmp_path_factory.mktemp("ccxt")
    dynamodb = aws_client("dynamodb")
    with ws_exchange(local_stack, dynamodb, logs, REDIS_DB, record_prefix="test_ccxt") as s:
        yield s


def _market(stack: ApiStack, base: str) -> str:
    """A market of the test's own (an empty book); its ccxt symbol."""
    stack.list_market(f"{base}USDT", base)
    return f"{base}/USDT"


def _options() -> dict[str, Any]:
    """What a user sets (docs/api.md, "Using ccxt"): spot markets only (ccxt would also load
    USD-M and COIN-M futures from fapi/dapi), and neither currencies nor margin pairs (ccxt
    reads them from Binance's wallet and margin endpoints, sapi, which a spot exchange does not
    serve)."""
    return {
        "defaultType": "spot",
        "fetchMarkets": {"types": ["spot"]},
        "fetchCurrencies": False,
        "fetchMargins": False,
    }


def _point(exchange: Any, stack: ApiStack) -> None:
    ws = f"ws://127.0.0.1:{stack.port}"
    api = dict(exchange.urls["api"])
    api.update(
        public=stack.base_url + "/api/v3",
        private=stack.base_url + "/api/v3",
        v1=stack.base_url + "/api/v1",
        ws={"spot": ws + "/ws", "ws-api": {"spot": ws + "/ws-api/v3"}},
    )
    exchange.urls["api"] = api


def rest(stack: ApiStack, trader: Trader | None = None) -> Any:
    keys = {} if trader is None else {"apiKey": trader.api_key, "secret": trader.secret}
    exchange = ccxt.binance({**keys, "options": _options()})
    _point(exchange, stack)
    return exchange


def pro(stack: ApiStack, trader: Trader | None = None) -> Any:
    keys = {} if trader is None else {"apiKey": trader.api_key, "secret": trader.secret}
    exchange = ccxt.pro.binance({**keys, "options": _options()})
    _point(exchange, stack)
    return exchange


def test_ccxt_rest_markets_and_market_data(stack: ApiStack) -> None:
    symbol = _market(stack, "CCXA")
    public = rest(stack)
    markets = public.load_markets()
    market = markets[symbol]
    assert (market["id"], market["base"], market["quote"], market["spot"]) == (
        "CCXAUSDT", "CCXA", "USDT", True
    )  # fmt: skip
    assert market["precision"]["price"] == 0.01 and market["limits"]["amount"]["min"] > 0

    maker = rest(stack, stack.trader(301, {"CCXA": "1"}))
    taker = rest(stack, stack.trader(302, {"USDT": "100000"}))
    maker.create_order(symbol, "limit", "sell", 0.1, 30000)
    taker.create_order(symbol, "market", "buy", 0.02)

    book = public.fetch_order_book(symbol, 5)
    assert book["asks"][0] == [30000.0, 0.08] and book["nonce"] > 0

    stack.wait_recorded()
    ticker = public.fetch_ticker(symbol)
    assert ticker["last"] == 30000.0 and ticker["ask"] == 30000.0
    assert symbol in public.fetch_tickers([symbol])
    trades = public.fetch_trades(symbol)
    assert [(t["price"], t["amount"], t["side"]) for t in trades][-1] == (30000.0, 0.02, "buy")
    candles = public.fetch_ohlcv(symbol, "1m", limit=5)
    assert candles[-1][4] == 30000.0 and sum(c[5] for c in candles) == pytest.approx(0.02)


def test_ccxt_rest_orders_of_every_type(stack: ApiStack) -> None:
    symbol = _market(stack, "CCXB")
    maker_trader = stack.trader(311, {"CCXB": "2", "USDT": "100000"})
    maker = rest(stack, maker_trader)
    taker = rest(stack, stack.trader(312, {"CCXB": "1", "USDT": "100000"}))
    maker.load_markets()
    taker.load_markets()

    balance = maker.fetch_balance()
    assert (balance["CCXB"]["free"], balance["USDT"]["total"]) == (2.0, 100000.0)

    limit = maker.create_order(symbol, "limit", "sell", 0.5, 31000)
    assert (limit["status"], limit["type"], limit["side"]) == ("open", "limit", "sell")
    fetched = maker.fetch_order(limit["id"], symbol)
    assert (fetched["price"], fetched["amount"], fetched["remaining"]) == (31000.0, 0.5, 0.5)
    assert [o["id"] for o in maker.fetch_open_orders(symbol)] == [limit["id"]]

    bought = taker.create_order(symbol, "market", "buy", 0.1)
    assert (bought["status"], bought["filled"], bought["average"]) == ("closed", 0.1, 31000.0)
    # by cost: 3100 USDT buys exactly 0.1 BTC at 31000
    by_cost = taker.create_market_buy_order_with_cost(symbol, 3100)
    assert (by_cost["status"], by_cost["filled"], by_cost["cost"]) == ("closed", 0.1, 3100.0)

    post_only = maker.create_order(symbol, "limit", "buy", 0.1, 20000, {"postOnly": True})
    assert (post_only["status"], post_only["postOnly"]) == ("open", True)
    assert maker.fetch_order(post_only["id"], symbol)["info"]["type"] == "LIMIT_MAKER"
    with pytest.raises(ccxt.OrderImmediatelyFillable):
        maker.create_order(symbol, "limit", "buy", 0.1, 32000, {"postOnly": True})

    stop = maker.create_order(symbol, "limit", "sell", 0.1, 19000, {"stopLossPrice": 19500})
    assert maker.fetch_order(stop["id"], symbol)["info"]["type"] == "STOP_LOSS_LIMIT"
    take = maker.create_order(symbol, "limit", "sell", 0.1, 40000, {"takeProfitPrice": 39000})
    assert maker.fetch_order(take["id"], symbol)["info"]["type"] == "TAKE_PROFIT_LIMIT"
    open_ids = {o["id"] for o in maker.fetch_open_orders(symbol)}
    assert open_ids == {limit["id"], post_only["id"], stop["id"], take["id"]}

    for order in (post_only, stop, take):
        canceled = maker.cancel_order(order["id"], symbol)
        assert canceled["status"] == "canceled"
    assert [o["id"] for o in maker.fetch_open_orders(symbol)] == [limit["id"]]
    maker.cancel_all_orders(symbol)
    assert maker.fetch_open_orders(symbol) == []

    stack.wait_recorded()
    # ccxt's "closed" is filled; what was cancelled (even partly filled) is "canceled"
    closed = {o["id"] for o in taker.fetch_closed_orders(symbol)}
    assert closed == {bought["id"], by_cost["id"]}
    canceled = {o["id"] for o in maker.fetch_canceled_orders(symbol)}
    assert canceled == {limit["id"], post_only["id"], stop["id"], take["id"]}
    mine = maker.fetch_my_trades(symbol)
    assert sorted((t["price"], t["amount"], t["side"]) for t in mine) == [
        (31000.0, 0.1, "sell"), (31000.0, 0.1, "sell")
    ]  # fmt: skip
    assert all(t["order"] == limit["id"] and t["takerOrMaker"] == "maker" for t in mine)
    with pytest.raises(ccxt.InsufficientFunds):
        taker.create_order(symbol, "limit", "buy", 100, 30000)
    with pytest.raises(ccxt.OrderNotFound):
        maker.cancel_order("123456789", symbol)


async def _first(
    watch: Callable[[], Awaitable[T]], accept: Callable[[T], bool], timeout: float = 60
) -> T:
    """Calls a ccxt.pro watch method until what it returns is accepted."""

    async def loop() -> T:
        while True:
            value = await watch()
            if accept(value):
                return value

    return await asyncio.wait_for(loop(), timeout)


def test_ccxt_pro_market_streams(stack: ApiStack) -> None:
    symbol = _market(stack, "CCXC")
    maker = rest(stack, stack.trader(321, {"CCXC": "1"}))
    taker = rest(stack, stack.trader(322, {"USDT": "100000"}))
    maker.load_markets()
    taker.load_markets()

    async def run() -> dict[str, Any]:
        client = pro(stack)
        try:
            await client.load_markets()
            # Subscribed before trading; each watch returns once it shows the taker's fill (the
            # book: the ask after the fill, not the one placed before it).
            book = asyncio.ensure_future(
                _first(
                    lambda: client.watch_order_book(symbol),
                    lambda b: dict(b["asks"]).get(33000.0) == 0.15,
                )
            )
            trades = asyncio.ensure_future(
                _first(lambda: client.watch_trades(symbol), lambda ts: ts[-1]["price"] == 33000.0)
            )
            ticker = asyncio.ensure_future(
                _first(lambda: client.watch_ticker(symbol), lambda t: t["last"] == 33000.0)
            )
            ohlcv = asyncio.ensure_future(
                _first(lambda: client.watch_ohlcv(symbol, "1m"), lambda cs: cs[-1][4] == 33000.0)
            )
            await asyncio.sleep(2)  # the SUBSCRIBEs acknowledged
            await asyncio.to_thread(maker.create_order, symbol, "limit", "sell", 0.2, 33000)
            await asyncio.to_thread(taker.create_order, symbol, "market", "buy", 0.05)
            got = await asyncio.gather(book, trades, ticker, ohlcv)
            return dict(zip(("book", "trades", "ticker", "ohlcv"), got, strict=True))
        finally:
            await client.close()

    got = asyncio.run(run())
    assert dict(got["book"]["asks"])[33000.0] == pytest.approx(0.15)
    assert got["trades"][-1]["amount"] == 0.05 and got["trades"][-1]["side"] == "buy"
    assert got["ticker"]["symbol"] == symbol
    assert got["ohlcv"][-1][4] == 33000.0


def test_ccxt_pro_account_streams(stack: ApiStack) -> None:
    symbol = _market(stack, "CCXD")
    maker_trader = stack.trader(331, {"CCXD": "1"})
    taker = rest(stack, stack.trader(332, {"USDT": "100000"}))
    maker_rest = rest(stack, maker_trader)
    maker_rest.load_markets()
    taker.load_markets()

    async def run() -> dict[str, Any]:
        client = pro(stack, maker_trader)
        try:
            await client.load_markets()
            balance = asyncio.ensure_future(
                _first(client.watch_balance, lambda b: b.get("USDT", {}).get("free", 0) > 0)
            )
            orders = asyncio.ensure_future(
                _first(
                    lambda: client.watch_orders(symbol),
                    lambda os_: any(o["status"] == "closed" for o in os_),
                )
            )
            mine = asyncio.ensure_future(
                _first(lambda: client.watch_my_trades(symbol), lambda ts: len(ts) > 0)
            )
            await asyncio.sleep(2)
            placed = await asyncio.to_thread(
                maker_rest.create_order, symbol, "limit", "sell", 0.1, 34000
            )
            await asyncio.to_thread(taker.create_order, symbol, "market", "buy", 0.1)
            got = await asyncio.gather(balance, orders, mine)
            return {"placed": placed, **dict(zip(("balance", "orders", "mine"), got, strict=True))}
        finally:
            await client.close()

    got = asyncio.run(run())
    closed = next(o for o in got["orders"] if o["status"] == "closed")
    assert closed["id"] == got["placed"]["id"] and closed["filled"] == 0.1
    (trade,) = got["mine"]
    assert (trade["price"], trade["amount"], trade["side"]) == (34000.0, 0.1, "sell")
    assert trade["order"] == got["placed"]["id"]
    # 0.1 BTC at 34000, less 0.1% commission in USDT
    assert got["balance"]["USDT"]["free"] == pytest.approx(3396.6)
