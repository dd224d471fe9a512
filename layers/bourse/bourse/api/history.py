"""The history and statistics endpoints, read from the durable record through a
``HistoryView`` (``Deps.history``): trades, historicalTrades, aggTrades, klines, uiKlines,
avgPrice, ticker/24hr, the rolling window ticker, allOrders and myTrades. Pure: no I/O of
their own, so unit tests run them with a fake view. docs/api.md says what each one reads.
"""

from __future__ import annotations

import re
from typing import Any

from bourse.api import record_shapes as shapes
from bourse.api.account import order_query
from bourse.api.handlers import SIGNED_COMMON, USER_DATA, Deps, Request
from bourse.api.market import chosen_symbols
from bourse.api.orders import check_known
from bourse.api.params import Params
from bourse.api.ports import HistoryView
from bourse.domain import errors
from bourse.domain.amounts import format_units
from bourse.domain.errors import BinanceError
from bourse.record.intervals import FIXED_MS, INTERVALS, bucket
from bourse.record.tickers import DAY_MS, MINUTE_MS
from bourse.record.views import KlineRow

DEFAULT_LIMIT = 500
MAX_LIMIT = 1000
AVG_PRICE_MINS = 5
MAX_ROLLING_SYMBOLS = 100

TRADES_PARAMS = frozenset({"symbol", "limit"})
HISTORICAL_TRADES_PARAMS = frozenset({"symbol", "limit", "fromId"})
AGG_TRADES_PARAMS = frozenset({"symbol", "fromId", "startTime", "endTime", "limit"})
KLINES_PARAMS = frozenset({"symbol", "interval", "startTime", "endTime", "timeZone", "limit"})
AVG_PRICE_PARAMS = frozenset({"symbol"})
ALL_ORDERS_PARAMS = SIGNED_COMMON | {"symbol", "orderId", "startTime", "endTime", "limit"}
MY_TRADES_PARAMS = SIGNED_COMMON | {"symbol", "orderId", "startTime", "endTime", "fromId", "limit"}
# myTrades' parameter combinations Binance serves (besides symbol and limit).
MY_TRADES_COMBOS: tuple[frozenset[str], ...] = (
    frozenset(),
    frozenset({"orderId"}),
    frozenset({"startTime"}),
    frozenset({"endTime"}),
    frozenset({"fromId"}),
    frozenset({"startTime", "endTime"}),
    frozenset({"orderId", "fromId"}),
)

BAD_INTERVAL_ERROR = BinanceError(errors.BAD_INTERVAL, "Invalid interval.")
MORE_THAN_24_HOURS = BinanceError(-1127, "More than 24 hours between startTime and endTime.")
TOO_MANY_SYMBOLS = BinanceError(
    errors.TOO_MANY_PARAMETERS,
    f"Too many values sent for parameter 'symbols', maximum allowed up to {MAX_ROLLING_SYMBOLS}.",
)
_TIME_ZONE = re.compile(r"^([+-]?)([0-9]{1,2})(?::([0-9]{2}))?$")
_WINDOW = re.compile(r"^([1-9][0-9]?)([mhd])$")
_WINDOW_UNITS = {"m": (MINUTE_MS, 59), "h": (60 * MINUTE_MS, 23), "d": (DAY_MS, 7)}


def _history(deps: Deps) -> HistoryView:
    if deps.history is None:
        raise RuntimeError("this function has no history view (Deps.history)")
    return deps.history


def _symbol(deps: Deps, params: Params) -> str:
    name = params.required_str("symbol").upper()
    if deps.view.symbol(name) is None:
        raise errors.INVALID_SYMBOL_ERROR
    return name


def _limit(params: Params) -> int:
    """Binance's ``limit``: default 500; more than 1000 is served as 1000 (as depth caps its
    own); 0 is -1130."""
    limit = params.optional_int("limit", minimum=1)
    return DEFAULT_LIMIT if limit is None else min(limit, MAX_LIMIT)


def _times(params: Params) -> tuple[int | None, int | None]:
    return params.optional_int("startTime"), params.optional_int("endTime")


def _within_a_day(start: int | None, end: int | None) -> None:
    if start is not None and end is not None and end - start > DAY_MS:
        raise MORE_THAN_24_HOURS


# ---------------------------------------------------------------------------- trades


def trades(req: Request, deps: Deps) -> list[dict[str, Any]]:
    """GET /api/v3/trades: the newest ``limit`` trades."""
    params = req.public_params()
    check_known(params, TRADES_PARAMS)
    symbol = _symbol(deps, params)
    rows = _history(deps).trades(symbol, from_id=None, limit=_limit(params))
    return [shapes.trade(r) for r in rows]


