"""Connections and their market streams: ``$connect``, ``$disconnect``, Binance's SUBSCRIBE,
UNSUBSCRIBE, LIST_SUBSCRIPTIONS, SET_PROPERTY and GET_PROPERTY, and the ``$default`` route's
answer to anything else.

Messages and errors are Binance's (market streams): ``{"result": null, "id": 1}``,
``{"result": ["btcusdt@trade"], "id": 3}``, ``{"error": {"code": 2, "msg": "Invalid request:
..."}, "id": 1}``; code 3 for a frame that is not JSON; for the properties, code 0 ``Unknown
property`` and code 1 ``Invalid value type: expected Boolean``.

``$connect`` takes the streams as query parameters (``streams=a/b``; ``combined=true`` wraps
every payload as ``{"stream", "data"}``); Binance's paths (``/ws/<stream>``,
``/stream?streams=``) are mapped onto them in front of API Gateway (template.yaml's
CloudFront function; the local gateway does the same).
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from bourse.adapters.connections import (
    MAX_CONNECTION_SECONDS,
    AlreadySubscribed,
    UnknownConnection,
)
from bourse.adapters.stream_log import LogGap
from bourse.streams.positions import (
    InvalidPosition,
    Position,
    account_log,
    market_log,
    parse_position,
)
from bourse.ws.api import ALL_METHODS
from bourse.ws.events import CONNECT, DISCONNECT, WsEvent, empty, reply
from bourse.ws.ports import Connections, ListenKeyLookup, Resumes
from bourse.ws.streams import MAX_STREAMS_PER_CONNECTION, is_listen_key, is_stream

STREAM_METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")
# The one property Binance lets a market stream connection set.
COMBINED = "combined"
# Binance accepts a 64-bit integer, an alphanumeric string of at most 36, or null.
_ID_RE = re.compile(r"\A[A-Za-z0-9-]{1,36}\Z")
_INT64 = 2**63


class StreamRequestError(Exception):
    def __init__(self, code: int, msg: str, request_id: Any = None) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.request_id = request_id

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "msg": self.msg}, "id": self.request_id}


def invalid(msg: str, request_id: Any = None) -> StreamRequestError:
    return StreamRequestError(2, f"Invalid request: {msg}", request_id)


# -- $connect / $disconnect


def connect(
    event: WsEvent,
    store: Connections,
    lookup: ListenKeyLookup,
    now_s: float | None = None,
    resumes: Resumes | None = None,
) -> dict[str, Any]:
    """Registers the connection with the streams of its URL. A name that is neither a stream
    nor a listen key is ignored, as Binance does (ccxt.pro opens ``/ws/<n>``, a connection
    index, and subscribes afterwards); an unknown listen key or too many streams refuse the
    handshake (HTTP 400; the body, Binance's error, is only logged by API Gateway).

    Bourse's own parameters (docs/streams.md, "Resumable streams"): ``withSeq=true`` puts
    every message in the positioned envelope; ``resumeFrom=<seq>[-<n>]`` also has every
    message of the URL's streams after that position sent first, then the live stream, with
    no gap and nothing twice; the handshake is refused when the log no longer holds them."""
    combined = event.query.get("combined", "false").lower() == "true"
    names = list(dict.fromkeys(n for n in event.query.get("streams", "").split("/") if n))
    if len(names) > MAX_STREAMS_PER_CONNECTION:
        return reply({"code": 4, "msg": "Too many subscriptions"}, 400)
    market: list[str] = []
    accounts: list[tuple[int, str]] = []
    for name in names:
        if is_stream(name):
            market.append(name)
        elif is_listen_key(name):
            account_id = lookup(name)
            if account_id is None:
                return reply({"code": -1125, "msg": "This listenKey does not exist."}, 400)
            accounts.append((account_id, name))
    cursor: Position | None = None
    resume_from = event.query.get("resumeFrom")
    if resume_from is not None:
        try:
            cursor = parse_position(resume_from)
        except InvalidPosition:
            return reply(invalid("resumeFrom must be <seq> or <seq>-<n>").body(), 400)
        if resumes is None:
            return reply(invalid("resumeFrom is not available here").body(), 400)
    logs = [(market_log(n), n) for n in market]
    first_key: dict[int, str] = {}  # an account named twice is subscribed with its first key
    for account_id, listen_key in accounts:
        first_key.setdefault(account_id, listen_key)
    logs += [(account_log(a), key) for a, key in first_key.items()]
    if cursor is not None and resumes is not None:
        try:
            resumes.check([log for log, _ in logs], cursor)
        except LogGap as gap:
            msg = f"resumeFrom {resume_from} is older than the log of {gap} holds"
            return reply(invalid(msg).body(), 400)
        # Before the subscriptions exist: the broadcaster must never see this connection live
        # until its replay has caught up.
        resumes.mark_replaying(event.connection_id, cursor)
    # $connect runs as the connection opens: its 2 hours start now.
    expires_at = int(time.time() if now_s is None else now_s) + MAX_CONNECTION_SECONDS
    store.put_connection(
        event.connection_id, account_id=None, combined=combined, expires_at=expires_at,
        # Binance's WebSocket API URL option: rateLimits omitted unless a request asks.
        return_rate_limits=event.query.get("returnRateLimits", "true").lower() != "false",
        positions=cursor is not None or event.query.get("withSeq", "").lower() == "true",
    )  # fmt: skip
    if market:
        store.subscribe(event.connection_id, market)
    for account_id, listen_key in accounts:
        try:
            store.subscribe_account(event.connection_id, account_id, listen_key=listen_key)
        except AlreadySubscribed:
            continue  # the same account's key twice: its events once
    if cursor is not None and resumes is not None:
        resumes.start(event.connection_id, cursor, logs)
    return empty()


def disconnect(event: WsEvent, store: Connections) -> dict[str, Any]:
    store.delete_connection(event.connection_id)
    return empty()


# -- messages


def parse_request(body: str | None) -> tuple[dict[str, Any], Any]:
    """The request object and its id, or Binance's error for a malformed one."""
    try:
        request = json.loads(body or "")
    except json.JSONDecodeError as exc:
        raise StreamRequestError(
            3, f"Invalid JSON: {exc.msg.lower()} at line {exc.lineno} column {exc.colno}"
        ) from None
    if not isinstance(request, dict):
        raise invalid("expected a JSON object")
    request_id = request.get("id")
    valid_id = (
        request_id is None
        or (isinstance(request_id, int) and not isinstance(request_id, bool)
            and -_INT64 <= request_id < _INT64)
        or (isinstance(request_id, str) and _ID_RE.match(request_id) is not None)
    )  # fmt: skip
    if not valid_id:
        raise invalid("request ID must be an unsigned integer")
    if "method" not in request:
        raise invalid("missing field `method`", request_id)
    return request, request_id


def _stream_names(request: dict[str, Any], request_id: Any) -> list[str]:
    params = request.get("params")
    if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
        raise invalid("params must be a list of stream names", request_id)
    for name in params:
        if not is_stream(name):
            raise invalid(f"invalid stream name `{name}`", request_id)
    return list(params)


def _property_name(request: dict[str, Any], request_id: Any, most: int) -> str:
    """SET_PROPERTY / GET_PROPERTY: the property's name, checked as Binance checks it (the
    name first, then the count, then whether the property exists)."""
    params = request.get("params")
    if not isinstance(params, list) or not params or not isinstance(params[0], str):
        raise invalid("property name must be a string", request_id)
    if len(params) > most:
        raise invalid("too many parameters", request_id)
    if params[0] != COMBINED:
        raise StreamRequestError(0, "Unknown property", request_id)
    return params[0]


def _property_value(request: dict[str, Any], request_id: Any) -> bool:
    params = request["params"]
    value = params[1] if len(params) > 1 else None
    if not isinstance(value, bool):
        raise StreamRequestError(1, "Invalid value type: expected Boolean", request_id)
    return value


def handle_message(event: WsEvent, store: Connections) -> dict[str, Any]:
    """SUBSCRIBE, UNSUBSCRIBE, LIST_SUBSCRIPTIONS, SET_PROPERTY, GET_PROPERTY, and any
    other method ($default)."""
    request_id: Any = None
    try:
        request, request_id = parse_request(event.body)
        method = request["method"]
        if method == "SUBSCRIBE":
            names = _stream_names(request, request_id)
            current = store.list_subscriptions(event.connection_id)
            if len(set(current) | set(names)) > MAX_STREAMS_PER_CONNECTION:
                raise StreamRequestError(4, "Too many subscriptions", request_id)
            store.subscribe(event.connection_id, names)
            return reply({"result": None, "id": request_id})
        if method == "UNSUBSCRIBE":
            store.unsubscribe(event.connection_id, _stream_names(request, request_id))
            return reply({"result": None, "id": request_id})
        if method == "LIST_SUBSCRIPTIONS":
            if request.get("params"):
                raise invalid("too many parameters", request_id)
            return reply({"result": store.list_subscriptions(event.connection_id),
                          "id": request_id})  # fmt: skip
        if method == "SET_PROPERTY":
            _property_name(request, request_id, 2)
            store.set_combined(event.connection_id, _property_value(request, request_id))
            return reply({"result": None, "id": request_id})
        if method == "GET_PROPERTY":
            _property_name(request, request_id, 1)
            state = store.get_connection(event.connection_id)
            if state is None:
                raise UnknownConnection(event.connection_id)
            return reply({"result": state.combined, "id": request_id})
        expected = ", ".join(f"`{m}`" for m in (*STREAM_METHODS, *ALL_METHODS))
        raise invalid(f"unknown variant `{method}`, expected one of {expected}", request_id)
    except StreamRequestError as exc:
        return reply(exc.body())
    except UnknownConnection:
        return reply(invalid("the connection is closed", request_id).body())


def route(
    event: WsEvent,
    store: Connections,
    lookup: ListenKeyLookup,
    resumes: Resumes | None = None,
) -> dict[str, Any]:
    """The connection function's routes: $connect, $disconnect, and the stream methods
    (SUBSCRIBE, UNSUBSCRIBE, LIST_SUBSCRIPTIONS, SET_PROPERTY, GET_PROPERTY, $default)."""
    if event.event_type == CONNECT:
        return connect(event, store, lookup, resumes=resumes)
    if event.event_type == DISCONNECT:
        return disconnect(event, store)
    return handle_message(event, store)
