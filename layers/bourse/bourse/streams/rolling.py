"""Klines and the 24 h rolling window, folded trade by trade.

The rolling window keeps one 1-minute candle per minute that saw trades (at most 1,441 per
symbol) instead of a day of trades: memory stays bounded whatever the trade rate. The price
paid is the window's tail: a minute is dropped only once all of it is older than 24 h, so the
statistics can include up to one minute more than Binance's exact window (docs/streams.md).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace

from bourse.domain.events import Trade
from bourse.record.intervals import bucket
from bourse.record.tickers import Part, Ticker, combine

DAY_MS = 86_400_000
MINUTE_MS = 60_000
# Binance's rolling window streams (<symbol>@ticker_<window>) and the avgPrice stream's span.
TICKER_WINDOWS_MS = {"1h": 3_600_000, "4h": 14_400_000, "1d": DAY_MS}
AVG_PRICE_MS = 5 * MINUTE_MS


@dataclass(slots=True)
class Candle:
    open_time: int
    close_time: int
    open: int
    high: int
    low: int
    close: int
    volume: int
    quote_volume: int
    count: int
    taker_buy_volume: int
    taker_buy_quote: int
    first_id: int
    last_id: int

    @classmethod
    def first(cls, open_time: int, close_time: int, ev: Trade) -> Candle:
        taker_buy = not ev.is_buyer_maker
        return cls(
            open_time, close_time, ev.price, ev.price, ev.price, ev.price, ev.qty, ev.quote_qty,
            1, ev.qty if taker_buy else 0, ev.quote_qty if taker_buy else 0, ev.trade_id,
            ev.trade_id,
        )  # fmt: skip

    def add(self, ev: Trade) -> None:
        self.high = max(self.high, ev.price)
        self.low = min(self.low, ev.price)
        self.close = ev.price
        self.volume += ev.qty
        self.quote_volume += ev.quote_qty
        self.count += 1
        if not ev.is_buyer_maker:
            self.taker_buy_volume += ev.qty
            self.taker_buy_quote += ev.quote_qty
        self.last_id = ev.trade_id


def fold_kline(current: Candle | None, interval: str, ev: Trade) -> tuple[Candle, Candle | None]:
    """(the kline holding ``ev`` after adding it, the kline it closed or None)."""
    open_time, close_time = bucket(interval, ev.ts)
    if current is not None and current.open_time == open_time:
        current.add(ev)
        return current, None
    return Candle.first(open_time, close_time, ev), current


@dataclass(frozen=True, slots=True)
class Window:
    """The 24 h statistics, folded by the same ``combine`` as REST's rolling ticker."""

    ticker: Ticker
    prev_close: int  # the price of the last trade before the window (0 when none)


class Rolling:
    """One symbol's 24 h statistics."""

    __slots__ = ("last_qty", "last_ts", "minutes", "prev_close")

    def __init__(self) -> None:
        self.minutes: deque[Candle] = deque()
        self.last_qty = 0
        self.last_ts = 0
        self.prev_close = 0

    def add(self, ev: Trade) -> None:
        open_time = ev.ts - ev.ts % MINUTE_MS
        last = self.minutes[-1] if self.minutes else None
        if last is not None and last.open_time == open_time:
            last.add(ev)
        else:
            self.minutes.append(Candle.first(open_time, open_time + MINUTE_MS - 1, ev))
        self.last_qty = ev.qty
        self.last_ts = ev.ts

    def window(self, now: int) -> Window:
        start = now - DAY_MS
        minutes = self.minutes
        while minutes and minutes[0].close_time <= start:
            self.prev_close = minutes.popleft().close
        parts = [
            Part(m.open, m.high, m.low, m.close, 0, m.volume, m.quote_volume, m.count,
                 m.first_id, m.last_id)
            for m in minutes
        ]  # fmt: skip
        if parts:  # a candle does not keep its last trade's quantity; the window does
            parts[-1] = replace(parts[-1], close_qty=self.last_qty)
        # The payload names the symbol; the window itself does not need to.
        return Window(combine("", start, now, parts), self.prev_close)

    def since(self, span_ms: int, now: int) -> Ticker:
        """The statistics of a rolling window stream, as Binance defines them: from the start
        of the minute ``span_ms`` before ``now`` (so up to 59,999 ms wider than the span) to
        ``now``. Only spans up to the day that ``window`` keeps; call ``window`` first."""
        start = now - span_ms
        start -= start % MINUTE_MS
        parts: list[Part] = []
        for m in reversed(self.minutes):
            if m.open_time < start:
                break
            parts.append(
                Part(m.open, m.high, m.low, m.close, 0, m.volume, m.quote_volume, m.count,
                     m.first_id, m.last_id)
            )  # fmt: skip
        parts.reverse()
        if parts:
            parts[-1] = replace(parts[-1], close_qty=self.last_qty)
        return combine("", start, now, parts)
