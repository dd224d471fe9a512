"""Headers as API Gateway REST hands them to a Lambda proxy integration: the client's as sent
(names as spelt, last value in ``headers``, every value in ``multiValueHeaders``), Host kept,
and the ones API Gateway adds itself (X-Forwarded-*, X-Amzn-Trace-Id)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devstack.gateway.server import Gateway, with_gateway_headers
from devstack.gateway.template_api import FunctionSpec, RestApi, Route

pytestmark = pytest.mark.unit

ECHO = """
import json
def handler(event, context):
    return {"statusCode": 200, "body": json.dumps(event)}
"""
TRACE = re.compile(r"^Root=1-[0-9a-f]{8}-[0-9a-f]{24}$")


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    folder = tmp_path / "Echo"
    folder.mkdir()
    (folder / "app.py").write_text(ECHO)
    spec = FunctionSpec("Echo", "fn-echo", folder, "app", "handler", {}, 3, 128)
    api = RestApi(
        routes=[Route("GET", "/echo", "Echo", None)],
        authorizers={},
        responses={},
        functions={"Echo": spec},
        stage="local",
        region="us-east-1",
    )
    gw = Gateway(api)
    yield gw
    gw.close()


def _event(gw: Gateway, headers: list[tuple[str, str]], ip: str = "10.1.2.3") -> dict[str, Any]:
    status, _, data = gw.handle("GET", "/echo", headers, b"", ip)
    assert status == 200
    event: dict[str, Any] = json.loads(data)
    return event


def test_the_event_has_the_headers_api_gateway_adds(gateway: Gateway) -> None:
    event = _event(
        gateway,
        [("Host", "127.0.0.1:3000"), ("user-agent", "h2-client"), ("X-MBX-APIKEY", "k")],
    )
    headers = event["headers"]
    assert headers["Host"] == "127.0.0.1:3000"
    assert headers["X-Forwarded-For"] == "10.1.2.3"
    assert headers["X-Forwarded-Proto"] == "http" and headers["X-Forwarded-Port"] == "3000"
    assert TRACE.match(headers["X-Amzn-Trace-Id"])
    assert headers["X-MBX-APIKEY"] == "k" and "x-mbx-apikey" not in headers  # spelling kept
    assert event["multiValueHeaders"]["X-Forwarded-For"] == ["10.1.2.3"]
    # API Gateway fills identity.userAgent whatever the header's spelling.
    assert event["requestContext"]["identity"]["userAgent"] == "h2-client"


def test_repeated_headers_keep_every_value_and_the_last_wins(gateway: Gateway) -> None:
    event = _event(gateway, [("Host", "h"), ("X-A", "1"), ("x-a", "2"), ("X-A", "3")])
    assert event["headers"]["X-A"] == "3" and event["headers"]["x-a"] == "2"
    assert event["multiValueHeaders"]["X-A"] == ["1", "3"]


def test_a_client_cannot_forge_how_it_arrived() -> None:
    out = with_gateway_headers(
        [("x-forwarded-for", "6.6.6.6"), ("X-Forwarded-Proto", "https"), ("X-Amzn-Trace-Id", "t")],
        "10.0.0.1",
    )
    assert ("X-Forwarded-For", "6.6.6.6, 10.0.0.1") in out  # appended to, as API Gateway does
    assert ("X-Forwarded-Proto", "http") in out and ("X-Forwarded-Proto", "https") not in out
    assert [v for k, v in out if k == "X-Amzn-Trace-Id"] == ["t"]  # a trace sent is kept


NAMES = st.text(alphabet="abcXYZ-", min_size=1, max_size=8)


@given(
    pairs=st.lists(st.tuples(NAMES, st.text(alphabet="xyz019 ", max_size=6)), max_size=8),
    ip=st.ip_addresses(v=4).map(str),
)
def test_the_clients_other_headers_pass_unchanged_and_in_order(
    pairs: list[tuple[str, str]], ip: str
) -> None:
    out = with_gateway_headers(pairs, ip)
    assert out[: len(pairs)] == pairs  # names from this alphabet are never the gateway's own
    assert [k for k, _ in out[len(pairs) :]] == [
        "X-Forwarded-For",
        "X-Forwarded-Proto",
        "X-Forwarded-Port",
        "X-Amzn-Trace-Id",
    ]
    assert dict(out)["X-Forwarded-For"] == ip
