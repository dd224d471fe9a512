"""The consume-transform-produce loop around the engine, and its recovery.

Exactly once, and why a crash cannot publish a duplicate
--------------------------------------------------------
* Each batch is one Kafka transaction holding its event records, and each record carries the
  commands offsets of its batch (``clocks.batch_headers``): the position after the batch
  becomes visible to ``read_committed`` readers with its events or not at all, so "events
  published" and "commands consumed" can never disagree. The consumer group's offset is a copy
  of that position, put into a batch's transaction at most every
  ``matching_offset_commit_ms`` and at once when the service goes idle or stops (a transaction
  with the group's offset costs the broker twice one without: ``published``).
* The transactional id is fixed per deployment. ``init_transactions()`` at start-up bumps the
  producer epoch, which aborts whatever the previous incarnation left open and fences it: a
  zombie still running gets ``ProducerFencedError`` on its next send/commit and exits.
* Only after ``init_transactions()`` does the service read the committed position ``C``
  (the larger of the last event record's offsets header and the group's offset,
  ``published.position``); it is stable then (no transaction of ours is pending). It
  restores the newest valid snapshot at offset ``S <= C`` and re-applies commands ``[S, C)``
  to the engine **without publishing**: their events are already in the log. Publishing
  starts at ``C``. The engine is deterministic, so the events of ``C`` onward are exactly the
  ones the crashed process would have produced.
* A check closes the loop: after the silent replay the engine's last seq must equal the seq of
  the last committed event in ``bourse.events``; if it does not, the service refuses to publish
  a forked history and exits.
* Any failure inside a batch (Kafka, Redis) exits the process instead of retrying: the engine
  has already applied the batch, and the only correct way back is recovery. The supervisor
  (devstack, ECS) restarts it.

Redis, the live view, is written after each commit with the batch's commands offset; on
start-up the view is rebuilt from the engine, and the replies of commands committed to Kafka
but never written to Redis (crash between the two) are written then.

Four stages overlap, each in batch order: librdkafka's threads fetch and parse command records
(``fetcher``), the main thread matches batch N+2, the Kafka thread commits batch N+1's
transaction and the view thread writes batch N's view. The Kafka thread hands a batch to the
view thread only once its transaction has committed, so a reply is never visible before its
events are; transaction N+1 begins only after N has committed; and view write N+1 extends view
write N (``RedisView.apply``'s base).
"""

from __future__ import annotations

import gc
import logging
import signal
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import confluent_kafka
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from bourse.adapters import aws
from bourse.adapters import kafka as kafka_adapter
from bourse.domain.admin_auth import AdminVerifier
from bourse.engine import Engine
from bourse.settings import Settings
from matching_service.admin_keys import AdminKeyError, load_verifier
from matching_service.clocks import MissingClock, RecordedClocks, batch_headers
from matching_service.fetcher import (
    FETCH_MAX_BYTES,
    PARTITION_FETCH_MAX_BYTES,
    Fetcher,
    FetcherGone,
)
from matching_service.metrics import Metrics
from matching_service.phases import PhaseClock
from matching_service.pipeline import BatchOutput, run_batch
from matching_service.published import Diverged, Published, last_published, position
from matching_service.redis_view import HashOps, RedisView, ViewLost
from matching_service.snapshots import SnapshotStore

log = logging.getLogger("matching_service")

# All records of bourse.events carry one constant key. With one partition any key keeps the
# order; the constant makes that true for every partition count: a trade moves two accounts
# and a symbol at once, so neither a symbol key nor an account key can keep both per-account
# and per-symbol order if the topic is ever split. Total order by seq is the contract.
EVENTS_KEY = b"bourse"

# What a producer whose epoch was bumped by a newer instance gets, depending on the request
# (librdkafka turns the broker's answer into its own fatal _FENCED, or passes it on).
_FENCING_CODES = frozenset(
    {
        confluent_kafka.KafkaError._FENCED,
        confluent_kafka.KafkaError.PRODUCER_FENCED,
        confluent_kafka.KafkaError.INVALID_PRODUCER_EPOCH,
        confluent_kafka.KafkaError.TRANSACTION_COORDINATOR_FENCED,
    }
)

