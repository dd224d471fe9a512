"""Seeding a fresh exchange: markets and demo funds go on the command log once, in one
transaction; the demo API key lands in DynamoDB with its secret encrypted by KMS."""

from __future__ import annotations

import stat
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from bourse.adapters import aws
from bourse.adapters.api_keys import get_api_key
from bourse.domain.codec import decode_command
from bourse.domain.commands import AddSymbol, Deposit
from bourse.domain.markets import DEFAULT_MARKETS
from bourse.settings import Settings, get_settings
from devstack import seed as seeding

pytestmark = pytest.mark.integration


@pytest.fixture()
def isolated(
    local_stack: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    """The running stack, but a command topic and a stack dir of this test's own."""
    topic = f"test.seed.{uuid.uuid4().hex[:12]}"
    admin = KafkaAdminClient(bootstrap_servers=local_stack.kafka_bootstrap)
    admin.create_topics({topic: {"num_partitions": 1, "replication_factor": 1}})
    monkeypatch.setenv("BOURSE_COMMANDS_TOPIC", topic)
    monkeypatch.setenv("BOURSE_STACK_DIR", str(tmp_path))
    get_settings.cache_clear()
    aws.client.cache_clear()
    yield get_settings()
    get_settings.cache_clear()
    aws.client.cache_clear()
    admin.delete_topics([topic])
    admin.close()


def _committed_records(settings: Settings) -> list[bytes]:
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        isolation_level="read_committed",
        enable_auto_commit=False,
    )
    partition = TopicPartition(settings.commands_topic, 0)
    consumer.assign([partition])
    consumer.seek_to_beginning(partition)
    end = consumer.end_offsets([partition])[partition]
    records: list[bytes] = []
    deadline = time.monotonic() + 10
    while consumer.position(partition) < end and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=300).values():
            records.extend(r.value for r in batch)
    consumer.close()
    return records


def test_seed_once_then_never_again(isolated: Settings) -> None:
    first = seeding.seed()
    second = seeding.seed()

    assert first.markets_seeded and not second.markets_seeded
    assert first.secret_shown is not None and second.secret_shown is None
    assert first.api_key == second.api_key

    commands = [decode_command(r) for r in _committed_records(isolated)]
    assert [c.spec for c in commands if isinstance(c, AddSymbol)] == list(DEFAULT_MARKETS)
    deposits = [c for c in commands if isinstance(c, Deposit)]
    assert {d.asset for d in deposits} == {"BTC", "ETH", "USDT"}
    assert all(d.account_id == seeding.DEMO_ACCOUNT_ID for d in deposits)
    assert len(commands) == len(DEFAULT_MARKETS) + len(deposits)

    stored = get_api_key(first.api_key)
    assert stored is not None
    assert (stored.secret, stored.account_id) == (first.secret_shown, seeding.DEMO_ACCOUNT_ID)
    assert set(stored.permissions) == {"TRADE", "USER_DATA"}
    raw = aws.client("dynamodb").get_item(
        TableName=isolated.api_keys_table, Key={"apiKey": {"S": first.api_key}}
    )["Item"]
    assert first.secret_shown not in str(raw)  # only the KMS ciphertext is stored

    mode = stat.S_IMODE(first.credentials_file.stat().st_mode)
    assert mode == 0o600
    assert any("shown once" in line for line in first.lines())
