"""One Binance WebSocket Streams payload per function, shaped as Binance documents them.

Numbers are strings with 8 decimals (as the REST API writes them), ids and times integers;
``E`` (event time) and ``T`` (trade time) are the engine's command time in ms: the engine
never reads a clock, and that time is when the event happened.
"""

from __future__ import annotations

from typing import Any

from bourse.domain.amounts import format_units
from bourse.domain.enums import ExecutionType
from bourse.domain.events import (
    AccountBalances,
    BalanceUpdate,
    ExecutionReport,
    ListStatus,
    Trade,
)
from bourse.record.tickers import Ticker
from bourse.streams.rolling import Candle, Window

Levels = tuple[tuple[int, int], ...] | list[tuple[int, int]]


def levels(side: Levels) -> list[list[str]]:
    return [[format_units(price), format_units(qty)] for price, qty in side]


def trade(ev: Trade) -> dict[str, Any]:
    return {
        "e": "trade",
        "E": ev.ts,
        "s": ev.symbol,
        "t": ev.trade_id,
        "p": format_units(ev.price),
        "q": format_units(ev.qty),
        "T": ev.ts,
        "m": ev.is_buyer_maker,
        "M": True,
    }


def agg_trade(
    symbol: str, agg_id: int, first: int, last: int, price: int, qty: int, ts: int, m: bool
) -> dict[str, Any]:
    return {
        "e": "aggTrade",
        "E": ts,
        "s": symbol,
        "a": agg_id,
        "p": format_units(price),
        "q": format_units(qty),
        "f": first,
        "l": last,
        "T": ts,
        "m": m,
        "M": True,
    }


def depth_update(
    symbol: str, ts: int, first: int, final: int, bids: Levels, asks: Levels
) -> dict[str, Any]:
    return {
        "e": "depthUpdate",
        "E": ts,
        "s": symbol,
        "U": first,
        "u": final,
        "b": levels(bids),
        "a": levels(asks),
    }


def partial_depth(last_update_id: int, bids: Levels, asks: Levels) -> dict[str, Any]:
    return {"lastUpdateId": last_update_id, "bids": levels(bids), "asks": levels(asks)}


def book_ticker(
    symbol: str, update_id: int, bid: tuple[int, int], ask: tuple[int, int]
) -> dict[str, Any]:
    return {
        "u": update_id,
        "s": symbol,
        "b": format_units(bid[0]),
        "B": format_units(bid[1]),
        "a": format_units(ask[0]),
        "A": format_units(ask[1]),
    }


def kline(symbol: str, interval: str, candle: Candle, closed: bool, ts: int) -> dict[str, Any]:
    return {
        "e": "kline",
        "E": ts,
        "s": symbol,
        "k": {
            "t": candle.open_time,
            "T": candle.close_time,
            "s": symbol,
            "i": interval,
            "f": candle.first_id,
            "L": candle.last_id,
            "o": format_units(candle.open),
            "c": format_units(candle.close),
            "h": format_units(candle.high),
            "l": format_units(candle.low),
            "v": format_units(candle.volume),
            "n": candle.count,
            "x": closed,
            "q": format_units(candle.quote_volume),
            "V": format_units(candle.taker_buy_volume),
            "Q": format_units(candle.taker_buy_quote),
            "B": "0",
        },
    }


def mini_ticker(symbol: str, w: Window, ts: int) -> dict[str, Any]:
    t = w.ticker
    return {
        "e": "24hrMiniTicker",
        "E": ts,
        "s": symbol,
        "c": format_units(t.last_price),
        "o": format_units(t.open_price),
        "h": format_units(t.high_price),
        "l": format_units(t.low_price),
        "v": format_units(t.volume),
        "q": format_units(t.quote_volume),
    }


def percent(change: int, base: int) -> str:
    """Binance's priceChangePercent: 3 decimals, truncated toward zero (integers only)."""
    if base == 0:
        return "0.000"
    scaled = abs(change) * 100_000 // base
    sign = "-" if change < 0 and scaled else ""
    return f"{sign}{scaled // 1000}.{scaled % 1000:03d}"


def ticker(
    symbol: str, w: Window, bid: tuple[int, int], ask: tuple[int, int], ts: int
) -> dict[str, Any]:
    t = w.ticker
    change = t.last_price - t.open_price
    weighted = t.quote_volume * 10**8 // t.volume if t.volume else 0
    return {
        "e": "24hrTicker",
        "E": ts,
        "s": symbol,
        "p": format_units(change),
        "P": percent(change, t.open_price),
        "w": format_units(weighted),
        "x": format_units(w.prev_close),
        "c": format_units(t.last_price),
        "Q": format_units(t.last_qty),
        "b": format_units(bid[0]),
        "B": format_units(bid[1]),
        "a": format_units(ask[0]),
        "A": format_units(ask[1]),
        "o": format_units(t.open_price),
        "h": format_units(t.high_price),
        "l": format_units(t.low_price),
        "v": format_units(t.volume),
        "q": format_units(t.quote_volume),
        "O": t.open_time,
        "C": t.close_time,
        "F": t.first_id,
        "L": t.last_id,
        "n": t.count,
    }


