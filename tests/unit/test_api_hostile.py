"""Hostile requests at the function level (issue 15): whose key acts, and input that is not
ASCII or not UTF-8.

* Cross-account action: the authorizer's Allow is cached per identity source (the key header
  API Gateway picked, and the address), the function read another header spelling; a request
  carrying two keys and signed with one's own secret acted as the other account. Now the
  authorizer refuses more than one key header (-2014), puts a digest of the key it answered for
  into its context, and the function refuses a key that is not that one or is not the
  account's (-2015), whatever the cache holds.
* Non-ASCII and non-UTF-8 signatures and parameters: Binance's codes, never a 500.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from aws_lambda_powertools.utilities.typing import LambdaContext

from bourse.adapters.api_keys import ApiKey
from bourse.api import handlers as h
from bourse.api.app import build
from bourse.api.auth import Unauthorized, authorize
from bourse.api.routes import ACCOUNT, ORDERS
from bourse.api.signing import ED25519, verify_signature
from bourse.domain.enums import Outcome
from bourse.domain.errors import BinanceError
from bourse.domain.events import ReplyPart
from bourse.ws import api as ws_api
from devstack.gateway.server import Gateway
from devstack.gateway.template_api import Authorizer, FunctionSpec, RestApi, Route
from tests.unit.test_api_handlers import LIMIT, NOW, FakeBus, FakeView, ok_reply, result
from tests.unit.test_api_keys import FakeListenKeys
from tests.unit.test_ws_transport import FakeStore, _event

pytestmark = pytest.mark.unit

CONTEXT = LambdaContext()  # the resolver reads nothing of the Lambda context

VICTIM, VICTIM_SECRET = "V" * 64, "v" * 64  # account 7
MINE, MY_SECRET = "M" * 64, "m" * 64  # account 8
ARN = "arn:aws:execute-api:us-east-1:1:api/prod/POST/api/v3/order"
BAD_FORMAT = {"code": -2014, "msg": "API-key format invalid."}
REJECTED = {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}


class Keys:
    def __init__(self) -> None:
        self.keys = {VICTIM: ApiKey(VICTIM, VICTIM_SECRET, 7), MINE: ApiKey(MINE, MY_SECRET, 8)}

    def get(self, api_key: str) -> ApiKey | None:
        return self.keys.get(api_key)


def _deps() -> h.Deps:
    bus = FakeBus(lambda c: ok_reply(c, ReplyPart(Outcome.SUCCESS, 0, "", result())))
    return h.Deps(FakeView(), bus, Keys(), lambda: NOW, lambda: "req-1",
                  listen_keys=FakeListenKeys())  # fmt: skip


def _signed(params: dict[str, str], secret: str) -> str:
    payload = urlencode({**params, "timestamp": str(NOW - 10)})
    return payload + "&signature=" + hmac.new(secret.encode(), payload.encode(),
                                              hashlib.sha256).hexdigest()  # fmt: skip


def _headers(pairs: list[tuple[str, str]]) -> tuple[dict[str, str], dict[str, list[str]]]:
    """``headers`` and ``multiValueHeaders`` as API Gateway REST builds them: names as sent,
    one value per name in ``headers`` (the last), all of them in ``multiValueHeaders``."""
    multi: dict[str, list[str]] = {}
    for name, value in pairs:
        multi.setdefault(name, []).append(value)
    return {name: values[-1] for name, values in multi.items()}, multi


def _context_for(api_key: str) -> dict[str, Any]:
    """requestContext.authorizer as API Gateway passes a cached Allow for ``api_key``."""
    answer = authorize(
        {"headers": {"X-MBX-APIKEY": api_key}, "methodArn": ARN,
         "requestContext": {"identity": {"sourceIp": "10.1.2.3"}}},
        Keys(),
    )  # fmt: skip
    context = {k: str(v) for k, v in answer["context"].items()}
    return {**context, "principalId": answer["principalId"]}


def _event_of(method: str, path: str, pairs: list[tuple[str, str]], authorizer: dict[str, Any],
              body: str | None = None, encoded: bool = False) -> dict[str, Any]:  # fmt: skip
    headers, multi = _headers(pairs)
    return {"resource": path, "path": path, "httpMethod": method, "headers": headers,
            "multiValueHeaders": multi, "queryStringParameters": None,
            "multiValueQueryStringParameters": None,
            "requestContext": {"requestId": "r", "identity": {"sourceIp": "10.1.2.3"},
                               "authorizer": authorizer},
            "body": body, "isBase64Encoded": encoded}  # fmt: skip


def _resolve(deps: h.Deps, event: dict[str, Any]) -> tuple[int, Any]:
    answer = build(ORDERS + ACCOUNT, lambda: deps).resolve(event, CONTEXT)
    return answer["statusCode"], json.loads(answer["body"])


# ------------------------------------------------------------------- cross-account action


@pytest.mark.parametrize(
    "pairs",
    [
        # Two spellings: each is a name of its own in ``headers``.
        [("X-MBX-APIKEY", MINE), ("x-mbx-apikey", VICTIM)],
        [("x-mbx-apikey", VICTIM), ("X-MBX-APIKEY", MINE)],
        # One name twice: ``headers`` has the last, ``multiValueHeaders`` both.
        [("X-MBX-APIKEY", MINE), ("X-MBX-APIKEY", VICTIM)],
        [("X-MBX-APIKEY", VICTIM), ("X-MBX-APIKEY", MINE)],
    ],
)
def test_two_key_headers_never_act_as_the_victim(pairs: list[tuple[str, str]]) -> None:
    """Signed with my secret, carrying my key and the victim's, with the victim's cached Allow
    (or mine): refused with -2014 before anything is sent, on every SIGNED and USER_STREAM
    endpoint kind."""
    order = _signed({**LIMIT, "newClientOrderId": "x1"}, MY_SECRET)
    for cached in (VICTIM, MINE):
        deps = _deps()
        for method, path, body in (
            ("POST", "/api/v3/order", order),
            ("GET", "/api/v3/account", None),
            ("POST", "/api/v3/userDataStream", None),
        ):
            event = _event_of(method, path, pairs, _context_for(cached), body)
            if method == "GET":
                event["multiValueQueryStringParameters"] = {
                    k: [v] for k, v in (p.split("=") for p in _signed({}, MY_SECRET).split("&"))
                }
            assert _resolve(deps, event) == (401, BAD_FORMAT), (method, path, cached)
        assert deps.bus.sent == []  # type: ignore[attr-defined]
        assert deps.listen_keys.live == {}  # type: ignore[union-attr]


def test_a_key_other_than_the_authorizers_is_refused() -> None:
    """One key header, but the authorizer's answer (cached by API Gateway for another identity
    value) is the victim's: -2015, nothing sent, no listenKey made."""
    deps = _deps()
    order = _signed(LIMIT, MY_SECRET)
    victims_allow = _context_for(VICTIM)
    event = _event_of("POST", "/api/v3/order", [("X-MBX-APIKEY", MINE)], victims_allow, order)
    assert _resolve(deps, event) == (401, REJECTED)
    stream = _event_of("POST", "/api/v3/userDataStream", [("X-MBX-APIKEY", MINE)], victims_allow)
    assert _resolve(deps, stream) == (401, REJECTED)
    # A context without the digest (an answer cached before it existed): the key must still
    # belong to the account the authorizer established.
    old = {k: v for k, v in victims_allow.items() if k != "apiKeyDigest"}
    event = _event_of("POST", "/api/v3/order", [("X-MBX-APIKEY", MINE)], old, order)
    assert _resolve(deps, event) == (401, REJECTED)
    stream = _event_of("POST", "/api/v3/userDataStream", [("X-MBX-APIKEY", MINE)], old)
    assert _resolve(deps, stream) == (401, REJECTED)
    assert deps.bus.sent == []  # type: ignore[attr-defined]
    assert deps.listen_keys.live == {}  # type: ignore[union-attr]
    # The key the authorizer answered for, alone: accepted.
    mine = _event_of("POST", "/api/v3/order", [("X-MBX-APIKEY", MINE)], _context_for(MINE), order)
    assert _resolve(deps, mine)[0] == 200
    assert [c.account_id for c in deps.bus.sent] == [8]  # type: ignore[attr-defined]


