"""Settlement on real PostgreSQL and moto SNS/SQS: fills published by the recorder's publisher
to a trade-fills topic, delivered to a subscribed queue, consumed by the settlement function
behind the local SQS event source (a subprocess); breaks reach an alerts topic.

Own database, topics and queues: nothing here touches the stack's settlement queue.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bourse.adapters import aws
from bourse.adapters.notify import SnsPublisher, fill_message
from bourse.adapters.record_store import RecordStore
from bourse.domain.events import Event
from bourse.record.rows import Fill, fills_of
from bourse.settings import Settings, get_settings
from tests.integration.record_support import engine_run, scratch_database

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Env:
    dsn: str
    events: list[Event]
    fills: list[Fill]
    fills_topic: str
    fills_queue: str  # name
    alerts_topic: str
    alerts_queue_url: str
    env: dict[str, str]


def _queue(name: str, topic_arn: str) -> str:
    sqs, sns = aws.client("sqs"), aws.client("sns")
    # A short visibility timeout so a failed message comes back within the test.
    url = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "2"})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(
        TopicArn=topic_arn, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"}
    )
    return str(url)


@pytest.fixture(scope="module")
def env(local_stack: Settings) -> Iterator[Env]:
    events, _ = engine_run(400, seed=21)
    suffix = uuid.uuid4().hex[:8]
    sns, sqs = aws.client("sns"), aws.client("sqs")
    fills_topic = sns.create_topic(Name=f"test-st-fills-{suffix}")["TopicArn"]
    alerts_topic = sns.create_topic(Name=f"test-st-alerts-{suffix}")["TopicArn"]
    fills_queue = f"test-st-settlement-{suffix}"
    fills_url = _queue(fills_queue, fills_topic)
    alerts_url = _queue(f"test-st-alerts-{suffix}", alerts_topic)
    with scratch_database(local_stack.pg_dsn, "test_settlement") as dsn:
        store = RecordStore(dsn, "recorder")
        store.write(events)
        store.close()
        environment = {
            **os.environ,
            "BOURSE_PG_DSN": dsn,
            "ALERTS_TOPIC_ARN": alerts_topic,
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_METRICS_NAMESPACE": "Bourse",
            "POWERTOOLS_SERVICE_NAME": "settlement",
            "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
            "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
        }
        yield Env(
            dsn, events, fills_of(events), fills_topic, fills_queue, alerts_topic, alerts_url,
            environment,
        )  # fmt: skip
    for url in (fills_url, alerts_url):
        sqs.delete_queue(QueueUrl=url)
    for arn in (fills_topic, alerts_topic):
        sns.delete_topic(TopicArn=arn)


def _count(dsn: str, query: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(query.encode()).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def _alerts(url: str) -> list[dict[str, Any]]:
    sqs = aws.client("sqs")
    out: list[dict[str, Any]] = []
    while got := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        out.extend(json.loads(m["Body"]) for m in got)
        for m in got:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return out


def _handler(env: Env, monkeypatch: pytest.MonkeyPatch) -> Any:
    from devstack.event_sources import Context, function_spec, load_handler

    for name in ("BOURSE_PG_DSN", "ALERTS_TOPIC_ARN", "POWERTOOLS_TRACE_DISABLED",
                 "POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_SERVICE_NAME"):  # fmt: skip
        monkeypatch.setenv(name, env.env[name])
    get_settings.cache_clear()
    spec = function_spec("SettlementFunction", get_settings())
    handler = load_handler(spec)
    get_settings.cache_clear()
    return lambda event: handler(event, Context(spec, "us-east-1"))


def _sqs_event(bodies: list[str]) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": f"m{i}",
                "receiptHandle": f"r{i}",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
                "awsRegion": "us-east-1",
            }
            for i, body in enumerate(bodies)
        ]
    }


def test_every_fill_settles_once_through_sns_and_sqs(env: Env, tmp_path: Path) -> None:
    fills = env.fills[: len(env.fills) // 2]
    publisher = SnsPublisher(aws.client("sns"), env.fills_topic)
    publisher.publish_fills(fills)
    publisher.publish_fills(fills[:20])  # at-least-once delivery: some fills twice
    log = (tmp_path / "settlement.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "devstack.event_sources", "SettlementFunction",
         "--queue", env.fills_queue],
        env=env.env, stdout=log, stderr=subprocess.STDOUT,
        cwd=REPO, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while _count(env.dsn, "SELECT count(*) FROM settled_fills") < len(fills):
            assert proc.poll() is None, f"settlement poller exited; see {tmp_path}"
            assert time.monotonic() < deadline, "fills not settled in time"
            time.sleep(0.2)
        time.sleep(1.0)  # let the duplicates arrive too
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
    assert _count(env.dsn, "SELECT count(*) FROM settled_fills") == len(fills)
    assert _count(env.dsn, "SELECT count(*) FROM settled_fills WHERE NOT ok") == 0
    assert _count(env.dsn, "SELECT count(*) FROM settlement_breaks") == 0
    assert _alerts(env.alerts_queue_url) == []
    # Daily statements hold each fill once (the duplicates changed nothing).
    fees: dict[tuple[int, str], int] = defaultdict(int)
    for f in fills:
        if f.commission:
            fees[(f.account_id, f.commission_asset)] += f.commission
    with psycopg.connect(env.dsn) as conn:
        got = {
            (a, s): int(v)
            for a, s, v in conn.execute(
                "SELECT account_id, asset, sum(fees) FROM daily_statements GROUP BY 1, 2"
                " HAVING sum(fees) > 0"
            ).fetchall()
        }
        assert got == dict(fees)
        assert _count(env.dsn, "SELECT sum(fills) FROM daily_statements") >= len(fills)


def test_a_ledger_break_is_alerted_and_a_bad_message_fails_alone(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    handle = _handler(env, monkeypatch)
    victim = env.fills[-1]
    # Tamper with the record: the buyer's base leg of the victim's trade loses one unit.
    with psycopg.connect(env.dsn) as conn:
        conn.execute(
            "UPDATE ledger_entries SET amount = amount - 1 WHERE symbol = %s AND trade_id = %s"
            " AND kind = 'TRADE' AND leg = 1",
            (victim.symbol, victim.trade_id),
        )
    good = env.fills[-3]
    bodies = [
        json.dumps(fill_message(good)),
        '{"seq": "nope"}',
        json.dumps(fill_message(victim)),
    ]
    answer = handle(_sqs_event(bodies))
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    breaks = _count(
        env.dsn,
        f"SELECT count(*) FROM settlement_breaks WHERE trade_id = {victim.trade_id}"
        f" AND symbol = '{victim.symbol}'",
    )
    assert breaks >= 1
    alerts: list[dict[str, Any]] = []
    deadline = time.monotonic() + 10
    while not alerts and time.monotonic() < deadline:
        alerts = _alerts(env.alerts_queue_url)
    assert [a["tradeId"] for a in alerts] == [victim.trade_id]
    assert any("does not balance" in p for p in alerts[0]["problems"])
    # Delivered again: settled already, no second alert, no double statement line.
    before = _count(env.dsn, "SELECT sum(fills) FROM daily_statements")
    assert handle(_sqs_event([bodies[0], bodies[2]])) == {"batchItemFailures": []}
    assert _count(env.dsn, "SELECT sum(fills) FROM daily_statements") == before
    assert _alerts(env.alerts_queue_url) == []


def test_the_sample_events_run_through_both_functions(
    local_stack: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """events/recorder-events.json and events/settlement-fills.json (`sam local invoke -e`) are
    real: the recorder records the sample batch, settlement settles the sample fill against it."""
    from devstack.event_sources import Context, function_spec, load_handler

    sample_recorder = json.loads((REPO / "events" / "recorder-events.json").read_text())
    sample_settlement = json.loads((REPO / "events" / "settlement-fills.json").read_text())
    sns = aws.client("sns")
    quiet = sns.create_topic(Name=f"test-st-sample-{uuid.uuid4().hex[:8]}")["TopicArn"]
    with scratch_database(local_stack.pg_dsn, "test_samples") as dsn:
        for name, value in (
            ("BOURSE_PG_DSN", dsn), ("TRADE_FILLS_TOPIC_ARN", quiet), ("ALERTS_TOPIC_ARN", quiet),
            ("BOURSE_ARCHIVE_PREFIX", "test/samples/"), ("POWERTOOLS_TRACE_DISABLED", "true"),
            ("POWERTOOLS_METRICS_NAMESPACE", "Bourse"),
            ("BOURSE_REDIS_URL", local_stack.redis_url.rsplit("/", 1)[0] + "/11"),
        ):  # fmt: skip
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        try:
            for logical_id, event in (
                ("RecorderFunction", sample_recorder),
                ("SettlementFunction", sample_settlement),
            ):
                spec = function_spec(logical_id, get_settings())
                answer = load_handler(spec)(event, Context(spec, "us-east-1"))
                assert answer == {"batchItemFailures": []}, logical_id
            assert _count(dsn, "SELECT count(*) FROM settled_fills WHERE ok") == 1
        finally:
            monkeypatch.undo()
            get_settings.cache_clear()
    sns.delete_topic(TopicArn=quiet)
