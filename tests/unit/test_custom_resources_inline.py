"""The inline (ZipFile) custom-resource handlers of the templates, extracted and run.

Each is written to a folder as ``index.py`` beside a stand-in for the ``cfnresponse`` module
that Lambda adds to ZipFile code (the documented interface: ``send(event, context,
responseStatus, responseData, physicalResourceId=None, noEcho=False, reason=None)``, one PUT to
ResponseURL, errors printed, not raised), with boto3's clients replaced by fakes that answer,
raise or hang. Same paths and the same requirements as test_custom_resources.py: one
well-formed answer each, a hang answered FAILED before the function's timeout.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
import time
import urllib.request
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from devstack.cfn import load_template
from infra.deploy_check import custom_resources
from infra.deploy_check.checks import Stack
from tests.unit.test_custom_resources import (
    Context,
    ResponseUrl,
    assert_one_answer,
    make_event,
    response_url,
)

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
__all__ = ["response_url"]  # the fixture, imported for these tests

CFNRESPONSE = """
import json
import urllib.request

SUCCESS = "SUCCESS"
FAILED = "FAILED"


def send(event, context, responseStatus, responseData, physicalResourceId=None, noEcho=False,
         reason=None):
    body = json.dumps({
        "Status": responseStatus,
        "Reason": reason or "See the details in CloudWatch Log Stream: " + context.log_stream_name,
        "PhysicalResourceId": physicalResourceId or context.log_stream_name,
        "StackId": event["StackId"],
        "RequestId": event["RequestId"],
        "LogicalResourceId": event["LogicalResourceId"],
        "NoEcho": noEcho,
        "Data": responseData,
    }).encode()
    request = urllib.request.Request(event["ResponseURL"], data=body, method="PUT",
                                     headers={"content-type": "", "content-length": str(len(body))})
    try:
        urllib.request.urlopen(request, timeout=10).read()
    except Exception as exc:
        print("send(..) failed executing request:", exc)
"""


def _stack() -> Stack:
    template = load_template(REPO / "template.yaml")
    nested = {
        name: load_template(REPO / str(resource["Properties"]["Location"]))
        for name, resource in template["Resources"].items()
        if resource["Type"] in ("AWS::Serverless::Application", "AWS::CloudFormation::Stack")
        and isinstance(resource["Properties"].get("Location"), str)
    }
    return Stack(template=template, nested=nested)


INLINE = custom_resources.inline_handlers(_stack())


class _Answer(dict[str, Any]):
    """Any key a caller reads from an AWS answer: a plausible string."""

    def __missing__(self, key: str) -> str:
        return f"b-1.example:9098,b-2.example:9098 ({key})"


class FakeAws:
    """boto3 stand-in: every client's every call answers, raises or hangs."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.calls: list[str] = []
        self.release = threading.Event()

    def client(self, service: str, *args: Any, **kwargs: Any) -> Any:
        fake = self

        class Client:
            def __getattr__(self, name: str) -> Any:
                def call(**params: Any) -> Any:
                    fake.calls.append(f"{service}.{name}")
                    if fake.mode == "raise":
                        raise RuntimeError(f"{service} said no")
                    if fake.mode == "hang":
                        fake.release.wait(30)
                    return _Answer()

                return call

        return Client()


def _load(handler: custom_resources.Handler, folder: Path, fake: FakeAws) -> ModuleType:
    (folder / "index.py").write_text(str(handler.inline_code))
    (folder / "cfnresponse.py").write_text(CFNRESPONSE)
    sys.path.insert(0, str(folder))
    try:
        sys.modules.pop("cfnresponse", None)
        spec = importlib.util.spec_from_file_location(f"inline_{time.monotonic_ns()}",
                                                      folder / "index.py")  # fmt: skip
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(folder))
    module.boto3 = SimpleNamespace(client=fake.client)  # type: ignore[attr-defined]
    return module


def _invoke(module: ModuleType, event: dict[str, Any], context: Context) -> float:
    """Run the handler as Lambda would, but never longer than its timeout: how long it took."""
    started = time.monotonic()
    runner = threading.Thread(target=module.handler, args=(event, context), daemon=True)
    runner.start()
    runner.join(context.get_remaining_time_in_millis() / 1000)
    return time.monotonic() - started


def test_the_templates_have_inline_handlers_to_drive() -> None:
    assert [h.entry for h in INLINE] == ["inline:Msk/BootstrapLookupFunction"]


