"""The serving loop's commands consumer (``matching_service.fetcher``) against real Kafka:
batches grow with what has arrived instead of one poll's worth each (one transaction per
batch is the service's floor, so a consumer that handed out one record at a time capped it at
the transaction rate and queued the rest), never exceed ``max_records``, keep the log's order,
and start at the offset recovery ends at."""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Iterator

import pytest
from kafka.admin import NewTopic

from bourse.adapters import kafka as kafka_adapter
from bourse.settings import Settings
from matching_service.fetcher import Fetcher

pytestmark = pytest.mark.integration


@pytest.fixture
def topic(local_stack: Settings) -> Iterator[str]:
    name = f"test.fetcher.{uuid.uuid4().hex[:8]}"
    admin = kafka_adapter.admin()
    try:
        admin.create_topics([NewTopic(name, 1, 1)])
        yield name
        admin.delete_topics([name])
    finally:
        admin.close()


def _produce(topic: str, values: list[bytes]) -> None:
    producer = kafka_adapter.librdkafka_producer()
    for value in values:
        producer.produce(topic, value)
    assert producer.flush(30) == 0


def _fetcher(settings: Settings, topic: str, start: int) -> Fetcher:
    fetcher = Fetcher(dataclasses.replace(settings, commands_topic=topic))
    fetcher.start_at(start)
    return fetcher


def _drain(fetcher: Fetcher, want: int, max_records: int) -> list[list[tuple[int, bytes]]]:
    batches: list[list[tuple[int, bytes]]] = []
    deadline = time.monotonic() + 30
    while sum(map(len, batches)) < want:
        assert time.monotonic() < deadline, f"only {sum(map(len, batches))} of {want} fetched"
        batch = fetcher.poll(0.2, max_records)
        if batch:
            batches.append(batch)
    return batches


def test_a_poll_takes_everything_that_has_arrived(local_stack: Settings, topic: str) -> None:
    _produce(topic, [b"%d" % i for i in range(300)])
    fetcher = _fetcher(local_stack, topic, 0)
    try:
        batches = _drain(fetcher, 300, max_records=2000)
        records = [r for batch in batches for r in batch]
        assert records == [(i, b"%d" % i) for i in range(300)]
        # Already in the log before the first poll: one fetch brings them, not one per poll.
        assert len(batches) <= 3
        assert fetcher.highwater == 300
        assert fetcher.poll(0.05, 2000) == []
    finally:
        fetcher.close()


def test_batches_are_capped_and_start_where_told(local_stack: Settings, topic: str) -> None:
    _produce(topic, [b"%d" % i for i in range(100)])
    fetcher = _fetcher(local_stack, topic, 40)
    try:
        batches = _drain(fetcher, 60, max_records=25)
        assert all(len(batch) <= 25 for batch in batches)
        offsets = [offset for batch in batches for offset, _ in batch]
        assert offsets == list(range(40, 100))
    finally:
        fetcher.close()