def window_ticker(symbol: str, window: str, t: Ticker, ts: int) -> dict[str, Any]:
    """``<symbol>@ticker_<window>``: ``O`` the minute the window starts on, ``C`` now."""
    change = t.last_price - t.open_price
    return {
        "e": f"{window}Ticker",
        "E": ts,
        "s": symbol,
        "p": format_units(change),
        "P": percent(change, t.open_price),
        "o": format_units(t.open_price),
        "h": format_units(t.high_price),
        "l": format_units(t.low_price),
        "c": format_units(t.last_price),
        "w": format_units(t.quote_volume * 10**8 // t.volume if t.volume else 0),
        "v": format_units(t.volume),
        "q": format_units(t.quote_volume),
        "O": t.open_time,
        "C": t.close_time,
        "F": t.first_id,
        "L": t.last_id,
        "n": t.count,
    }


def avg_price(symbol: str, t: Ticker, last_trade_ts: int, ts: int) -> dict[str, Any]:
    """``<symbol>@avgPrice``: the volume-weighted price of the window's trades (REST
    ``avgPrice``'s rule, rounded down)."""
    return {
        "e": "avgPrice",
        "E": ts,
        "s": symbol,
        "i": "5m",
        "w": format_units(t.quote_volume * 10**8 // t.volume if t.volume else t.last_price),
        "T": last_trade_ts,
    }


def execution_report(ev: ExecutionReport) -> dict[str, Any]:
    order = ev.order
    canceled = ev.exec_type is ExecutionType.CANCELED
    body: dict[str, Any] = {
        "e": "executionReport",
        "E": ev.ts,
        "s": order.symbol,
        # On a cancel Binance shows the cancel request's client id here and the order's in "C".
        "c": ev.cancel_client_order_id
        if canceled and ev.cancel_client_order_id
        else order.client_order_id,
        "S": str(order.side),
        "o": str(order.type),
        "f": str(order.time_in_force or "GTC"),
        "q": format_units(order.quantity),
        "p": format_units(order.price),
        "P": format_units(order.stop_price),
        "F": format_units(order.iceberg_qty),
        "g": order.order_list_id,
        # "C", the original client id: the order's own on a cancel, its old one on an amendment.
        "C": order.client_order_id
        if canceled
        else ev.cancel_client_order_id
        if ev.exec_type is ExecutionType.REPLACED
        else "",
        "x": str(ev.exec_type),
        "X": str(ev.status),
        "r": ev.reject_reason,
        "i": order.order_id,
        "l": format_units(ev.last_qty),
        "z": format_units(ev.cum_qty),
        "L": format_units(ev.last_price),
        "n": format_units(ev.commission),
        "N": ev.commission_asset or None,
        "T": ev.ts,
        "t": ev.trade_id,
        # The execution id is unique across the exchange: the event's global seq is.
        "I": ev.seq,
        "w": ev.is_working,
        "m": ev.is_maker,
        "M": False,
        "O": order.created_ts,
        "Z": format_units(ev.cum_quote),
        "Y": format_units(ev.last_quote),
        "Q": format_units(order.quote_order_qty),
        "V": str(order.stp_mode),
    }
    if ev.working_ts >= 0:
        body["W"] = ev.working_ts
    if order.trailing_delta:
        body["d"] = order.trailing_delta
        if order.trailing_time >= 0:  # Binance: only once the stop tracks prices
            body["D"] = order.trailing_time
    if ev.prevented_match_id >= 0:
        body["v"] = ev.prevented_match_id
        body["A"] = format_units(ev.prevented_qty)
        body["B"] = format_units(ev.last_prevented_qty)
        body["U"] = ev.counter_order_id
    return body


def list_status(ev: ListStatus) -> dict[str, Any]:
    """Binance's listStatus (user-data-stream.md); "r" is always "NONE": a refused list
    changes nothing and is answered by its request's error instead."""
    lst = ev.order_list
    return {
        "e": "listStatus",
        "E": ev.ts,
        "s": lst.symbol,
        "g": lst.order_list_id,
        "c": str(lst.contingency_type),
        "l": str(lst.list_status_type),
        "L": str(lst.list_order_status),
        "r": "NONE",
        "C": lst.list_client_order_id,
        "T": ev.ts,
        "O": [{"s": lst.symbol, "i": oid, "c": cid} for oid, cid in lst.orders],
    }


def account_position(ev: AccountBalances) -> dict[str, Any]:
    return {
        "e": "outboundAccountPosition",
        "E": ev.ts,
        "u": ev.ts,
        "B": [
            {"a": asset, "f": format_units(free), "l": format_units(locked)}
            for asset, free, locked in ev.balances
        ],
    }


def balance_update(ev: BalanceUpdate) -> dict[str, Any]:
    return {
        "e": "balanceUpdate",
        "E": ev.ts,
        "a": ev.asset,
        "d": format_units(ev.delta),
        "T": ev.ts,
    }
