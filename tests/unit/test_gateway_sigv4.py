"""The local gateway's AWS_IAM routes (the admin API): SigV4 signatures made by botocore with the
right secret pass, with the signer's identity in requestContext.identity; anything else gets
AWS's 403 answers and never reaches the function. Path parameters, the admin API's own stage
and id, and the operator's credentials file are checked here too."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import botocore.auth
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from bourse.settings import get_settings
from devstack.gateway.server import Gateway
from devstack.gateway.sigv4 import IamUser, SignatureRefused, verify
from devstack.gateway.template_api import (
    IAM,
    ApiSpec,
    FunctionSpec,
    RestApi,
    Route,
    load_rest_api,
)

pytestmark = pytest.mark.unit

HOST = "127.0.0.1:3000"
KEY, SECRET = "AKIAABCDEFGHIJKLMNOP", "s" * 40
USER = IamUser(KEY, SECRET, "arn:aws:iam::123456789012:user/bourse-local-operator",
               "AIDAEXAMPLEEXAMPLE1", "123456789012")  # fmt: skip
ECHO = """
import json
import os
CALLS = os.path.join(os.path.dirname(__file__), "calls.txt")
def handler(event, context):
    with open(CALLS, "a") as handle:
        handle.write("call\\n")
    return {"statusCode": 200, "body": json.dumps(event)}
