"""The local gateway's memory is bounded whatever clients send: the authorizer's answers are an
LRU of fixed capacity (a flood of distinct API keys evicts, never grows it), its per-identity
flight locks live only while requests are in flight; and the @connections management API, as
AWS's, refuses any call that is not SigV4-signed by the local functions' credentials."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError
from hypothesis import given
from hypothesis import strategies as st

from bourse.settings import get_settings
from devstack.gateway.authorizer_cache import AnswerCache, SingleFlight
from devstack.gateway.management_auth import function_users
from devstack.gateway.server import Gateway
from devstack.gateway.websocket import WebSocketApi, WebSocketGateway
from tests.unit.test_gateway import _authorizer_calls, _call, gateway

pytestmark = pytest.mark.unit
__all__ = ["gateway"]  # the fixture, shared with test_gateway

ANSWER: dict[str, Any] = {"policyDocument": {}}


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# -- the answer cache


@given(capacity=st.integers(1, 8), keys=st.lists(st.integers(0, 20), max_size=60))
def test_the_cache_never_holds_more_than_its_capacity(capacity: int, keys: list[int]) -> None:
    cache = AnswerCache(capacity)
    for key in keys:
        cache.put(key, {"k": key})
        assert len(cache) <= capacity
    # The most recent distinct keys are the ones kept.
    recent = list(dict.fromkeys(reversed(keys)))[:capacity]
    assert all(cache.get(key, 60) == {"k": key} for key in recent)


def test_a_lookup_refreshes_recency_and_an_expired_answer_leaves() -> None:
    clock = _Clock()
    cache = AnswerCache(2, clock)
    cache.put("a", ANSWER)
    cache.put("b", ANSWER)
    assert cache.get("a", 60) is ANSWER  # now "b" is the least recently used
    cache.put("c", ANSWER)
    assert cache.get("b", 60) is None and cache.get("a", 60) is ANSWER
    clock.now = 60.0
    assert cache.get("a", 60) is None  # the TTL counts from when it was stored
    assert len(cache) == 1


def test_single_flight_forgets_a_key_once_nobody_holds_it() -> None:
    flights = SingleFlight()
    entered = threading.Event()
    release = threading.Event()
    order: list[str] = []

    def first() -> None:
        with flights.hold("k"):
            entered.set()
            release.wait()
            order.append("first")

    def second() -> None:
        with flights.hold("k"):
            order.append("second")

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    threads[0].start()
    entered.wait()
    threads[1].start()
    assert len(flights) == 1  # one lock for the key, however many wait for it
    release.set()
    for thread in threads:
        thread.join()
    assert order == ["first", "second"]
    assert len(flights) == 0
    with pytest.raises(RuntimeError), flights.hold("x"):
        raise RuntimeError("released and forgotten on errors too")
    assert len(flights) == 0


def test_a_flood_of_identities_keeps_the_gateway_cache_bounded(gateway: Gateway) -> None:
    bounded = Gateway(gateway.api, authorizer_cache_capacity=3)
    try:
        for n in range(8):
            assert _call(bounded, "POST", "/closed", {"X-Key": "good"}, ip=f"10.0.0.{n}")[0] == 200
        assert len(bounded._cache) == 3
        assert len(bounded._flights) == 0
        calls = _authorizer_calls(bounded)
        # The newest identity is still cached; the oldest was evicted and asks again.
        _call(bounded, "POST", "/closed", {"X-Key": "good"}, ip="10.0.0.7")
        assert _authorizer_calls(bounded) == calls
        _call(bounded, "POST", "/closed", {"X-Key": "good"}, ip="10.0.0.0")
        assert _authorizer_calls(bounded) == calls + 1
    finally:
        bounded.close()


# -- @connections


@pytest.fixture
def management_url() -> Iterator[str]:
    """A WebSocket gateway with no routes, its @connections API on a real socket."""
    settings = get_settings()
    api = WebSocketApi("$request.body.method", {}, "local", settings.region)
    rest: Any = type("NoFunctions", (), {"functions": {}})()
    websocket = WebSocketGateway(rest, api, iam_users=function_users(settings))

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            if not websocket.handle(self):
                self.send_error(404)

        do_GET = do_POST = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def _client(url: str, key: str, secret: str) -> Any:
    return boto3.client(
        "apigatewaymanagementapi", endpoint_url=url, region_name=get_settings().region,
        aws_access_key_id=key, aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1}),
    )  # fmt: skip


def _error(call: Any) -> tuple[int, str, str]:
    with pytest.raises(ClientError) as refused:
        call()
    response = refused.value.response
    return (
        response["ResponseMetadata"]["HTTPStatusCode"],
        response["Error"]["Code"],
        response["Error"]["Message"],
    )


def test_unsigned_management_calls_are_refused(management_url: str) -> None:
    for method in ("POST", "GET", "DELETE"):
        answer = requests.request(method, f"{management_url}/@connections/abc=", data=b"{}")
        assert answer.status_code == 403
        assert answer.json() == {"message": "Missing Authentication Token"}
        assert answer.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"


def test_only_the_functions_credentials_are_accepted(management_url: str) -> None:
    key, secret = get_settings().aws_credentials or ("", "")
    trusted = _client(management_url, key, secret)
    # Signed by the functions' identity: past the check, to the unknown connection.
    status, code, _ = _error(lambda: trusted.post_to_connection(ConnectionId="abc=", Data=b"{}"))
    assert (status, code) == (410, "GoneException")
    assert _error(lambda: trusted.delete_connection(ConnectionId="abc="))[:2] == (
        410,
        "GoneException",
    )
    assert _error(lambda: trusted.get_connection(ConnectionId="abc="))[:2] == (410, "GoneException")

    wrong_secret = _client(management_url, key, secret + "x")
    status, code, message = _error(
        lambda: wrong_secret.post_to_connection(ConnectionId="abc=", Data=b"{}")
    )
    assert (status, code) == (403, "InvalidSignatureException")
    assert message.startswith("The request signature we calculated does not match")

    stranger = _client(management_url, "AKIAOTHEROTHEROTHER1", "s" * 40)
    status, code, message = _error(lambda: stranger.get_connection(ConnectionId="abc="))
    assert (status, code) == (403, "UnrecognizedClientException")
    assert message == "The security token included in the request is invalid."


def test_an_oversized_message_is_refused_before_its_body_is_read(management_url: str) -> None:
    key, secret = get_settings().aws_credentials or ("", "")
    trusted = _client(management_url, key, secret)
    big = b"x" * (128 * 1024 + 1)
    status, code, _ = _error(lambda: trusted.post_to_connection(ConnectionId="abc=", Data=big))
    assert (status, code) == (413, "PayloadTooLargeException")