# How long one transactional call may block before the service gives up on the batch and
# exits (recovery then takes over): far above a healthy commit, below the transaction timeout.
_TXN_CALL_TIMEOUT_S = 30.0


def _is_fencing(exc: confluent_kafka.KafkaException) -> bool:
    error = exc.args[0] if exc.args else None
    return isinstance(error, confluent_kafka.KafkaError) and error.code() in _FENCING_CODES


EXIT_OK = 0
EXIT_ERROR = 1
EXIT_FENCED = 3
EXIT_DIVERGED = 4
EXIT_VIEW_LOST = 5  # Redis lost writes under the running service; a restart rebuilds the view


def _recovery_consumer_config(settings: Settings) -> dict[str, Any]:
    """Recovery's (kafka-python) commands consumer settings: the silent replay reads the
    log from the snapshot's offset to the committed one as fast as it can."""
    return {
        "max_poll_records": settings.matching_batch_max,
        "fetch_min_bytes": 1,
        "fetch_max_bytes": FETCH_MAX_BYTES,
        "max_partition_fetch_bytes": PARTITION_FETCH_MAX_BYTES,
        "fetch_max_wait_ms": settings.matching_poll_ms,
        # kafka-python verifies CRCs in Python code unless the crc32c package is present;
        # the broker has verified them on produce and TCP on the way.
        "check_crcs": False,
    }


class Fenced(Exception):
    """Another instance with our transactional id took over."""


@dataclass
class Recovery:
    snapshot_offset: int
    committed_offset: int
    replayed: int
    last_seq: int
    seconds: float


