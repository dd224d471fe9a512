"""docs/api.md's compatibility table names every REST endpoint, WebSocket API method and
stream method Bourse serves (a row says how it compares with Binance): an endpoint added
without its row fails here, so the table cannot fall behind the code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bourse.api.routes import ACCOUNT, MARKET_DATA, ORDERS
from bourse.ws.api import ALL_METHODS
from bourse.ws.market_streams import STREAM_METHODS

pytestmark = pytest.mark.unit

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
HEADING = "## Compatibility with Binance Spot, row by row"


def _section() -> str:
    text = DOC.read_text()
    start = text.index(HEADING)
    end = text.find("\n## ", start + len(HEADING))
    return text[start : end if end >= 0 else len(text)]


def _named(section: str) -> set[str]:
    """The backticked names of the table's rows, abbreviations spelled out: a row lists
    `/api/v3/trades`, `/historicalTrades` (same prefix) or `userDataStream.start`, `.ping`."""
    names: set[str] = set()
    for line in section.splitlines():
        if not line.startswith("| "):
            continue
        first_cell = line.split(" | ")[0]
        prefix = ""
        dotted = ""
        for token in re.findall(r"`([^`]+)`", first_cell):
            token = token.split(" ")[-1]  # "POST /api/v3/x" -> "/api/v3/x"
            if token.startswith("/api/v3/"):
                prefix = "/api/v3"
                names.add(token)
            elif token.startswith("/") and prefix:
                names.add(prefix + token)
            elif token.startswith(".") and dotted:
                names.add(dotted + token)
            else:
                names.add(token)
                if "." in token:
                    dotted = token.rsplit(".", 1)[0]
    return names


def test_every_rest_endpoint_has_a_row() -> None:
    named = _named(_section())
    missing = sorted({r.path for r in (*MARKET_DATA, *ORDERS, *ACCOUNT)} - named)
    assert not missing, f"docs/api.md's compatibility table has no row for {missing}"


def test_every_websocket_api_and_stream_method_has_a_row() -> None:
    named = _named(_section())
    missing = sorted(set(ALL_METHODS) - named) + sorted(set(STREAM_METHODS) - named)
    assert not missing, f"docs/api.md's compatibility table has no row for {missing}"


def test_every_row_says_what_it_is() -> None:
    for line in _section().splitlines():
        if line.startswith("| ") and not line.startswith(("| endpoint", "| method", "| stream",
                                                            "| event", "| ---")):  # fmt: skip
            status = line.rstrip(" |").split(" | ")[-1]
            assert status.startswith(("yes", "no", "differs")), line
