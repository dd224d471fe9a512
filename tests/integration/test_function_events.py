"""Every function template.yaml declares has a sample event, and every sample event runs.

Events are ``events/<function-dir>-<case>.json`` (``sam local invoke -e`` takes them as they
are). Each goes through the Docker-free invoker (devstack/gateway/invoke.py, the code behind
``python -m devstack invoke``) in this process, against the local stack, with this module's
own Redis DB, Kafka topics (created by the KafkaTopics custom resource's own event), a scratch
database (migrated by the Migrations event) and quiet SNS topics, so it touches nobody else's
data. The result is checked by the kind of event: a well-formed API Gateway answer (no 5xx),
an authorizer policy, no failed batch items, a SUCCESS sent back to CloudFormation.

The admin API's events (``admin-NN_<case>.json``, in their numbered order: a market listed,
changed, halted..., an account opened, funded, a withdrawal settled...) are commands the engine
must answer: a matching service runs on this module's topics for them, started with the first
one (after the KafkaTopics event made the topics). Each answers 200, or 404 where the case
names something unknown.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from bourse.adapters import aws, redis_conn
from bourse.settings import Settings, get_settings
from devstack.cfn import load_template
from devstack.gateway.invoke import invoke
from devstack.paths import REPO_ROOT
from tests.integration.record_support import drop_database

pytestmark = pytest.mark.integration

EVENTS = REPO_ROOT / "events"
REDIS_DB = 34
# Deploy-time resources first (topics, schema), then the recorder before settlement (the
# sample fill settles against the sample batch the recorder wrote).
FIRST = ("kafka_topics", "migrations", "recorder", "settlement")


def _function_dirs() -> dict[str, str]:
    """function directory (events' prefix) -> logical id."""
    return {
        str(r["Properties"]["CodeUri"]).rstrip("/").rsplit("/", 1)[-1]: logical_id
        for logical_id, r in load_template()["Resources"].items()
        if r["Type"] == "AWS::Serverless::Function"
    }


def _events() -> list[Path]:
    order = {name: i for i, name in enumerate(FIRST)}
    return sorted(
        EVENTS.glob("*.json"),
        key=lambda p: (order.get(p.stem.split("-", 1)[0], len(FIRST)), p.name),
    )


def test_every_function_has_an_event() -> None:
    have = {path.stem.split("-", 1)[0] for path in EVENTS.glob("*-*.json")}
    missing = sorted(f"{lid} (events/{d}-<case>.json)" for d, lid in _function_dirs().items()
                     if d not in have)  # fmt: skip
    assert not missing, f"functions without a sample event: {missing}"


def test_every_event_is_named_for_a_function() -> None:
    dirs = _function_dirs()
    strays = sorted(p.name for p in EVENTS.glob("*.json")
                    if "-" not in p.stem or p.stem.split("-", 1)[0] not in dirs)  # fmt: skip
    assert not strays, f"events not named events/<function-dir>-<case>.json: {strays}"


class _CloudFormation(BaseHTTPRequestHandler):
    """Stands in for the pre-signed S3 URL custom resources answer on."""

    answers: list[dict[str, Any]] = []

    def do_PUT(self) -> None:
        length = int(self.headers["Content-Length"])
        self.answers.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def cloudformation() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    server = HTTPServer(("127.0.0.1", 0), _CloudFormation)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/response", _CloudFormation.answers
    server.shutdown()


@pytest.fixture(scope="module")
def isolated(local_stack: Settings) -> Iterator[dict[str, str]]:
    """This module's environment: an empty database (the Migrations event migrates it), its
    own topics, Redis DB and quiet SNS topics."""
    suffix = uuid.uuid4().hex[:8]
    name = f"test_events_{suffix}"
    with psycopg.connect(local_stack.pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    sns = aws.client("sns")
    quiet = sns.create_topic(Name=f"test-events-{suffix}")["TopicArn"]
    redis_url = local_stack.redis_url.rsplit("/", 1)[0] + f"/{REDIS_DB}"
    redis_conn.connect(redis_url).flushdb()  # this module's DB: start from an empty view
    env = {
        "BOURSE_PG_DSN": make_conninfo(local_stack.pg_dsn, dbname=name),
        "BOURSE_REDIS_URL": redis_url,
        "BOURSE_COMMANDS_TOPIC": f"bourse.commands.events-{suffix}",
        "BOURSE_EVENTS_TOPIC": f"bourse.events.events-{suffix}",
        "BOURSE_MARKETDATA_TOPIC": f"bourse.marketdata.events-{suffix}",
        "TRADE_FILLS_TOPIC_ARN": quiet,
        "ALERTS_TOPIC_ARN": quiet,
        "FUNDING_TOPIC_ARN": quiet,
        "BOURSE_ARCHIVE_PREFIX": f"test/events-{suffix}/",
        "BOURSE_API_REPLY_TIMEOUT_MS": "1000",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
    try:
        yield env
    finally:
        sns.delete_topic(TopicArn=quiet)
        drop_database(local_stack.pg_dsn, name)


@pytest.fixture(scope="module")
def matching(isolated: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The matching service on this module's topics and Redis DB, for the admin events; it
    trusts the stack's admin signing key (alias/bourse-local-admin-signing), as `make run`'s."""
    log_path = tmp_path_factory.mktemp("matching") / "matching.log"
    env = {**os.environ, **isolated, "BOURSE_MATCHING_METRICS_PORT": "0"}
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "matching_service"], env=env,
                                stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT)  # fmt: skip
    try:
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        assert proc.returncode in (0, -15), log_path.read_text()[-4000:]


def _invoke(env: dict[str, str], logical_id: str, event: Path) -> Any:
    saved = dict(os.environ)
    os.environ.update(env)
    get_settings.cache_clear()
    try:
        return invoke(get_settings(), logical_id, event)
    finally:
        os.environ.clear()
        os.environ.update(saved)
        get_settings.cache_clear()


def _check_api_answer(answer: Any) -> None:
    assert isinstance(answer["statusCode"], int) and answer["statusCode"] < 500, answer
    if answer.get("body"):
        body = json.loads(answer["body"])
        if answer["statusCode"] >= 400 and isinstance(body, dict):
            assert {"code", "msg"} <= set(body), body


@pytest.mark.parametrize("event_path", _events(), ids=lambda p: p.name)
def test_the_event_runs(
    event_path: Path,
    isolated: dict[str, str],
    cloudformation: tuple[str, list[dict[str, Any]]],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    logical_id = _function_dirs()[event_path.stem.split("-", 1)[0]]
    event = json.loads(event_path.read_text())
    if logical_id == "AdminFunction":
        request.getfixturevalue("matching")
        # The first command also waits for the service's start (imports, recovery).
        answer = _invoke({**isolated, "BOURSE_API_REPLY_TIMEOUT_MS": "60000"}, logical_id,
                         event_path)  # fmt: skip
        expected = 404 if "unknown" in event_path.stem else 200
        assert answer["statusCode"] == expected, answer
        _check_api_answer(answer)
        return
    if "ResponseURL" in event:  # a custom resource answers CloudFormation over HTTP
        url, answers = cloudformation
        event["ResponseURL"] = url
        event_path = tmp_path / event_path.name
        event_path.write_text(json.dumps(event))
        answer = _invoke(isolated, logical_id, event_path)
        assert answer["Status"] == "SUCCESS", answer
        assert answers and answers[-1]["RequestId"] == event["RequestId"]
        assert answers[-1]["Status"] == "SUCCESS"
        return
    try:
        answer = _invoke(isolated, logical_id, event_path)
    except Exception as exc:  # only an authorizer's denial may raise
        # An authorizer denies by raising "Unauthorized", as API Gateway expects.
        assert event.get("type") == "REQUEST" and "Unauthorized" in str(exc), repr(exc)
        return
    if event.get("eventSource") == "aws:kafka" or "Records" in event:
        assert answer == {"batchItemFailures": []}, answer
    elif "frames" in event and "connections" in event:
        # A pusher shard (the broadcaster's Invoke): every connection is accounted for, as
        # posted, gone (410) or failed (the @connections endpoint unreachable here: this
        # module runs functions in-process, without the local gateway).
        assert set(answer) == {"sent", "gone", "failed"}, answer
        done = answer["sent"] + len(answer["gone"]) + answer["failed"]
        assert done == len(event["connections"]), answer
    elif "cursor" in event and "logs" in event:
        # A stream resume (the $connect handler's Invoke): the sample's cursor is after
        # anything the broadcaster's sample logged, so the connection goes live at once.
        assert answer == {"status": "live", "sent": 0}, answer
    elif event.get("type") == "REQUEST" and "methodArn" in event:
        assert answer["policyDocument"]["Statement"], answer
    else:
        _check_api_answer(answer)