class MatchingService:
    def __init__(
        self,
        settings: Settings,
        metrics: Metrics | None = None,
        verifier: AdminVerifier | None = None,
    ) -> None:
        self.settings = settings
        # The trusted admin signing keys; loaded from KMS in run() unless given (tests).
        self.verifier = verifier
        self.metrics = metrics or Metrics()
        self.tp = TopicPartition(settings.commands_topic, 0)
        self.stopping = False
        self.engine = Engine()
        self.position = 0  # next commands offset to apply (== committed once idle)
        self.last_seq = 0
        self.commands_since_snapshot = 0
        self.committed = 0  # next offset whose command is not yet committed (Kafka)
        self._view_offset = 0  # the commands offset of the live view this process last wrote
        # The consumer group's copy of the position (``published``): what it was last set to
        # and when. It lags ``committed`` by at most matching_offset_commit_ms under load.
        self.group_offset: int | None = None
        self._group_copied_at = time.monotonic()
        self._offset_commit_s = settings.matching_offset_commit_ms / 1000
        # One thread commits batch N's transaction while the loop matches batch N+1, another
        # writes batch N-1's view meanwhile (matching_view_overlap; else the Kafka thread
        # writes each batch's view itself after its commit).
        self._kafka_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kafka-commit")
        self._view_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="view-write")
        self._pending: Future[None] | None = None  # the last batch's transaction
        self._pending_view: Future[None] | None = None  # the last committed batch's view write
        self.phases = PhaseClock(self.metrics.registry)
        self.overlapped = settings.matching_pipeline == "overlapped"
        self.fetcher: Fetcher | None = None  # the serving loop's consumer
        self.producer: confluent_kafka.Producer | None = None
        self.consumer: KafkaConsumer | None = None  # recovery's
        self.snapshots = SnapshotStore(
            aws.client("s3"), settings.snapshots_bucket, settings.snapshot_prefix
        )
        self.view = RedisView.from_url(
            settings.redis_url, settings.commands_topic, reply_ttl_s=settings.reply_ttl_seconds
        )

    # ------------------------------------------------------------------ wiring

    def _verifier(self) -> AdminVerifier:
        if self.verifier is None:
            raise RuntimeError("admin signing keys not loaded")
        return self.verifier

    def _connect(self) -> None:
        s = self.settings
        self.producer = kafka_adapter.librdkafka_producer(
            transactional_id=s.matching_transactional_id,
            **{
                # No linger: a batch's records are complete when they are produced.
                # Compression off: records travel over the loopback or the VPC, and the
                # service is CPU-bound.
                "linger.ms": 0,
                "batch.size": 1 << 20,
                "message.max.bytes": 4 << 20,
                "transaction.timeout.ms": 60_000,
                "client.id": "matching",
            },
        )
        # The serving loop's consumer; created now because recovery's offset commit needs its
        # group metadata, and its connections come up while recovery runs.
        self.fetcher = Fetcher(s)
        # Group id for the committed offset only: partitions are assigned by hand (there is
        # exactly one), so there is no rebalance on start and no heartbeat to miss.
        self.consumer = kafka_adapter.consumer(
            group_id=s.matching_group_id, client_id="matching", **_recovery_consumer_config(s)
        )
        self.consumer.assign([self.tp])

    # ------------------------------------------------------------------ recovery

    def recover(self) -> Recovery:
        assert self.producer is not None and self.consumer is not None
        started = time.monotonic()
        # Where recovery's time goes, in its log line: the restart budget (docs/benchmarks.md,
        # "Restart") is spent here, and an operator waiting on a restart asks which part.
        phases: dict[str, float] = {}
        mark = started

        def lap(name: str) -> None:
            nonlocal mark
            now = time.monotonic()
            phases[name] = round(now - mark, 3)
            mark = now

        # Fence any previous incarnation first: after this no transaction of ours is pending,
        # so the committed offset read next is final.
        self._transactional(self.producer.init_transactions)
        lap("fence")
        stored = self.group_offset = self.consumer.committed(self.tp)
        published = last_published(self.settings)
        found = position(published, stored)
        # Snapshots are of committed state only, so without a known position any of them is
        # at or below the real one: the newest will do.
        log_end = self.consumer.end_offsets([self.tp])[self.tp]
        restored = self.snapshots.load_newest(log_end if found is None else found)
        lap("snapshot")
        self.engine = restored.engine
        start = restored.meta.offset if restored.meta else 0
        self.last_seq = restored.meta.last_seq if restored.meta else 0
        if restored.meta:
            log.info(
                "snapshot restored",
                extra={"key": restored.meta.key, "offset": start, "seq": self.last_seq},
            )
        snapshot_offset = start
        # Commands replayed below are judged by the clocks their first run recorded.
        clocks = RecordedClocks(self.settings, start)
        proved = None if published is None else published.next_offset
        if found is None:
            committed = self._position_from_events(start, log_end, clocks, published)
            start = committed  # replayed (silently) on the way: nothing left to replay below
            source = "replay"
        else:
            committed = found
            source = "events" if proved == found else "group"
        if committed and committed != stored:
            self._commit_offset(committed)  # the group's copy catches up with the position
        redis_offset = self.view.offset()
        # Replies of commands at or after the view's offset were committed to Kafka but may
        # never have reached Redis (crash between the commit and the Redis write).
        reply_from = committed if redis_offset is None else max(redis_offset, start)
        replies: list[tuple[str, bytes]] = []
        replayed = 0
        if start < committed:
            self.consumer.seek(self.tp, start)
            while True:
                batch = self._poll_until(committed)
                if not batch:
                    break
                quiet = [r for r in batch if r[0] < reply_from]
                loud = [r for r in batch if r[0] >= reply_from]
                for part, want in ((quiet, False), (loud, True)):
                    if part:
                        out = run_batch(
                            self.engine, part, verifier=self._verifier(), publish=False,
                            want_replies=want, clock=clocks.at,
                        )  # fmt: skip
                        replayed += out.commands
                        if out.last_seq:
                            self.last_seq = out.last_seq
                        replies.extend(out.replies)
                if batch[-1][0] >= committed - 1:
                    break
        lap("replay")
        self.consumer.seek(self.tp, committed)
        self.position = self.committed = committed
        self._check_continuity(published)
        lap("continuity")
        if not self.view.rebuild(self.engine, committed, replies):
            # The stored view claims a newer offset than the log's committed one: it was written
            # for another history (topics recreated, a Redis restored from elsewhere). We have
            # just fenced every other writer, so the engine's view replaces it.
            log.error(
                "redis view is ahead of the committed offset; replacing it",
                extra={"redis_offset": redis_offset, "committed": committed},
            )
            self.view.client.delete(self.view.offset_key)
            self.view.rebuild(self.engine, committed, replies)
        lap("view")
        self._view_offset = committed
        self.metrics.offset.set(committed)
        self.metrics.last_seq.set(self.last_seq)
        seconds = time.monotonic() - started
        log.info(
            "recovered",
            extra={"snapshot_offset": snapshot_offset, "committed": committed,
                   "position_from": source, "group_offset": stored, "replayed": replayed,
                   "seq": self.last_seq, "replies_rewritten": len(replies),
                   "seconds": round(seconds, 3), "phases": phases},
        )  # fmt: skip
        self.commands_since_snapshot = committed - snapshot_offset
        return Recovery(snapshot_offset, committed, replayed, self.last_seq, seconds)

    def _position_from_events(
        self, start: int, log_end: int, clocks: RecordedClocks, end: Published | None
    ) -> int:
        """Where the published history ends in the commands log, when neither the group nor
        the last event record says (Kafka drops a group's offsets ``offsets.retention.minutes``
        after its last commit, a deleted or renamed group; a log written before event records
        carried their batch's offsets). Never 0 by default: that would match and
        publish the whole log a second time. Instead the engine, restored from the newest
        snapshot at ``start``, replays commands silently until its seq is the last seq of
        ``bourse.events``; the offset after that command is the position. When retention has
        emptied ``bourse.events`` too, only a snapshot at the log's end proves the position;
        anything else refuses to start (Diverged) and says what to do."""
        assert self.consumer is not None
        published = None if end is None else end.seq
        log.warning(
            "no committed offset: finding the position from the event stream",
            extra={"snapshot_offset": start, "log_end": log_end, "published_seq": published},
        )
        if published is None:
            if start == log_end:
                return start
            raise Diverged(
                f"the group {self.settings.matching_group_id} has no committed offset and "
                f"retention has emptied {self.settings.events_topic}: the position in "
                f"{self.settings.commands_topic} between the newest snapshot (offset {start}) "
                f"and its end ({log_end}) cannot be proved; commit the offset to resume from "
                "to the group by hand (docs/operations.md, matching-service runbook)"
            )
        if self.last_seq > published:
            raise Diverged(
                f"the snapshot at offset {start} is at seq {self.last_seq}, beyond the end of "
                f"{self.settings.events_topic} (seq {published})"
            )
        position = start
        if self.last_seq < published:
            self.consumer.seek(self.tp, start)
        while self.last_seq < published:
            batch = self._poll_until(log_end)
            if not batch:
                break
            for offset, value in batch:
                out = run_batch(
                    self.engine, [(offset, value)], verifier=self._verifier(), publish=False,
                    want_replies=False, clock=clocks.at,
                )  # fmt: skip
                position = offset + 1
                if out.last_seq:
                    self.last_seq = out.last_seq
                if self.last_seq >= published:
                    break
        if self.last_seq != published:
            raise Diverged(
                f"replaying {self.settings.commands_topic} from offset {start} brought the "
                f"engine to seq {self.last_seq} at offset {position}, but "
                f"{self.settings.events_topic} ends at seq {published}"
            )
        log.warning("position found from the event stream", extra={"offset": position})
        return position

    def _commit_offset(self, offset: int) -> None:
        """Commit ``offset`` for the group in a transaction of its own (no records): after a
        recovery that found the group behind, when the loop goes idle or stops with the group's
        copy behind, and again while idle, so that it never expires."""
        producer = self.producer
        assert producer is not None

        def commit() -> None:
            producer.begin_transaction()
            self._send_offset(producer, offset)
            producer.commit_transaction(_TXN_CALL_TIMEOUT_S)

        self._transactional(commit)
        self._group_copied(offset)

    def _group_copied(self, offset: int) -> None:
        self.group_offset = offset
        self._group_copied_at = time.monotonic()

    def _copy_offset_if_behind(self) -> None:
        """Nothing in flight: the group's copy of the position catches up (monitoring and the
        runbooks read it; an event stream emptied by retention leaves only it)."""
        if self.group_offset != self.committed and self.committed:
            self._commit_offset(self.committed)

    def _send_offset(self, producer: confluent_kafka.Producer, offset: int) -> None:
        assert self.fetcher is not None
        producer.send_offsets_to_transaction(
            [confluent_kafka.TopicPartition(self.settings.commands_topic, 0, offset)],
            self.fetcher.group_metadata(),
            _TXN_CALL_TIMEOUT_S,
        )

    @staticmethod
    def _transactional(call: Callable[[], None]) -> None:
        """``call`` (the producer's transactional calls), its fencing raised as Fenced."""
        try:
            call()
        except confluent_kafka.KafkaException as exc:
            if _is_fencing(exc):
                raise Fenced(repr(exc)) from exc
            raise

    def _poll_until(self, end: int) -> list[tuple[int, bytes]]:
        """The next records below offset ``end`` (replay); empty when the log has no more."""
        assert self.consumer is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.consumer.position(self.tp) >= end:
                return []
            polled = self.consumer.poll(
                timeout_ms=500, max_records=self.settings.matching_batch_max * 5
            )
            records = polled.get(self.tp, [])
            if records:
                return [(r.offset, r.value) for r in records if r.offset < end]
        raise KafkaError(f"replay stalled below committed offset {end}")

    def _check_continuity(self, end: Published | None) -> None:
        """The engine must continue exactly where the committed event stream ends (``end``,
        read once the previous incarnation was fenced: nobody has written since)."""
        published = None if end is None else end.seq
        if published is None:
            # Retention removed every record (the service idled past it): nothing to compare.
            log.warning("bourse.events holds no record: continuity not checked")
            return
        if published != self.last_seq:
            raise Diverged(
                f"engine is at seq {self.last_seq} but bourse.events ends at seq {published}"
            )

    # ------------------------------------------------------------------ the loop

    def publish(self, out: BatchOutput) -> None:
        producer = self.producer
        assert producer is not None
        topic = self.settings.events_topic
        headers: list[tuple[str, str | bytes | None]] = [
            *batch_headers(out.first_offset, out.next_offset, out.clock)
        ]
        # The records carry the position; the group's copy rides along now and then, and
        # always when there is no record to carry it (a batch of undecodable commands).
        copy_offset = (
            not out.records or time.monotonic() - self._group_copied_at >= self._offset_commit_s
        )

        def transaction() -> None:
            producer.begin_transaction()
            for value in out.records:
                producer.produce(topic, value, key=EVENTS_KEY, headers=headers)
            if copy_offset:
                self._send_offset(producer, out.next_offset)
            # Flushes the records first; a record that failed fails the commit.
            producer.commit_transaction(_TXN_CALL_TIMEOUT_S)
            producer.poll(0)  # their delivery reports, so that they do not pile up

        self._transactional(transaction)
        if copy_offset:
            self._group_copied(out.next_offset)

    def step(self, records: list[tuple[int, bytes]]) -> BatchOutput:
        """Apply a batch to the engine and hand its publication to the Kafka thread.

        The engine runs one batch ahead of Kafka: while batch N's transaction commits (and
        batch N-1's view is written), batch N+1 is matched. Batch N+1's transaction still
        begins only after N's has committed, so the log order and the guarantees are those of
        a strictly sequential loop; a crash loses at most the uncommitted batch, which
        recovery replays, and views not yet written, which recovery writes."""
        started = time.perf_counter()
        # The sequencer's clock for the whole batch, recorded with its events (clocks.py).
        now = int(time.time() * 1000)
        with self.phases.timing("match"):
            out = run_batch(self.engine, records, verifier=self._verifier(), clock=lambda _o: now)
        out.clock = now
        if out.late:
            log.warning("late commands refused", extra={"count": out.late, "clock": now})
        self.position = out.next_offset
        if out.last_seq:
            self.last_seq = out.last_seq
        # The books as this batch left them: read now, before the next batch changes them.
        with self.phases.timing("book"):
            values = self.view.book_values(self.engine, out.depth_symbols, out.next_offset)
        with self.phases.timing("wait_kafka"):
            self._wait_kafka()
        self._pending = self._kafka_thread.submit(self._commit, out, values, started)
        self.commands_since_snapshot += out.commands + out.undecodable
        return out

    def drain(self) -> None:
        """Wait for the batch in flight and its view write (re-raising their failure, e.g.
        Fenced, ViewLost)."""
        self._wait_kafka()
        self._wait_view()  # the Kafka job above may just have handed it over

    def _settled(self) -> bool:
        """Something was in flight and all of it has finished (its outcome not yet seen)."""
        pending = [f for f in (self._pending, self._pending_view) if f is not None]
        return bool(pending) and all(f.done() for f in pending)

    def _wait_kafka(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()
        # A failed view write surfaces here at the latest one batch later, not at the next
        # commit: the loop stops matching on top of a view it can no longer write.
        if self._pending_view is not None and self._pending_view.done():
            self._wait_view()

    def _wait_view(self) -> None:
        if self._pending_view is not None:
            pending, self._pending_view = self._pending_view, None
            pending.result()

    def _commit(self, out: BatchOutput, values: list[tuple[str, bytes]], started: float) -> None:
        """The Kafka thread: batch N's transaction, then its view write handed over."""
        with self.phases.timing("kafka"):
            self.publish(out)
        self.committed = out.next_offset
        # Only now, its events committed, may the batch's replies become visible.
        if not self.overlapped:
            self._write_view(out, values, started)
            return
        # One view write in flight at most; its failure fails this job, so the loop sees it.
        with self.phases.timing("wait_view"):
            self._wait_view()
        self._pending_view = self._view_thread.submit(self._write_view, out, values, started)

    def _write_view(
        self, out: BatchOutput, values: list[tuple[str, bytes]], started: float
    ) -> None:
        with self.phases.timing("view_ops"):
            ops = HashOps.from_events(
                out.orders, out.balances, out.symbols, out.fees, accounts=out.accounts,
                fills=out.fills,
            )  # fmt: skip
        # Only on top of the view the previous batch left (else ViewLost: the service exits and
        # recovery rebuilds the view from the engine; docs/engine.md, "Redis, the live view").
        with self.phases.timing("redis"):
            self.view.apply(
                out.next_offset,
                values=values,
                trades=out.last_trades.values(),
                replies=out.replies,
                ops=ops,
                base=self._view_offset,
            )
        self._view_offset = out.next_offset
        m = self.metrics
        m.batch_seconds.observe(time.perf_counter() - started)
        m.batch_commands.observe(out.commands)
        m.commands.inc(out.commands)
        m.events.inc(out.events)
        if out.undecodable:
            m.undecodable.inc(out.undecodable)
        if out.last_seq:
            m.last_seq.set(out.last_seq)
        m.offset.set(out.next_offset)

    def maybe_snapshot(self, *, force: bool = False) -> None:
        s = self.settings
        if self.snapshots.last_saved_offset == self.position:
            return
        due = (
            force
            or self.commands_since_snapshot >= s.snapshot_every_commands
            or (
                self.commands_since_snapshot > 0
                and time.monotonic() - self.snapshots.last_saved_monotonic
                >= s.snapshot_every_seconds
            )
        )
        if not due:
            return
        # Snapshot committed state only: a snapshot is trusted up to its offset, so it must
        # never run ahead of what the log says was published. The engine's state is taken now,
        # between batches; its upload waits for the transaction still in flight (the one of
        # the batch ending at ``position``), so matching never stalls for it.
        pending = self._pending
        committed = None if pending is None else pending.result
        if force:
            self.drain()
        saved = self.snapshots.save(
            self.engine, self.position, self.last_seq, wait=force, committed=committed
        )
        if saved:
            self.commands_since_snapshot = 0

    def run(self, stop_requested: Callable[[], bool] = lambda: False) -> int:
        """Serve until SIGTERM/SIGINT; ``stop_requested`` reports a signal that arrived before
        this method installed its handlers."""
        self._install_signals()
        if stop_requested():
            self.stopping = True
        self.snapshots.prefetch_newest()  # overlaps the key loading and Kafka's connect
        if self.verifier is None:
            try:
                self.verifier = load_verifier(self.settings)
            except AdminKeyError as exc:
                # One clear line: without the keys no admin command can be judged, and
                # replaying the log without them would fork the history.
                log.critical("cannot start: %s", exc)
                return EXIT_ERROR
            log.info("admin signing keys loaded", extra={"kids": list(self.verifier.kids)})
        self._connect()
        self.metrics.track_snapshot_age(lambda: self.snapshots.last_saved_monotonic)
        try:
            try:
                self.recover()
            except MissingClock as exc:
                raise Diverged(
                    f"{exc}: a command with a deadline cannot be replayed as it first ran "
                    "(its batch's events are gone from bourse.events); restore a newer snapshot"
                ) from exc
        except Diverged as exc:
            log.critical("refusing to publish: %s", exc)
            self._close()
            return EXIT_DIVERGED
        fetcher = self.fetcher
        assert fetcher is not None and self.consumer is not None
        fetcher.start_at(self.position)
        # Recovery's consumer has done its work: the fetcher reads from here on.
        self.consumer.close(autocommit=False)
        self.consumer = None
        # Listening only from here on makes the port a readiness signal (devstack, Docker).
        self.metrics.serve(self.settings.matching_metrics_port)
        if self.settings.pushgateway_url:
            self.metrics.push_every(self.settings.pushgateway_url, job="bourse-matching")
        # Everything allocated so far (the restored engine above all) lives for the process;
        # freezing it keeps the cyclic GC from rescanning it on every collection. A batch
        # allocates hundreds of thousands of short-lived objects (events, their encodings) that
        # reference counting frees; a high young-generation threshold keeps the collector from
        # running thousands of times per batch for the few cycles there are.
        gc.collect()
        gc.freeze()
        gc.set_threshold(100_000, 50, 100)
        self.metrics.ready.set(1)
        log.info("serving", extra={"offset": self.position, "seq": self.last_seq})
        poll_ms = self.settings.matching_poll_ms
        batch_max = self.settings.matching_batch_max
        refresh_s = self.settings.matching_offset_refresh_seconds
        try:
            while not self.stopping:
                polled_at = time.perf_counter()
                records = fetcher.poll(poll_ms / 1000, batch_max)
                high = fetcher.highwater
                if records:
                    self.phases.add("poll", time.perf_counter() - polled_at)
                    self.step(records)
                    if high is not None:
                        self.metrics.lag.set(max(0, high - self.position))
                elif self._settled():
                    self.drain()  # idle: surface the last batch's outcome now
                elif self._pending is None and self._pending_view is None:
                    if self.group_offset != self.committed:
                        self._copy_offset_if_behind()
                    elif time.monotonic() - self._group_copied_at >= refresh_s:
                        # Idle for long: commit the same offset again so that it cannot expire
                        # (Kafka drops a memberless group's offsets offsets.retention.minutes
                        # after its last commit, and this service never joins its group).
                        self._commit_offset(self.committed)
                        log.info("offset committed again (idle)", extra={"offset": self.committed})
                self.maybe_snapshot()
            self.drain()
            self._copy_offset_if_behind()
        except Fenced as exc:
            log.error(
                "fenced by a newer instance; exiting without writing", extra={"error": str(exc)}
            )
            self._close()
            return EXIT_FENCED
        except FetcherGone as exc:
            log.error("the commands fetcher stopped; exiting", extra={"error": str(exc)})
            self._close()
            return EXIT_ERROR
        except ViewLost as exc:
            # Committed to Kafka, not in the view: recovery (the next start) rebuilds the view
            # from the engine at the committed offset and writes the replies it lacks.
            log.error("live view lost writes; exiting to rebuild it", extra={"error": str(exc)})
            self._close()
            return EXIT_VIEW_LOST
        # SIGTERM: the batch in hand is committed (drained); leave a snapshot at the committed
        # position so the next start replays nothing.
        log.info("stopping", extra={"offset": self.position, "seq": self.last_seq})
        self.maybe_snapshot(force=True)
        self.snapshots.wait()
        self._close()
        log.info(
            "stopped",
            extra={"offset": self.position, "seq": self.last_seq,
                   "phase_seconds": self.phases.totals()},
        )  # fmt: skip
        return EXIT_OK

    def _install_signals(self) -> None:
        def stop(signum: int, _frame: Any) -> None:
            self.stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)

    def _close(self) -> None:
        # Kafka first: a commit that completes still hands its view write over.
        self._kafka_thread.shutdown(wait=True, cancel_futures=True)
        self._view_thread.shutdown(wait=True, cancel_futures=True)
        if self.fetcher is not None:
            self.fetcher.close()
        if self.consumer is not None:
            self.consumer.close(autocommit=False)
        if self.producer is not None:
            # Nothing is left to deliver outside a transaction, and a transaction left open is
            # aborted by the next instance's init_transactions: no flush, fenced or not.
            self.producer = None
