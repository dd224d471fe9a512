"""Secrets stay out of logs: the local gateway's request lines (signatures, listen keys, the
API key header) and, by contract of the templates, WAF's logs of the REST API and CloudFront's
of the WebSocket distribution."""

from __future__ import annotations

import logging
import string
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devstack.cfn import load_template
from devstack.gateway.log_redaction import REDACTED, redact
from devstack.gateway.server import _Handler
from devstack.paths import REPO_ROOT

pytestmark = pytest.mark.unit

# Long enough that the secret cannot occur by chance in the rest of the line.
secrets_ = st.text(string.ascii_letters + string.digits, min_size=16, max_size=64)
LISTEN_KEY_LINES = (
    '"GET /ws/{s} HTTP/1.1" 101 -',
    '"GET /ws/{s}?timeUnit=MICROSECOND HTTP/1.1" 101 -',
    '"GET /stream?streams=btcusdt@trade/{s} HTTP/1.1" 101 -',
    '"GET /stream?streams={s}/btcusdt@depth@100ms&x=1 HTTP/1.1" 101 -',
    '"PUT /api/v3/userDataStream?listenKey={s} HTTP/1.1" 200 -',
    '"DELETE /api/v3/userDataStream?LISTENKEY={s} HTTP/1.1" 200 -',
)
SIGNATURE_LINES = (
    '"GET /api/v3/account?timestamp=1&signature={s} HTTP/1.1" 200 -',
    '"POST /api/v3/order?symbol=BTCUSDT&signature={s}&timestamp=1 HTTP/1.1" 400 -',
    '"DELETE /api/v3/order?Signature={s} HTTP/1.1" 400 -',
    '"GET /api/v3/account?sign%61ture={s} HTTP/1.1" 400 -',
    "code 400, message Bad request syntax ('GET /api/v3/account?signature={s} HTTP/1.1')",
)
HEADER_LINES = ("X-MBX-APIKEY: {s}", "x-mbx-apikey={s}", '{{"X-MBX-APIKEY": "{s}"}}')


@given(secret=secrets_, template=st.sampled_from(LISTEN_KEY_LINES + SIGNATURE_LINES + HEADER_LINES))
def test_no_secret_survives_redaction(secret: str, template: str) -> None:
    redacted = redact(template.format(s=secret))
    assert secret not in redacted
    assert REDACTED in redacted


@pytest.mark.parametrize(
    "line",
    [
        '"GET /ws/btcusdt@trade HTTP/1.1" 101 -',
        '"GET /stream?streams=btcusdt@trade/ethbtc@depth HTTP/1.1" 101 -',
        '"GET /api/v3/depth?symbol=BTCUSDT&limit=5 HTTP/1.1" 200 -',
        '"POST /@connections/AbCdEfGhIjKlMnO= HTTP/1.1" 200 -',
    ],
)
def test_what_is_no_secret_stays_as_it_was(line: str) -> None:
    assert redact(line) == line


def test_only_the_secret_goes() -> None:
    line = '"GET /api/v3/account?timestamp=1&signature=abc&recvWindow=5 HTTP/1.1" 200 -'
    assert redact(line) == (
        '"GET /api/v3/account?timestamp=1&signature=<redacted>&recvWindow=5 HTTP/1.1" 200 -'
    )


def test_the_gateway_logs_request_lines_redacted(caplog: pytest.LogCaptureFixture) -> None:
    handler: Any = object.__new__(_Handler)
    handler.client_address = ("127.0.0.1", 1)
    secret = "s3cr3tS1gnatureValue0123456789"
    with caplog.at_level(logging.INFO, logger="devstack.gateway"):
        handler.log_message(
            '"%s" %s %s', f"GET /api/v3/account?timestamp=1&signature={secret} HTTP/1.1", 200, "-"
        )
        handler.log_message('"%s" %s %s', f"GET /ws/{secret} HTTP/1.1", 101, "-")
    assert len(caplog.records) == 2
    assert all(secret not in record.getMessage() for record in caplog.records)


# -- the templates' contract


def _edge() -> dict[str, Any]:
    resources: dict[str, Any] = load_template(REPO_ROOT / "infra" / "edge.yaml")["Resources"]
    return resources


def test_waf_logs_redact_the_query_string_and_the_api_key_header() -> None:
    logging_configs = [
        r["Properties"] for r in _edge().values() if r["Type"] == "AWS::WAFv2::LoggingConfiguration"
    ]
    assert logging_configs, "the REST API's web ACL logs"
    for config in logging_configs:
        redacted = config.get("RedactedFields", [])
        # WAF redacts a query string whole: the signature and listenKey arguments with it.
        assert {"QueryString": {}} in redacted
        headers = {f["SingleHeader"]["Name"].lower() for f in redacted if "SingleHeader" in f}
        assert "x-mbx-apikey" in headers


def test_no_cloudfront_standard_log_records_websocket_paths() -> None:
    """Standard logs write the path whole (cs-uri-stem) and cannot redact it; a distribution
    that serves /ws/<listenKey> must not keep them."""
    resources = {**load_template()["Resources"], **_edge()}
    distributions = {
        name: r["Properties"]["DistributionConfig"]
        for name, r in resources.items()
        if r["Type"] == "AWS::CloudFront::Distribution"
    }
    websocket = {
        name: config
        for name, config in distributions.items()
        if "websocket" in str(config.get("Origins", "")).lower()
        or "WebSocketApi" in str(config.get("Origins", ""))
    }
    assert websocket, "the WebSocket distribution is in template.yaml"
    for name, config in websocket.items():
        assert "Logging" not in config, f"{name} would log /ws/<listenKey> paths"
