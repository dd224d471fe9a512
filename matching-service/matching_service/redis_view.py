"""Writes the live view (books, best bid/ask, last trades, replies) after each committed batch.

One Lua script per batch makes the write atomic (readers see a batch whole or not at all) and
conditional on the view's offset: a fenced instance that committed a batch just before it was
fenced, and writes late, cannot overwrite a newer view with an older one. The script touches
keys of several hash slots, which a single Redis (local, ElastiCache non-cluster) accepts; on
a cluster the same payload would be split per slot.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec
import redis

from bourse.adapters.redis_book import (
    BOOK_LEVELS,
    bbo_key,
    book_key,
    offset_key,
    reply_key,
    trade_key,
)
from bourse.domain.event_codec import encode_event
from bourse.domain.events import Trade
from bourse.engine import Engine

# KEYS[1] = offset key; KEYS[2 .. n+1] = string keys, set to ARGV[4 .. n+3];
# KEYS[n+2 ..] = reply lists, pushed ARGV[n+4 ..] and given the TTL ARGV[2].
# ARGV[1] = the commands offset this write reflects; ARGV[3] = n.
_APPLY = """
local current = tonumber(redis.call('GET', KEYS[1]) or '-1')
if current > tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
local n = tonumber(ARGV[3])
for i = 1, n do redis.call('SET', KEYS[i + 1], ARGV[i + 3]) end
for i = n + 2, #KEYS do
  redis.call('RPUSH', KEYS[i], ARGV[i + 2])
  redis.call('EXPIRE', KEYS[i], ARGV[2])
end
return 1
"""

_encoder = msgspec.json.Encoder()


class RedisView:
    def __init__(
        self,
        client: redis.Redis,
        commands_topic: str,
        *,
        reply_ttl_s: int,
        levels: int = BOOK_LEVELS,
    ) -> None:
        self.client = client
        self.offset_key = offset_key(commands_topic)
        self.reply_ttl_s = reply_ttl_s
        self.levels = levels
        self._script = client.register_script(_APPLY)

    @classmethod
    def from_url(
        cls, url: str, commands_topic: str, *, reply_ttl_s: int, levels: int = BOOK_LEVELS
    ) -> RedisView:
        client = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)
        return cls(client, commands_topic, reply_ttl_s=reply_ttl_s, levels=levels)

    def offset(self) -> int | None:
        """The commands offset the stored view reflects (None: no view, e.g. Redis was reset)."""
        raw = self.client.get(self.offset_key)
        return None if raw is None else int(raw)

    def book_values(
        self, engine: Engine, symbols: Iterable[str], offset: int
    ) -> list[tuple[str, bytes]]:
        out: list[tuple[str, bytes]] = []
        for symbol in symbols:
            update_id, bids, asks = engine.depth(symbol, self.levels)
            out.append(
                (
                    book_key(symbol),
                    _encoder.encode(
                        {"lastUpdateId": update_id, "offset": offset, "bids": bids, "asks": asks}
                    ),
                )
            )
            bid = bids[0] if bids else (0, 0)
            ask = asks[0] if asks else (0, 0)
            out.append(
                (
                    bbo_key(symbol),
                    _encoder.encode(
                        {
                            "lastUpdateId": update_id,
                            "bidPrice": bid[0],
                            "bidQty": bid[1],
                            "askPrice": ask[0],
                            "askQty": ask[1],
                        }
                    ),
                )
            )
        return out

    def apply(
        self,
        offset: int,
        *,
        values: list[tuple[str, bytes]],
        trades: Iterable[Trade] = (),
        replies: list[tuple[str, bytes]] = (),  # type: ignore[assignment]
    ) -> bool:
        """Write one batch's view; False if the stored view is already newer (we are stale)."""
        strings = list(values)
        strings.extend((trade_key(t.symbol), encode_event(t)) for t in trades)
        keys: list[Any] = [self.offset_key]
        keys.extend(k for k, _ in strings)
        keys.extend(reply_key(rid) for rid, _ in replies)
        args: list[Any] = [offset, self.reply_ttl_s, len(strings)]
        args.extend(v for _, v in strings)
        args.extend(v for _, v in replies)
        return bool(self._script(keys=keys, args=args))

    def rebuild(
        self,
        engine: Engine,
        offset: int,
        replies: list[tuple[str, bytes]] = (),  # type: ignore[assignment]
    ) -> bool:
        """After start-up: every symbol's book from the engine, plus replies that were
        committed to Kafka but never reached Redis."""
        values = self.book_values(engine, list(engine.symbols()), offset)
        return self.apply(offset, values=values, replies=replies)
