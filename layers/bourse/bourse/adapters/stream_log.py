"""The message log of the WebSocket streams, in Redis: what the broadcaster published, by
position, for resuming connections (docs/streams.md, "Resumable streams").

One Redis stream per market stream and per account (``bourse.streams.positions``' log names),
entries ``<seq>-<n>`` holding the payload, trimmed to about ``maxlen`` entries each. Every key
has the hash tag ``{wslog}``: the two scripts below touch many of them at once, which a Redis
cluster allows only within one slot (so the log lives on one shard).

The hand-over from a replay to the live stream rests on two scripts that Redis runs one at a
time, and on a marker:

- the broadcaster sets ``pending`` before it looks up a batch's subscribers, and ``append``
  writes the batch's messages, moves ``head``, clears ``pending`` and answers which of the
  batch's position-taking connections are still replaying (those it does not send to);
- a replaying connection's resumer posts what the log holds after its cursor, and
  ``go_live`` ends its replay only when no batch is pending and its logs hold nothing after
  the cursor. A batch whose subscribers were looked up before the connection existed is
  therefore either in the log before the connection goes live (the resumer posts it) or
  was still pending (``go_live`` waits for it): no message is missed, none is sent twice.

``pending`` expires after the broadcaster's own timeout: a broadcaster that died mid-batch
cannot hold resumers back for longer than an invocation could have lived.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from typing import Any

from bourse.adapters import redis_conn
from bourse.settings import Settings
from bourse.streams.positions import Position, entry_id, from_entry_id

PREFIX = "wslog:{wslog}:"
HEAD = PREFIX + "head"
PENDING = PREFIX + "pending"
REPLAYING = PREFIX + "replaying"  # connection id -> the cursor it resumed from

_APPEND = """
local head = redis.call('GET', KEYS[1])
local seq = tonumber(ARGV[2])
local count = tonumber(ARGV[3])
local i = 4
local fresh = true
if head then
  local dash = string.find(head, '-', 1, true)
  fresh = tonumber(string.sub(head, 1, dash - 1)) < seq
end
if fresh and count > 0 then
  local last
  for _ = 1, count do
    last = ARGV[2] .. '-' .. ARGV[i + 1]
    redis.call('XADD', KEYS[tonumber(ARGV[i])], 'MAXLEN', '~', ARGV[1], last, 'd', ARGV[i + 2])
    i = i + 3
  end
  redis.call('SET', KEYS[1], last)
else
  i = i + 3 * count
end
redis.call('DEL', KEYS[2])
local replaying = {}
for j = i, #ARGV do
  if redis.call('HEXISTS', KEYS[3], ARGV[j]) == 1 then
    table.insert(replaying, ARGV[j])
  end
end
return replaying
"""

_GO_LIVE = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
for k = 3, #KEYS do
  if #redis.call('XRANGE', KEYS[k], '(' .. ARGV[2], '+', 'COUNT', 1) > 0 then
    return 0
  end
end
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
"""


class LogGap(Exception):
    """Messages after the cursor have been trimmed from the log: a replay would skip them."""


class StreamLog:
    def __init__(self, client: Any, maxlen: int, pending_ttl_s: int) -> None:
        self._redis = client
        self._maxlen = maxlen
        self._pending_ttl_s = pending_ttl_s
        self._append = client.register_script(_APPEND)
        self._go_live = client.register_script(_GO_LIVE)

    # -- the broadcaster

    def head(self) -> Position | None:
        raw = self._redis.get(HEAD)
        return None if raw is None else from_entry_id(raw)

    def begin_batch(self) -> None:
        self._redis.set(PENDING, b"1", ex=self._pending_ttl_s)

    def append(
        self, seq: int, entries: Sequence[tuple[int, str, bytes]], connection_ids: Iterable[str]
    ) -> set[str]:
        """Writes a batch's messages ``(n, log, payload)`` at ``seq`` (unless the log already
        holds that batch: a batch delivered again), clears ``pending``, and answers which of
        ``connection_ids`` are replaying."""
        keys = [HEAD, PENDING, REPLAYING]
        index: dict[str, int] = {}
        args: list[Any] = [self._maxlen, seq, len(entries)]
        for n, log, data in entries:
            slot = index.get(log)
            if slot is None:
                keys.append(PREFIX + log)
                slot = index[log] = len(keys)  # Lua's KEYS are numbered from 1
            args += [slot, n, data]
        args += list(connection_ids)
        found = self._append(keys=keys, args=args)
        return {c.decode() if isinstance(c, bytes) else str(c) for c in found}

    # -- resuming connections

    def mark_replaying(self, connection_id: str, cursor: Position) -> None:
        self._redis.hset(REPLAYING, connection_id, entry_id(cursor))

    def forget(self, connection_id: str) -> None:
        self._redis.hdel(REPLAYING, connection_id)

    def check(self, logs: Sequence[str], cursor: Position) -> None:
        """``LogGap`` when any of ``logs`` may have trimmed an entry after ``cursor``."""
        pipe = self._redis.pipeline(transaction=False)
        keys = [PREFIX + log for log in logs]
        for key in keys:
            pipe.exists(key)
        exists = pipe.execute()
        pipe = self._redis.pipeline(transaction=False)
        live = [key for key, found in zip(keys, exists, strict=True) if found]
        for key in live:
            pipe.xinfo_stream(key)
        for key, info in zip(live, pipe.execute(), strict=True):
            # Trimming leaves no mark of what it removed but the count: when entries were
            # trimmed and the oldest left is after the cursor, what was removed may have been
            # too (a cursor on the last removed entry itself is refused as well: the safe side).
            first = info.get("first-entry")
            trimmed = int(info.get("entries-added", 0)) > int(info["length"])
            if trimmed and first is not None and from_entry_id(first[0]) > cursor:
                raise LogGap(key[len(PREFIX) :])

    def read_after(
        self, logs: Sequence[str], cursor: Position, count: int
    ) -> list[tuple[Position, str, bytes]]:
        """Up to ``count`` messages of ``logs`` after ``cursor``, in position order: (position,
        log, payload). ``LogGap`` when the log no longer holds what follows the cursor."""
        self.check(logs, cursor)
        pipe = self._redis.pipeline(transaction=False)
        start = "(" + entry_id(cursor)
        for log in logs:
            pipe.xrange(PREFIX + log, start, "+", count)
        runs = []
        for log, entries in zip(logs, pipe.execute(), strict=True):
            runs.append([(from_entry_id(eid), log, fields[b"d"]) for eid, fields in entries])
        return list(heapq.merge(*runs))[:count]

    def go_live(self, connection_id: str, logs: Sequence[str], cursor: Position) -> bool:
        keys = [PENDING, REPLAYING, *(PREFIX + log for log in logs)]
        return bool(self._go_live(keys=keys, args=[connection_id, entry_id(cursor)]))


def from_settings(settings: Settings) -> StreamLog:
    """The deployment's log, on the live view's Redis (through ``redis_conn``: the AUTH token)."""
    client = redis_conn.connect(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
    return StreamLog(client, settings.stream_log_maxlen, settings.stream_log_pending_ttl_s)
