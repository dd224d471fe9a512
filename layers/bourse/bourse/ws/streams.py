"""Binance's market stream names: what a name means, and whether it is one at all.

Names are Binance's, lower-case symbol first (``btcusdt@trade``, ``btcusdt@depth20@100ms``,
``btcusdt@kline_1m``, ``!miniTicker@arr``). Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

KLINE_INTERVALS = frozenset(
    {"1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d",
     "1w", "1M"}
)  # fmt: skip
TICKER_WINDOWS = frozenset({"1h", "4h", "1d"})
DEPTH_LEVELS = frozenset({5, 10, 20})
# Binance's limit per connection (market streams).
MAX_STREAMS_PER_CONNECTION = 1024
# A listen key (user data stream) as Binance issues them: 60 letters and digits.
LISTEN_KEY_RE = re.compile(r"\A[A-Za-z0-9]{60}\Z")

_SYMBOL = r"(?P<symbol>[a-z0-9]{1,20})"
_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (kind, re.compile(pattern))
    for kind, pattern in (
        ("trade", rf"\A{_SYMBOL}@trade\Z"),
        ("aggTrade", rf"\A{_SYMBOL}@aggTrade\Z"),
        ("kline", rf"\A{_SYMBOL}@kline_(?P<interval>[0-9]{{1,2}}[smhdwM])(@(?P<tz>\+08:00))?\Z"),
        ("miniTicker", rf"\A{_SYMBOL}@miniTicker\Z"),
        ("miniTicker", r"\A!miniTicker@arr\Z"),
        ("ticker", rf"\A{_SYMBOL}@ticker\Z"),
        ("ticker", r"\A!ticker@arr\Z"),
        ("ticker", rf"\A{_SYMBOL}@ticker_(?P<window>1h|4h|1d)\Z"),
        ("ticker", r"\A!ticker_(?P<window>1h|4h|1d)@arr\Z"),
        ("bookTicker", rf"\A{_SYMBOL}@bookTicker\Z"),
        ("avgPrice", rf"\A{_SYMBOL}@avgPrice\Z"),
        ("depth", rf"\A{_SYMBOL}@depth(?P<levels>5|10|20)?(@(?P<speed>100|1000)ms)?\Z"),
    )
)


class InvalidStream(ValueError):
    """Not a market stream name Binance knows."""


@dataclass(frozen=True)
class Stream:
    """A parsed market stream name. ``symbol`` is the exchange's upper-case symbol, None for
    the all-market streams (``!miniTicker@arr``); ``interval`` is a kline interval,
    ``window`` a rolling ticker window, ``levels`` a partial depth's levels (None: the diff
    depth stream), ``speed_ms`` a depth stream's update speed (1000 unless ``@100ms``)."""

    name: str
    kind: str
    symbol: str | None
    interval: str | None = None
    window: str | None = None
    levels: int | None = None
    speed_ms: int | None = None
    utc8: bool = False  # kline_<interval>@+08:00: candles in UTC+8


def parse_stream(name: str) -> Stream:
    for kind, pattern in _PATTERNS:
        match = pattern.match(name)
        if match is None:
            continue
        groups = match.groupdict()
        symbol = groups.get("symbol")
        interval = groups.get("interval")
        if kind == "kline" and interval not in KLINE_INTERVALS:
            break
        levels = groups.get("levels")
        speed = groups.get("speed")
        return Stream(
            name=name,
            kind=kind,
            symbol=symbol.upper() if symbol else None,
            interval=interval,
            window=groups.get("window"),
            levels=int(levels) if levels else None,
            speed_ms=(int(speed) if speed else 1000) if kind == "depth" else None,
            utc8=bool(groups.get("tz")),
        )
    raise InvalidStream(name)


def is_stream(name: str) -> bool:
    try:
        parse_stream(name)
    except InvalidStream:
        return False
    return True


def is_listen_key(name: str) -> bool:
    return LISTEN_KEY_RE.match(name) is not None