def test_authorizer_refuses_ambiguous_key_headers_and_names_its_key() -> None:
    keys = Keys()

    def event(pairs: list[tuple[str, str]]) -> dict[str, Any]:
        headers, multi = _headers(pairs)
        return {"headers": headers, "multiValueHeaders": multi, "methodArn": ARN,
                "requestContext": {"identity": {"sourceIp": "10.1.2.3"}}}  # fmt: skip

    for pairs in (
        [("X-MBX-APIKEY", MINE), ("x-mbx-apikey", VICTIM)],
        [("X-MBX-APIKEY", MINE), ("X-MBX-APIKEY", VICTIM)],
        [("X-MBX-APIKEY", MINE), ("X-MBX-APIKEY", MINE)],  # RFC 9110: "M..., M..." as one
        [("X-Mbx-Apikey", MINE), ("x-mbx-apikey", MINE)],
    ):
        with pytest.raises(Unauthorized):
            authorize(event(pairs), keys)
    allow = authorize(event([("x-MBX-apikey", MINE)]), keys)
    # The key's SHA-256 (not the key: the context reaches logs and traces).
    digest = hashlib.sha256(MINE.encode()).hexdigest()
    assert allow["context"] == {"accountId": 8, "permissions": "TRADE,USER_DATA",
                                "apiKeyDigest": digest}  # fmt: skip


