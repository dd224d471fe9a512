"""The local gateway's API Gateway semantics without sockets: routes from the template only,
the REQUEST authorizer (identity sources, Deny, cache per identity with TTL, failures),
gateway responses, proxy events v1.0. Functions are small modules written to tmp_path."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.typing import LambdaContext

from bourse.admin.handlers import ROUTES as ADMIN_ROUTES
from bourse.api.routes import BY_FUNCTION
from devstack.gateway.server import Gateway, _allows
from devstack.gateway.template_api import (
    IAM,
    Authorizer,
    FunctionSpec,
    RestApi,
    Route,
    load_rest_api,
)

pytestmark = pytest.mark.unit

CONTEXT = LambdaContext()  # the resolver reads nothing of the Lambda context

AUTHORIZER = """
import os
CALLS = os.path.join(os.path.dirname(__file__), "calls.txt")
def handler(event, context):
    with open(CALLS, "a") as handle:  # containers are processes: count through a file
        handle.write("call\\n")
    key = event["headers"].get("X-Key")
    if key == "boom":
        raise RuntimeError("bug")
    if key == "nobody":
        raise Exception("Unauthorized")
    effect = "Allow" if key == "good" else "Deny"
    return {"principalId": "42", "context": {"accountId": 42, "flag": True},
            "policyDocument": {"Version": "2012-10-17", "Statement": [
                {"Action": "execute-api:Invoke", "Effect": effect,
                 "Resource": event["methodArn"].rsplit("/", 2)[0] + "/*"}]}}
"""
ECHO = """
import json
import os
def handler(event, context):
    if event["queryStringParameters"] and "raise" in event["queryStringParameters"]:
        raise ValueError("function bug")
    if event["queryStringParameters"] and "exit" in event["queryStringParameters"]:
        os._exit(3)
    return {"statusCode": 200, "headers": {"X-Fn": context.function_name},
            "body": json.dumps(event)}
