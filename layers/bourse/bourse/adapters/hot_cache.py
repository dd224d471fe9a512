"""The record's hot data in Redis for the REST and WebSocket layers; the recorder writes it
after each committed batch. Keys carry the symbol's hash tag, as the live view's do
(``bourse.adapters.redis_book``):

- ``kline:{SYM}``  hash: interval -> JSON of the symbol's newest kline of that interval
  (``KLINE_COLUMNS`` as keys, integers in 1e-8 units; times in ms).
- ``ticker24h:{SYM}``  JSON of the rolling 24 h ticker as of the batch's last trade time
  (``bourse.record.tickers.Ticker`` fields).

A cache only: PostgreSQL is the record. A failed write is logged by the caller and the next
batch writes the state again; readers fall back to the record on a miss.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from typing import Any

from bourse.record.rows import KLINE_COLUMNS, Row
from bourse.record.tickers import Ticker


def kline_key(symbol: str) -> str:
    return f"kline:{{{symbol}}}"


def ticker_key(symbol: str) -> str:
    return f"ticker24h:{{{symbol}}}"


def newest_klines(rows: Iterable[Row]) -> dict[tuple[str, str], dict[str, Any]]:
    """(symbol, interval) -> the newest of ``rows`` (kline rows in KLINE_COLUMNS order)."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        kline = dict(zip(KLINE_COLUMNS, row, strict=True))
        key = (str(kline["symbol"]), str(kline["interval"]))
        current = out.get(key)
        if current is None or kline["open_time"] >= current["open_time"]:
            out[key] = kline
    return out


class HotCache:
    def __init__(self, client: Any) -> None:
        self._redis = client

    def write(self, klines: Iterable[Row], tickers: Iterable[Ticker]) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for (symbol, interval), kline in sorted(newest_klines(klines).items()):
            pipe.hset(kline_key(symbol), interval, json.dumps(kline, separators=(",", ":")))
        for ticker in tickers:
            pipe.set(
                ticker_key(ticker.symbol),
                json.dumps(dataclasses.asdict(ticker), separators=(",", ":")),
            )
        pipe.execute()

    def kline(self, symbol: str, interval: str) -> dict[str, Any] | None:
        raw = self._redis.hget(kline_key(symbol), interval)
        return None if raw is None else dict(json.loads(raw))

    def ticker(self, symbol: str) -> dict[str, Any] | None:
        raw = self._redis.get(ticker_key(symbol))
        return None if raw is None else dict(json.loads(raw))
