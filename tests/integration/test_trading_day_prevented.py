"""GET /api/v3/ticker/tradingDay and GET /api/v3/myPreventedMatches end to end: HTTP -> local
gateway -> MarketData/Account functions -> PostgreSQL (a scratch record written by the
recorder's own store from an in-process engine run) -> Binance's responses.

Account 1 rests a sell (order 1), then buys into it with EXPIRE_MAKER (prevented match 1: the
maker expires, the buy rests as order 2), then sells into that with EXPIRE_TAKER (prevented
match 2: the taker, order 3, expires); account 2 then sells into order 2 (one trade today).
One trade yesterday (UTC) lies outside today's trading day.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from bourse.adapters.record_store import RecordStore
from bourse.domain.amounts import parse_units
from bourse.domain.commands import AddSymbol, Command, CreateAccount, Deposit, NewOrder
from bourse.domain.enums import OrderType, Side, StpMode, TimeInForce
from bourse.domain.markets import DEFAULT_MARKETS
from bourse.engine import Engine
from bourse.settings import Settings
from tests.integration.api_support import ApiStack, Trader, now_ms
from tests.integration.record_support import scratch_database

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REDIS_DB = int(os.environ.get("BOURSE_TEST_TRADING_DAY_REDIS_DB", "23"))
HOUR = 3_600_000
DAY = 24 * HOUR
SYMBOL = "BTCUSDT"


@dataclass(frozen=True)
class Record:
    trade_times: tuple[int, ...]  # every recorded trade's time
    prevented_at: tuple[int, int]  # the two prevented matches' times
    dsn: str


def _limit(ts: int, account: int, side: Side, qty: str, price: str, cid: str,
           stp: StpMode | None = None) -> NewOrder:  # fmt: skip
    return NewOrder(
        request_id=cid, ts=ts, account_id=account, symbol=SYMBOL, side=side,
        type=OrderType.LIMIT, client_order_id=cid, quantity=parse_units(qty),
        price=parse_units(price), time_in_force=TimeInForce.GTC, stp_mode=stp,
    )  # fmt: skip


@pytest.fixture(scope="module")
def record(local_stack: Settings) -> Iterator[Record]:
    now = now_ms()
    today = now // DAY * DAY
    yesterday = today - HOUR
    t0 = today + (now - today) // 2  # within today whatever the hour
    commands: list[Command] = [
        AddSymbol(f"add-{s.symbol}", yesterday - 9, s) for s in DEFAULT_MARKETS
    ]
    commands += [CreateAccount(f"open-{a}", yesterday - 9, account_id=a) for a in (1, 2, 3)]
    for account, asset, amount in ((1, "BTC", "5"), (1, "USDT", "100000"), (2, "BTC", "5"),
                                   (3, "USDT", "100000")):  # fmt: skip
        commands.append(Deposit(f"dep-{account}-{asset}", yesterday - 8, account, asset,
                                parse_units(amount)))  # fmt: skip
    commands += [
        # yesterday: account 3 buys account 2's sell (trade 1)
        _limit(yesterday - 2, 2, Side.SELL, "0.1", "29000", "y1"),
        _limit(yesterday, 3, Side.BUY, "0.1", "29000", "y2"),
        # today: the two prevented matches, then a trade
        _limit(t0 - 3, 1, Side.SELL, "0.5", "30000", "s1"),  # order 1 (after y1, y2)
        _limit(t0 - 2, 1, Side.BUY, "0.2", "30000", "b1", StpMode.EXPIRE_MAKER),
        _limit(t0 - 1, 1, Side.SELL, "0.1", "30000", "s2", StpMode.EXPIRE_TAKER),
        _limit(t0, 2, Side.SELL, "0.2", "30000", "s3"),
    ]
    engine = Engine()
    events = [ev for cmd in commands for ev in engine.process(cmd)]
    with scratch_database(local_stack.pg_dsn, "test_trading_day_prevented") as dsn:
        store = RecordStore(dsn, "test-trading-day-prevented")
        try:
            store.write(events)
        finally:
            store.close()
        yield Record((yesterday, t0), (t0 - 2, t0 - 1), dsn)


@pytest.fixture(scope="module")
def stack(
    local_stack: Settings, record: Record, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiStack]:
    s = ApiStack(local_stack, tmp_path_factory.mktemp("trading-day"), REDIS_DB, record.dsn)
    try:
        s.start()
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def owner(stack: ApiStack) -> Trader:
    """Account 1's key: the account whose orders STP prevented."""
    return stack.trader(1, {})


def _ok(response: Any) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def _error(response: Any) -> tuple[int, int]:
    return response.status_code, response.json()["code"]


def assert_weight(before: int, after: int, weight: int) -> None:
    """The IP's minute counter grew by ``weight``, or started again at it (a new minute)."""
    assert after - before == weight or after == weight, (before, after, weight)


def trades_in_day(record: Record, ticker: dict[str, Any]) -> int:
    """The recorded trades within the day the answer names: asserted against the answer's own
    openTime, so a request made just after midnight UTC checks the day it was made in."""
    return sum(ticker["openTime"] <= t <= ticker["closeTime"] for t in record.trade_times)


