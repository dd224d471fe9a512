"""Writes the live view (books, best bid/ask, last trades, replies, symbols, balances, open
orders) after each committed batch.

One Lua script per batch makes the write atomic (readers see a batch whole or not at all) and
conditional on the view's offset: a fenced instance that committed a batch just before it was
fenced, and writes late, cannot overwrite a newer view with an older one. The script touches
keys of several hash slots, which a single Redis (local, ElastiCache non-cluster) accepts; on
a cluster the same payload would be split per slot.

The batch travels as one MessagePack argument (keys and values), which the script unpacks
with Redis's own ``cmsgpack``: redis-py packs each command argument in Python, and at ~9
arguments per command that packing cost more CPU than the engine's encoding of the events
(docs/benchmarks.md). Every value is JSON, so it travels as a MessagePack string: Redis's
``cmsgpack`` predates the binary type. Standalone Redis lets a script reach keys it was not
handed in KEYS; the only declared key is the offset, which every write reads first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
import redis

from bourse.adapters import recent_view, redis_conn
from bourse.adapters.redis_book import (
    ACCOUNTS_KEY,
    BOOK_LEVELS,
    FINAL_STATUSES,
    SYMBOLS_KEY,
    balances_key,
    bbo_key,
    book_key,
    encode_order,
    encode_pair,
    encode_spec,
    fees_key,
    offset_key,
    order_field,
    order_from_report,
    orders_key,
    reply_key,
    trade_key,
)
from bourse.domain.event_codec import encode_event
from bourse.domain.events import ExecutionReport, OrderResult, Trade
from bourse.domain.symbols import SymbolSpec
from bourse.engine import Engine


@dataclass
class HashOps:
    """The account and symbol part of a write: whole keys to delete, hash fields to set and
    to delete (bourse.adapters.redis_book names them)."""

    deletes: list[str] = field(default_factory=list)
    hset: list[tuple[str, str, bytes]] = field(default_factory=list)
    hdel: list[tuple[str, str]] = field(default_factory=list)
    strings: list[tuple[str, bytes]] = field(default_factory=list)
    # Recently closed orders (account, "SYMBOL:orderId", closing seq, row) and recent fills
    # (account, row): bourse.adapters.recent_view, capped and expiring.
    closed: list[tuple[int, str, int, bytes]] = field(default_factory=list)
    fills: list[tuple[int, bytes]] = field(default_factory=list)

    @classmethod
    def from_events(
        cls,
        orders: Mapping[tuple[int, str, int], ExecutionReport],
        balances: Mapping[tuple[int, str], tuple[int, int]],
        symbols: Mapping[str, SymbolSpec],
        fees: Mapping[int, tuple[int, int]],
        accounts: Mapping[int, str] | None = None,
        fills: Iterable[ExecutionReport] = (),
    ) -> HashOps:
        """A batch's changes, folded by the pipeline to one state per order/balance/symbol;
        ``fills``: the batch's TRADE reports, every one, in seq order."""
        ops = cls()
        for (account, symbol, order_id), report in orders.items():
            key, name = orders_key(account), order_field(symbol, order_id)
            if report.status in FINAL_STATUSES:
                ops.hdel.append((key, name))
                row = recent_view.encode_row(recent_view.closed_order(report))
                ops.closed.append((account, name, report.seq, row))
            else:
                ops.hset.append((key, name, encode_order(order_from_report(report))))
        for report in fills:
            trade = recent_view.fill(report)
            if trade is not None:
                ops.fills.append((report.order.account_id, recent_view.encode_row(trade)))
        for (account, asset), (free, locked) in balances.items():
            if free == 0 and locked == 0:
                ops.hdel.append((balances_key(account), asset))
            else:
                ops.hset.append((balances_key(account), asset, encode_pair(free, locked)))
        for name, spec in symbols.items():
            ops.hset.append((SYMBOLS_KEY, name, encode_spec(spec)))
        for account, (maker, taker) in fees.items():
            ops.strings.append((fees_key(account), encode_pair(maker, taker)))
        for account, status in (accounts or {}).items():
            ops.hset.append((ACCOUNTS_KEY, str(account), status.encode()))
        return ops

    @classmethod
    def from_engine(cls, engine: Engine) -> HashOps:
        """The whole account and symbol view (start-up), replacing what Redis holds for every
        account and symbol the engine knows."""
        ops = cls(deletes=[SYMBOLS_KEY, ACCOUNTS_KEY])
        for name, spec in engine.symbols().items():
            ops.hset.append((SYMBOLS_KEY, name, encode_spec(spec)))
        for account, status in engine.accounts().items():
            ops.hset.append((ACCOUNTS_KEY, str(account), status.encode()))
        for account, (maker, taker) in engine.account_fees().items():
            ops.strings.append((fees_key(account), encode_pair(maker, taker)))
        for account, assets in engine.balances().items():
            ops.deletes += [balances_key(account), orders_key(account)]
            for asset, (free, locked) in assets.items():
                ops.hset.append((balances_key(account), asset, encode_pair(free, locked)))
            for result in engine.open_orders(account):
                order = result.order
                ops.hset.append(
                    (
                        orders_key(account),
                        order_field(order.symbol, order.order_id),
                        encode_order(OrderResult(result.order, result.status,
                                                 result.executed_qty, result.cum_quote,
                                                 result.working_ts, ())),
                    )
                )  # fmt: skip
        return ops