"""


def _spec(tmp: Path, name: str, source: str) -> FunctionSpec:
    folder = tmp / name
    folder.mkdir()
    (folder / "app.py").write_text(source)
    return FunctionSpec(name, f"fn-{name}", folder, "app", "handler", {}, 3, 128)


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    api = RestApi(
        routes=[Route("GET", "/open", "Echo", None), Route("POST", "/closed", "Echo", "Auth")],
        authorizers={"Auth": Authorizer("Auth", "AuthFn", ("X-Key",), ("identity.sourceIp",), 60)},
        responses={},
        functions={"Echo": _spec(tmp_path, "Echo", ECHO),
                   "AuthFn": _spec(tmp_path, "AuthFn", AUTHORIZER)},
        stage="local",
        region="us-east-1",
    )  # fmt: skip
    gw = Gateway(api)
    yield gw
    gw.close()


def _call(gw: Gateway, method: str, path: str, headers: dict[str, str] | None = None,
          body: bytes = b"", ip: str = "127.0.0.1") -> tuple[int, dict[str, Any]]:  # fmt: skip
    status, _, data = gw.handle(method, path, list((headers or {}).items()), body, ip)
    return status, json.loads(data)


def _authorizer_calls(gw: Gateway) -> int:
    calls = gw.pools["AuthFn"].spec.code_dir / "calls.txt"
    return len(calls.read_text().splitlines()) if calls.exists() else 0


def test_proxy_event_v1(gateway: Gateway) -> None:
    status, event = _call(gateway, "GET", "/open?a=1&a=2&b=x%20y", {"User-Agent": "t"})
    assert status == 200
    assert event["multiValueQueryStringParameters"] == {"a": ["1", "2"], "b": ["x y"]}
    assert event["queryStringParameters"] == {"a": "2", "b": "x y"}
    assert event["requestContext"]["identity"]["sourceIp"] == "127.0.0.1"
    assert event["requestContext"]["stage"] == "local" and event["resource"] == "/open"
    assert event["body"] is None and event["isBase64Encoded"] is False
    assert "authorizer" not in event["requestContext"]


def test_unknown_routes_and_function_errors(gateway: Gateway) -> None:
    assert _call(gateway, "GET", "/nope") == (403, {"message": "Missing Authentication Token"})
    assert _call(gateway, "DELETE", "/open")[0] == 403  # a known path, another method
    assert _call(gateway, "GET", "/open?raise=1") == (502, {"message": "Internal server error"})
    # A container that dies is a 502 too, and the next request gets a new container.
    assert _call(gateway, "GET", "/open?exit=1")[0] == 502
    assert _call(gateway, "GET", "/open")[0] == 200


def test_authorizer_semantics(gateway: Gateway) -> None:
    # No identity source: 401 without calling the authorizer.
    assert _call(gateway, "POST", "/closed") == (401, {"message": "Unauthorized"})
    assert _authorizer_calls(gateway) == 0
    status, event = _call(gateway, "POST", "/closed", {"X-Key": "good"}, b"x=1")
    assert status == 200 and event["body"] == "x=1"
    assert event["requestContext"]["authorizer"]["accountId"] == "42"
    assert event["requestContext"]["authorizer"]["flag"] == "true"
    assert event["requestContext"]["authorizer"]["principalId"] == "42"
    _call(gateway, "POST", "/closed", {"X-Key": "good"})
    assert _authorizer_calls(gateway) == 1  # cached per identity
    _call(gateway, "POST", "/closed", {"X-Key": "good"}, ip="10.0.0.9")
    assert _authorizer_calls(gateway) == 2  # the source IP is part of the identity
    assert _call(gateway, "POST", "/closed", {"X-Key": "bad"})[0] == 403
    assert _call(gateway, "POST", "/closed", {"X-Key": "nobody"})[0] == 401
    assert _call(gateway, "POST", "/closed", {"X-Key": "boom"})[0] == 500


def test_policy_evaluation() -> None:
    arn = "arn:aws:execute-api:r:1:api/local/GET/x"
    allow = {
        "Action": "execute-api:Invoke",
        "Effect": "Allow",
        "Resource": "arn:aws:execute-api:r:1:api/local/*",
    }
    deny = {**allow, "Effect": "Deny", "Resource": arn}
    assert _allows({"Statement": [allow]}, arn)
    assert not _allows({"Statement": [allow, deny]}, arn)
    assert not _allows({"Statement": [{**allow, "Resource": "arn:other"}]}, arn)
    assert not _allows({"Statement": []}, arn)


def test_template_routes_are_the_api_route_tables() -> None:
    """template.yaml and bourse.api.routes declare the same endpoints, per function, and every
    SIGNED route sits behind the authorizer; the admin API's are bourse.admin's, behind IAM."""
    api = load_rest_api("local", "us-east-1", 4566)
    trading = [r for r in api.routes if r.api == "RestApi"]
    declared = {(r.function, r.method, r.path, r.authorizer is not None) for r in trading}
    expected = {
        (function, r.method, r.path, r.needs_api_key)
        for function, routes in BY_FUNCTION.items()
        for r in routes
    }
    assert declared == expected
    # The admin API: exactly bourse.admin's routes, every one behind AWS_IAM.
    admin = {(r.function, r.method, r.path, r.authorizer) for r in api.routes if r.api != "RestApi"}
    assert admin == {("AdminFunction", r.method, r.path, IAM) for r in ADMIN_ROUTES}
    assert api.response("MISSING_AUTHENTICATION_TOKEN")[0] == 404
    assert json.loads(api.response("ACCESS_DENIED")[1])["code"] == -2015
    assert api.functions["OrdersFunction"].environment["API_KEYS_TABLE"] == "bourse-local-api-keys"


def test_cors_preflight_from_the_template_and_headers_from_the_functions() -> None:
    """The deployed page (CloudFront) calls the API from another origin: API Gateway answers
    the preflight from template.yaml's Cors without the authorizer, and the resolver adds the
    origin header (and exposes the limit headers) on the function's own answers."""
    from bourse.api.app import build

    api = load_rest_api("local", "us-east-1", 4566)
    gw = Gateway(api, max_containers=0)
    origin = [("Origin", "https://x")]
    status, headers, _ = gw.handle("OPTIONS", "/api/v3/order", origin, b"", "1.2.3.4")
    allowed = dict(headers)
    assert status == 200 and allowed["Access-Control-Allow-Origin"] == "*"
    assert "X-MBX-APIKEY" in allowed["Access-Control-Allow-Headers"]
    assert "DELETE" in allowed["Access-Control-Allow-Methods"]
    assert gw.handle("OPTIONS", "/nowhere", [], b"", "1.2.3.4")[0] == 404

    def ping(req: Any, deps: Any) -> dict[str, Any]:
        return {}

    from bourse.api.handlers import Deps
    from bourse.api.routes import Route as ApiRoute

    deps = Deps(view=None, bus=None, keys=None, clock=lambda: 0)  # type: ignore[arg-type]
    resolver = build((ApiRoute("GET", "/api/v3/ping", ping, False),), lambda: deps)
    event = {"httpMethod": "GET", "path": "/api/v3/ping", "resource": "/api/v3/ping",
             "headers": {"Origin": "https://x"}, "multiValueHeaders": {"Origin": ["https://x"]},
             "requestContext": {"identity": {"sourceIp": "1.2.3.4"}}}  # fmt: skip
    answer = resolver.resolve(event, CONTEXT)
    assert answer["statusCode"] == 200, answer
    cors = answer["multiValueHeaders"]
    assert cors["Access-Control-Allow-Origin"] == ["*"]
    assert "X-MBX-USED-WEIGHT-1M" in cors["Access-Control-Expose-Headers"][0]
