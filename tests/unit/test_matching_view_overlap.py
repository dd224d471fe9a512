"""The matching service's overlapping stages (match, Kafka transaction, live-view write) keep
the sequential loop's guarantees: a batch's replies reach Redis only after its transaction has
committed, transactions run one at a time in batch order, and each view write extends the one
before it. With the overlap on, batch N's view is written while batch N+1's transaction runs.
Kafka and Redis are fakes that record what they are asked, in order."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterable, Iterator
from typing import Any, cast

import confluent_kafka
import pytest
from kafka import KafkaConsumer

from bourse.domain.admin_auth import LocalAdminSigner, encode_record
from bourse.settings import get_settings
from matching_service.clocks import parse_headers
from matching_service.fetcher import Fetcher
from matching_service.redis_view import HashOps, RedisView, ViewLost
from matching_service.service import MatchingService
from matching_service.workload import commands

pytestmark = pytest.mark.unit

SIGNER = LocalAdminSigner()
BATCH = 150


class FakeProducer:
    def __init__(self, log: list[tuple[Any, ...]]) -> None:
        self.log = log
        self.offset = -1
        self.begun = threading.Event()  # set when the second transaction begins

    def begin_transaction(self) -> None:
        self.log.append(("begin",))
        if sum(1 for entry in self.log if entry[0] == "begin") == 2:
            self.begun.set()

    def produce(
        self, topic: str, value: bytes, *, headers: list[tuple[str, bytes]], **_: Any
    ) -> None:
        parsed = parse_headers(headers)
        assert parsed is not None  # every event record carries its batch's offsets
        self.offset = parsed[1]
        self.log.append(("send",))

    def send_offsets_to_transaction(self, offsets: list[Any], group: Any, timeout: float) -> None:
        (partition,) = offsets
        self.offset = partition.offset
        self.log.append(("offsets", partition.offset))

    def commit_transaction(self, timeout: float) -> None:
        self.log.append(("commit", self.offset))

    def poll(self, timeout: float) -> int:
        return 0


class FakeFetcher:
    def group_metadata(self) -> object:
        return object()


class FakeView:
    """Records each write; ``fail_at`` refuses the write of that offset as lost, ``hold_first``
    holds the first write until the producer's second transaction has begun."""

    def __init__(
        self, log: list[tuple[Any, ...]], *, fail_at: int = -1, hold: threading.Event | None = None
    ) -> None:
        self.log = log
        self.fail_at = fail_at
        self.hold = hold
        self.held_until_next_transaction: bool | None = None

    def book_values(
        self, engine: Any, symbols: Iterable[str], offset: int
    ) -> list[tuple[str, bytes]]:
        return []

    def apply(
        self,
        offset: int,
        *,
        values: list[tuple[str, bytes]],
        trades: Iterable[Any] = (),
        replies: list[tuple[str, bytes]] = (),  # type: ignore[assignment]
        ops: HashOps | None = None,
        base: int = -1,
    ) -> bool:
        if self.hold is not None and self.held_until_next_transaction is None:
            # Bounded only so that a regression fails instead of hanging the suite.
            self.held_until_next_transaction = self.hold.wait(timeout=30)
        if offset == self.fail_at:
            raise ViewLost("lost")
        self.log.append(("view", offset, base, len(replies)))
        return True


def _batches(n: int) -> list[list[tuple[int, bytes]]]:
    records = [(i, encode_record(c, SIGNER)) for i, c in enumerate(commands(n, seed=3))]
    return [records[i : i + BATCH] for i in range(0, n, BATCH)]


def _serve(
    service: MatchingService, batches: list[list[tuple[int, bytes]]], log: list[tuple[Any, ...]]
) -> tuple[list[int], list[tuple[Any, ...]]]:
    """Step every batch, drain; the batches' end offsets and the Kafka calls logged."""
    for batch in batches:
        service.step(batch)
    service.drain()
    ends = [batch[-1][0] + 1 for batch in batches]
    return ends, [e for e in log if e[0] in ("begin", "offsets", "commit")]


