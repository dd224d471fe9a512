"""Secrets out of the gateway's log lines: a request line carries credentials Binance puts in
URLs (a signed request's ``signature=``, a user data stream's ``listenKey=`` and its
``/ws/<listenKey>`` or ``/stream?streams=<listenKey>/...`` socket path) and a header dump the
``X-MBX-APIKEY``. Each value becomes ``<redacted>``; the rest of the line stays, so a log still
tells which endpoint was called and how it ended.

A stream name always has an ``@`` (``btcusdt@trade``, ``!ticker@arr``), a listen key never
does: a ``/ws/`` path or ``streams=`` part without one is taken for a listen key.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, unquote_plus

REDACTED = "<redacted>"
# Binance's names of query parameters whose value is a credential; compared decoded and in any
# case, as a lenient parser would read them, so an odd spelling cannot slip through.
SECRET_PARAMS = frozenset({"signature", "listenkey"})

_PARAM = re.compile(r"(^|[?&;\s\"'])([^=&;\s\"'?#]+)=([^&;\s\"'#]*)")
_API_KEY_HEADER = re.compile(r"(?i)(x-mbx-apikey[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]+")
_WS_PATH = re.compile(r"(/ws/)([^\s?#\"']+)")


def _is_stream_name(part: str) -> bool:
    return "@" in unquote(part)


def _streams(value: str) -> str:
    parts = value.split("/")
    return "/".join(p if not p or _is_stream_name(p) else REDACTED for p in parts)


def _param(match: re.Match[str]) -> str:
    lead, name, value = match.groups()
    plain = unquote_plus(name).lower()
    if plain in SECRET_PARAMS:
        value = REDACTED
    elif plain == "streams":
        value = _streams(value)
    return f"{lead}{name}={value}"


def redact(text: str) -> str:
    """``text`` with every signature, listen key and API key value replaced."""
    text = _API_KEY_HEADER.sub(lambda m: m.group(1) + REDACTED, text)
    text = _WS_PATH.sub(lambda m: m.group(1) + _streams(m.group(2)), text)
    return _PARAM.sub(_param, text)