def historical_trades(req: Request, deps: Deps) -> list[dict[str, Any]]:
    """GET /api/v3/historicalTrades: trades from ``fromId`` on, else the newest (public, as on
    Binance today: no API key needed)."""
    params = req.public_params()
    check_known(params, HISTORICAL_TRADES_PARAMS)
    symbol = _symbol(deps, params)
    rows = _history(deps).trades(
        symbol, from_id=params.optional_int("fromId"), limit=_limit(params)
    )
    return [shapes.trade(r) for r in rows]


def agg_trades(req: Request, deps: Deps) -> list[dict[str, Any]]:
    """GET /api/v3/aggTrades: from ``fromId``, or from ``startTime`` (up to ``endTime``), or the
    newest up to ``endTime``, or the newest. ``fromId`` with a time is -1128."""
    params = req.public_params()
    check_known(params, AGG_TRADES_PARAMS)
    symbol = _symbol(deps, params)
    from_id = params.optional_int("fromId")
    start, end = _times(params)
    if from_id is not None and (start is not None or end is not None):
        raise errors.BAD_COMBO_ERROR
    if start is not None and end is not None and start > end:
        return []
    rows = _history(deps).agg_trades(
        symbol,
        from_id=from_id,
        start=start,
        end=end,
        limit=_limit(params),
        newest=from_id is None and start is None,
    )
    return [shapes.agg_trade(r) for r in rows]


# ---------------------------------------------------------------------------- klines


def time_zone_ms(raw: str | None) -> int:
    """``timeZone``: hours ("8", "-1") or hours and minutes ("05:45", "-1:00"), within
    [-12:00, +14:00]; the offset in ms."""
    if raw is None:
        return 0
    match = _TIME_ZONE.match(raw)
    if match is None:
        raise errors.invalid_parameter("timeZone")
    sign, hours, minutes = match.group(1), int(match.group(2)), int(match.group(3) or 0)
    if minutes >= 60:
        raise errors.invalid_parameter("timeZone")
    total = (hours * 60 + minutes) * (-1 if sign == "-" else 1)
    if not -12 * 60 <= total <= 14 * 60:
        raise errors.invalid_parameter("timeZone")
    return total * MINUTE_MS


def source_interval(interval: str, tz_ms: int) -> str:
    """The stored (UTC-aligned) interval whose klines tile ``interval``'s klines in a zone
    ``tz_ms`` from UTC: the longest one dividing both the interval and the offset."""
    if tz_ms == 0:
        return interval
    length = DAY_MS if interval in ("1w", "1M", "3d") else FIXED_MS[interval]
    for name, size in sorted(FIXED_MS.items(), key=lambda kv: -kv[1]):
        if size <= length and length % size == 0 and tz_ms % size == 0:
            return name
    return "1s"  # every offset is whole minutes, so "1m" already qualifies; kept total


def _fold(open_time: int, close_time: int, rows: list[KlineRow]) -> KlineRow:
    return KlineRow(
        open_time=open_time,
        close_time=close_time,
        open=rows[0].open,
        high=max(r.high for r in rows),
        low=min(r.low for r in rows),
        close=rows[-1].close,
        volume=sum(r.volume for r in rows),
        quote_volume=sum(r.quote_volume for r in rows),
        trades=sum(r.trades for r in rows),
        taker_buy_volume=sum(r.taker_buy_volume for r in rows),
        taker_buy_quote=sum(r.taker_buy_quote for r in rows),
    )


def kline_rows(
    history: HistoryView,
    symbol: str,
    interval: str,
    *,
    start: int | None,
    end: int | None,
    limit: int,
    now: int,
    tz_ms: int = 0,
) -> list[KlineRow]:
    """Binance's klines: every interval from the symbol's first trade on, an interval without
    trades as a flat kline at the previous close with zero volume (the record stores only
    traded ones). From ``start`` forward, else the newest up to ``end`` (or now)."""
    source = source_interval(interval, tz_ms)

    def span(t: int) -> tuple[int, int]:
        open_time, close_time = bucket(interval, t + tz_ms)
        return open_time - tz_ms, close_time - tz_ms

    first = history.first_kline_open(symbol, source)
    if first is None:
        return []
    floor = span(first)[0]
    hi = now if end is None else min(end, now)
    spans: list[tuple[int, int]] = []
    if start is not None:
        lo, close = span(max(start, floor))
        if lo < start:
            lo, close = span(close + 1)
        while lo <= hi and len(spans) < limit:
            spans.append((lo, close))
            lo, close = span(close + 1)
    else:
        lo, close = span(hi)
        while lo >= floor and len(spans) < limit:
            spans.append((lo, close))
            lo, close = span(lo - 1)
        spans.reverse()
    if not spans:
        return []
    stored = history.klines(symbol, source, spans[0][0], spans[-1][1])
    before = history.kline_before(symbol, source, spans[0][0])
    last_close = None if before is None else before.close
    out: list[KlineRow] = []
    i = 0
    for lo, close in spans:
        group: list[KlineRow] = []
        while i < len(stored) and stored[i].open_time <= close:
            group.append(stored[i])
            i += 1
        if group:
            out.append(_fold(lo, close, group))
            last_close = group[-1].close
        elif last_close is not None:
            p = last_close
            out.append(KlineRow(lo, close, p, p, p, p, 0, 0, 0, 0, 0))
    return out


