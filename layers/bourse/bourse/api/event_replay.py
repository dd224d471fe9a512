"""Replay by sequence over REST (issue 20, item 2; docs/api.md, "Replay by sequence"): the
messages the WebSocket streams published, from the streams' message log, by position
(``bourse.streams.positions``) — what a resuming connection gets, for a client that polls
or fills a gap without a socket.

- ``GET /api/v3/bourse/events`` (SIGNED, USER_DATA): the caller's own user data.
- ``GET /api/v3/bourse/marketEvents`` (public): one market stream of a symbol
  (``stream=trade``, ``depth@100ms``, ``kline_1m``...).

Both take ``fromSeq`` (and ``fromN``, default 0): the messages at or after position
``(fromSeq, fromN)``, up to ``limit`` (500; at most 1,000), each
``{"seq", "n", "stream", "data"}`` with ``data`` the stream's own payload. The
next page starts at the last item's ``seq`` and ``n + 1``.
"""

from __future__ import annotations

import json
from typing import Any

from bourse.adapters.stream_log import LogGap
from bourse.api.handlers import SIGNED_COMMON, USER_DATA, Deps, Request, _known_symbol
from bourse.api.orders import check_known
from bourse.api.params import Params
from bourse.api.ports import EventLogView
from bourse.domain import errors
from bourse.domain.errors import BinanceError
from bourse.streams.positions import END_OF_BATCH, Position, account_log, market_log
from bourse.ws.streams import is_stream

DEFAULT_LIMIT = 500
MAX_LIMIT = 1000
_PAGE = frozenset({"fromSeq", "fromN", "limit"})
MY_EVENTS_PARAMS = SIGNED_COMMON | _PAGE
MARKET_EVENTS_PARAMS = _PAGE | {"symbol", "stream"}


def my_events(req: Request, deps: Deps) -> list[dict[str, Any]]:
    caller, params = req.signed(deps, USER_DATA)
    check_known(params, MY_EVENTS_PARAMS)
    cursor, limit = _page(params)
    return _read(_log(deps), account_log(caller.account_id), "", cursor, limit)


def market_events(req: Request, deps: Deps) -> list[dict[str, Any]]:
    params = req.public_params()
    check_known(params, MARKET_EVENTS_PARAMS)
    spec = _known_symbol(deps, params)
    name = f"{spec.symbol.lower()}@{params.required_str('stream')}"
    if not is_stream(name):
        raise errors.invalid_parameter("stream")
    cursor, limit = _page(params)
    return _read(_log(deps), market_log(name), name, cursor, limit)


def _log(deps: Deps) -> EventLogView:
    if deps.events is None:
        raise errors.EXECUTION_UNKNOWN_ERROR
    return deps.events


def _page(params: Params) -> tuple[Position, int]:
    """The exclusive cursor just before ``(fromSeq, fromN)``, and the limit."""
    seq = params.required_int("fromSeq")
    n = params.optional_int("fromN", maximum=END_OF_BATCH) or 0
    limit = params.optional_int("limit", minimum=1, maximum=MAX_LIMIT) or DEFAULT_LIMIT
    if n:
        return (seq, n - 1), limit
    # Nothing is ever at (0, 0) (seq numbers start at 1): the start of every log.
    return ((seq - 1, END_OF_BATCH) if seq else (0, 0)), limit


def _read(
    log: EventLogView, key: str, stream: str, cursor: Position, limit: int
) -> list[dict[str, Any]]:
    try:
        entries = log.read_after([key], cursor, limit)
    except LogGap:
        raise BinanceError(
            errors.INVALID_PARAMETER,
            "Invalid data sent for a parameter. fromSeq is older than the stream log holds.",
        ) from None
    # A user data item's ``stream`` is empty: the caller knows its own account.
    return [
        {"seq": seq, "n": n, "stream": stream, "data": json.loads(data)}
        for (seq, n), _log_name, data in entries
    ]
