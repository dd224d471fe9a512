"""Every custom-resource handler answers CloudFormation once, well formed, on every path.

The file-based handlers (``COVERED_HANDLERS`` of infra/deploy_check/custom_resources.py) run
through their real ``lambda_handler`` with the work they do replaced by a fake that succeeds,
raises or hangs; the inline ZipFile handlers of the templates are extracted and run the same
way (test_custom_resources_inline.py). A local HTTP server stands in for the pre-signed S3
response URL and records every PUT. On each path: exactly one answer, with Status, Reason,
PhysicalResourceId (the one CloudFormation sent, on Update and Delete), StackId, RequestId and
LogicalResourceId; a hang is answered FAILED before the function's timeout.
"""

from __future__ import annotations

import importlib.util
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from bourse.deploy import custom_resource
from infra.deploy_check import custom_resources
from infra.deploy_check.checks import REGISTRY, Stack, run_check

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
STACK_ID = "arn:aws:cloudformation:us-east-1:123456789012:stack/bourse-dev/5b3c3a40"
REQUIRED = {"Status", "Reason", "PhysicalResourceId", "StackId", "RequestId", "LogicalResourceId"}


class ResponseUrl:
    """A stand-in for the pre-signed S3 URL: records each PUT (headers and JSON body)."""

    def __init__(self) -> None:
        self.answers: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.fail_next = 0
        answers, headers, owner = self.answers, self.headers, self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                length = int(self.headers["Content-Length"])
                body = self.rfile.read(length)
                if owner.fail_next:
                    owner.fail_next -= 1
                    self.send_response(500)
                    self.end_headers()
                    return
                headers.append(dict(self.headers))
                answers.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/response?X-Amz-Signature=x"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def response_url() -> Iterator[ResponseUrl]:
    url = ResponseUrl()
    yield url
    url.close()


class Context:
    """Lambda's context object, with a clock: the function's timeout is ``timeout_ms``."""

    def __init__(self, timeout_ms: int = 60_000) -> None:
        self.deadline = time.monotonic() + timeout_ms / 1000
        self.function_name = "bourse-test-custom-resource"
        self.memory_limit_in_mb = 512
        self.invoked_function_arn = (
            "arn:aws:lambda:us-east-1:123456789012:function:bourse-test-custom-resource"
        )
        self.aws_request_id = "c0ffee00-0000-4000-8000-000000000000"
        self.log_group_name = "/aws/lambda/bourse-test-custom-resource"
        self.log_stream_name = "2026/12/07/[$LATEST]0123456789abcdef"

    def get_remaining_time_in_millis(self) -> int:
        return max(int((self.deadline - time.monotonic()) * 1000), 0)


