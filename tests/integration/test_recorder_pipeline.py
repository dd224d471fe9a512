"""The trade recorder end to end: real Kafka, real PostgreSQL, moto S3/SNS/SQS, and the
recorder function run by the local MSK event source (``devstack.event_sources``) as a real
subprocess, SIGKILLed mid-batch.

This module has its own database, events topic, archive prefix and trade-fills topic + queue,
so nothing here touches what other tests or `make run` use. Events are the engine's own, for
the matching service's workload, packed into records as the matching service packs them (a
JSON array of whole commands' events per record).
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from bourse.adapters import aws
from bourse.adapters.record_store import RecordStore
from bourse.domain.event_codec import encode_events
from bourse.domain.events import Event, ExecutionReport, Reply
from bourse.engine import Engine
from bourse.record.reconcile import differences
from bourse.settings import Settings, get_settings
from tests.integration.record_support import (
    dump,
    engine_run,
    record_balances,
    scratch_database,
    truncate_record,
    unbalanced_trades,
)
from tests.integration.tcp_cut import TcpCut

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
COMMANDS = 1500


def _records(events: list[Event], commands_per_record: int = 25) -> list[bytes]:
    """Whole commands per record, as the matching service publishes them."""
    out: list[bytes] = []
    current: list[Event] = []
    commands = 0
    for ev in events:
        current.append(ev)
        if isinstance(ev, Reply):
            commands += 1
            if commands == commands_per_record:
                out.append(encode_events(current))
                current, commands = [], 0
    if current:
        out.append(encode_events(current))
    return out


@dataclass
class Env:
    dsn: str
    reference_dsn: str
    events: list[Event]
    engine: Engine
    topic: str
    prefix: str
    fills_topic_arn: str
    quiet_topic_arn: str
    fills_queue_url: str
    env: dict[str, str]
    logs: Path

    def produce(self, values: list[bytes]) -> None:
        from bourse.adapters.kafka import producer

        p = producer(linger_ms=5, max_request_size=8 << 20)
        for value in values:
            p.send(self.topic, value, key=b"bourse")
        p.flush()
        p.close()

    def poller(self, name: str, *extra: str) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("ab")
        return subprocess.Popen(
            [sys.executable, "-m", "devstack.event_sources", "RecorderFunction", *extra],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            start_new_session=True,
        )

    def hwm(self) -> int:
        with psycopg.connect(self.dsn) as conn:
            row = conn.execute("SELECT max(last_seq) FROM applied_events").fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def wait_hwm(self, seq: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.hwm() < seq:
            assert proc.poll() is None, f"poller exited {proc.returncode}; see {self.logs}"
            assert time.monotonic() < deadline, f"high-water mark {self.hwm()} < {seq}"
            time.sleep(0.1)

    def reset(self, topic_suffix: str) -> None:
        truncate_record(self.dsn)
        self.env["TRADE_FILLS_TOPIC_ARN"] = self.fills_topic_arn
        self.topic = f"test.rec.{uuid.uuid4().hex[:8]}.{topic_suffix}"
        admin = KafkaAdminClient(bootstrap_servers=get_settings().kafka_bootstrap)
        try:
            admin.create_topics([NewTopic(self.topic, 1, 1)])
        finally:
            admin.close()
        self.env["BOURSE_EVENTS_TOPIC"] = self.topic


@pytest.fixture(scope="module")
def env(local_stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    events, engine = engine_run(COMMANDS, seed=11)
    suffix = uuid.uuid4().hex[:8]
    sns, sqs = aws.client("sns"), aws.client("sqs")
    topic_arn = sns.create_topic(Name=f"test-fills-{suffix}")["TopicArn"]
    quiet_arn = sns.create_topic(Name=f"test-quiet-{suffix}")["TopicArn"]
    queue_url = sqs.create_queue(QueueName=f"test-fills-{suffix}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    sns.subscribe(
        TopicArn=topic_arn,
        Protocol="sqs",
        Endpoint=queue_arn,
        Attributes={"RawMessageDelivery": "true"},
    )
    with (
        scratch_database(local_stack.pg_dsn, "test_recorder") as dsn,
        scratch_database(local_stack.pg_dsn, "test_recorder_ref") as reference_dsn,
    ):
        ref = RecordStore(reference_dsn, "reference")
        for i in range(0, len(events), 1000):
            ref.write(events[i : i + 1000])
        ref.close()
        prefix = f"test/recorder-{suffix}/"
        environment = {
            **os.environ,
            "BOURSE_PG_DSN": dsn,
            "BOURSE_ARCHIVE_PREFIX": prefix,
            # The recorder's hot cache goes to a Redis database of the tests' own.
            "BOURSE_REDIS_URL": local_stack.redis_url.rsplit("/", 1)[0] + "/11",
            "TRADE_FILLS_TOPIC_ARN": topic_arn,
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_METRICS_NAMESPACE": "Bourse",
            "POWERTOOLS_SERVICE_NAME": "recorder",
            "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
            "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
        }
        yield Env(
            dsn, reference_dsn, events, engine, "", prefix, topic_arn, quiet_arn, queue_url,
            environment,
            tmp_path_factory.mktemp("recorder-logs"),
        )  # fmt: skip
    sqs.delete_queue(QueueUrl=queue_url)
    sns.delete_topic(TopicArn=topic_arn)
    sns.delete_topic(TopicArn=quiet_arn)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _in_transaction(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND pid <> pg_backend_pid() AND state IN ('active', 'idle in transaction')"
    ).fetchone()
    return bool(row and row[0])


def _drain_fills(queue_url: str) -> list[dict[str, Any]]:
    sqs = aws.client("sqs")
    out: list[dict[str, Any]] = []
    while True:
        got = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        ).get("Messages", [])
        if not got:
            return out
        out.extend(got)
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)
            ],
        )


def test_killed_mid_batch_and_retried_leaves_no_duplicate_and_no_gap(env: Env) -> None:
    env.reset("kill")
    # Fills go to a topic with no subscriber here: moto delivers SNS->SQS at ~100 messages/s,
    # which would make this test about moto. The fills test below checks delivery.
    env.env["TRADE_FILLS_TOPIC_ARN"] = env.quiet_topic_arn
    env.produce(_records(env.events))
    last = env.events[-1].seq
    kills = 0
    group = ("--group", f"g-{env.topic}", "--batch-size", "20")
    proc = env.poller("kill", *group)
    watcher = psycopg.connect(env.dsn, autocommit=True)
    try:
        # SIGKILL the recorder while its batch transaction is open (seen from PostgreSQL: its
        # session is running a statement or idle inside the transaction), five times.
        while kills < 5 and env.hwm() < last:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not _in_transaction(watcher):
                time.sleep(0.002)
            if env.hwm() >= last:
                break
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            kills += 1
            proc = env.poller("kill", *group)
        env.wait_hwm(last, proc, timeout=90)
    finally:
        _stop(proc)
        watcher.close()
    assert kills >= 3, "the stream finished before the recorder could be killed enough"
    assert dump(env.dsn) == dump(env.reference_dsn)
    with psycopg.connect(env.dsn) as conn:
        assert conn.execute("SELECT count(*) FROM record_gaps").fetchone() == (0,)
    assert unbalanced_trades(env.dsn) == []
    assert differences(env.engine.balances(), record_balances(env.dsn)) == []
    # Every event is in the archive; a batch written again after a kill overwrote its object.
    s3 = aws.client("s3")
    bucket = get_settings().archive_bucket
    seqs: list[int] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=env.prefix):
        for obj in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            lines = gzip.decompress(body).splitlines()
            got = [json.loads(line)["seq"] for line in lines]
            assert obj["Key"].endswith(f"{got[0]:020d}-{got[-1]:020d}.jsonl.gz")
            seqs.extend(got)
    assert sorted(set(seqs)) == [e.seq for e in env.events]


def _failed_deliveries(log: Path) -> int:
    return log.read_text().count("failed; the whole batch is delivered again")


def test_a_record_outage_longer_than_any_retry_limit_loses_nothing(env: Env) -> None:
    """The recorder's PostgreSQL unreachable (every connection closed, new ones refused) while
    events keep coming, for more failed deliveries than the template's old retry limit (3
    retries, then the record was dropped): once it is back, every row lands, once."""
    env.reset("outage")
    env.env["TRADE_FILLS_TOPIC_ARN"] = env.quiet_topic_arn
    values = _records(env.events)
    half = len(values) // 2
    params = conninfo_to_dict(env.dsn)
    cut = TcpCut(str(params.get("host") or "127.0.0.1"), int(str(params.get("port") or 5432)))
    env.env["BOURSE_PG_DSN"] = make_conninfo(env.dsn, host="127.0.0.1", port=cut.port)
    log = env.logs / "outage.log"
    proc = env.poller("outage", "--group", f"g-{env.topic}", "--batch-size", "20")
    try:
        env.produce(values[:half])
        deadline = time.monotonic() + 60
        while env.hwm() == 0:
            assert proc.poll() is None and time.monotonic() < deadline, "nothing recorded"
            time.sleep(0.1)
        cut.cut()
        cut_at = env.hwm()
        env.produce(values[half:])
        # Three times the deliveries the old limit allowed (the first and 3 retries), and ten
        # seconds at least: a failover's length, not a blip.
        enough, held = 3 * (1 + 3), time.monotonic() + 10
        deadline = time.monotonic() + 60
        while _failed_deliveries(log) < enough or time.monotonic() < held:
            assert proc.poll() is None, f"poller exited {proc.returncode}; see {log}"
            assert time.monotonic() < deadline, f"{_failed_deliveries(log)} failed deliveries"
            time.sleep(0.2)
        during = env.hwm()
        cut.restore()
        env.wait_hwm(env.events[-1].seq, proc, timeout=120)
    finally:
        _stop(proc)
        cut.close()
        env.env["BOURSE_PG_DSN"] = env.dsn
    assert cut_at < env.events[-1].seq and during < env.events[-1].seq
    text = log.read_text()
    assert "retries exhausted" not in text and "dropped" not in text
    assert dump(env.dsn) == dump(env.reference_dsn)
    with psycopg.connect(env.dsn) as conn:
        assert conn.execute("SELECT count(*) FROM record_gaps").fetchone() == (0,)
    assert unbalanced_trades(env.dsn) == []
    assert differences(env.engine.balances(), record_balances(env.dsn)) == []


def test_a_poison_record_fails_alone_and_the_rest_lands(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    env.reset("poison")
    env.env["TRADE_FILLS_TOPIC_ARN"] = env.quiet_topic_arn
    good = _records(env.events[:1500], commands_per_record=10)
    poison_index = len(good) // 2
    values = [
        *good[:poison_index],
        b'[{"type": "Trade", "seq": "not a number"}]',
        *good[poison_index:],
    ]
    env.produce(values)
    # First the function itself, on a batch read from Kafka with the poller's own event builder:
    # the answer names the poison record alone.
    from devstack.event_sources import Context, function_spec, load_handler, msk_event

    consumer = KafkaConsumer(
        bootstrap_servers=get_settings().kafka_bootstrap, isolation_level="read_committed"
    )
    tp = TopicPartition(env.topic, 0)
    consumer.assign([tp])
    consumer.seek(tp, 0)
    batch: dict[Any, list[Any]] = {tp: []}
    while len(batch[tp]) < len(values):
        batch[tp].extend(consumer.poll(timeout_ms=2000).get(tp, []))
    consumer.close()
    settings = get_settings()
    event = msk_event(batch, settings, "arn:aws:kafka:us-east-1:123456789012:cluster/local/0")
    assert set(event["records"]) == {f"{env.topic}-0"}
    for name in (
        "BOURSE_PG_DSN", "BOURSE_ARCHIVE_PREFIX", "TRADE_FILLS_TOPIC_ARN", "BOURSE_REDIS_URL",
        "POWERTOOLS_TRACE_DISABLED", "POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_SERVICE_NAME",
    ):  # fmt: skip
        monkeypatch.setenv(name, env.env[name])
    get_settings.cache_clear()
    try:
        spec = function_spec("RecorderFunction", get_settings())
        handler = load_handler(spec)
        answer = handler(event, Context(spec, settings.region))
        assert answer == {
            "batchItemFailures": [
                {"itemIdentifier": {"partition": f"{env.topic}-0", "offset": poison_index}}
            ]
        }
        after_first = dump(env.dsn)
        # The same batch delivered again leaves identical tables.
        assert handler(event, Context(spec, settings.region)) == answer
        assert dump(env.dsn) == after_first
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    # The poison record's events were never seen (it held none that decode): the rest is all
    # there, and nothing is missing from the record.
    assert env.hwm() == env.events[1499].seq
    with psycopg.connect(env.dsn) as conn:
        assert conn.execute("SELECT count(*) FROM record_gaps").fetchone() == (0,)
    assert unbalanced_trades(env.dsn) == []
    # The local event source, like Lambda's on-demand MSK poller (no ReportBatchItemFailures
    # in the template), takes the answer as the batch's success: the poison record is logged
    # once, skipped, and the poller commits past the end of the topic without stalling.
    group = f"g-{env.topic}"
    proc = env.poller("poison", "--group", group, "--batch-size", "50")
    try:
        deadline = time.monotonic() + 60
        while _committed(group, env.topic) < len(values):
            assert proc.poll() is None, f"poller exited; see {env.logs}"
            assert time.monotonic() < deadline, "the poller stalled on the poison record"
            time.sleep(0.2)
    finally:
        _stop(proc)
    log = (env.logs / "poison.log").read_text()
    assert log.count("undecodable record skipped") == 1
    assert "retries exhausted" not in log


def _committed(group: str, topic: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=get_settings().kafka_bootstrap, group_id=group)
    try:
        return consumer.committed(TopicPartition(topic, 0)) or 0
    finally:
        consumer.close(autocommit=False)


def test_fills_reach_the_settlement_subscription_after_they_are_recorded(env: Env) -> None:
    env.reset("fills")
    events = env.events[:1200]
    last = events[-1].seq
    _drain_fills(env.fills_queue_url)
    env.produce(_records(events))
    proc = env.poller("fills", "--group", f"g-{env.topic}")
    try:
        env.wait_hwm(last, proc)
        expected = {
            e.seq for e in events if isinstance(e, ExecutionReport) and e.exec_type == "TRADE"
        }
        fills: list[dict[str, Any]] = []
        deadline = time.monotonic() + 60
        while {json.loads(m["Body"])["seq"] for m in fills} != expected:
            assert time.monotonic() < deadline, "fills missing from the queue"
            fills.extend(_drain_fills(env.fills_queue_url))
            time.sleep(0.2)
    finally:
        _stop(proc)
    # Every fill message names a fill the record holds, with the attributes to filter on.
    with psycopg.connect(env.dsn) as conn:
        recorded = {
            (a, s, t, b)
            for a, s, t, b in conn.execute(
                "SELECT account_id, symbol, trade_id, is_buyer FROM account_trades"
            ).fetchall()
        }
    for message in fills:
        body = json.loads(message["Body"])
        attrs = message["MessageAttributes"]
        assert set(attrs) == {"accountId", "symbol", "side"}
        assert attrs["accountId"]["StringValue"] == str(body["accountId"])
        assert attrs["symbol"]["StringValue"] == body["symbol"]
        assert attrs["side"]["StringValue"] == body["side"]
        key = (body["accountId"], body["symbol"], body["tradeId"], body["side"] == "BUY")
        assert key in recorded