@pytest.fixture
def make_service() -> Iterator[Any]:
    made: list[MatchingService] = []

    def make(
        overlap: bool, view: FakeView, producer: FakeProducer, offset_commit_ms: int = 1000
    ) -> MatchingService:
        pipeline = "overlapped" if overlap else "sequential"
        settings = dataclasses.replace(
            get_settings(), matching_pipeline=pipeline, matching_offset_commit_ms=offset_commit_ms
        )
        service = MatchingService(settings, verifier=SIGNER.verifier())
        service.producer = cast(confluent_kafka.Producer, producer)
        service.fetcher = cast(Fetcher, FakeFetcher())
        service.consumer = cast(KafkaConsumer, object())
        service.view = cast(RedisView, view)
        made.append(service)
        return service

    yield make
    for service in made:
        service._kafka_thread.shutdown(wait=True, cancel_futures=True)
        service._view_thread.shutdown(wait=True, cancel_futures=True)


@pytest.mark.parametrize("overlap", [True, False])
def test_replies_follow_their_commit_and_everything_stays_in_batch_order(
    make_service: Any, overlap: bool
) -> None:
    log: list[tuple[Any, ...]] = []
    service = make_service(overlap, FakeView(log), FakeProducer(log))
    ends, kafka = _serve(service, _batches(6 * BATCH), log)
    # One transaction at a time, in batch order: begin, commit, begin, ... The records carry
    # the position; the group's copy waits for its interval (a second, not reached here).
    assert kafka == [e for end in ends for e in (("begin",), ("commit", end))]
    views = [e for e in log if e[0] == "view"]
    assert [(offset, base) for _, offset, base, _ in views] == list(
        zip(ends, [0, *ends[:-1]], strict=True)
    )
    assert all(replies > 0 for *_, replies in views)
    for end in ends:  # never a reply before its events are committed
        assert log.index(("commit", end)) < next(
            i for i, e in enumerate(log) if e[0] == "view" and e[1] == end
        )
    assert service.committed == ends[-1]


def test_a_view_is_written_while_the_next_transaction_runs(make_service: Any) -> None:
    log: list[tuple[Any, ...]] = []
    producer = FakeProducer(log)
    view = FakeView(log, hold=producer.begun)
    service = make_service(True, view, producer)
    for batch in _batches(3 * BATCH):
        service.step(batch)
    service.drain()
    assert view.held_until_next_transaction is True
    assert log.index(("begin",), 1) < log.index(("view", BATCH, 0, BATCH))


@pytest.mark.parametrize("overlap", [True, False])
def test_a_lost_view_write_stops_the_loop(make_service: Any, overlap: bool) -> None:
    log: list[tuple[Any, ...]] = []
    service = make_service(overlap, FakeView(log, fail_at=2 * BATCH), FakeProducer(log))
    with pytest.raises(ViewLost):
        for batch in _batches(6 * BATCH):
            service.step(batch)
        service.drain()
    # The batches after the lost write may have committed (recovery writes their views), but
    # none of their views was written on top of the lost one.
    assert [e[1] for e in log if e[0] == "view"] == [BATCH]


def test_the_groups_offset_rides_along_at_most_every_interval(make_service: Any) -> None:
    """The group's offset goes into a batch's transaction once its interval has passed (0
    here: every batch), else into a transaction of its own when the loop goes idle or
    stops."""
    log: list[tuple[Any, ...]] = []
    every = make_service(True, FakeView(log), FakeProducer(log), offset_commit_ms=0)
    batches = _batches(3 * BATCH)
    ends, kafka = _serve(every, batches, log)
    assert kafka == [e for end in ends for e in (("begin",), ("offsets", end), ("commit", end))]
    assert every.group_offset == ends[-1]

    log.clear()
    rarely = make_service(True, FakeView(log), FakeProducer(log))
    _, kafka = _serve(rarely, batches, log)
    assert not [e for e in kafka if e[0] == "offsets"]
    assert rarely.group_offset is None
    rarely._copy_offset_if_behind()  # what the loop does when idle, and before it stops
    assert log[-3:] == [("begin",), ("offsets", ends[-1]), ("commit", ends[-1])]
    assert rarely.group_offset == ends[-1]
    rarely._copy_offset_if_behind()  # caught up: nothing more
    assert log[-1] == ("commit", ends[-1]) and len([e for e in log if e[0] == "begin"]) == 4
