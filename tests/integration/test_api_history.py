"""The history endpoints end to end: HTTP -> local gateway -> MarketData/Account functions ->
PostgreSQL (a scratch record) and Redis -> Binance's responses.

The record is written by the recorder's own store (``RecordStore``) from an in-process engine
run at chosen times, so every expected figure is known; the private exchange
(``api_support.ApiStack``) supplies the symbols and the live view, and its functions read the
scratch record through ``BOURSE_PG_DSN``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import psycopg
import pytest

from bourse.adapters.hot_cache import HotCache
from bourse.adapters.record_reads import RecordHistory, rolling_ticker
from bourse.adapters.record_store import RecordStore
from bourse.domain.amounts import parse_units
from bourse.domain.commands import (
    AddSymbol,
    CancelOrder,
    Command,
    CreateAccount,
    Deposit,
    NewOrder,
)
from bourse.domain.enums import OrderType, Side, TimeInForce
from bourse.domain.events import Event
from bourse.domain.markets import DEFAULT_MARKETS
from bourse.engine import Engine
from bourse.settings import Settings
from tests.integration.api_support import ApiStack, Client, now_ms
from tests.integration.record_support import scratch_database

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REDIS_DB = int(os.environ.get("BOURSE_TEST_API_HISTORY_REDIS_DB", "20"))
MINUTE = 60_000
DAY = 86_400_000
SYMBOL = "BTCUSDT"


@dataclass(frozen=True)
class Record:
    """When the recorded trades happened: base (a whole minute), t1, t2, t3."""

    base: int
    t1: int
    t2: int
    t3: int
    dsn: str


def _order(ts: int, account: int, side: Side, qty: str, price: str | None, cid: str) -> NewOrder:
    limit = price is not None
    return NewOrder(
        request_id=cid, ts=ts, account_id=account, symbol=SYMBOL, side=side,
        type=OrderType.LIMIT if limit else OrderType.MARKET, client_order_id=cid,
        quantity=parse_units(qty), price=parse_units(price) if price is not None else None,
        time_in_force=TimeInForce.GTC if limit else None,
    )  # fmt: skip


def _history_events(base: int, t1: int, t2: int, t3: int) -> list[Event]:
    """Accounts 1 and 3 sell, 2 buys: trade 1 at t1; trades 2 and 3 (one taker order, one
    price: one aggregate trade) at t2; trades 4 (30000) and 5 (31000) at t3; a canceled bid."""
    commands: list[Command] = [AddSymbol(f"add-{s.symbol}", base - 9, s) for s in DEFAULT_MARKETS]
    commands += [CreateAccount(f"open-{a}", base - 9, account_id=a) for a in (1, 2, 3)]
    for account, asset, amount in ((1, "BTC", "5"), (3, "BTC", "5"), (2, "USDT", "100000")):
        commands.append(Deposit(f"dep-{account}", base - 8, account, asset, parse_units(amount)))
    commands += [
        _order(base - 7, 1, Side.SELL, "0.5", "30000", "a1"),
        _order(base - 6, 3, Side.SELL, "0.5", "30000", "c1"),
        _order(base - 5, 1, Side.SELL, "0.5", "31000", "a2"),
        _order(t1, 2, Side.BUY, "0.1", None, "b1"),
        _order(t2, 2, Side.BUY, "0.6", None, "b2"),
        _order(t2 + 1, 2, Side.BUY, "0.1", "20000", "b3"),
        CancelOrder("x", t2 + 2, 2, SYMBOL, orig_client_order_id="b3", cancel_client_order_id="x"),
        _order(t3, 2, Side.BUY, "0.5", None, "b4"),
    ]
    engine = Engine()
    return [ev for cmd in commands for ev in engine.process(cmd)]


@pytest.fixture(scope="module")
def record(local_stack: Settings) -> Iterator[Record]:
    now = now_ms()
    base = now // MINUTE * MINUTE - 120 * MINUTE
    times = (base + 1_000, base + MINUTE + 1_000, now - MINUTE)
    with scratch_database(local_stack.pg_dsn, "test_api_history") as dsn:
        store = RecordStore(dsn, "test-api-history")
        try:
            store.write(_history_events(base, *times))
        finally:
            store.close()
        yield Record(base, *times, dsn=dsn)


@pytest.fixture(scope="module")
def stack(
    local_stack: Settings, record: Record, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiStack]:
    s = ApiStack(local_stack, tmp_path_factory.mktemp("api-history"), REDIS_DB, record.dsn)
    try:
        s.start()
        yield s
    finally:
        s.stop()


def _ok(response: Any) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def _error(response: Any) -> tuple[int, int]:
    return response.status_code, response.json()["code"]


def test_trades_and_aggregate_trades(stack: ApiStack, record: Record) -> None:
    c = stack.client()
    trades = _ok(c.public("GET", "/api/v3/trades", symbol=SYMBOL))
    assert [t["id"] for t in trades] == [1, 2, 3, 4, 5]
    assert trades[0] == {"id": 1, "price": "30000.00000000", "qty": "0.10000000",
                         "quoteQty": "3000.00000000", "time": record.t1, "isBuyerMaker": False,
                         "isBestMatch": True}  # fmt: skip
    assert [t["id"] for t in _ok(c.public("GET", "/api/v3/trades", symbol=SYMBOL, limit=2))] == [
        4,
        5,
    ]
    older = _ok(c.public("GET", "/api/v3/historicalTrades", symbol=SYMBOL, fromId=2, limit=2))
    assert [(t["id"], t["qty"]) for t in older] == [(2, "0.40000000"), (3, "0.20000000")]

    aggs = _ok(c.public("GET", "/api/v3/aggTrades", symbol=SYMBOL))
    assert [(a["a"], a["f"], a["l"], a["q"], a["p"]) for a in aggs] == [
        (1, 1, 1, "0.10000000", "30000.00000000"),
        (2, 2, 3, "0.60000000", "30000.00000000"),
        (4, 4, 4, "0.30000000", "30000.00000000"),
        (5, 5, 5, "0.20000000", "31000.00000000"),
    ]
    assert aggs[1]["T"] == record.t2 and aggs[1]["m"] is False and aggs[1]["M"] is True
    timed = _ok(c.public("GET", "/api/v3/aggTrades", symbol=SYMBOL, startTime=record.t2,
                         endTime=record.t3))  # fmt: skip
    assert [a["a"] for a in timed] == [2, 4, 5]
    assert [a["a"] for a in _ok(c.public("GET", "/api/v3/aggTrades", symbol=SYMBOL,
                                         fromId=3, limit=1))] == [4]  # fmt: skip
    both = c.public("GET", "/api/v3/aggTrades", symbol=SYMBOL, fromId=1, startTime=record.t1)
    assert _error(both) == (400, -1128)
    assert _error(c.public("GET", "/api/v3/trades", symbol="NOPE")) == (400, -1121)
    assert _error(c.public("GET", "/api/v3/trades", symbol=SYMBOL, limit=0)) == (400, -1130)


def test_klines(stack: ApiStack, record: Record) -> None:
    c = stack.client()
    minutes = _ok(c.public("GET", "/api/v3/klines", symbol=SYMBOL, interval="1m",
                           startTime=record.base, limit=3))  # fmt: skip
    b = record.base
    assert minutes == [
        [b, "30000.00000000", "30000.00000000", "30000.00000000", "30000.00000000",
         "0.10000000", b + MINUTE - 1, "3000.00000000", 1, "0.10000000", "3000.00000000", "0"],
        [b + MINUTE, "30000.00000000", "30000.00000000", "30000.00000000", "30000.00000000",
         "0.60000000", b + 2 * MINUTE - 1, "18000.00000000", 2, "0.60000000",
         "18000.00000000", "0"],
        # No trade in this minute: Binance's flat kline at the previous close.
        [b + 2 * MINUTE, "30000.00000000", "30000.00000000", "30000.00000000",
         "30000.00000000", "0.00000000", b + 3 * MINUTE - 1, "0.00000000", 0, "0.00000000",
         "0.00000000", "0"],
    ]  # fmt: skip
    ui = _ok(c.public("GET", "/api/v3/uiKlines", symbol=SYMBOL, interval="1m",
                      startTime=record.base, limit=3))  # fmt: skip
    assert ui == minutes
    newest = _ok(c.public("GET", "/api/v3/klines", symbol=SYMBOL, interval="1m", limit=2))
    assert newest[-1][0] == now_ms() // MINUTE * MINUTE or newest[-1][0] == (
        now_ms() // MINUTE * MINUTE - MINUTE
    )
    for interval in ("1h", "1d", "1w", "1M"):
        rows = _ok(c.public("GET", "/api/v3/klines", symbol=SYMBOL, interval=interval))
        volume = sum(parse_units(k[5]) for k in rows)
        assert volume == parse_units("1.2"), interval
        assert rows[-1][4] == "31000.00000000" and sum(k[8] for k in rows) == 5
    zoned = _ok(c.public("GET", "/api/v3/klines", symbol=SYMBOL, interval="1d",
                         timeZone="5:45"))  # fmt: skip
    assert sum(k[8] for k in zoned) == 5
    assert all((k[0] + 5 * 3_600_000 + 45 * MINUTE) % DAY == 0 for k in zoned)
    bad = c.public("GET", "/api/v3/klines", symbol=SYMBOL, interval="7m")
    assert _error(bad) == (400, -1120)


def test_avg_price_and_tickers(stack: ApiStack, record: Record) -> None:
    c = stack.client()
    avg = _ok(c.public("GET", "/api/v3/avgPrice", symbol=SYMBOL))
    # Trades 4 and 5 (last 5 minutes): (0.3 * 30000 + 0.2 * 31000) / 0.5
    assert avg == {"mins": 5, "price": "30400.00000000", "closeTime": record.t3}
    day = _ok(c.public("GET", "/api/v3/ticker/24hr", symbol=SYMBOL))
    assert (day["count"], day["firstId"], day["lastId"]) == (5, 1, 5)
    assert (day["openPrice"], day["highPrice"], day["lowPrice"], day["lastPrice"]) == (
        "30000.00000000", "31000.00000000", "30000.00000000", "31000.00000000",
    )  # fmt: skip
    assert (day["volume"], day["quoteVolume"], day["lastQty"]) == (
        "1.20000000", "36200.00000000", "0.20000000"
    )  # fmt: skip
    assert day["priceChange"] == "1000.00000000" and day["priceChangePercent"] == "3.333"
    assert day["weightedAvgPrice"] == "30166.66666666" and day["prevClosePrice"] == "0.00000000"
    assert day["closeTime"] - day["openTime"] == DAY
    mini = _ok(c.public("GET", "/api/v3/ticker/24hr", symbols='["BTCUSDT","ETHBTC"]',
                        type="MINI"))  # fmt: skip
    assert [(t["symbol"], t["count"]) for t in mini] == [("BTCUSDT", 5), ("ETHBTC", 0)]
    assert len(_ok(c.public("GET", "/api/v3/ticker/24hr"))) == len(DEFAULT_MARKETS)
    recent = _ok(c.public("GET", "/api/v3/ticker", symbol=SYMBOL, windowSize="5m"))
    assert (recent["count"], recent["firstId"], recent["volume"]) == (2, 4, "0.50000000")
    assert recent["openTime"] % MINUTE == 0
    wide = _ok(c.public("GET", "/api/v3/ticker", symbols='["BTCUSDT"]', windowSize="3h"))
    assert wide[0]["count"] == 5
    assert _error(c.public("GET", "/api/v3/ticker", symbol=SYMBOL, windowSize="60m")) == (
        400, -1130
    )  # fmt: skip
    assert _error(c.public("GET", "/api/v3/ticker")) == (400, -1102)


def test_orders_and_my_trades(stack: ApiStack, record: Record) -> None:
    buyer = stack.client(stack.trader(2, {}))
    orders = _ok(buyer.signed("GET", "/api/v3/allOrders", {"symbol": SYMBOL}))
    assert [(o["clientOrderId"], o["status"], o["type"]) for o in orders] == [
        ("b1", "FILLED", "MARKET"), ("b2", "FILLED", "MARKET"), ("b3", "CANCELED", "LIMIT"),
        ("b4", "FILLED", "MARKET"),
    ]  # fmt: skip
    b2 = orders[1]
    assert (b2["executedQty"], b2["cummulativeQuoteQty"], b2["time"]) == (
        "0.60000000", "18000.00000000", record.t2
    )  # fmt: skip
    canceled = _ok(buyer.signed("GET", "/api/v3/order", {"symbol": SYMBOL,
                                                         "origClientOrderId": "b3"}))  # fmt: skip
    assert canceled == orders[2] and canceled["price"] == "20000.00000000"
    by_id = _ok(buyer.signed("GET", "/api/v3/order", {"symbol": SYMBOL,
                                                      "orderId": b2["orderId"]}))  # fmt: skip
    assert by_id["status"] == "FILLED"
    since = _ok(
        buyer.signed(
            "GET", "/api/v3/allOrders", {"symbol": SYMBOL, "orderId": b2["orderId"], "limit": 2}
        )
    )
    assert [o["clientOrderId"] for o in since] == ["b2", "b3"]  # fmt: skip
    timed = _ok(buyer.signed("GET", "/api/v3/allOrders", {"symbol": SYMBOL,
                                                          "startTime": record.t2}))  # fmt: skip
    assert [o["clientOrderId"] for o in timed] == ["b2", "b3", "b4"]

    mine = _ok(buyer.signed("GET", "/api/v3/myTrades", {"symbol": SYMBOL}))
    assert [(t["id"], t["orderId"], t["isBuyer"], t["isMaker"]) for t in mine] == [
        (1, orders[0]["orderId"], True, False), (2, b2["orderId"], True, False),
        (3, b2["orderId"], True, False), (4, orders[3]["orderId"], True, False),
        (5, orders[3]["orderId"], True, False),
    ]  # fmt: skip
    # 0.1% taker commission in the asset received.
    assert (mine[0]["qty"], mine[0]["commission"], mine[0]["commissionAsset"]) == (
        "0.10000000", "0.00010000", "BTC"
    )  # fmt: skip
    of_b2 = _ok(buyer.signed("GET", "/api/v3/myTrades", {"symbol": SYMBOL,
                                                         "orderId": b2["orderId"]}))  # fmt: skip
    assert [t["id"] for t in of_b2] == [2, 3]
    from_4 = _ok(buyer.signed("GET", "/api/v3/myTrades", {"symbol": SYMBOL, "fromId": 4}))
    assert [t["id"] for t in from_4] == [4, 5]
    window = {"symbol": SYMBOL, "startTime": record.t1, "endTime": record.t2}
    assert [t["id"] for t in _ok(buyer.signed("GET", "/api/v3/myTrades", window))] == [1, 2, 3]
    too_long = {"symbol": SYMBOL, "startTime": record.t1, "endTime": record.t1 + DAY + 1}
    assert _error(buyer.signed("GET", "/api/v3/myTrades", too_long)) == (400, -1127)
    combo = {"symbol": SYMBOL, "fromId": 1, "startTime": record.t1}
    assert _error(buyer.signed("GET", "/api/v3/myTrades", combo)) == (400, -1128)
    seller = stack.client(stack.trader(3, {}))
    sold = _ok(seller.signed("GET", "/api/v3/myTrades", {"symbol": SYMBOL}))
    assert [(t["id"], t["isBuyer"], t["isMaker"]) for t in sold] == [
        (3, False, True), (4, False, True)
    ]  # fmt: skip
    anonymous = Client(stack.base_url).public("GET", "/api/v3/myTrades", symbol=SYMBOL)
    assert _error(anonymous) == (401, -2014)


def test_cached_ticker_is_used_only_when_exact(stack: ApiStack, record: Record) -> None:
    """The recorder's Redis copy of the 24 h ticker answers when no trade left the window or
    came after it; otherwise the record does."""
    hot = HotCache(stack.redis)
    plain = RecordHistory(record.dsn)
    cached = RecordHistory(record.dsn, hot)
    now = now_ms()
    try:
        with psycopg.connect(record.dsn) as conn:
            true = rolling_ticker(conn, SYMBOL, record.t3)
        hot.write([], [true])
        expected = plain.ticker(SYMBOL, now - DAY, now)
        assert cached.ticker(SYMBOL, now - DAY, now) == expected
        # A marked copy shows when the cache answered: it does while it holds trade 5...
        hot.write([], [replace(true, volume=1)])
        assert cached.ticker(SYMBOL, now - DAY, now).volume == 1
        # ...and not once the record holds a trade after the copy's last one.
        hot.write([], [replace(true, volume=1, last_id=4)])
        assert cached.ticker(SYMBOL, now - DAY, now) == expected
        # Nor when a trade of the copy's window is older than the asked window.
        hot.write([], [replace(true, volume=1)])
        later = cached.ticker(SYMBOL, record.t1 + 1, record.t1 + 1 + DAY)
        assert (later.count, later.volume) == (4, parse_units("1.1"))
    finally:
        stack.redis.delete(f"ticker24h:{{{SYMBOL}}}")
        plain.close()
        cached.close()
