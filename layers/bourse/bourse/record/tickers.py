"""24-hour rolling tickers from the record, without scanning a day of trades.

A window (start, end] is split into the whole minutes inside it, read from the 1m klines, and
the ragged edges before the first and after the last whole minute, read from the trades
themselves. ``combine`` folds those parts, in time order, into one ticker: exact to the
millisecond, and one kline row per minute instead of one row per trade.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

MINUTE_MS = 60_000
DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class Part:
    """Trades of one stretch of the window: a kline, or the trades of a ragged edge."""

    open: int
    high: int
    low: int
    close: int
    close_qty: int  # quantity of the last trade; 0 when a kline (it does not keep it)
    volume: int
    quote_volume: int
    count: int
    first_id: int
    last_id: int


@dataclass(frozen=True, slots=True)
class Ticker:
    symbol: str
    open_time: int
    close_time: int
    open_price: int
    high_price: int
    low_price: int
    last_price: int
    last_qty: int
    volume: int
    quote_volume: int
    count: int
    first_id: int  # -1 when no trade
    last_id: int


def minute_span(start: int, end: int) -> tuple[int, int]:
    """[first, last) open times of the whole minutes inside the window [start, end]; when
    there is none, (end + 1, end + 1), so the head edge [start, first) covers the window."""
    first = -(-start // MINUTE_MS) * MINUTE_MS
    last = (end + 1) // MINUTE_MS * MINUTE_MS
    if first >= last:
        return end + 1, end + 1
    return first, last


def combine(symbol: str, start: int, end: int, parts: Iterable[Part]) -> Ticker:
    """Fold ``parts`` (in time order, empty ones left out) into the window's ticker."""
    items = list(parts)
    if not items:
        return Ticker(symbol, start, end, 0, 0, 0, 0, 0, 0, 0, 0, -1, -1)
    first, last = items[0], items[-1]
    return Ticker(
        symbol=symbol,
        open_time=start,
        close_time=end,
        open_price=first.open,
        high_price=max(p.high for p in items),
        low_price=min(p.low for p in items),
        last_price=last.close,
        last_qty=last.close_qty,
        volume=sum(p.volume for p in items),
        quote_volume=sum(p.quote_volume for p in items),
        count=sum(p.count for p in items),
        first_id=first.first_id,
        last_id=last.last_id,
    )