def test_trading_day_ticker(stack: ApiStack, record: Record) -> None:
    c = stack.client()
    day = _ok(c.public("GET", "/api/v3/ticker/tradingDay", symbol=SYMBOL))
    assert day["openTime"] % DAY == 0 and day["closeTime"] == day["openTime"] + DAY - 1
    assert day["count"] == trades_in_day(record, day)
    if day["count"]:
        assert (day["lastPrice"], day["volume"]) == ("30000.00000000", "0.20000000")
    assert "priceChange" in day and day["symbol"] == SYMBOL
    mini = _ok(c.public("GET", "/api/v3/ticker/tradingDay", symbols='["BTCUSDT","ETHUSDT"]',
                        type="MINI"))  # fmt: skip
    assert [t["symbol"] for t in mini] == ["BTCUSDT", "ETHUSDT"]
    assert "priceChange" not in mini[0] and mini[1]["count"] == 0
    for zone in ("14", "-12:00", "5:45"):
        zoned = _ok(c.public("GET", "/api/v3/ticker/tradingDay", symbol=SYMBOL, timeZone=zone))
        assert zoned["closeTime"] - zoned["openTime"] == DAY - 1, zone
        assert zoned["count"] == trades_in_day(record, zoned), zone
    assert _error(c.public("GET", "/api/v3/ticker/tradingDay")) == (400, -1102)
    assert _error(c.public("GET", "/api/v3/ticker/tradingDay", symbol=SYMBOL, timeZone="15")) == (
        400, -1130)  # fmt: skip
    assert _error(c.public("GET", "/api/v3/ticker/tradingDay", symbol="NOPEUSDT")) == (400, -1121)
    weight = c.public("GET", "/api/v3/ticker/tradingDay", symbols='["BTCUSDT","ETHUSDT"]')
    used = int(weight.headers["X-MBX-USED-WEIGHT-1M"])
    again = c.public("GET", "/api/v3/ticker/tradingDay", symbol=SYMBOL)
    assert_weight(used, int(again.headers["X-MBX-USED-WEIGHT-1M"]), 4)


def test_my_prevented_matches(stack: ApiStack, record: Record, owner: Trader) -> None:
    c = stack.client(owner)
    by_order = _ok(c.signed("GET", "/api/v3/myPreventedMatches", {"symbol": SYMBOL,
                                                                    "orderId": 4}))  # fmt: skip
    # Order ids: y1 1, y2 2, s1 3, b1 4, s2 5, s3 6. Order 4 was the taker of match 1 and the
    # maker of match 2.
    assert by_order == [
        {"symbol": SYMBOL, "preventedMatchId": 1, "takerOrderId": 4, "makerSymbol": SYMBOL,
         "makerOrderId": 3, "tradeGroupId": -1, "selfTradePreventionMode": "EXPIRE_MAKER",
         "price": "30000.00000000", "makerPreventedQuantity": "0.50000000",
         "transactTime": record.prevented_at[0]},
        {"symbol": SYMBOL, "preventedMatchId": 2, "takerOrderId": 5, "makerSymbol": SYMBOL,
         "makerOrderId": 4, "tradeGroupId": -1, "selfTradePreventionMode": "EXPIRE_TAKER",
         "price": "30000.00000000", "makerPreventedQuantity": "0.00000000",
         "transactTime": record.prevented_at[1]},
    ]  # fmt: skip
    one = _ok(c.signed("GET", "/api/v3/myPreventedMatches", {"symbol": SYMBOL,
                                                               "preventedMatchId": 2}))  # fmt: skip
    assert one == by_order[1:]
    page = _ok(
        c.signed(
            "GET",
            "/api/v3/myPreventedMatches",
            {"symbol": SYMBOL, "orderId": 4, "fromPreventedMatchId": 2, "limit": 1},
        )
    )
    assert page == by_order[1:]
    taker_only = _ok(c.signed("GET", "/api/v3/myPreventedMatches", {"symbol": SYMBOL,
                                                                      "orderId": 5}))  # fmt: skip
    assert taker_only == by_order[1:]
    other = stack.client(stack.trader(2, {}))
    assert _ok(other.signed("GET", "/api/v3/myPreventedMatches",
                            {"symbol": SYMBOL, "orderId": 4})) == []  # fmt: skip
    bad = c.signed("GET", "/api/v3/myPreventedMatches", {"symbol": SYMBOL})
    assert _error(bad) == (400, -1128)
    weighed = c.signed("GET", "/api/v3/myPreventedMatches", {"symbol": SYMBOL,
                                                               "preventedMatchId": 1})  # fmt: skip
    used = int(weighed.headers["X-MBX-USED-WEIGHT-1M"])
    by_id = c.signed("GET", "/api/v3/myPreventedMatches", {"symbol": SYMBOL, "orderId": 4})
    assert_weight(used, int(by_id.headers["X-MBX-USED-WEIGHT-1M"]), 20)
