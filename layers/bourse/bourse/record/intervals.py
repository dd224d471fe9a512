"""Binance kline intervals and the bucket each trade time falls into.

Buckets are aligned as Binance aligns them, in UTC: fixed-length intervals up to 3 days on
multiples of their length since the epoch, weeks on Mondays (the epoch was a Thursday), months
on calendar months.
"""

from __future__ import annotations

import calendar
import datetime as dt

_S = 1000
_M = 60 * _S
_H = 60 * _M
_D = 24 * _H

# Interval name -> length in ms; "1M" has no fixed length (see bucket()).
FIXED_MS: dict[str, int] = {
    "1s": _S,
    "1m": _M,
    "3m": 3 * _M,
    "5m": 5 * _M,
    "15m": 15 * _M,
    "30m": 30 * _M,
    "1h": _H,
    "2h": 2 * _H,
    "4h": 4 * _H,
    "6h": 6 * _H,
    "8h": 8 * _H,
    "12h": 12 * _H,
    "1d": _D,
    "3d": 3 * _D,
    "1w": 7 * _D,
}
INTERVALS: tuple[str, ...] = (*FIXED_MS, "1M")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_WEEK_OFFSET = 4 * _D  # 1970-01-05, the first Monday, is 4 days after the epoch


def bucket(interval: str, ts: int) -> tuple[int, int]:
    """(open_time, close_time) of the ``interval`` kline holding ``ts``; close is inclusive
    (open of the next kline minus 1 ms), as Binance reports it."""
    if interval == "1M":
        day = _EPOCH + dt.timedelta(milliseconds=ts)  # integer arithmetic, no float
        start = dt.datetime(day.year, day.month, 1, tzinfo=dt.UTC)
        days = calendar.monthrange(day.year, day.month)[1]
        open_ms = int(start.timestamp()) * 1000
        return open_ms, open_ms + days * _D - 1
    length = FIXED_MS[interval]
    open_ms = ts - (ts - _WEEK_OFFSET) % length if interval == "1w" else ts - ts % length
    return open_ms, open_ms + length - 1