def klines(req: Request, deps: Deps) -> list[list[Any]]:
    """GET /api/v3/klines and /api/v3/uiKlines (the same candles here)."""
    params = req.public_params()
    check_known(params, KLINES_PARAMS)
    symbol = _symbol(deps, params)
    interval = params.required_str("interval")
    if interval not in INTERVALS:
        raise BAD_INTERVAL_ERROR
    start, end = _times(params)
    tz_ms = time_zone_ms(params.optional_str("timeZone"))
    limit = _limit(params)
    if start is not None and end is not None and start > end:
        return []
    rows = kline_rows(
        _history(deps), symbol, interval, start=start, end=end, limit=limit,
        now=deps.clock(), tz_ms=tz_ms,
    )  # fmt: skip
    return [shapes.kline(r) for r in rows]


# ---------------------------------------------------------------------------- statistics


def avg_price(req: Request, deps: Deps) -> dict[str, Any]:
    """GET /api/v3/avgPrice: the volume-weighted price of the last 5 minutes' trades (the last
    trade's price when there were none); ``closeTime`` is the last trade's time."""
    params = req.public_params()
    check_known(params, AVG_PRICE_PARAMS)
    symbol = _symbol(deps, params)
    history = _history(deps)
    now = deps.clock()
    window = history.ticker(symbol, now - AVG_PRICE_MINS * MINUTE_MS + 1, now)
    last = history.last_trade_before(symbol, now + 1)
    if window.count:
        price = shapes.average(window.quote_volume, window.volume)
    else:
        price = 0 if last is None else last.price
    return {
        "mins": AVG_PRICE_MINS,
        "price": format_units(price),
        "closeTime": 0 if last is None else last.ts,
    }


def _ticker_type(params: Params) -> bool:
    """``type``: FULL (default) or MINI; True for FULL."""
    kind = params.optional_str("type")
    if kind not in (None, "FULL", "MINI"):
        raise errors.invalid_parameter("type")
    return kind != "MINI"


def _without(params: Params, *names: str) -> Params:
    return Params({n: params.raw(n) or "" for n in params.names() - set(names)})


def ticker_24hr(req: Request, deps: Deps) -> dict[str, Any] | list[dict[str, Any]]:
    """GET /api/v3/ticker/24hr: the window [now - 24h, now] for ``symbol``, ``symbols`` or all;
    FULL adds the previous close and the live best bid and ask."""
    params = req.public_params()
    full = _ticker_type(params)
    names, single = chosen_symbols(_without(params, "type"), deps.view.symbols())
    history = _history(deps)
    now = deps.clock()
    rows = []
    for name in names:
        ticker = history.ticker(name, now - DAY_MS, now)
        day = None
        if full:
            before = history.last_trade_before(name, now - DAY_MS)
            bbo = deps.view.bbo(name)
            day = shapes.DayExtras(
                prev_close=0 if before is None else before.price,
                bbo=(0, 0, 0, 0) if bbo is None
                else (bbo.bidPrice, bbo.bidQty, bbo.askPrice, bbo.askQty),
            )  # fmt: skip
        rows.append(shapes.ticker(ticker, full=full, day=day))
    return rows[0] if single else rows


def window_ms(raw: str | None) -> int:
    """``windowSize``: 1m..59m, 1h..23h or 1d..7d (default 1d), units not combined."""
    if raw is None:
        return DAY_MS
    match = _WINDOW.match(raw)
    if match is None:
        raise errors.invalid_parameter("windowSize")
    count, (unit, most) = int(match.group(1)), _WINDOW_UNITS[match.group(2)]
    if count > most:
        raise errors.invalid_parameter("windowSize")
    return count * unit


