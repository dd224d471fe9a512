"""Where a fresh broadcaster starts a symbol's stream state: the live view in Redis (the
matching service's book, the recorder's newest klines; ``bourse.streams.market.Seed``)."""

from __future__ import annotations

from typing import Any

from bourse.adapters import redis_conn
from bourse.adapters.hot_cache import HotCache
from bourse.adapters.redis_book import BOOK_LEVELS, read_book
from bourse.record.intervals import INTERVALS
from bourse.streams.book import Level
from bourse.streams.rolling import Candle


class RedisSeed:
    def __init__(self, client: Any) -> None:
        self._redis = client
        self._hot = HotCache(client)

    @classmethod
    def connect(cls, redis_url: str) -> RedisSeed:
        """On the live view's Redis, through the one connection factory (``redis_conn``: on
        AWS, ElastiCache refuses a client without the AUTH token it reads)."""
        return cls(redis_conn.connect(redis_url, socket_timeout=2, socket_connect_timeout=2))

    def book(self, symbol: str) -> tuple[int, list[Level], list[Level]] | None:
        book = read_book(self._redis, symbol, BOOK_LEVELS)
        return None if book is None else (book.lastUpdateId, book.bids, book.asks)

    def klines(self, symbol: str) -> dict[str, Candle]:
        out = {}
        for interval in INTERVALS:
            k = self._hot.kline(symbol, interval)
            if k is None:
                continue
            out[interval] = Candle(
                k["open_time"], k["close_time"], k["open"], k["high"], k["low"], k["close"],
                k["volume"], k["quote_volume"], k["trades"], k["taker_buy_volume"],
                k["taker_buy_quote"], k["first_trade_id"], k["last_trade_id"],
            )  # fmt: skip
        return out