# --------------------------------------------------------------- non-ASCII and non-UTF-8


@pytest.mark.parametrize(
    ("query", "body"),
    [
        ("symbol=BTCUSDT&signature=é", ""),
        ("", "symbol=BTCUSDT&signature=é"),
        ("", "symbol=BTCUSDT&signature=%C3%A9"),
        ("symbol=BTCUSDT&signature=%C3%A9", ""),
        ("", "symbol=BTCUSDT&signature=\udce9"),  # a non-UTF-8 byte, as surrogateescape keeps it
        ("", "symbol=é&signature=" + "0" * 64),
        ("", "symbol=BTCUSDT&signature=" + "é" * 64),
        ("", "symbol=BTCUSDT&signature=\U0001f600"),
    ],
)
def test_non_ascii_signatures_are_invalid_not_errors(query: str, body: str) -> None:
    for key in (ApiKey(MINE, MY_SECRET, 8), "s" * 64,
                ApiKey(MINE, "", 8, key_type=ED25519, public_key=None)):  # fmt: skip
        with pytest.raises(BinanceError) as exc:
            verify_signature(key, query, body)
        assert (exc.value.code, exc.value.http_status) == (-1022, 400)


def test_the_signature_covers_the_bytes_sent_even_when_they_are_not_utf8() -> None:
    """A body with a Latin-1 byte, signed over its bytes as Binance verifies: the signature is
    valid (so the parameter's own check answers, -1100), and a signature that is not is -1022.
    """
    raw = b"symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.01&price=30000" \
          b"&newClientOrderId=caf\xe9&timestamp=" + str(NOW - 10).encode()  # fmt: skip
    signature = hmac.new(MY_SECRET.encode(), raw, hashlib.sha256).hexdigest()
    deps = _deps()
    for sig, expected in ((signature, -1100), ("0" * 64, -1022), ("é", -1022)):
        body = raw + b"&signature=" + sig.encode()
        event = _event_of("POST", "/api/v3/order", [("X-MBX-APIKEY", MINE)], _context_for(MINE),
                          base64.b64encode(body).decode(), encoded=True)  # fmt: skip
        status, answer = _resolve(deps, event)
        assert (status, answer["code"]) == (400, expected), sig
    assert deps.bus.sent == []  # type: ignore[attr-defined]


# Latin-1, a non-UTF-8 byte, a fullwidth and an Arabic-Indic digit, NUL, an emoji, and a
# zero-width space after a valid symbol.
NON_ASCII = ("é", "\udce9", "\uff11", "\u0663", "\x00", "\U0001f600", "BTCUSDT\u200b")