def rolling_ticker(req: Request, deps: Deps) -> dict[str, Any] | list[dict[str, Any]]:
    """GET /api/v3/ticker: the window from the minute ``windowSize`` ago to now (Binance
    starts it on a whole minute), for ``symbol`` or ``symbols`` (one is required)."""
    params = req.public_params()
    full = _ticker_type(params)
    window = window_ms(params.optional_str("windowSize"))
    if "symbol" not in params and "symbols" not in params:
        raise BinanceError(
            errors.MANDATORY_PARAM_EMPTY_OR_MALFORMED,
            "Param 'symbol' or 'symbols' must be sent, but both were empty/null!",
        )
    names, single = chosen_symbols(_without(params, "type", "windowSize"), deps.view.symbols())
    if len(names) > MAX_ROLLING_SYMBOLS:
        raise TOO_MANY_SYMBOLS
    history = _history(deps)
    now = deps.clock()
    start = (now - window) // MINUTE_MS * MINUTE_MS
    rows = [shapes.ticker(history.ticker(n, start, now), full=full) for n in names]
    return rows[0] if single else rows


# ---------------------------------------------------------------------------- account


def all_orders(req: Request, deps: Deps) -> list[dict[str, Any]]:
    """GET /api/v3/allOrders: from ``orderId`` on, or from ``startTime`` (up to ``endTime``),
    or the newest up to ``endTime``, or the newest. The record's rows, with the live view's
    open orders on top (they are newer than a record that lags by a batch)."""
    caller, params = req.signed(deps, USER_DATA)
    check_known(params, ALL_ORDERS_PARAMS)
    symbol = _symbol(deps, params)
    from_id = params.optional_int("orderId")
    start, end = _times(params)
    _within_a_day(start, end)
    limit = _limit(params)
    if start is not None and end is not None and start > end:
        return []
    newest = from_id is None and start is None
    rows = _history(deps).orders(
        caller.account_id, symbol, from_id=from_id, start=start, end=end, limit=limit,
        newest=newest,
    )  # fmt: skip
    merged = {r.order_id: shapes.order(r) for r in rows}
    # Then what the record may not have yet: orders closed since, and the open ones.
    recent = deps.recent.closed_orders(caller.account_id, symbol) if deps.recent else []
    for row in recent:
        if (
            (from_id is None or row.order_id >= from_id)
            and (start is None or row.created_ts >= start)
            and (end is None or row.created_ts <= end)
        ):
            merged[row.order_id] = shapes.order(row)
    for live in deps.view.open_orders(caller.account_id, symbol):
        info = live.order
        if (
            (from_id is None or info.order_id >= from_id)
            and (start is None or info.created_ts >= start)
            and (end is None or info.created_ts <= end)
        ):
            merged[info.order_id] = order_query(live)
    ordered = [merged[k] for k in sorted(merged)]
    return ordered[-limit:] if newest else ordered[:limit]


def my_trades(req: Request, deps: Deps) -> list[dict[str, Any]]:
    """GET /api/v3/myTrades, in Binance's combinations: the newest; an order's trades
    (``orderId``, from ``fromId``); from ``fromId``; from ``startTime`` (up to ``endTime``);
    the newest up to ``endTime``. Another combination is -1128."""
    caller, params = req.signed(deps, USER_DATA)
    check_known(params, MY_TRADES_PARAMS)
    symbol = _symbol(deps, params)
    order_id = params.optional_int("orderId")
    from_id = params.optional_int("fromId")
    start, end = _times(params)
    sent = frozenset(
        n for n in ("orderId", "fromId", "startTime", "endTime") if n in params.names()
    )
    if sent not in MY_TRADES_COMBOS:
        raise errors.BAD_COMBO_ERROR
    _within_a_day(start, end)
    limit = _limit(params)
    if start is not None and end is not None and start > end:
        return []
    newest = not sent or sent == {"endTime"}
    rows = _history(deps).account_trades(
        caller.account_id, symbol, order_id=order_id, from_id=from_id, start=start, end=end,
        limit=limit, newest=newest,
    )  # fmt: skip
    # The record lags the engine: the fills it may not have yet come from the live view, so
    # a fill already answered is listed.
    recent = deps.recent.fills(caller.account_id, symbol) if deps.recent else []
    merged = {(r.trade_id, r.is_buyer): r for r in rows}
    for r in recent:
        if (
            (order_id is None or r.order_id == order_id)
            and (from_id is None or r.trade_id >= from_id)
            and (start is None or r.ts >= start)
            and (end is None or r.ts <= end)
        ):
            merged.setdefault((r.trade_id, r.is_buyer), r)
    timed = start is not None or end is not None
    ordered = sorted(
        merged.values(),
        key=(lambda r: (r.ts, r.trade_id, r.is_buyer))
        if timed
        else (lambda r: (r.trade_id, r.is_buyer)),
    )
    ordered = ordered[-limit:] if newest else ordered[:limit]
    return [shapes.my_trade(r) for r in ordered]
