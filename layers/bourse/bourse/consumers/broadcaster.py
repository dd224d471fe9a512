"""The broadcaster: one MSK batch of bourse.events -> Binance stream messages -> every
WebSocket connection subscribed to them (docs/streams.md).

Per invocation:
1. Decode the records (a record that does not decode is logged and skipped: the stream is
   best effort, and the record's gap is the recorder's to report).
2. ``StreamState.apply`` turns the events into messages (skipping seqs already published, so
   a batch delivered again publishes nothing twice).
3. Look up the subscribers of every stream and account the batch touched (``SubscriberCache``:
   DynamoDB queries, cached, plus the subscriptions of the last minutes from Redis, one
   pipeline), build each connection's frames in publishing order, wrapped as the connection
   wants them (``Connection.frame`` / ``user_frame``).
4. Post them in parallel (``Pusher``; beyond ``pusher_shard_size`` connections, shards of them
   through parallel pusher invocations, ``ShardedPusher``); connections that are gone are
   deleted.

User data reaches a listen key's connections only while the key is live: before building the
frames, the listen keys of the account subscribers are checked (``LiveListenKeys``: the
table's ``validUntil``, kept briefly); a key that expired without keepalive (or was closed, if
its DELETE missed a connection) has its connections sent ``listenKeyExpired`` and closed
(``ListenKeyStreams``, on the lookup pool), and they get nothing more. A quiet account's
expired key is ended by its next event; until then its connections receive nothing anyway.

Nothing here fails the batch: a message that could not be delivered is not delivered again
(WebSocket streams are live data, and a client resynchronises from REST, as Binance's
procedure says), so the handler always reports success.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from collections.abc import Set as AbstractSet
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from bourse.adapters import stream_log
from bourse.adapters.connections import RECENT_SECONDS, account_stream
from bourse.adapters.listen_key_streams import ListenKeyStreams, LiveListenKeys
from bourse.adapters.pusher_shards import ShardedPusher
from bourse.adapters.stream_log import StreamLog
from bourse.adapters.ws_push import Pusher
from bourse.consumers.msk_records import records
from bourse.domain.event_codec import EventDecodeError, decode_events
from bourse.domain.events import Event
from bourse.settings import Settings
from bourse.streams.frames import MAX_MESSAGE_BYTES
from bourse.streams.market import Batch, Seed, StreamState
from bourse.streams.positions import numbered, positioned_event, positioned_frame

_encode = msgspec.json.Encoder().encode
log = logging.getLogger("bourse.broadcaster")


class Subscribers(Protocol):
    def connections_for_stream(self, stream: str) -> list[Any]: ...

    def connections_for_account(self, account_id: int) -> list[Any]: ...

    def delete_connection(self, connection_id: str) -> None: ...


class Recent(Protocol):
    """The subscriptions of the last minutes (``bourse.adapters.connections.RecentSubscriptions``),
    by the subscriptions table's stream names: each stream's subscribers, in order."""

    def read(self, streams: Sequence[str]) -> list[list[Any]]: ...


def frames_for(
    batch: Batch,
    by_stream: dict[str, list[Any]],
    by_account: dict[int, list[Any]],
    seq: int = 0,
    replaying: AbstractSet[str] = frozenset(),
) -> dict[str, list[bytes]]:
    """Each connection's frames, in the batch's publishing order (market, then user data).

    A frame is encoded once per message and wrapping (raw or combined; a subscription id or
    listen key for user data; the positioned envelope at ``(seq, n)``) and shared by every
    connection that receives it that way: with 1,000 subscribers a message is encoded twice
    at most, not 1,000 times. Connections in ``replaying`` get nothing (their resumer sends
    them this batch from the log)."""
    out: dict[str, list[bytes]] = {}
    n = 0  # the message's place in the batch, as bourse.streams.positions.numbered counts
    for message in batch.market:
        raw = msgspec.Raw(message.data)
        encoded: dict[bool, bytes] = {}
        positioned = b""
        for conn in by_stream.get(message.stream, ()):
            if conn.positions:
                if conn.connection_id in replaying:
                    continue
                if not positioned:
                    positioned = positioned_frame(message.stream, message.data, (seq, n))
                out.setdefault(conn.connection_id, []).append(positioned)
                continue
            frame = encoded.get(conn.combined)
            if frame is None:
                frame = encoded[conn.combined] = _encode(conn.frame(message.stream, raw))
            out.setdefault(conn.connection_id, []).append(frame)
        n += 1
    for account_id, messages in batch.user.items():
        conns = by_account.get(account_id, ())
        for data in messages:
            raw = msgspec.Raw(data)
            wrapped: dict[tuple[int | None, str | None, bool], bytes] = {}
            for conn in conns:
                positions = conn.positions
                if positions and conn.connection_id in replaying:
                    continue
                key = (conn.subscription_id, conn.listen_key if conn.combined or positions
                       else None, positions)  # fmt: skip
                got = wrapped.get(key)
                if got is None:
                    got = wrapped[key] = _user_frame(conn, raw, data, (seq, n))
                out.setdefault(conn.connection_id, []).append(got)
            n += 1
    return out


def _user_frame(conn: Any, raw: msgspec.Raw, data: bytes, position: tuple[int, int]) -> bytes:
    """A user data event as ``conn`` receives it: positioned for a listen key connection that
    asked (``withSeq``, ``resumeFrom``) or a ``session.resume`` subscription."""
    if conn.positions:
        if conn.subscription_id is not None:
            return positioned_event(conn.subscription_id, data, position)
        if conn.listen_key is not None:
            return positioned_frame(conn.listen_key, data, position)
    encoded: bytes = _encode(conn.user_frame(raw))
    return encoded


Key = tuple[str, str | int]  # ("stream", name) or ("account", account_id)


def _table_stream(key: Key) -> str:
    kind, value = key
    return str(value) if kind == "stream" else account_stream(int(value))


class SubscriberCache:
    """The subscribers of streams and accounts: cached DynamoDB lists, refreshed in the
    background, joined with the subscriptions of the last minutes (``recent``, Redis).

    A lookup is a DynamoDB query, and a batch touches some 30 streams per symbol: querying
    them all on every batch put about a second (locally) on the latency path. A list up to
    ``ttl_s`` old is used as it is; up to twice that, it is used for the batch in hand while a
    refresh runs on the pool; older (a quiet stream), it is queried again first. So queries
    stay off the latency path of busy streams.

    Such a list (and the ``by-stream`` index it comes from, eventually consistent) can miss a
    subscription acknowledged a moment ago: every ``get`` adds, from one Redis pipeline, the
    subscriptions of the last ``RECENT_SECONDS`` (``RecentSubscriptions``, written before the
    client is answered). So a connection receives every batch handled after its subscription
    was acknowledged; where a connection is in both, the recent entry wins (it is never
    older: ``SET_PROPERTY`` records the subscriptions again). A connection found gone is
    dropped at once (``forget``), from both.
    Without ``recent`` (tests), new subscriptions arrive within two TTLs.
    """

    def __init__(
        self,
        subscribers: Subscribers,
        pool: ThreadPoolExecutor,
        ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
        recent: Recent | None = None,
    ) -> None:
        self._subscribers = subscribers
        self.pool = pool
        self._ttl_s = ttl_s
        self._clock = clock
        self._recent = recent
        self._lock = threading.Lock()
        self._entries: dict[Key, tuple[float, list[Any]]] = {}
        self._refreshing: set[Key] = set()
        # Connections found gone (connection id -> when): Redis may list them a little longer.
        self._gone: dict[str, float] = {}

    def _query(self, key: Key) -> list[Any]:
        kind, value = key
        if kind == "stream":
            return self._subscribers.connections_for_stream(str(value))
        return self._subscribers.connections_for_account(int(value))

    def _store(self, key: Key, fetched_at: float, conns: list[Any]) -> None:
        with self._lock:
            self._entries[key] = (fetched_at, conns)
            self._refreshing.discard(key)

    def _refresh(self, key: Key) -> None:
        fetched_at = self._clock()
        try:
            conns = self._query(key)
        except Exception:
            with self._lock:
                self._refreshing.discard(key)  # the next batch tries again
            raise
        self._store(key, fetched_at, conns)

    def get(self, keys: list[Key]) -> dict[Key, list[Any]]:
        now = self._clock()
        out: dict[Key, list[Any]] = {}
        missing: list[Key] = []
        with self._lock:
            for key in keys:
                entry = self._entries.get(key)
                if entry is None:
                    missing.append(key)
                    continue
                age = now - entry[0]
                if age > 2 * self._ttl_s:
                    missing.append(key)
                    continue
                out[key] = entry[1]
                if age > self._ttl_s and key not in self._refreshing:
                    self._refreshing.add(key)
                    self.pool.submit(self._refresh, key)
        for key, conns in zip(missing, self.pool.map(self._query, missing), strict=True):
            self._store(key, now, conns)
            out[key] = conns
        if self._recent is not None and keys:
            self._add_recent(self._recent, keys, out)
        return out

    def _add_recent(self, source: Recent, keys: list[Key], out: dict[Key, list[Any]]) -> None:
        try:
            recent = source.read([_table_stream(k) for k in keys])
        except Exception:
            # Redis unreachable: the cached lists alone (new subscriptions wait for a refresh).
            log.warning("recent subscriptions not read", exc_info=True)
            return
        with self._lock:
            gone = set(self._gone)
        for key, conns in zip(keys, recent, strict=True):
            fresh = {c.connection_id: c for c in conns if c.connection_id not in gone}
            if not fresh:
                continue
            # A recent entry is never older than the list's: it replaces the listed one (a
            # SET_PROPERTY changed how the connection's payloads are wrapped).
            listed = [fresh.pop(c.connection_id, c) for c in out[key]]
            out[key] = [*listed, *fresh.values()]

    def forget(self, connection_ids: set[str]) -> None:
        now = self._clock()
        with self._lock:
            for key, (fetched_at, conns) in list(self._entries.items()):
                kept = [c for c in conns if c.connection_id not in connection_ids]
                if len(kept) != len(conns):
                    self._entries[key] = (fetched_at, kept)
            self._gone = {c: t for c, t in self._gone.items() if now - t < RECENT_SECONDS * 2}
            self._gone.update(dict.fromkeys(connection_ids, now))


def _state_after(log: StreamLog, seed: Seed | None) -> StreamState:
    """A stream state that publishes only what the log does not hold yet."""
    state = StreamState(seed)
    head = log.head()
    if head is not None:
        state.last_seq = head[0]
    return state


@dataclass
class Broadcaster:
    state: StreamState
    subscribers: Subscribers
    cache: SubscriberCache
    pusher: Pusher | ShardedPusher
    logger: Logger
    metrics: Metrics
    # Listen keys' validity and the closing of their ended streams; None: not checked.
    live_keys: LiveListenKeys | None = None
    key_streams: ListenKeyStreams | None = None
    # The message log resuming connections replay from (bourse.adapters.stream_log); None:
    # nothing logged, positions still numbered.
    log: StreamLog | None = None
    seed: Seed | None = None
    _deleting: list[Future[None]] = field(default_factory=list)

    @classmethod
    def from_settings(cls, settings: Settings, logger: Logger, metrics: Metrics) -> Broadcaster:
        from bourse.adapters import connections, listen_keys
        from bourse.adapters.pusher_shards import lambda_client
        from bourse.adapters.stream_seed import RedisSeed
        from bourse.adapters.ws_push import connections_api, management_client

        threads = settings.broadcaster_threads
        # Redis clients come from bourse.adapters.redis_conn (the AUTH token on AWS): the
        # seeds', and the store's for the recent subscriptions.
        store = connections.store()
        assert store.recent is not None
        # boto3's default HTTP pool (aws.client) holds 10 connections: as many lookups.
        lookups = ThreadPoolExecutor(max_workers=10, thread_name_prefix="ws-lookup")
        ttl_s = settings.broadcaster_subscribers_ttl_ms / 1000
        if 2 * ttl_s > RECENT_SECONDS / 4:
            # A cached list must be far younger than the recent subscriptions' window, or a
            # subscription could leave Redis before the lists include it.
            logger.warning("subscribers TTL capped", extra={"ttlSeconds": ttl_s})
            ttl_s = RECENT_SECONDS / 8
        seed = RedisSeed.connect(settings.redis_url)
        log = stream_log.from_settings(settings)
        return cls(
            state=_state_after(log, seed),
            subscribers=store,
            cache=SubscriberCache(store, lookups, ttl_s, recent=store.recent),
            pusher=ShardedPusher(
                Pusher(connections_api(settings, threads), threads),
                lambda_client(settings, 16),
                settings.pusher_function,
                settings.pusher_shard_size,
            ),
            logger=logger,
            metrics=metrics,
            live_keys=LiveListenKeys(listen_keys.validity()),
            key_streams=ListenKeyStreams(store, management_client(settings, 1), store.recent),
            log=log,
            seed=seed,
        )

    def decode(self, event: dict[str, Any]) -> list[Event]:
        events: list[Event] = []
        for partition, offset, value in records(event):
            try:
                events.extend(decode_events(value))
            except EventDecodeError:
                self.logger.exception(
                    "undecodable record skipped", extra={"partition": partition, "offset": offset}
                )
        return events

    def handle(self, event: dict[str, Any]) -> dict[str, Any]:
        started = time.perf_counter()
        events = self.decode(event)
        if events:
            # How late the batch arrives: the engine's command time to now (same clock on one
            # host; on AWS the orders function's and this one's, both NTP-synced).
            age = time.time() - events[-1].ts / 1000
            self.metrics.add_metric("EventAgeSeconds", MetricUnit.Seconds, max(age, 0.0))
        if self.log is not None:
            self.log.begin_batch()
        try:
            frames = self.fan_out(self.state.apply(events))
        except Exception:
            if self.log is not None:
                # The batch is delivered again: a fresh state (from the log's head and the
                # seed) publishes and logs it then, instead of skipping its seqs as applied.
                self.state = _state_after(self.log, self.seed)
            raise
        self.metrics.add_metric("MessagesPosted", MetricUnit.Count, frames)
        self.metrics.add_metric(
            "BroadcastSeconds", MetricUnit.Seconds, time.perf_counter() - started
        )
        return {"batchItemFailures": []}

    def subscribers_of(self, batch: Batch) -> tuple[dict[str, list[Any]], dict[int, list[Any]]]:
        keys: list[Key] = [("stream", s) for s in dict.fromkeys(m.stream for m in batch.market)]
        keys += [("account", a) for a in batch.user]
        found = self.cache.get(keys)
        by_stream = {str(k[1]): v for k, v in found.items() if k[0] == "stream"}
        by_account = {int(k[1]): v for k, v in found.items() if k[0] == "account"}
        return by_stream, self._without_ended_keys(by_account)

    def _without_ended_keys(self, by_account: dict[int, list[Any]]) -> dict[int, list[Any]]:
        """The account subscribers whose listen key (if any) is live; the others are ended."""
        if self.live_keys is None or self.key_streams is None:
            return by_account
        keys = {c.listen_key for conns in by_account.values() for c in conns if c.listen_key}
        ended = self.live_keys.ended(keys) if keys else set()
        if not ended:
            return by_account
        closing: dict[str, dict[str, Any]] = {}  # listen key -> connection id -> connection
        kept: dict[int, list[Any]] = {}
        for account_id, conns in by_account.items():
            kept[account_id] = [c for c in conns if c.listen_key not in ended]
            for c in conns:
                if c.listen_key in ended:
                    closing.setdefault(c.listen_key, {})[c.connection_id] = c
        self.cache.forget({cid for conns in closing.values() for cid in conns})
        end = self.key_streams.end_connections
        pool = self.cache.pool
        self._deleting += [pool.submit(end, k, list(c.values())) for k, c in closing.items()]
        self.metrics.add_metric("ListenKeysEnded", MetricUnit.Count, len(closing))
        return kept

    def wait_for_deletes(self) -> None:
        for future in self._deleting:
            future.result()

    def fan_out(self, batch: Batch) -> int:
        log = self.log
        seq = self.state.last_seq
        if not batch.market and not batch.user:
            if log is not None:
                log.append(seq, [], [])  # ends the pending mark
            return 0
        started = time.perf_counter()
        by_stream, by_account = self.subscribers_of(batch)
        replaying: set[str] = set()
        if log is not None:
            positioned = {
                c.connection_id
                for conns in (*by_stream.values(), *by_account.values())
                for c in conns
                if c.positions
            }
            entries = list(numbered([(m.stream, m.data) for m in batch.market], batch.user))
            replaying = log.append(seq, entries, positioned)
        frames = frames_for(batch, by_stream, by_account, seq, replaying)
        self.metrics.add_metric("LookupSeconds", MetricUnit.Seconds, time.perf_counter() - started)
        for cid, items in frames.items():
            # Never hand API Gateway a frame over its limit (bourse.streams.frames keeps every
            # message under it; this guards the envelope around it).
            if any(len(f) > MAX_MESSAGE_BYTES for f in items):
                self.logger.error("oversize frame dropped", extra={"connectionId": cid})
                frames[cid] = [f for f in items if len(f) <= MAX_MESSAGE_BYTES]
        result = self.pusher.post_all(frames)
        self.cache.forget(set(result.gone))
        # Deleting a connection is a query and a few deletes: off the latency path, on the
        # lookup pool (the cache already stopped sending to it).
        delete = self.subscribers.delete_connection
        self._deleting = [f for f in self._deleting if not f.done()]
        self._deleting += [self.cache.pool.submit(delete, cid) for cid in result.gone]
        if result.gone:
            self.metrics.add_metric("ConnectionsGone", MetricUnit.Count, len(result.gone))
        if result.failed:
            self.logger.warning("frames not delivered", extra={"failed": result.failed})
        return result.sent