@pytest.mark.parametrize("value", NON_ASCII)
def test_non_ascii_parameter_values_get_binance_codes(value: str) -> None:
    """Each parameter of an order, a cancel and a query in turn, correctly signed: a 4xx with
    Binance's shape, never a 500."""
    deps = _deps()
    cases = [
        ("POST", "/api/v3/order", {**LIMIT, "newClientOrderId": "ok-1"}),
        ("DELETE", "/api/v3/order", {"symbol": "BTCUSDT", "orderId": "1"}),
        ("GET", "/api/v3/order", {"symbol": "BTCUSDT", "origClientOrderId": "c1"}),
    ]
    for method, path, params in cases:
        for name in [*params, "recvWindow"]:
            changed = {**params, name: value}
            # As sent in a body, unencoded: "\udce9" stands for the byte 0xE9 (not UTF-8).
            payload = "&".join(f"{k}={v}" for k, v in changed.items()) + f"&timestamp={NOW - 10}"
            signature = hmac.new(MY_SECRET.encode(), payload.encode("utf-8", "surrogateescape"),
                                 hashlib.sha256).hexdigest()  # fmt: skip
            body = f"{payload}&signature={signature}"
            event = _event_of(method, path, [("X-MBX-APIKEY", MINE)], _context_for(MINE),
                              body)  # fmt: skip
            status, answer = _resolve(deps, event)
            assert 400 <= status < 500 and set(answer) == {"code", "msg"}, (path, name, answer)
    assert deps.bus.sent == []  # type: ignore[attr-defined]


@pytest.mark.parametrize("signature", ["é", "%C3%A9", "\udce9", "é" * 64, "\U0001f600", "ÿ" * 88])
def test_websocket_api_non_ascii_signature_is_1022(signature: str) -> None:
    deps = h.Deps(FakeView(), FakeBus(), Keys(), lambda: NOW, lambda: "req-1")
    store = FakeStore()
    store.put_connection("conn-1", account_id=None, combined=False, expires_at=NOW + 10**6)
    for method in ("order.place", "account.status", "session.logon"):
        params = {"apiKey": MINE, "timestamp": NOW - 10, "signature": signature}
        if method == "order.place":
            params.update(LIMIT)
        text = json.dumps({"id": "a", "method": method, "params": params})
        answer = ws_api.handle(_event(method, text), deps, store)
        body = json.loads(answer["body"]) if "body" in answer else answer
        assert body["status"] == 400 and body["error"]["code"] == -1022, (method, body)


@pytest.mark.parametrize("value", NON_ASCII)
def test_websocket_api_non_ascii_params_get_binance_codes(value: str) -> None:
    deps = h.Deps(FakeView(), FakeBus(), Keys(), lambda: NOW, lambda: "req-1")
    store = FakeStore()
    store.put_connection("conn-1", account_id=None, combined=False, expires_at=NOW + 10**6)
    base = {**LIMIT, "apiKey": MINE, "timestamp": NOW - 10}
    for name in [*LIMIT, "apiKey", "timestamp", "recvWindow", value]:
        params: dict[str, Any] = {**base, name: value}
        text = {k: ws_api.param_text(k, v) for k, v in params.items()}
        payload = ws_api.signature_payload(text).encode("utf-8", "surrogatepass")
        params["signature"] = hmac.new(MY_SECRET.encode(), payload, hashlib.sha256).hexdigest()
        request = json.dumps({"id": "a", "method": "order.place", "params": params})
        answer = ws_api.handle(_event("order.place", request), deps, store)
        body = json.loads(answer["body"]) if "body" in answer else answer
        assert 400 <= body["status"] < 500, (name, body)
        assert set(body["error"]) == {"code", "msg"}
    assert deps.bus.sent == []  # type: ignore[attr-defined]


