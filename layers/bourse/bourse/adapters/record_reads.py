"""Reads of the record that need more than one indexed range scan: the rolling ticker.

The REST API's other history reads are single queries (docs/record.md lists them).
"""

from __future__ import annotations

import psycopg

from bourse.record.tickers import DAY_MS, Part, Ticker, combine, minute_span

_EDGE = """
SELECT count(*), max(price), min(price), sum(qty), sum(quote_qty), min(trade_id), max(trade_id)
FROM trades WHERE symbol = %(symbol)s AND ts >= %(lo)s AND ts < %(hi)s
"""
_EDGE_ENDS = """
(SELECT price, qty FROM trades WHERE symbol = %(symbol)s AND ts >= %(lo)s AND ts < %(hi)s
 ORDER BY trade_id LIMIT 1)
UNION ALL
(SELECT price, qty FROM trades WHERE symbol = %(symbol)s AND ts >= %(lo)s AND ts < %(hi)s
 ORDER BY trade_id DESC LIMIT 1)
"""
_MINUTES = """
SELECT open, high, low, close, volume, quote_volume, trades, first_trade_id, last_trade_id
FROM klines WHERE symbol = %(symbol)s AND interval = '1m'
  AND open_time >= %(lo)s AND open_time < %(hi)s ORDER BY open_time
"""


def _edge(
    conn: psycopg.Connection[tuple[object, ...]], symbol: str, lo: int, hi: int
) -> list[Part]:
    if hi <= lo:
        return []
    args = {"symbol": symbol, "lo": lo, "hi": hi}
    row = conn.execute(_EDGE, args).fetchone()
    if row is None or not row[0]:
        return []
    ends = conn.execute(_EDGE_ENDS, args).fetchall()
    count, high, low, volume, quote, first_id, last_id = (int(str(v)) for v in row)
    (open_price, _), (close, close_qty) = ends[0], ends[-1]
    return [
        Part(int(str(open_price)), high, low, int(str(close)), int(str(close_qty)), volume,
             quote, count, first_id, last_id)
    ]  # fmt: skip


def rolling_ticker(
    conn: psycopg.Connection[tuple[object, ...]], symbol: str, now_ms: int, window_ms: int = DAY_MS
) -> Ticker:
    """Binance's rolling-window ticker over the trades in (now - window, now]."""
    start, end = now_ms - window_ms + 1, now_ms
    m0, m1 = minute_span(start, end)
    head = _edge(conn, symbol, start, m0)
    minutes: list[Part] = []
    for row in conn.execute(_MINUTES, {"symbol": symbol, "lo": m0, "hi": m1}).fetchall():
        o, h, low, c, volume, quote, count, first_id, last_id = (int(str(v)) for v in row)
        minutes.append(Part(o, h, low, c, 0, volume, quote, count, first_id, last_id))
    tail = _edge(conn, symbol, m1, end + 1)
    parts = head + minutes + tail
    if parts and not tail:
        # A kline does not keep its last trade's quantity: read it from the trades.
        last = conn.execute(
            "SELECT qty FROM trades WHERE symbol = %s AND trade_id = %s",
            (symbol, parts[-1].last_id),
        ).fetchone()
        p = parts[-1]
        parts[-1] = Part(p.open, p.high, p.low, p.close, int(str(last[0])) if last else 0,
                         p.volume, p.quote_volume, p.count, p.first_id, p.last_id)  # fmt: skip
    return combine(symbol, start, end, parts)