# KEYS[1] = the offset key. ARGV[1] = the commands offset this write reflects, ARGV[2] = the
# offset the stored view must be at for this write to extend it (-1: any, a rebuild), ARGV[3]
# = the reply TTL, ARGV[4..6] = the closed-order cap, the fills cap and their TTL, ARGV[7] =
# the payload, a MessagePack array of seven flat arrays: keys to delete (a rebuild replaces
# whole hashes), (key, value) strings to set, (key, field, value) to HSET, (key, field) to
# HDEL, (closed hash, its seq index, field, row, seq) closed orders, (key, row) fills and
# (key, value) replies. The closed orders and fills go in with the HDEL that ends the order
# and before the reply: whoever reads the reply finds the order closed in the view.
_APPLY = """
local current = tonumber(redis.call('GET', KEYS[1]) or '-1')
if current > tonumber(ARGV[1]) then return 0 end
local base = tonumber(ARGV[2])
if base >= 0 and current ~= base then return -1 end
redis.call('SET', KEYS[1], ARGV[1])
local reply_ttl, closed_cap, fills_cap, recent_ttl = ARGV[3], tonumber(ARGV[4]),
  tonumber(ARGV[5]), ARGV[6]
local p = cmsgpack.unpack(ARGV[7])
local deletes, strings, hset, hdel, closed, fills, replies =
  p[1], p[2], p[3], p[4], p[5], p[6], p[7]
for i = 1, #deletes do redis.call('DEL', deletes[i]) end
for i = 1, #strings, 2 do redis.call('SET', strings[i], strings[i + 1]) end
for i = 1, #hset, 3 do redis.call('HSET', hset[i], hset[i + 1], hset[i + 2]) end
for i = 1, #hdel, 2 do redis.call('HDEL', hdel[i], hdel[i + 1]) end
-- The caps and TTLs once per key per batch, after its inserts: the same end state as after
-- each insert (seqs only grow, so the cap keeps the same newest entries), in a fraction of
-- the calls (a busy account closes many orders per batch).
local indexes, hash_of = {}, {}
for i = 1, #closed, 5 do
  local hash, index, name = closed[i], closed[i + 1], closed[i + 2]
  redis.call('HSET', hash, name, closed[i + 3])
  redis.call('ZADD', index, closed[i + 4], name)
  if not hash_of[index] then
    hash_of[index] = hash
    indexes[#indexes + 1] = index
  end
end
for k = 1, #indexes do
  local index = indexes[k]
  local hash = hash_of[index]
  local over = redis.call('ZCARD', index) - closed_cap
  if over > 0 then
    local popped = redis.call('ZPOPMIN', index, over)
    for j = 1, #popped, 2 do redis.call('HDEL', hash, popped[j]) end
  end
  redis.call('EXPIRE', hash, recent_ttl)
  redis.call('EXPIRE', index, recent_ttl)
end
local lists, seen = {}, {}
for i = 1, #fills, 2 do
  redis.call('RPUSH', fills[i], fills[i + 1])
  if not seen[fills[i]] then
    seen[fills[i]] = true
    lists[#lists + 1] = fills[i]
  end
end
for k = 1, #lists do
  redis.call('LTRIM', lists[k], -fills_cap, -1)
  redis.call('EXPIRE', lists[k], recent_ttl)
end
for i = 1, #replies, 2 do
  redis.call('RPUSH', replies[i], replies[i + 1])
  redis.call('EXPIRE', replies[i], reply_ttl)
end
return 1
"""