def test_percent_encoded_ed25519_signature_with_non_ascii_is_1022() -> None:
    key = ApiKey(MINE, "", 8, key_type=ED25519, public_key=None)
    for sig in ("%C3%A9", quote("é" * 44), "%FF" * 64, "%ED%A0%80"):
        with pytest.raises(BinanceError) as exc:
            verify_signature(key, "", f"a=1&signature={sig}")
        assert exc.value.code == -1022


# ------------------------------------------------------------------- the local gateway

AUTHORIZER = """
import json
import os
CALLS = os.path.join(os.path.dirname(__file__), "calls.txt")
def handler(event, context):
    with open(CALLS, "a") as handle:
        handle.write("call\\n")
    seen = {"headers": event["headers"], "multiValueHeaders": event["multiValueHeaders"]}
    return {"principalId": "42", "context": {"seen": json.dumps(seen)},
            "policyDocument": {"Version": "2012-10-17", "Statement": [
                {"Action": "execute-api:Invoke", "Effect": "Allow",
                 "Resource": event["methodArn"].rsplit("/", 2)[0] + "/*"}]}}
"""
ECHO = """
import json
def handler(event, context):
    return {"statusCode": 200, "body": json.dumps(event)}
"""


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    def spec(name: str, source: str) -> FunctionSpec:
        (tmp_path / name).mkdir()
        (tmp_path / name / "app.py").write_text(source)
        return FunctionSpec(name, f"fn-{name}", tmp_path / name, "app", "handler", {}, 3, 128)

    api = RestApi(
        routes=[Route("POST", "/closed", "Echo", "Auth")],
        authorizers={"Auth": Authorizer("Auth", "AuthFn", ("X-MBX-APIKEY",),
                                        ("identity.sourceIp",), 300)},
        responses={}, functions={"Echo": spec("Echo", ECHO), "AuthFn": spec("AuthFn", AUTHORIZER)},
        stage="local", region="us-east-1",
    )  # fmt: skip
    gw = Gateway(api)
    yield gw
    gw.close()


def test_local_gateway_passes_repeated_headers_as_api_gateway_rest_does(gateway: Gateway) -> None:
    """``headers``: each spelling as sent, with its last value; ``multiValueHeaders``: every
    value; the same to the authorizer and to the function. The cache's identity is the last
    line sent, whatever its spelling (the functions refuse the request whatever it is)."""

    def call(pairs: list[tuple[str, str]]) -> dict[str, Any]:
        status, _, data = gateway.handle("POST", "/closed", pairs, b"", "127.0.0.1")
        assert status == 200, data
        return dict(json.loads(data))

    def calls() -> int:
        return len((gateway.pools["AuthFn"].spec.code_dir / "calls.txt").read_text().split())

    event = call([("X-MBX-APIKEY", "a"), ("X-MBX-APIKEY", "b")])
    assert event["headers"]["X-MBX-APIKEY"] == "b"
    assert event["multiValueHeaders"]["X-MBX-APIKEY"] == ["a", "b"]
    seen = json.loads(event["requestContext"]["authorizer"]["seen"])
    # The key's lines only: API Gateway adds its own (X-Forwarded-*, X-Amzn-Trace-Id) as well.
    assert {part: {"X-MBX-APIKEY": seen[part]["X-MBX-APIKEY"]} for part in seen} == {
        "headers": {"X-MBX-APIKEY": "b"},
        "multiValueHeaders": {"X-MBX-APIKEY": ["a", "b"]},
    }
    call([("X-MBX-APIKEY", "b")])
    assert calls() == 1  # the identity was "b"

    event = call([("X-MBX-APIKEY", "c"), ("x-mbx-apikey", "d"), ("X-MBX-APIKEY", "e")])
    assert {k: v for k, v in event["headers"].items() if k.lower() == "x-mbx-apikey"} == {
        "X-MBX-APIKEY": "e", "x-mbx-apikey": "d"}  # fmt: skip
    assert event["multiValueHeaders"]["X-MBX-APIKEY"] == ["c", "e"]
    assert event["multiValueHeaders"]["x-mbx-apikey"] == ["d"]
    assert calls() == 2
    call([("X-MBX-APIKEY", "e")])
    assert calls() == 2  # the identity was "e", the last line
