"""The whole pipeline, then `reconcile`: commands -> matching service (subprocess) ->
bourse.events -> recorder behind the local MSK event source (subprocess) -> PostgreSQL; then
``python -m matching_service.reconcile`` rebuilds the engine from snapshot + replay and compares
its balances with the record's projection.

Own topics (so own transactional id, group and snapshot prefix), Redis database, PostgreSQL
database and trade-fills topic.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from bourse.adapters import aws, redis_conn
from bourse.adapters.admin_signer import KmsAdminSigner
from bourse.adapters.kafka import producer
from bourse.domain.admin_auth import encode_record
from bourse.settings import Settings
from matching_service.workload import commands as workload
from tests.integration.record_support import scratch_database

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
REDIS_DB = int(os.environ.get("BOURSE_TEST_RECONCILE_REDIS_DB", "12"))
COMMANDS = int(os.environ.get("BOURSE_TEST_PIPELINE_COMMANDS", "10000"))  # the figure


@pytest.fixture(scope="module")
def pipeline(
    local_stack: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    suffix = uuid.uuid4().hex[:8]
    commands_topic, events_topic = f"test.pr.{suffix}.commands", f"test.pr.{suffix}.events"
    admin = KafkaAdminClient(bootstrap_servers=local_stack.kafka_bootstrap)
    try:
        admin.create_topics([NewTopic(commands_topic, 1, 1), NewTopic(events_topic, 1, 1)])
    finally:
        admin.close()
    redis_url = local_stack.redis_url.rsplit("/", 1)[0] + f"/{REDIS_DB}"
    redis_conn.connect(redis_url).flushdb()
    sns = aws.client("sns")
    quiet = sns.create_topic(Name=f"test-pr-fills-{suffix}")["TopicArn"]
    logs = tmp_path_factory.mktemp("pipeline")
    # Admin commands are signed with a key of this test's own, which the service (and
    # reconcile, which replays the same log) is told to trust.
    kms = aws.client("kms")
    key_arn = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
    signer = KmsAdminSigner(kms, key_arn)
    with scratch_database(local_stack.pg_dsn, "test_pipeline") as dsn:
        env = {
            **os.environ,
            "BOURSE_COMMANDS_TOPIC": commands_topic,
            "BOURSE_EVENTS_TOPIC": events_topic,
            "BOURSE_REDIS_URL": redis_url,
            "BOURSE_PG_DSN": dsn,
            "BOURSE_MATCHING_METRICS_PORT": "0",
            "BOURSE_SNAPSHOT_EVERY_COMMANDS": "700",
            "BOURSE_ADMIN_SIGNING_KEY_IDS": key_arn,
            "TRADE_FILLS_TOPIC_ARN": quiet,
            "BOURSE_ARCHIVE_PREFIX": f"test/pipeline-{suffix}/",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_METRICS_NAMESPACE": "Bourse",
            "POWERTOOLS_SERVICE_NAME": "recorder",
            "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
            "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
        }
        procs = [
            subprocess.Popen(argv, env=env, cwd=REPO, stdout=(logs / f"{name}.log").open("wb"),
                             stderr=subprocess.STDOUT, start_new_session=True)
            for name, argv in (
                ("matching", [sys.executable, "-m", "matching_service"]),
                ("recorder", [sys.executable, "-m", "devstack.event_sources", "RecorderFunction",
                              "--group", f"recorder-{events_topic}"]),
            )
        ]  # fmt: skip
        try:
            p = producer(linger_ms=5)
            sent = 0
            for cmd in workload(COMMANDS, seed=4):
                p.send(commands_topic, encode_record(cmd, signer))
                sent += 1
            p.flush()
            p.close()
            # Reconcile compares at whatever seq the exchange has reached; the tamper check
            # below needs the exchange to have stopped moving, or the recorder's next balance
            # event would overwrite the tampered row before the second reconcile reads it.
            _wait_until_matched(local_stack, commands_topic, sent, logs)
            env["TEST_LOGS"] = str(logs)
            yield env
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    sns.delete_topic(TopicArn=quiet)


def _wait_until_matched(settings: Settings, topic: str, count: int, logs: Path) -> None:
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=f"matching-{topic}",
        enable_auto_commit=False,
    )
    partition = TopicPartition(topic, 0)
    deadline = time.monotonic() + 150
    try:
        while (consumer.committed(partition) or 0) < count:
            assert time.monotonic() < deadline, f"matching service behind; logs in {logs}"
            time.sleep(0.5)
    finally:
        consumer.close(autocommit=False)


def _reconcile(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "matching_service.reconcile", "--wait", "90"],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=180,
    )  # fmt: skip


def test_reconcile_after_a_random_run_finds_no_difference(pipeline: dict[str, str]) -> None:
    started = time.monotonic()
    done = _reconcile(pipeline)
    assert done.returncode == 0, (done.stdout, done.stderr[-2000:], pipeline["TEST_LOGS"])
    assert done.stdout.splitlines()[-1] == "reconcile: 0 differences"
    assert time.monotonic() - started < 150
    # A projection that disagrees with the engine is reported, one line per difference.
    with psycopg.connect(pipeline["BOURSE_PG_DSN"]) as conn:
        conn.execute(
            "UPDATE balances SET free = free + 1 WHERE (account_id, asset) ="
            " (SELECT account_id, asset FROM balances WHERE account_id > 0"
            " ORDER BY account_id, asset LIMIT 1)"
        )
    done = _reconcile(pipeline)
    lines = done.stdout.splitlines()
    assert done.returncode == 1
    assert lines[-1] == "reconcile: 1 differences"
    assert lines[0].startswith("account ")