_encoder = msgspec.json.Encoder()
_payload_encoder = msgspec.msgpack.Encoder()


class ViewLost(RuntimeError):
    """The stored live view is not the one a batch's changes extend (see ``apply``)."""


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
        client = redis_conn.connect(url, socket_timeout=10, socket_connect_timeout=5)
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
        ops: HashOps | None = None,
        base: int = -1,
    ) -> bool:
        """Write one batch's view; False if the stored view is already newer (we are stale).

        ``base``: the offset of the view this batch's changes extend (the previous write's).
        A stored view at any other offset, or none (Redis restarted from an older snapshot, or
        empty: it lost writes), would take these changes on top of the wrong state, so nothing
        is written and ``ViewLost`` is raised: only a rebuild from the engine at a batch
        boundary puts it right (the service exits and recovers). -1: a rebuild, on any view."""
        ops = ops or HashOps()
        strings: list[str] = []
        for key, value in values:
            strings += (key, value.decode())
        for trade in trades:
            strings += (trade_key(trade.symbol), encode_event(trade).decode())
        for key, value in ops.strings:
            strings += (key, value.decode())
        hset: list[str] = []
        for key, name, value in ops.hset:
            hset += (key, name, value.decode())
        hdel: list[str] = []
        for key, name in ops.hdel:
            hdel += (key, name)
        closed: list[str] = []
        for account, name, seq, row in ops.closed:
            # The seq as text: Lua would print a number past 1e14 in exponent form.
            closed += (recent_view.closed_key(account), recent_view.closed_index_key(account),
                       name, row.decode(), str(seq))  # fmt: skip
        fills: list[str] = []
        for account, row in ops.fills:
            fills += (recent_view.fills_key(account), row.decode())
        reply_values: list[str] = []
        for request_id, value in replies:
            reply_values += (reply_key(request_id), value.decode())
        payload = _payload_encoder.encode(
            [ops.deletes, strings, hset, hdel, closed, fills, reply_values]
        )
        keys = [self.offset_key]
        args: list[Any] = [
            offset, base, self.reply_ttl_s, recent_view.CLOSED_CAP, recent_view.FILLS_CAP,
            recent_view.RECENT_TTL_S, payload,
        ]  # fmt: skip
        written = int(self._script(keys=keys, args=args))
        if written < 0:
            raise ViewLost(
                f"the live view is at offset {self.offset()}, not {base}, which this batch "
                "extends: Redis lost writes (a restart from an older snapshot, a failover)"
            )
        return written == 1

    def rebuild(
        self,
        engine: Engine,
        offset: int,
        replies: list[tuple[str, bytes]] = (),  # type: ignore[assignment]
    ) -> bool:
        """After start-up: every symbol's book from the engine, plus replies that were
        committed to Kafka but never reached Redis."""
        values = self.book_values(engine, list(engine.symbols()), offset)
        return self.apply(offset, values=values, replies=replies, ops=HashOps.from_engine(engine))
