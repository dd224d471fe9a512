"""schemathesis against docs/openapi.yaml on a private exchange (tests/integration/api_support):
every operation, SIGNED ones signed as Binance clients sign them, must never answer a 5xx and
must answer what the document says (status, content type, body schema).

Bounded: the examples the document carries plus a few generated cases (valid and invalid)
per operation; the coverage and stateful phases are off (hundreds of cases per operation).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import schemathesis
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.config import SchemathesisConfig

from bourse.settings import get_settings
from tests.integration.api_support import ApiStack, Trader

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SPEC = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
REDIS_DB = 25
MAX_EXAMPLES = 3
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

CONFIG = SchemathesisConfig.from_dict(
    {
        "generation": {"max-examples": MAX_EXAMPLES, "mode": "all"},
        "phases": {
            "examples": {"enabled": True},
            "fuzzing": {"enabled": True},
            "coverage": {"enabled": False},
            "stateful": {"enabled": False},
        },
    }
)
schema = schemathesis.openapi.from_path(SPEC, config=CONFIG)


def _text(value: Any) -> str:
    """A query value as Binance clients send it (booleans lowercase)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def sign(case: Any, trader: Trader) -> None:
    """What a Binance client does to a request: X-MBX-APIKEY on every operation behind the
    key; on SIGNED ones (those that declare ``signature``) a fresh ``timestamp`` and the
    HMAC-SHA256 of the query string as sent (POST parameters in the query string are valid on
    Binance). Done just before the call, not in a schemathesis auth provider: those run when
    the cases are generated, at collection, before the stack and its keys exist."""
    if not case.operation.definition.raw.get("security"):
        return
    case.headers = {**(case.headers or {}), "X-MBX-APIKEY": trader.api_key}
    if not any(p.name == "signature" for p in case.operation.query):
        return
    pairs = [(k, _text(v)) for k, v in (case.query or {}).items()
             if k not in ("timestamp", "signature")]  # fmt: skip
    pairs.append(("timestamp", str(time.time_ns() // 1_000_000)))
    digest = hmac.new(trader.secret.encode(), urlencode(pairs).encode(), hashlib.sha256)
    case.query = {**dict(pairs), "signature": digest.hexdigest()}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiStack]:
    api = ApiStack(get_settings(), tmp_path_factory.mktemp("schemathesis"), REDIS_DB)
    api.start()
    try:
        yield api
    finally:
        api.stop()


@pytest.fixture(scope="module")
def trader(stack: ApiStack) -> Trader:
    return stack.trader(1, {"BTC": "100", "USDT": "10000000", "ETH": "1000"})


@schema.parametrize()
def test_operation_conforms(case: Any, stack: ApiStack, trader: Trader) -> None:
    sign(case, trader)
    case.call_and_validate(base_url=stack.base_url, checks=CHECKS, timeout=30)
