"""`make bench-service`'s paced phase: commands produced at a fixed rate, command -> reply.

The producer is librdkafka's (``producer`` is a confluent-kafka Producer): the load generator
shares the two cores with the service, and kafka-python spent more CPU sending 5,000 records a
second than the matching service spent sequencing them.

Each command is produced when its turn on the schedule comes (``start + i / rate``), not
preloaded; if the producer falls behind it sends at once and the lateness counts in the
latency, which runs from the command's scheduled time to the moment its reply could be read.
A producer that cannot keep up stops after twice the phase's length; what it had not sent by
then is counted as unsent.

Replies are read where the REST path reads them: the matching service pushes each command's
``Reply`` to the Redis list ``reply:{requestId}`` after the batch's Kafka transaction commits,
one Lua script per batch, and ``KafkaCommandBus.wait`` BLPOPs that list. A thread per command,
as the functions have, would cost the two CPUs more than the service does; so one collector
BLPOPs the oldest outstanding lists (any of them wakes it as soon as a batch's replies land),
then LPOPs every outstanding list in one pipeline: the replies of that batch arrived in the
same script, so they are all there. A reply still absent ``grace`` seconds after the last
send is missing.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bourse.adapters.redis_book import reply_key

WAKE_ON = 16  # outstanding lists one BLPOP watches
SWEEP_MAX = 5_000  # outstanding lists one pipeline LPOPs


@dataclass
class PacedResult:
    asked_rate: float
    seconds: float
    sent: int = 0
    unsent: int = 0
    missing: int = 0
    send_seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    reply_seconds: float = 0.0  # from the first send to the last reply
    acked_ms: list[float] = field(default_factory=list)  # scheduled time -> produce acked

    @property
    def reply_rate(self) -> float:
        n = len(self.latencies_ms)
        return n / self.reply_seconds if self.reply_seconds else 0.0

    @property
    def achieved_rate(self) -> float:
        return self.sent / self.send_seconds if self.send_seconds else 0.0

    def percentile(self, fraction: float, of: list[float] | None = None) -> float:
        ordered = sorted(self.latencies_ms if of is None else of)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


class ReplyCollector(threading.Thread):
    """Reads the replies of the request ids handed to ``expect``, recording when each came."""

    def __init__(self, redis: Any) -> None:
        super().__init__(name="reply-collector", daemon=True)
        self.redis = redis
        self.incoming: deque[tuple[str, float]] = deque()  # (request id, scheduled time)
        self.outstanding: dict[str, float] = {}  # insertion order: oldest first
        self.latencies_ms: list[float] = []
        self.stop_at: float | None = None  # perf_counter time to give up on what is left
        self.last_reply_at = 0.0

    def expect(self, request_id: str, scheduled: float) -> None:
        self.incoming.append((request_id, scheduled))

    def run(self) -> None:
        incoming, outstanding = self.incoming, self.outstanding
        while True:
            while incoming:
                rid, scheduled = incoming.popleft()
                outstanding[rid] = scheduled
            if not outstanding:
                if self.stop_at is not None:
                    return
                time.sleep(0.001)
                continue
            if self.stop_at is not None and time.perf_counter() > self.stop_at:
                return
            oldest = [reply_key(rid) for rid in _first(outstanding, WAKE_ON)]
            got = self.redis.blpop(oldest, timeout=0.1)
            now = time.perf_counter()
            if got is not None:
                self._arrived(got[0].decode()[len("reply:{") : -1], now)
            self._sweep(now)

    def _sweep(self, now: float) -> None:
        rids = _first(self.outstanding, SWEEP_MAX)
        pipe = self.redis.pipeline(transaction=False)
        for rid in rids:
            pipe.lpop(reply_key(rid))
        for rid, value in zip(rids, pipe.execute(), strict=True):
            if value is not None:
                self._arrived(rid, now)

    def _arrived(self, rid: str, now: float) -> None:
        scheduled = self.outstanding.pop(rid, None)
        if scheduled is not None:
            self.latencies_ms.append((now - scheduled) * 1000)
            self.last_reply_at = now


def _first(outstanding: dict[str, float], n: int) -> list[str]:
    out = []
    for rid in outstanding:
        out.append(rid)
        if len(out) == n:
            break
    return out


def _acked(into: list[float], scheduled: float) -> Any:
    """The delivery report callback: served by ``poll`` once the broker has the record
    (acks=all); a failed delivery is not acknowledged (its reply will be missing)."""

    def report(error: object, _message: object) -> None:
        if error is None:
            into.append((time.perf_counter() - scheduled) * 1000)

    return report


def run_paced(
    producer: Any,
    topic: str,
    records: Sequence[tuple[str, bytes]],
    redis: Any,
    *,
    rate: float,
    seconds: float,
    grace: float = 10.0,
) -> PacedResult:
    """Produce ``records`` ((request id, record bytes)) at ``rate`` for ``seconds``."""
    result = PacedResult(asked_rate=rate, seconds=seconds)
    collector = ReplyCollector(redis)
    collector.start()
    planned = min(len(records), int(rate * seconds))
    start = time.perf_counter()
    end = start + 2 * seconds  # a saturated producer stops after twice the phase's length
    sent = 0
    for i in range(planned):
        scheduled = start + i / rate
        now = time.perf_counter()
        if now > end:
            break
        if scheduled > now:
            time.sleep(scheduled - now)
        rid, record = records[i]
        collector.expect(rid, scheduled)
        producer.produce(topic, record, partition=0, on_delivery=_acked(result.acked_ms, scheduled))
        producer.poll(0)  # the delivery reports in so far, timed as they are served
        sent += 1
    result.send_seconds = time.perf_counter() - start
    producer.flush(30)
    result.sent = sent
    result.unsent = planned - sent
    collector.stop_at = time.perf_counter() + grace
    collector.join()
    result.missing = len(collector.outstanding) + len(collector.incoming)
    result.latencies_ms = collector.latencies_ms
    result.reply_seconds = max(0.0, collector.last_reply_at - start)
    return result
