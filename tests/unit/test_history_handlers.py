"""The history endpoints (bourse/api/history.py) with an in-memory HistoryView: parameters,
limits, Binance's codes, combinations and response formatting."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from bourse.adapters.redis_book import Bbo
from bourse.api import handlers as h
from bourse.api import history
from bourse.api.record_shapes import percent
from bourse.domain.enums import OrderStatus
from bourse.domain.errors import BinanceError
from bourse.record.tickers import Ticker
from bourse.record.views import AccountTradeRow, AggTradeRow, KlineRow, OrderRow, TradeRow
from tests.unit.test_api_handlers import NOW, FakeBus, FakeKeys, FakeView, result, signed_request

pytestmark = pytest.mark.unit

E8 = 100_000_000
HOUR = 3_600_000
DAY = 24 * HOUR


def _window(rows: list[Any], limit: int, newest: bool) -> list[Any]:
    return rows[-limit:] if newest else rows[:limit]


class FakeHistory:
    """The record's reads over lists, with the adapter's semantics."""

    def __init__(self) -> None:
        self.trade_rows: list[TradeRow] = []
        self.agg_rows: list[AggTradeRow] = []
        self.kline_rows: dict[str, list[KlineRow]] = {}
        self.order_rows: list[OrderRow] = []
        self.my_rows: list[AccountTradeRow] = []
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def trades(self, symbol: str, *, from_id: int | None, limit: int) -> list[TradeRow]:
        self.calls.append(("trades", {"from_id": from_id, "limit": limit}))
        rows = [r for r in self.trade_rows if from_id is None or r.trade_id >= from_id]
        return _window(rows, limit, from_id is None)

    def agg_trades(self, symbol: str, **kw: Any) -> list[AggTradeRow]:
        self.calls.append(("agg_trades", kw))
        return _window(self.agg_rows, kw["limit"], kw["newest"])

    def klines(self, symbol: str, interval: str, lo: int, hi: int) -> list[KlineRow]:
        self.calls.append(("klines", {"interval": interval, "lo": lo, "hi": hi}))
        return [k for k in self.kline_rows.get(interval, []) if lo <= k.open_time <= hi]

    def kline_before(self, symbol: str, interval: str, before: int) -> KlineRow | None:
        rows = [k for k in self.kline_rows.get(interval, []) if k.open_time < before]
        return rows[-1] if rows else None

    def first_kline_open(self, symbol: str, interval: str) -> int | None:
        rows = self.kline_rows.get(interval, [])
        return rows[0].open_time if rows else None

    def ticker(self, symbol: str, start: int, end: int) -> Ticker:
        self.calls.append(("ticker", {"start": start, "end": end}))
        rows = [t for t in self.trade_rows if start <= t.ts <= end and symbol == "BTCUSDT"]
        if not rows:
            return Ticker(symbol, start, end, 0, 0, 0, 0, 0, 0, 0, 0, -1, -1)
        return Ticker(
            symbol, start, end, rows[0].price, max(r.price for r in rows),
            min(r.price for r in rows), rows[-1].price, rows[-1].qty, sum(r.qty for r in rows),
            sum(r.quote_qty for r in rows), len(rows), rows[0].trade_id, rows[-1].trade_id,
        )  # fmt: skip

    def last_trade_before(self, symbol: str, before: int) -> TradeRow | None:
        rows = [t for t in self.trade_rows if t.ts < before and symbol == "BTCUSDT"]
        return rows[-1] if rows else None

    def orders(self, account_id: int, symbol: str, **kw: Any) -> list[OrderRow]:
        self.calls.append(("orders", kw))
        rows = [o for o in self.order_rows if kw["from_id"] is None or o.order_id >= kw["from_id"]]
        return _window(rows, kw["limit"], kw["newest"])

    def order(
        self, account_id: int, symbol: str, order_id: int | None, client_order_id: str | None
    ) -> OrderRow | None:
        for row in reversed(self.order_rows):
            if row.order_id == order_id or (order_id is None and row.client_order_id
                                            == client_order_id):  # fmt: skip
                return row
        return None

    def account_trades(self, account_id: int, symbol: str, **kw: Any) -> list[AccountTradeRow]:
        self.calls.append(("account_trades", kw))
        return _window(self.my_rows, kw["limit"], kw["newest"])


def trade(i: int, ts: int, price: int = 30_000 * E8, qty: int = E8 // 100) -> TradeRow:
    return TradeRow(i, ts, price, qty, price * qty // E8, i % 2 == 0)


def kline(open_time: int, length: int, o: int, c: int, volume: int = E8) -> KlineRow:
    return KlineRow(open_time, open_time + length - 1, o, max(o, c), min(o, c), c, volume,
                    volume * c // E8, 1, volume, volume * c // E8)  # fmt: skip


def order_row(order_id: int, status: str = "FILLED", **kw: Any) -> OrderRow:
    base = OrderRow(
        "BTCUSDT", order_id, f"cid{order_id}", "BUY", "LIMIT", "GTC", E8, 30_000 * E8, 0, 0, 0,
        "EXPIRE_MAKER", status, E8, 30_000 * E8, True, NOW - 100, NOW - 100, NOW - 50,
    )  # fmt: skip
    return dataclasses.replace(base, **kw)


def deps(hist: FakeHistory | None = None, view: FakeView | None = None, now: int = NOW) -> h.Deps:
    return h.Deps(view or FakeView(), FakeBus(), FakeKeys(), lambda: now, lambda: "req-1",
                  history=hist or FakeHistory())  # fmt: skip


def public(query: str) -> h.Request:
    return h.Request(query, "")


def code_of(handler: Any, request: h.Request, d: h.Deps | None = None) -> int:
    with pytest.raises(BinanceError) as exc:
        handler(request, d or deps())
    return exc.value.code


# ---------------------------------------------------------------------------- trades


def test_trades_shape_limits_and_errors() -> None:
    hist = FakeHistory()
    hist.trade_rows = [trade(i, NOW - 1000 + i) for i in range(1, 4)]
    body = history.trades(public("symbol=BTCUSDT&limit=2"), deps(hist))
    assert body == [
        {"id": 2, "price": "30000.00000000", "qty": "0.01000000", "quoteQty": "300.00000000",
         "time": NOW - 998, "isBuyerMaker": True, "isBestMatch": True},
        {"id": 3, "price": "30000.00000000", "qty": "0.01000000", "quoteQty": "300.00000000",
         "time": NOW - 997, "isBuyerMaker": False, "isBestMatch": True},
    ]  # fmt: skip
    history.trades(public("symbol=btcusdt"), deps(hist))
    history.trades(public("symbol=BTCUSDT&limit=5000"), deps(hist))
    assert [c[1]["limit"] for c in hist.calls] == [2, 500, 1000]
    assert code_of(history.trades, public("symbol=NOPE")) == -1121
    assert code_of(history.trades, public("limit=5")) == -1102
    assert code_of(history.trades, public("symbol=BTCUSDT&limit=0")) == -1130
    assert code_of(history.trades, public("symbol=BTCUSDT&limit=x")) == -1100
    assert code_of(history.trades, public("symbol=BTCUSDT&limit=")) == -1105
    assert code_of(history.trades, public("symbol=BTCUSDT&fromId=1")) == -1104


def test_historical_trades_from_id() -> None:
    hist = FakeHistory()
    hist.trade_rows = [trade(i, NOW - 1000 + i) for i in range(1, 6)]
    body = history.historical_trades(public("symbol=BTCUSDT&fromId=2&limit=2"), deps(hist))
    assert [t["id"] for t in body] == [2, 3]
    body = history.historical_trades(public("symbol=BTCUSDT&limit=2"), deps(hist))
    assert [t["id"] for t in body] == [4, 5]


def test_agg_trades_modes_and_combinations() -> None:
    hist = FakeHistory()
    hist.agg_rows = [AggTradeRow(5, 7, 30_000 * E8, 3 * E8, NOW - 5, True)]
    body = history.agg_trades(public("symbol=BTCUSDT"), deps(hist))
    assert body == [{"a": 5, "p": "30000.00000000", "q": "3.00000000", "f": 5, "l": 7,
                     "T": NOW - 5, "m": True, "M": True}]  # fmt: skip
    history.agg_trades(public("symbol=BTCUSDT&fromId=3"), deps(hist))
    history.agg_trades(public("symbol=BTCUSDT&startTime=10&endTime=20"), deps(hist))
    history.agg_trades(public("symbol=BTCUSDT&endTime=20"), deps(hist))
    modes = [(c[1]["from_id"], c[1]["start"], c[1]["end"], c[1]["newest"]) for c in hist.calls]
    assert modes == [
        (None, None, None, True), (3, None, None, False), (None, 10, 20, False),
        (None, None, 20, True),
    ]  # fmt: skip
    assert code_of(history.agg_trades, public("symbol=BTCUSDT&fromId=1&startTime=5")) == -1128
    assert history.agg_trades(public("symbol=BTCUSDT&startTime=9&endTime=8"), deps(hist)) == []


# ---------------------------------------------------------------------------- klines


def test_klines_shape_gaps_and_limits() -> None:
    m = 60_000
    t0 = (NOW // m) * m - 10 * m
    hist = FakeHistory()
    hist.kline_rows["1m"] = [kline(t0, m, 100 * E8, 101 * E8), kline(t0 + 3 * m, m, 99 * E8,
                                                                       98 * E8)]  # fmt: skip
    body = history.klines(public("symbol=BTCUSDT&interval=1m"), deps(hist))
    # From the first traded minute to the current one; empty minutes flat at the last close.
    assert len(body) == 11 and body[0][0] == t0 and body[-1][0] == (NOW // m) * m
    assert body[0] == [t0, "100.00000000", "101.00000000", "100.00000000", "101.00000000",
                       "1.00000000", t0 + m - 1, "101.00000000", 1, "1.00000000",
                       "101.00000000", "0"]  # fmt: skip
    assert body[1][1:6] == ["101.00000000"] * 4 + ["0.00000000"] and body[1][8] == 0
    assert body[3][4] == "98.00000000" and body[4][1] == "98.00000000"
    tail = history.klines(public("symbol=BTCUSDT&interval=1m&limit=2"), deps(hist))
    assert [k[0] for k in tail] == [(NOW // m) * m - m, (NOW // m) * m]
    ranged = history.klines(
        public(f"symbol=BTCUSDT&interval=1m&startTime={t0 + 1}&endTime={t0 + 3 * m}"), deps(hist)
    )
    assert [k[0] for k in ranged] == [t0 + m, t0 + 2 * m, t0 + 3 * m]
    ui = history.klines(public("symbol=BTCUSDT&interval=1m&limit=2"), deps(hist))
    assert ui == tail
    assert history.klines(public("symbol=BTCUSDT&interval=1h"), deps(hist)) == []
    assert code_of(history.klines, public("symbol=BTCUSDT&interval=2m")) == -1120
    assert code_of(history.klines, public("symbol=BTCUSDT")) == -1102
    assert code_of(history.klines, public("symbol=BTCUSDT&interval=1m&limit=0")) == -1130


def test_klines_time_zone_rolls_up_finer_klines() -> None:
    day0 = NOW // DAY * DAY - 2 * DAY
    hist = FakeHistory()
    # One trade hour at 15:00 UTC and one at 17:00 UTC: at UTC+8 they fall on different days
    # (the local day starts at 16:00 UTC).
    hist.kline_rows["8h"] = [
        kline(day0 + 8 * HOUR, 8 * HOUR, 10 * E8, 11 * E8),
        kline(day0 + 16 * HOUR, 8 * HOUR, 11 * E8, 12 * E8),
    ]
    body = history.klines(
        public(f"symbol=BTCUSDT&interval=1d&timeZone=8&startTime={day0 - DAY}&limit=2"),
        deps(hist),
    )
    assert [k[0] for k in body] == [day0 - 8 * HOUR, day0 + 16 * HOUR]
    assert body[0][1] == "10.00000000" and body[0][4] == "11.00000000"
    assert body[1][1] == "11.00000000" and body[1][4] == "12.00000000"
    assert hist.calls[0][1]["interval"] == "8h"
    assert history.source_interval("1d", 0) == "1d"
    assert history.source_interval("1M", 5 * HOUR + 45 * 60_000) == "15m"
    assert history.source_interval("1w", -HOUR) == "1h"
    assert history.source_interval("15m", 8 * HOUR) == "15m"
    for tz, ms in (("0", 0), ("-1:00", -HOUR), ("05:45", 5 * HOUR + 45 * 60_000),
                   ("+14", 14 * HOUR)):  # fmt: skip
        assert history.time_zone_ms(tz) == ms
    for bad in ("15", "-13", "1:60", "abc", "8:5"):
        assert code_of(history.klines, public(f"symbol=BTCUSDT&interval=1d&timeZone={bad}"))


# ---------------------------------------------------------------------------- statistics


def test_avg_price() -> None:
    hist = FakeHistory()
    hist.trade_rows = [
        trade(1, NOW - 10 * 60_000, 50 * E8, E8),  # outside the 5 minutes
        trade(2, NOW - 60_000, 10 * E8, E8),
        trade(3, NOW - 1000, 20 * E8, 3 * E8),
    ]
    body = history.avg_price(public("symbol=BTCUSDT"), deps(hist))
    assert body == {"mins": 5, "price": "17.50000000", "closeTime": NOW - 1000}
    later = history.avg_price(public("symbol=BTCUSDT"), deps(hist, now=NOW + 3_600_000))
    assert later == {"mins": 5, "price": "20.00000000", "closeTime": NOW - 1000}
    assert history.avg_price(public("symbol=ETHBTC"), deps(FakeHistory()))["price"] == (
        "0.00000000"
    )


def test_ticker_24hr_full_mini_and_errors() -> None:
    hist = FakeHistory()
    hist.trade_rows = [
        trade(1, NOW - DAY - 5, 40 * E8, E8),  # before the window: the previous close
        trade(2, NOW - HOUR, 50 * E8, E8),
        trade(3, NOW - 1, 45 * E8, 2 * E8),
    ]
    view = FakeView()
    view.bbos["BTCUSDT"] = Bbo(1, 44 * E8, E8, 46 * E8, 2 * E8)
    body = history.ticker_24hr(public("symbol=BTCUSDT"), deps(hist, view))
    assert body == {
        "symbol": "BTCUSDT", "priceChange": "-5.00000000", "priceChangePercent": "-10.000",
        "weightedAvgPrice": "46.66666666", "prevClosePrice": "40.00000000",
        "lastPrice": "45.00000000", "lastQty": "2.00000000", "bidPrice": "44.00000000",
        "bidQty": "1.00000000", "askPrice": "46.00000000", "askQty": "2.00000000",
        "openPrice": "50.00000000", "highPrice": "50.00000000", "lowPrice": "45.00000000",
        "volume": "3.00000000", "quoteVolume": "140.00000000", "openTime": NOW - DAY,
        "closeTime": NOW, "firstId": 2, "lastId": 3, "count": 2,
    }  # fmt: skip
    assert isinstance(body, dict) and list(body)[4:7] == ["prevClosePrice", "lastPrice", "lastQty"]
    mini = history.ticker_24hr(public('symbols=["BTCUSDT"]&type=MINI'), deps(hist, view))
    assert isinstance(mini, list) and list(mini[0]) == [
        "symbol", "openPrice", "highPrice", "lowPrice", "lastPrice", "volume", "quoteVolume",
        "openTime", "closeTime", "firstId", "lastId", "count",
    ]  # fmt: skip
    every = history.ticker_24hr(public(""), deps(hist, view))
    assert isinstance(every, list) and len(every) == len(FakeView().specs)
    empty = next(t for t in every if t["symbol"] == "ETHBTC")
    assert (empty["count"], empty["firstId"], empty["lastId"]) == (0, -1, -1)
    assert empty["priceChangePercent"] == "0.000" and empty["lastPrice"] == "0.00000000"
    assert code_of(history.ticker_24hr, public("symbol=BTCUSDT&type=HUGE")) == -1130
    assert code_of(history.ticker_24hr, public("symbol=NOPE")) == -1121
    assert code_of(history.ticker_24hr, public('symbol=BTCUSDT&symbols=["BTCUSDT"]')) == -1128


def test_rolling_ticker_windows() -> None:
    hist = FakeHistory()
    hist.trade_rows = [trade(1, NOW - 90_000, 10 * E8, E8), trade(2, NOW - 1, 12 * E8, E8)]
    body = history.rolling_ticker(public("symbol=BTCUSDT&windowSize=1m"), deps(hist))
    assert isinstance(body, dict)
    # The window opens on the whole minute windowSize before now.
    assert body["openTime"] == (NOW - 60_000) // 60_000 * 60_000 and body["closeTime"] == NOW
    assert list(body) == [
        "symbol", "priceChange", "priceChangePercent", "weightedAvgPrice", "openPrice",
        "highPrice", "lowPrice", "lastPrice", "volume", "quoteVolume", "openTime", "closeTime",
        "firstId", "lastId", "count",
    ]  # fmt: skip
    wide = history.rolling_ticker(public('symbols=["BTCUSDT"]&windowSize=2m&type=MINI'),
                                  deps(hist))  # fmt: skip
    assert isinstance(wide, list) and wide[0]["count"] == 2 and "priceChange" not in wide[0]
    one = history.rolling_ticker(public("symbol=BTCUSDT"), deps(hist))
    assert isinstance(one, dict) and one["count"] == 2
    for size, ms in (("59m", 59 * 60_000), ("23h", 23 * HOUR), ("7d", 7 * DAY)):
        assert history.window_ms(size) == ms
    for bad in ("0m", "60m", "24h", "8d", "1d2h", "1w", "m"):
        assert code_of(history.rolling_ticker, public(f"symbol=BTCUSDT&windowSize={bad}")) == (
            -1130
        )
    assert code_of(history.rolling_ticker, public("windowSize=1d")) == -1102


def test_price_change_percent() -> None:
    assert percent(-5 * E8, 50 * E8) == "-10.000"
    assert percent(1, 3) == "33.333" and percent(2, 3) == "66.667"
    assert percent(-1, 3 * E8) == "0.000" and percent(0, 0) == "0.000"


# ---------------------------------------------------------------------------- account


def test_all_orders_merges_open_orders_and_checks_times() -> None:
    hist = FakeHistory()
    hist.order_rows = [order_row(1), order_row(2, "CANCELED", time_in_force=None, type="MARKET")]
    view = FakeView()
    view.orders[7] = [result(OrderStatus.NEW)]  # order 3, open: the live view's state
    body = history.all_orders(signed_request({"symbol": "BTCUSDT"}), deps(hist, view))
    assert [(o["orderId"], o["status"]) for o in body] == [(1, "FILLED"), (2, "CANCELED"),
                                                           (3, "NEW")]  # fmt: skip
    assert body[0] == {
        "symbol": "BTCUSDT", "orderId": 1, "orderListId": -1, "clientOrderId": "cid1",
        "price": "30000.00000000", "origQty": "1.00000000", "executedQty": "1.00000000",
        "cummulativeQuoteQty": "30000.00000000", "status": "FILLED", "timeInForce": "GTC",
        "type": "LIMIT", "side": "BUY", "stopPrice": "0.00000000", "icebergQty": "0.00000000",
        "time": NOW - 100, "updateTime": NOW - 50, "isWorking": True, "workingTime": NOW - 100,
        "origQuoteOrderQty": "0.00000000", "selfTradePreventionMode": "EXPIRE_MAKER",
    }  # fmt: skip
    assert body[1]["timeInForce"] == "GTC" and body[1]["type"] == "MARKET"
    newest = history.all_orders(signed_request({"symbol": "BTCUSDT", "limit": 2}),
                                deps(hist, view))  # fmt: skip
    assert [o["orderId"] for o in newest] == [2, 3]
    first = history.all_orders(signed_request({"symbol": "BTCUSDT", "orderId": 2, "limit": 1}),
                               deps(hist, view))  # fmt: skip
    assert [o["orderId"] for o in first] == [2]
    span = {"symbol": "BTCUSDT", "startTime": 0, "endTime": DAY + 1}
    assert code_of(history.all_orders, signed_request(span), deps(hist)) == -1127
    assert code_of(history.all_orders, signed_request({"symbol": "X"}), deps(hist)) == -1121
    assert code_of(history.all_orders, signed_request({"symbol": "BTCUSDT"}, perms="TRADE"),
                   deps(hist)) == -2015  # fmt: skip


def test_my_trades_combinations() -> None:
    hist = FakeHistory()
    hist.my_rows = [AccountTradeRow("BTCUSDT", 9, 3, True, False, 30_000 * E8, E8 // 100,
                                    300 * E8, 1000, "BTC", NOW - 5)]  # fmt: skip
    body = history.my_trades(signed_request({"symbol": "BTCUSDT"}), deps(hist))
    assert body == [{
        "symbol": "BTCUSDT", "id": 9, "orderId": 3, "orderListId": -1,
        "price": "30000.00000000", "qty": "0.01000000", "quoteQty": "300.00000000",
        "commission": "0.00001000", "commissionAsset": "BTC", "time": NOW - 5,
        "isBuyer": True, "isMaker": False, "isBestMatch": True,
    }]  # fmt: skip
    ok = [{"orderId": 3}, {"startTime": 1}, {"endTime": 1}, {"fromId": 1},
          {"startTime": 1, "endTime": 2}, {"orderId": 3, "fromId": 1}]  # fmt: skip
    for extra in ok:
        history.my_trades(signed_request({"symbol": "BTCUSDT", **extra}), deps(hist))
    newest = [c[1]["newest"] for c in hist.calls]
    assert newest == [True, False, False, True, False, False, False]
    bad = [{"fromId": 1, "startTime": 1}, {"orderId": 3, "startTime": 1},
           {"orderId": 3, "endTime": 1}, {"fromId": 1, "endTime": 5}]  # fmt: skip
    for extra in bad:
        request = signed_request({"symbol": "BTCUSDT", **extra})
        assert code_of(history.my_trades, request, deps(hist)) == -1128
    span = {"symbol": "BTCUSDT", "startTime": 0, "endTime": DAY + 1}
    assert code_of(history.my_trades, signed_request(span), deps(hist)) == -1127
    within = {"symbol": "BTCUSDT", "startTime": 0, "endTime": DAY}
    history.my_trades(signed_request(within), deps(hist))


def test_query_order_falls_back_to_the_record() -> None:
    hist = FakeHistory()
    hist.order_rows = [order_row(1), order_row(4, "CANCELED", client_order_id="again"),
                       order_row(5, "EXPIRED", client_order_id="again")]  # fmt: skip
    d = deps(hist)
    by_id = h.query_order(signed_request({"symbol": "BTCUSDT", "orderId": 1}), d)
    assert by_id["status"] == "FILLED" and by_id["updateTime"] == NOW - 50
    by_client = h.query_order(
        signed_request({"symbol": "BTCUSDT", "origClientOrderId": "again"}), d
    )
    assert by_client["orderId"] == 5
    assert code_of(h.query_order, signed_request({"symbol": "BTCUSDT", "orderId": 99}), d) == (
        -2013
    )