@pytest.mark.parametrize("handler", INLINE, ids=lambda h: h.entry)
@pytest.mark.parametrize("request_type", ["Create", "Update", "Delete"])
def test_inline_handler_answers_success(
    handler: custom_resources.Handler, request_type: str, tmp_path: Path,
    response_url: ResponseUrl,
) -> None:  # fmt: skip
    fake = FakeAws("ok")
    module = _load(handler, tmp_path, fake)
    physical = None if request_type == "Create" else "the-id-cloudformation-has"
    event = make_event(request_type, response_url.url, physical_id=physical)
    event["ResourceProperties"]["ClusterArn"] = "arn:aws:kafka:us-east-1:1:cluster/bourse-dev/x"
    _invoke(module, event, Context(timeout_ms=(handler.timeout or 3) * 1000))
    answer = assert_one_answer(response_url, event, "SUCCESS")
    if request_type == "Delete":
        assert fake.calls == []
    else:
        assert fake.calls and answer["Data"]


@pytest.mark.parametrize("handler", INLINE, ids=lambda h: h.entry)
def test_inline_handler_keeps_its_physical_id(
    handler: custom_resources.Handler, tmp_path: Path, response_url: ResponseUrl
) -> None:
    """The id answered on Create is the one Update and Delete answer: never a new one (a new
    id on Update makes CloudFormation delete the old resource)."""
    module = _load(handler, tmp_path, FakeAws("ok"))
    created = make_event("Create", response_url.url)
    created["ResourceProperties"]["ClusterArn"] = "arn:aws:kafka:us-east-1:1:cluster/b/x"
    _invoke(module, created, Context())
    physical = response_url.answers[0]["PhysicalResourceId"]
    for request_type in ("Update", "Delete"):
        event = make_event(request_type, response_url.url, physical_id=physical)
        event["ResourceProperties"]["ClusterArn"] = created["ResourceProperties"]["ClusterArn"]
        _invoke(module, event, Context())
    assert [a["PhysicalResourceId"] for a in response_url.answers] == [physical] * 3


@pytest.mark.parametrize("handler", INLINE, ids=lambda h: h.entry)
def test_inline_handler_answers_failed_on_an_exception(
    handler: custom_resources.Handler, tmp_path: Path, response_url: ResponseUrl
) -> None:
    module = _load(handler, tmp_path, FakeAws("raise"))
    event = make_event("Create", response_url.url)
    event["ResourceProperties"]["ClusterArn"] = "arn:aws:kafka:us-east-1:1:cluster/b/x"
    _invoke(module, event, Context())
    assert_one_answer(response_url, event, "FAILED")


@pytest.mark.parametrize("handler", INLINE, ids=lambda h: h.entry)
def test_inline_handler_answers_failed_before_its_timeout_on_a_hang(
    handler: custom_resources.Handler, tmp_path: Path, response_url: ResponseUrl
) -> None:
    fake = FakeAws("hang")
    module = _load(handler, tmp_path, fake)
    event = make_event("Create", response_url.url)
    event["ResourceProperties"]["ClusterArn"] = "arn:aws:kafka:us-east-1:1:cluster/b/x"
    context = Context(timeout_ms=8000)  # as if the function's timeout were 8 s
    try:
        _invoke(module, event, context)
        assert response_url.answers, (
            f"{handler.entry}: no answer before the function's timeout while the AWS "
            "call hangs: CloudFormation would wait for its ServiceTimeout (an hour without one)"
        )
        assert_one_answer(response_url, event, "FAILED")
    finally:
        fake.release.set()
    time.sleep(0.2)
    assert len(response_url.answers) == 1


def test_the_cfnresponse_stand_in_puts_once(tmp_path: Path, response_url: ResponseUrl) -> None:
    (tmp_path / "cfnresponse.py").write_text(CFNRESPONSE)
    spec = importlib.util.spec_from_file_location("cfnresponse_check", tmp_path / "cfnresponse.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    event = make_event("Create", response_url.url)
    module.send(event, Context(), module.SUCCESS, {"A": "b"}, "pid")
    assert assert_one_answer(response_url, event, "SUCCESS")["Data"] == {"A": "b"}
    assert json.loads(json.dumps(response_url.answers[0]))["PhysicalResourceId"] == "pid"
    assert urllib.request  # the stand-in uses urllib, as test_custom_resources' server expects
