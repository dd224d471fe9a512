"""The record's rows (``bourse.record.views``) as Binance's REST responses show them: every
amount a decimal string with 8 places, times in ms. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bourse.domain.amounts import SCALE, format_units
from bourse.domain.enums import STOP_TYPES
from bourse.record.tickers import Ticker
from bourse.record.views import AccountTradeRow, AggTradeRow, KlineRow, OrderRow, TradeRow

_STOP_TYPE_NAMES = frozenset(str(t) for t in STOP_TYPES)


def order(row: OrderRow) -> dict[str, Any]:
    """GET /api/v3/order and allOrders. ``timeInForce`` "GTC" where the engine has none
    (MARKET, stop-market and LIMIT_MAKER orders), as Binance shows them."""
    return {
        "symbol": row.symbol,
        "orderId": row.order_id,
        "orderListId": row.order_list_id,
        "clientOrderId": row.client_order_id,
        "price": format_units(row.price),
        "origQty": format_units(row.quantity),
        "executedQty": format_units(row.executed_qty),
        "cummulativeQuoteQty": format_units(row.cum_quote),
        "status": row.status,
        "timeInForce": row.time_in_force or "GTC",
        "type": row.type,
        "side": row.side,
        "stopPrice": format_units(row.stop_price if row.type in _STOP_TYPE_NAMES else 0),
        "icebergQty": format_units(row.iceberg_qty),
        "time": row.created_ts,
        "updateTime": row.update_ts,
        "isWorking": row.is_working,
        "workingTime": row.working_ts,
        "origQuoteOrderQty": format_units(row.quote_order_qty),
        "selfTradePreventionMode": row.stp_mode,
        # as the live view shows them (bourse.api.responses.trailing_fields): trailing stops only
        **(
            {"trailingDelta": row.trailing_delta, "trailingTime": row.trailing_time}
            if row.trailing_delta
            else {}
        ),
    }


def trade(row: TradeRow) -> dict[str, Any]:
    """GET /api/v3/trades and historicalTrades."""
    return {
        "id": row.trade_id,
        "price": format_units(row.price),
        "qty": format_units(row.qty),
        "quoteQty": format_units(row.quote_qty),
        "time": row.ts,
        "isBuyerMaker": row.is_buyer_maker,
        "isBestMatch": True,
    }


def agg_trade(row: AggTradeRow) -> dict[str, Any]:
    return {
        "a": row.agg_id,
        "p": format_units(row.price),
        "q": format_units(row.qty),
        "f": row.agg_id,
        "l": row.last_trade_id,
        "T": row.ts,
        "m": row.is_buyer_maker,
        "M": True,
    }


def my_trade(row: AccountTradeRow) -> dict[str, Any]:
    return {
        "symbol": row.symbol,
        "id": row.trade_id,
        "orderId": row.order_id,
        "orderListId": -1,
        "price": format_units(row.price),
        "qty": format_units(row.qty),
        "quoteQty": format_units(row.quote_qty),
        "commission": format_units(row.commission),
        "commissionAsset": row.commission_asset,
        "time": row.ts,
        "isBuyer": row.is_buyer,
        "isMaker": row.is_maker,
        "isBestMatch": True,
    }


def kline(row: KlineRow) -> list[Any]:
    """One kline as Binance's array; the last element is Binance's unused field ("0")."""
    return [
        row.open_time,
        format_units(row.open),
        format_units(row.high),
        format_units(row.low),
        format_units(row.close),
        format_units(row.volume),
        row.close_time,
        format_units(row.quote_volume),
        row.trades,
        format_units(row.taker_buy_volume),
        format_units(row.taker_buy_quote),
        "0",
    ]


def average(quote: int, volume: int) -> int:
    """Volume-weighted price in 1e-8 units, rounded down (Binance's weightedAvgPrice)."""
    return quote * SCALE // volume if volume else 0


def percent(change: int, base: int) -> str:
    """priceChangePercent: 3 decimals, rounded half away from zero, in integers."""
    if base == 0:
        return "0.000"
    scaled = abs(change) * 1_000_000 // base  # 1e-4 percent: one digit spare to round
    thousandths = (scaled + 5) // 10
    sign = "-" if change < 0 and thousandths else ""
    return f"{sign}{thousandths // 1000}.{thousandths % 1000:03d}"


def ticker(t: Ticker, *, full: bool, day: DayExtras | None = None) -> dict[str, Any]:
    """The rolling window ticker, FULL or MINI; with ``day``, ticker/24hr's FULL shape (which
    also has the previous close, the last quantity and the best bid and ask)."""
    out: dict[str, Any] = {"symbol": t.symbol}
    if full:
        change = t.last_price - t.open_price
        out["priceChange"] = format_units(change)
        out["priceChangePercent"] = percent(change, t.open_price)
        out["weightedAvgPrice"] = format_units(average(t.quote_volume, t.volume))
    prices = {
        "openPrice": format_units(t.open_price),
        "highPrice": format_units(t.high_price),
        "lowPrice": format_units(t.low_price),
    }
    if full and day is not None:
        bid_price, bid_qty, ask_price, ask_qty = day.bbo
        out["prevClosePrice"] = format_units(day.prev_close)
        out["lastPrice"] = format_units(t.last_price)
        out["lastQty"] = format_units(t.last_qty)
        out["bidPrice"] = format_units(bid_price)
        out["bidQty"] = format_units(bid_qty)
        out["askPrice"] = format_units(ask_price)
        out["askQty"] = format_units(ask_qty)
        out.update(prices)
    else:
        out.update(prices)
        out["lastPrice"] = format_units(t.last_price)
    out["volume"] = format_units(t.volume)
    out["quoteVolume"] = format_units(t.quote_volume)
    out["openTime"] = t.open_time
    out["closeTime"] = t.close_time
    out["firstId"] = t.first_id
    out["lastId"] = t.last_id
    out["count"] = t.count
    return out


@dataclass(frozen=True, slots=True)
class DayExtras:
    prev_close: int  # the last trade's price before the window, 0 when none
    bbo: tuple[int, int, int, int]  # bid price, bid qty, ask price, ask qty (0 when empty)
