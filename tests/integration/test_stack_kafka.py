"""Kafka on the local stack: the exchange's topics, a plain round trip, and transactions as the
matching service uses them (read_committed consumers see commits only, never aborts)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

from bourse.adapters.kafka_topics import topic_specs
from bourse.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture()
def admin(local_stack: Settings) -> Iterator[KafkaAdminClient]:
    client = KafkaAdminClient(bootstrap_servers=local_stack.kafka_bootstrap)
    yield client
    client.close()


@pytest.fixture()
def topic(admin: KafkaAdminClient) -> Iterator[str]:
    name = f"test.stack.{uuid.uuid4().hex[:12]}"
    admin.create_topics(
        {name: {"num_partitions": 1, "replication_factor": 1}}, wait_for_metadata=True
    )
    yield name
    admin.delete_topics([name])


def _consumer(settings: Settings, topic: str, isolation: str) -> KafkaConsumer:
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        isolation_level=isolation,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    partition = TopicPartition(topic, 0)
    consumer.assign([partition])
    consumer.seek_to_beginning(partition)
    return consumer


def _drain(consumer: KafkaConsumer, want: int, timeout: float = 15.0) -> list[bytes]:
    got: list[bytes] = []
    deadline = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            got.extend(r.value for r in records)
    return got


def test_exchange_topics_exist_with_their_partition_counts(
    admin: KafkaAdminClient, local_stack: Settings
) -> None:
    described = {t["name"]: t for t in admin.describe_topics(None)}
    for spec in topic_specs(local_stack):
        assert spec.name in described, spec.name
        assert len(described[spec.name]["partitions"]) == spec.partitions
    assert len(described[local_stack.commands_topic]["partitions"]) == 1


def test_round_trip(local_stack: Settings, topic: str) -> None:
    producer = KafkaProducer(bootstrap_servers=local_stack.kafka_bootstrap, acks="all")
    for i in range(3):
        producer.send(topic, key=b"k", value=f"m{i}".encode())
    producer.flush()
    producer.close()
    consumer = _consumer(local_stack, topic, "read_uncommitted")
    try:
        assert _drain(consumer, 3) == [b"m0", b"m1", b"m2"]
    finally:
        consumer.close()


def test_transactions_committed_seen_only_after_commit_aborted_never(
    local_stack: Settings, topic: str
) -> None:
    producer = KafkaProducer(
        bootstrap_servers=local_stack.kafka_bootstrap,
        transactional_id=f"test-{uuid.uuid4().hex[:8]}",
    )
    producer.init_transactions()
    producer.begin_transaction()
    producer.send(topic, b"aborted")
    producer.flush()
    producer.abort_transaction()

    producer.begin_transaction()
    producer.send(topic, b"committed")
    producer.flush()

    committed_reader = _consumer(local_stack, topic, "read_committed")
    try:
        # The open transaction's record is on the log but must stay invisible.
        assert _drain(committed_reader, 1, timeout=3.0) == []
        producer.commit_transaction()
        assert _drain(committed_reader, 1) == [b"committed"]
        # Nothing else arrives: the aborted record is never delivered.
        assert _drain(committed_reader, 1, timeout=2.0) == []
    finally:
        committed_reader.close()
        producer.close()

    raw_reader = _consumer(local_stack, topic, "read_uncommitted")
    try:
        # Proves the aborted record really was written (so the check above means something).
        assert set(_drain(raw_reader, 2)) == {b"aborted", b"committed"}
    finally:
        raw_reader.close()