"""


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    folder = tmp_path / "Admin"
    folder.mkdir()
    (folder / "app.py").write_text(ECHO)
    spec = FunctionSpec("Admin", "fn-admin", folder, "app", "handler", {}, 3, 128)
    api = RestApi(
        routes=[
            Route("POST", "/admin/markets/{symbol}/halt", "Admin", IAM, api="AdminApi"),
            Route("GET", "/admin/markets", "Admin", IAM, api="AdminApi"),
        ],
        authorizers={},
        responses={"MISSING_AUTHENTICATION_TOKEN": (404, '{"code":-1000,"msg":"x"}')},
        functions={"Admin": spec},
        stage="local",
        region="us-east-1",
        apis={"AdminApi": ApiSpec("AdminApi", "local", "local-adminapi")},
    )
    gw = Gateway(api, iam_users={KEY: USER})
    yield gw
    gw.close()


def _calls(gw: Gateway) -> int:
    calls = gw.pools["Admin"].spec.code_dir / "calls.txt"
    return len(calls.read_text().splitlines()) if calls.exists() else 0


def _signed(method: str, path: str, body: bytes = b"", secret: str = SECRET, key: str = KEY,
            region: str = "us-east-1") -> list[tuple[str, str]]:  # fmt: skip
    headers = {"Content-Type": "application/json"} if body else {}
    request = AWSRequest(method=method, url=f"http://{HOST}{path}", data=body, headers=headers)
    SigV4Auth(Credentials(key, secret), "execute-api", region).add_auth(request)
    return [("Host", HOST), *request.headers.items()]


def _call(gw: Gateway, method: str, path: str, headers: list[tuple[str, str]],
          body: bytes = b"") -> tuple[int, dict[str, Any]]:  # fmt: skip
    status, _, data = gw.handle(method, path, headers, body, "127.0.0.1")
    return status, json.loads(data)


def test_a_signed_request_reaches_the_function_with_its_identity(gateway: Gateway) -> None:
    body = b'{"reason":"maintenance"}'
    path = "/admin/markets/BTCUSDT/halt?dry=1"
    status, event = _call(gateway, "POST", path, _signed("POST", path, body), body)
    assert status == 200, event
    assert event["resource"] == "/admin/markets/{symbol}/halt"
    assert event["pathParameters"] == {"symbol": "BTCUSDT"}
    assert event["queryStringParameters"] == {"dry": "1"}
    identity = event["requestContext"]["identity"]
    assert identity["userArn"] == USER.user_arn and identity["accessKey"] == KEY
    assert identity["caller"] == USER.user_id and identity["accountId"] == "123456789012"
    context = event["requestContext"]
    assert (context["apiId"], context["stage"]) == ("local-adminapi", "local")
    assert context["path"] == "/local/admin/markets/BTCUSDT/halt"
    assert "authorizer" not in context
    assert _calls(gateway) == 1


MISMATCH = "The request signature we calculated does not match the signature you provided."


def test_refusals_are_aws_403s_and_reach_nothing(gateway: Gateway) -> None:
    path, body = "/admin/markets/BTCUSDT/halt", b'{"a":1}'
    assert _call(gateway, "POST", path, [("Host", HOST)], body) == (
        403, {"message": "Missing Authentication Token"}
    )  # fmt: skip
    status, answer = _call(
        gateway, "POST", path, _signed("POST", path, body, secret="x" * 40), body
    )
    assert status == 403 and answer["message"].startswith(MISMATCH)
    assert "The Canonical String for this request should have been" in answer["message"]
    # The body, the path and the method are all covered by the signature.
    headers = _signed("POST", path, body)
    assert _call(gateway, "POST", path, headers, b'{"a":2}')[1]["message"].startswith(MISMATCH)
    other = "/admin/markets/ETHUSDT/halt"
    assert _call(gateway, "POST", other, headers, body)[1]["message"].startswith(MISMATCH)
    unknown = _signed("POST", path, body, key="AKIAUNKNOWNUNKNOWN00")
    assert _call(gateway, "POST", path, unknown, body) == (
        403, {"message": "The security token included in the request is invalid."}
    )  # fmt: skip
    other_region = _signed("POST", path, body, region="eu-west-1")
    status, answer = _call(gateway, "POST", path, other_region, body)
    assert status == 403 and "scoped to a valid region" in answer["message"]
    incomplete = [("Host", HOST), ("Authorization", "AWS4-HMAC-SHA256 Credential=x")]
    status, answer = _call(gateway, "POST", path, incomplete, body)
    assert status == 403 and "requires 'Signature' parameter" in answer["message"]
    assert _calls(gateway) == 0


def test_a_stale_or_future_date_is_refused(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = "/admin/markets"
    for skew, words in ((-6, "Signature expired"), (6, "Signature not yet current")):
        moment = datetime.now(UTC).replace(tzinfo=None) + timedelta(minutes=skew)
        monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda m=moment: m)
        status, answer = _call(gateway, "GET", path, _signed("GET", path))
        assert status == 403 and answer["message"].startswith(words), answer
    moment = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=4)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: moment)
    assert _call(gateway, "GET", path, _signed("GET", path))[0] == 200
    assert _calls(gateway) == 1


def test_verify_checks_a_declared_payload_hash() -> None:
    body = b"{}"
    request = AWSRequest(method="POST", url=f"http://{HOST}/admin/x", data=body,
                         headers={"X-Amz-Content-SHA256": "0" * 64})  # fmt: skip
    SigV4Auth(Credentials(KEY, SECRET), "execute-api", "us-east-1").add_auth(request)
    headers = [("Host", HOST), *request.headers.items()]
    with pytest.raises(SignatureRefused, match="does not match"):
        verify("POST", "/admin/x", headers, body, {KEY: USER}, "us-east-1")


def test_the_template_serves_the_admin_api_behind_iam_on_the_same_port() -> None:
    api = load_rest_api("local", "us-east-1", 4566)
    matched = api.match("DELETE", "/admin/keys/abc123")
    assert matched is not None
    route, params = matched
    assert (route.function, route.authorizer, route.api, params) == (
        "AdminFunction", IAM, "AdminApi", {"apiKey": "abc123"}
    )  # fmt: skip
    gw = Gateway(api, max_containers=0)
    # Unsigned: AWS's own answer (the admin API customises no gateway response) ...
    status, _, data = gw.handle("GET", "/admin/markets", [("Host", HOST)], b"", "127.0.0.1")
    assert (status, json.loads(data)) == (403, {"message": "Missing Authentication Token"})
    status, _, data = gw.handle("GET", "/admin/nothing", [("Host", HOST)], b"", "127.0.0.1")
    assert (status, json.loads(data)) == (403, {"message": "Missing Authentication Token"})
    # ... while the trading API keeps its Binance-shaped one.
    status, _, data = gw.handle("GET", "/api/v3/nothing", [], b"", "127.0.0.1")
    assert status == 404 and json.loads(data)["code"] == -1000


def test_operator_credentials_are_made_once_and_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from devstack.operators import credentials_path, operator_credentials, operator_user

    monkeypatch.setenv("BOURSE_STACK_DIR", str(tmp_path / "stack"))
    get_settings.cache_clear()
    try:
        settings = get_settings()
        first = operator_credentials(settings)
        assert first["accessKeyId"].startswith("AKIA") and len(first["accessKeyId"]) == 20
        assert len(first["secretAccessKey"]) == 40
        assert first["userArn"] == "arn:aws:iam::123456789012:user/bourse-local-operator"
        assert stat.S_IMODE(os.stat(credentials_path(settings)).st_mode) == 0o600
        assert operator_credentials(settings) == first  # kept across runs
        user = operator_user(settings)
        assert user.access_key_id == first["accessKeyId"] and user.user_id.startswith("AIDA")
    finally:
        get_settings.cache_clear()