def make_event(request_type: str, url: str, physical_id: str | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {
        "RequestType": request_type,
        "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:x",
        "ResponseURL": url,
        "StackId": STACK_ID,
        "RequestId": f"req-{request_type.lower()}",
        "ResourceType": "AWS::CloudFormation::CustomResource",
        "LogicalResourceId": "TheResource",
        "ResourceProperties": {"ServiceToken": "x", "LayerVersion": "arn:layer:1"},
    }
    if physical_id is not None:
        event["PhysicalResourceId"] = physical_id
        event["OldResourceProperties"] = {"ServiceToken": "x", "LayerVersion": "arn:layer:0"}
    return event


def assert_one_answer(url: ResponseUrl, event: dict[str, Any], status: str) -> dict[str, Any]:
    assert len(url.answers) == 1, url.answers
    answer = url.answers[0]
    assert set(answer) >= REQUIRED, answer
    assert answer["Status"] == status, answer
    assert answer["StackId"] == event["StackId"]
    assert answer["RequestId"] == event["RequestId"]
    assert answer["LogicalResourceId"] == event["LogicalResourceId"]
    assert isinstance(answer["Reason"], str) and answer["Reason"]
    assert isinstance(answer["PhysicalResourceId"], str) and answer["PhysicalResourceId"]
    assert all(isinstance(v, str) for v in (answer.get("Data") or {}).values())
    assert len(json.dumps(answer)) < 4096  # CloudFormation's limit for a response
    # the pre-signed URL is signed for an empty content type
    assert url.headers[0].get("Content-Type", "") == ""
    return answer


def load_handler(entry: str) -> ModuleType:
    path, _function = entry.rsplit(".", 1)
    spec = importlib.util.spec_from_file_location(
        f"cr_{path.replace('/', '_')}_{time.monotonic_ns()}", REPO / f"{path}.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HANDLERS = sorted(custom_resources.COVERED_HANDLERS.items())


class Work:
    """The fake for a handler's work: records calls; succeeds, raises or hangs."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.calls: list[tuple[Any, ...]] = []
        self.release = threading.Event()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append(args)
        if self.mode == "raise":
            raise RuntimeError("the brokers said no")
        if self.mode == "hang":
            self.release.wait(30)
        return []


def run_handler(
    entry: str, attribute: str, mode: str, event: dict[str, Any], context: Context,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[Work, Callable[[], Any]]:  # fmt: skip
    module = load_handler(entry)
    work = Work(mode)
    monkeypatch.setattr(module, attribute, work)
    if hasattr(module, "get_settings"):
        monkeypatch.setattr(
            module, "get_settings",
            lambda: SimpleNamespace(pg_dsn="host=127.0.0.1 port=1 dbname=x user=x",
                                    commands_topic="c", events_topic="e", marketdata_topic="m"),
        )  # fmt: skip
    return work, lambda: module.lambda_handler(event, context)


@pytest.mark.parametrize(("entry", "attribute"), HANDLERS)
def test_create_runs_the_work_and_answers_success(
    entry: str, attribute: str, response_url: ResponseUrl, monkeypatch: pytest.MonkeyPatch
) -> None:
    event = make_event("Create", response_url.url)
    work, call = run_handler(entry, attribute, "ok", event, Context(), monkeypatch)
    call()
    answer = assert_one_answer(response_url, event, "SUCCESS")
    assert len(work.calls) == 1
    module_physical = load_handler(entry).PHYSICAL_ID
    assert answer["PhysicalResourceId"] == module_physical


@pytest.mark.parametrize(("entry", "attribute"), HANDLERS)
def test_update_runs_the_work_and_keeps_the_physical_id(
    entry: str, attribute: str, response_url: ResponseUrl, monkeypatch: pytest.MonkeyPatch
) -> None:
    event = make_event("Update", response_url.url, physical_id="the-id-cloudformation-has")
    work, call = run_handler(entry, attribute, "ok", event, Context(), monkeypatch)
    call()
    answer = assert_one_answer(response_url, event, "SUCCESS")
    assert answer["PhysicalResourceId"] == "the-id-cloudformation-has"
    assert len(work.calls) == 1


@pytest.mark.parametrize(("entry", "attribute"), HANDLERS)
def test_delete_does_nothing_and_answers_success(
    entry: str, attribute: str, response_url: ResponseUrl, monkeypatch: pytest.MonkeyPatch
) -> None:
    event = make_event("Delete", response_url.url, physical_id="the-id-cloudformation-has")
    work, call = run_handler(entry, attribute, "ok", event, Context(), monkeypatch)
    call()
    answer = assert_one_answer(response_url, event, "SUCCESS")
    assert answer["PhysicalResourceId"] == "the-id-cloudformation-has"
    assert work.calls == []


@pytest.mark.parametrize(("entry", "attribute"), HANDLERS)
@pytest.mark.parametrize("request_type", ["Create", "Update"])
def test_an_exception_is_answered_failed_with_its_reason(
    entry: str, attribute: str, request_type: str, response_url: ResponseUrl,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    physical = None if request_type == "Create" else "the-id-cloudformation-has"
    event = make_event(request_type, response_url.url, physical_id=physical)
    _work, call = run_handler(entry, attribute, "raise", event, Context(), monkeypatch)
    call()
    answer = assert_one_answer(response_url, event, "FAILED")
    assert "RuntimeError: the brokers said no" in answer["Reason"]
    assert "log stream" in answer["Reason"]
    if physical:
        assert answer["PhysicalResourceId"] == physical


@pytest.mark.parametrize(("entry", "attribute"), HANDLERS)
def test_a_hang_is_answered_failed_before_the_function_times_out(
    entry: str, attribute: str, response_url: ResponseUrl, monkeypatch: pytest.MonkeyPatch
) -> None:
    event = make_event("Create", response_url.url)
    context = Context(timeout_ms=3000)
    work, call = run_handler(entry, attribute, "hang", event, context, monkeypatch)
    started = time.monotonic()
    call()
    assert time.monotonic() - started < 3.0
    assert context.get_remaining_time_in_millis() > 0
    answer = assert_one_answer(response_url, event, "FAILED")
    assert "DeadlineExceeded" in answer["Reason"]
    # the abandoned work finishing later answers nothing more
    work.release.set()
    time.sleep(0.2)
    assert len(response_url.answers) == 1


@pytest.mark.parametrize(("entry", "attribute"), HANDLERS)
def test_an_unknown_request_type_is_answered_failed(
    entry: str, attribute: str, response_url: ResponseUrl, monkeypatch: pytest.MonkeyPatch
) -> None:
    event = make_event("Replace", response_url.url, physical_id="p")
    work, call = run_handler(entry, attribute, "ok", event, Context(), monkeypatch)
    call()
    assert "unknown RequestType" in assert_one_answer(response_url, event, "FAILED")["Reason"]
    assert work.calls == []


def test_the_deadline_is_passed_to_the_work(
    response_url: ResponseUrl, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[float] = []

    def action(_properties: Any, deadline: float) -> dict[str, str]:
        seen.append(deadline)
        return {"Count": 3}  # type: ignore[dict-item]  # the protocol sends strings

    event = make_event("Create", response_url.url)
    answer = custom_resource.run(event, Context(timeout_ms=120_000), "pid", action)
    assert answer["Data"] == {"Count": "3"}
    # 120 s of function time less the 10 s kept for answering
    assert 105 < seen[0] - time.monotonic() <= 110


def test_a_refused_put_is_sent_again(response_url: ResponseUrl) -> None:
    response_url.fail_next = 1
    event = make_event("Delete", response_url.url, physical_id="p")
    custom_resource.run(event, Context(), "pid", lambda _p, _d: {})
    assert_one_answer(response_url, event, "SUCCESS")


def test_a_long_reason_is_cut_to_fit_the_response(response_url: ResponseUrl) -> None:
    def action(_properties: Any, _deadline: float) -> dict[str, str]:
        raise ValueError("x" * 10_000)

    event = make_event("Create", response_url.url)
    custom_resource.run(event, Context(), "pid", action)
    answer = assert_one_answer(response_url, event, "FAILED")
    assert len(answer["Reason"]) <= custom_resource.MAX_REASON


def test_migrations_that_never_reach_the_record_fail_with_the_reason(
    response_url: ResponseUrl, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real apply_migrations against a port where nothing listens: it retries until the
    deadline, then the resource is FAILED with why, before the function's timeout."""
    module = load_handler("functions/migrations/app.lambda_handler")
    monkeypatch.setattr(
        module, "get_settings",
        lambda: SimpleNamespace(pg_dsn="host=127.0.0.1 port=1 dbname=bourse user=bourse"),
    )  # fmt: skip
    event = make_event("Create", response_url.url)
    context = Context(timeout_ms=4000)
    module.lambda_handler(event, context)
    assert context.get_remaining_time_in_millis() > 0
    reason = assert_one_answer(response_url, event, "FAILED")["Reason"]
    assert "MigrationError" in reason
    assert "the record (127.0.0.1:1/bourse) accepted no connection" in reason
    assert "RDS Proxy's target" in reason


# --- the deploy checks over the templates ---------------------------------------------------


def _root(resources: dict[str, Any]) -> dict[str, Any]:
    return {"Globals": {"Function": {"Timeout": 10}}, "Resources": resources}


def _sam_function(code_uri: str, timeout: int | None = None) -> dict[str, Any]:
    props: dict[str, Any] = {"CodeUri": code_uri, "Handler": "app.lambda_handler"}
    if timeout:
        props["Timeout"] = timeout
    return {"Type": "AWS::Serverless::Function", "Properties": props}


def _custom(function: str, service_timeout: int | None = None) -> dict[str, Any]:
    props: dict[str, Any] = {"ServiceToken": {"Fn::GetAtt": [function, "Arn"]}}
    if service_timeout is not None:
        props["ServiceTimeout"] = service_timeout
    return {"Type": "AWS::CloudFormation::CustomResource", "Properties": props}


def test_every_covered_handler_exists() -> None:
    for entry in custom_resources.COVERED_HANDLERS:
        module = load_handler(entry)
        assert callable(getattr(module, entry.rsplit(".", 1)[1]))
        assert hasattr(module, custom_resources.COVERED_HANDLERS[entry])


def test_the_checks_pass_on_covered_handlers_with_service_timeouts() -> None:
    stack = Stack(template=_root({
        "KafkaTopicsFunction": _sam_function("functions/kafka_topics/", 120),
        "KafkaTopics": _custom("KafkaTopicsFunction", 300),
    }), nested={"Msk": {"Resources": {
        "Lookup": {"Type": "AWS::Lambda::Function",
                   "Properties": {"Timeout": 30,
                                  "Code": {"ZipFile": "c.get_remaining_time_in_millis()"}}},
        "Bootstrap": {"Type": "AWS::CloudFormation::CustomResource",
                      "Properties": {"ServiceToken": {"Fn::GetAtt": "Lookup.Arn"},
                                     "ServiceTimeout": "120"}},
    }}})  # fmt: skip
    assert run_check(REGISTRY["custom-resources"], stack) == []
    assert run_check(REGISTRY["custom-resource-timeouts"], stack) == []
    assert [h.entry for h in custom_resources.inline_handlers(stack)] == ["inline:Msk/Lookup"]


def test_an_uncovered_handler_and_a_foreign_token_fail() -> None:
    stack = Stack(template=_root({
        "NewFunction": _sam_function("functions/new_thing/"),
        "NewThing": _custom("NewFunction", 60),
        "Elsewhere": {"Type": "Custom::Thing", "Properties": {"ServiceToken": "arn:aws:sns:x"}},
    }))  # fmt: skip
    failures = run_check(REGISTRY["custom-resources"], stack)
    assert [f.where for f in failures] == ["Elsewhere", "NewThing"]
    assert "functions/new_thing/app.lambda_handler is not driven" in failures[1].message


def test_a_missing_or_short_service_timeout_fails() -> None:
    stack = Stack(template=_root({
        "Fn": _sam_function("functions/kafka_topics/", 120),
        "NoTimeout": _custom("Fn"),
        "Short": _custom("Fn", 60),
        "GlobalsTimeout": _custom("Other", 11),
        "Other": _sam_function("functions/migrations/"),
    }))  # fmt: skip
    failures = {f.where: f.message for f in run_check(REGISTRY["custom-resource-timeouts"], stack)}
    assert set(failures) == {"NoTimeout", "Short"}
    assert "no ServiceTimeout" in failures["NoTimeout"]
    assert "not above its function's timeout (120 s)" in failures["Short"]


def test_migrations_without_rds_proxy_grant_iam_auth_first(
    response_url: ResponseUrl, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A profile without RDS Proxy: the master secret's password grants rds_iam, then the
    migrations run (both under the same deadline)."""
    module = load_handler("functions/migrations/app.lambda_handler")
    steps: list[tuple[str, Any]] = []
    monkeypatch.setenv(module.MASTER_SECRET_ENV, "arn:aws:secretsmanager:us-east-1:1:secret:m")
    monkeypatch.setattr(
        module.aws, "client",
        lambda _service: SimpleNamespace(get_secret_value=lambda SecretId: {
            "SecretString": json.dumps({"username": "bourse", "password": "pw"})}),
    )  # fmt: skip
    monkeypatch.setattr(module, "get_settings", lambda: SimpleNamespace(pg_dsn="host=h"))

    def grant_iam_auth(dsn: str, pw: str, deadline: float) -> bool:
        steps.append(("grant", pw))
        return True

    def apply_migrations(dsn: str, deadline: float) -> list[object]:
        steps.append(("apply", dsn))
        return []

    monkeypatch.setattr(module, "grant_iam_auth", grant_iam_auth)
    monkeypatch.setattr(module, "apply_migrations", apply_migrations)
    event = make_event("Create", response_url.url)
    module.lambda_handler(event, Context())
    assert_one_answer(response_url, event, "SUCCESS")
    assert steps == [("grant", "pw"), ("apply", "host=h")]


def test_an_inline_handler_without_a_deadline_fails() -> None:
    stack = Stack(template=_root({}), nested={"Msk": {"Resources": {
        "Lookup": {"Type": "AWS::Lambda::Function",
                   "Properties": {"Timeout": 30, "Code": {"ZipFile": "def handler(e, c): pass"}}},
        "Bootstrap": _custom("Lookup", 120),
    }}})  # fmt: skip
    failures = run_check(REGISTRY["custom-resources"], stack)
    assert [f.where for f in failures] == ["Msk/Lookup"]
    assert "without a deadline" in failures[0].message


def test_migrations_ignore_a_master_secret_that_is_no_arn(
    response_url: ResponseUrl, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AWS drops a variable set to AWS::NoValue; a placeholder where it should be absent
    (the local invoker's) must not send the handler to Secrets Manager."""
    module = load_handler("functions/migrations/app.lambda_handler")
    monkeypatch.setenv(module.MASTER_SECRET_ENV, "<devstack.cfn._NoValue object at 0x7f>")
    monkeypatch.setattr(module, "get_settings", lambda: SimpleNamespace(pg_dsn="host=h"))
    monkeypatch.setattr(module, "grant_iam_auth", Work("raise"))
    monkeypatch.setattr(module, "apply_migrations", lambda dsn, deadline: [])
    event = make_event("Create", response_url.url)
    module.lambda_handler(event, Context())
    assert_one_answer(response_url, event, "SUCCESS")
