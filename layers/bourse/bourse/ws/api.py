"""The WebSocket API (Binance's ``ws-api/v3``): the REST handlers over another transport.

A request ``{"id": ..., "method": "order.place", "params": {...}}`` runs the same handler as
``POST /api/v3/order`` (``bourse.api.handlers``): its params become the handler's parameters,
its answer is ``{"id", "status": 200, "result": ...}``, a ``BinanceError`` is
``{"id", "status": <HTTP status>, "error": {"code", "msg"}}``.

Rate limits are REST's own (``bourse.api.limiting``), on the same counters, as Binance shares
them between its APIs: a method weighs what its REST endpoint weighs (the session methods 2),
charged to the source IP's minute; ``order.place`` also counts against the account's ORDERS.
Every answer carries Binance's ``rateLimits`` array (the limiters the request counted against,
with their counts) unless the request says ``"returnRateLimits": false`` (or the connection's
URL did, ``/ws-api/v3?returnRateLimits=false``, and the request does not say true); a refusal
is status 429 (418 while banned) with ``error.data`` ``{"serverTime", "retryAfter"}``, and
nothing runs.
Commands reach the command log only for symbols the live view lists (-1121 otherwise,
``bourse.api.known_symbols``).

Security, as Binance's WebSocket API defines it:

* a signed request carries ``apiKey``, ``timestamp`` and ``signature`` in ``params``; the
  payload is every other parameter, sorted by name, as ``name=value`` joined with ``&``
  (values as sent, UTF-8, not percent-encoded); the signature is the hex HMAC-SHA256 of it
  (HMAC keys) or the base64 of its Ed25519 signature (Ed25519 keys, not percent-encoded);
* after ``session.logon`` (itself signed that way) requests of the session omit ``apiKey`` and
  ``signature``: they run as the logged-on key; ``timestamp`` is still required. As on
  Binance only Ed25519 keys may log on (an HMAC key is -4056); signed requests take both.

The API key is read from the key store on every request (so a revoked key is refused at once,
-2015, and a session whose key was revoked is logged out, as Binance does), then goes through
the authorizer's checks (``bourse.api.auth.caller_of``: IP allow-list) and the handler's own
(permission, timestamp window). Handlers verify a REST signature over the query string, so
once the WebSocket rules are satisfied the request is given to the handler as the REST request
it is equivalent to, HMAC-signed with a secret made for this one request (an Ed25519 key has no
secret the server could sign with).
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlencode

from bourse.adapters.api_keys import ApiKey
from bourse.adapters.connections import AlreadySubscribed, ConnectionState, UnknownConnection
from bourse.adapters.stream_log import LogGap
from bourse.api import amendments as am
from bourse.api import handlers as h
from bourse.api import history as hist
from bourse.api import limiting, user_data
from bourse.api import prevented_matches as pm
from bourse.api import rate_limits as rl
from bourse.api.auth import API_KEY_RE, BAD_API_KEY_FORMAT, REJECTED_API_KEY, Caller, caller_of
from bourse.api.known_symbols import KnownSymbolsBus
from bourse.api.params import Params
from bourse.api.routes import ORDER_PLACEMENT, WEIGHTS
from bourse.api.signing import (
    ED25519,
    HMAC,
    INVALID_SIGNATURE,
    check_timestamp,
    sign,
    signature_valid,
)
from bourse.api.trading_day import trading_day_ticker
from bourse.domain import errors
from bourse.domain.errors import BinanceError
from bourse.streams.positions import InvalidPosition, account_log, parse_position
from bourse.ws.events import WsEvent, empty, reply
from bourse.ws.order_list_methods import ORDER_LIST_METHODS
from bourse.ws.ports import Connections, Resumes

log = logging.getLogger("bourse.ws")


@dataclass(frozen=True)
class Method:
    handler: Callable[[h.Request, h.Deps], Any]
    permission: str | None  # None: public
    rest: tuple[str, str]  # the REST endpoint it equals: its weight, whether it counts orders

    def weight(self, params: dict[str, str]) -> int:
        return rl.weight_of(WEIGHTS, *self.rest, params)

    @property
    def places_orders(self) -> bool:
        return self.rest in ORDER_PLACEMENT


# The REST handler each WebSocket API method runs, and the REST endpoint it equals.
METHODS: dict[str, Method] = {
    "ping": Method(h.ping, None, ("GET", "/api/v3/ping")),
    "time": Method(h.server_time, None, ("GET", "/api/v3/time")),
    "exchangeInfo": Method(h.exchange_info, None, ("GET", "/api/v3/exchangeInfo")),
    "depth": Method(h.depth, None, ("GET", "/api/v3/depth")),
    "trades.recent": Method(hist.trades, None, ("GET", "/api/v3/trades")),
    "trades.historical": Method(hist.historical_trades, None, ("GET", "/api/v3/historicalTrades")),
    "trades.aggregate": Method(hist.agg_trades, None, ("GET", "/api/v3/aggTrades")),
    "klines": Method(hist.klines, None, ("GET", "/api/v3/klines")),
    "uiKlines": Method(hist.klines, None, ("GET", "/api/v3/uiKlines")),
    "avgPrice": Method(hist.avg_price, None, ("GET", "/api/v3/avgPrice")),
    "ticker.24hr": Method(hist.ticker_24hr, None, ("GET", "/api/v3/ticker/24hr")),
    "ticker.tradingDay": Method(trading_day_ticker, None, ("GET", "/api/v3/ticker/tradingDay")),
    "ticker": Method(hist.rolling_ticker, None, ("GET", "/api/v3/ticker")),
    "ticker.price": Method(h.ticker_price, None, ("GET", "/api/v3/ticker/price")),
    "ticker.book": Method(h.book_ticker, None, ("GET", "/api/v3/ticker/bookTicker")),
    "order.place": Method(h.new_order, h.TRADE, ("POST", "/api/v3/order")),
    "order.test": Method(h.test_order, h.TRADE, ("POST", "/api/v3/order/test")),
    "order.cancel": Method(h.cancel_order, h.TRADE, ("DELETE", "/api/v3/order")),
    "order.cancelReplace": Method(
        h.cancel_replace, h.TRADE, ("POST", "/api/v3/order/cancelReplace")
    ),
    "openOrders.cancelAll": Method(h.cancel_open_orders, h.TRADE, ("DELETE", "/api/v3/openOrders")),
    "order.status": Method(h.query_order, h.USER_DATA, ("GET", "/api/v3/order")),
    "openOrders.status": Method(h.open_orders, h.USER_DATA, ("GET", "/api/v3/openOrders")),
    "account.status": Method(h.account_info, h.USER_DATA, ("GET", "/api/v3/account")),
    "account.commission": Method(
        h.account_commission, h.USER_DATA, ("GET", "/api/v3/account/commission")
    ),
    "account.rateLimits.orders": Method(
        user_data.order_rate_limit, h.USER_DATA, ("GET", "/api/v3/rateLimit/order")
    ),
    "allOrders": Method(hist.all_orders, h.USER_DATA, ("GET", "/api/v3/allOrders")),
    "myTrades": Method(hist.my_trades, h.USER_DATA, ("GET", "/api/v3/myTrades")),
    "myPreventedMatches": Method(
        pm.my_prevented_matches, h.USER_DATA, ("GET", "/api/v3/myPreventedMatches")
    ),
    "order.amend.keepPriority": Method(
        am.amend_keep_priority, h.TRADE, ("PUT", "/api/v3/order/amend/keepPriority")
    ),
    "order.amendments": Method(
        am.order_amendments, h.USER_DATA, ("GET", "/api/v3/order/amendments")
    ),
}
METHODS.update({name: Method(*spec) for name, spec in ORDER_LIST_METHODS.items()})
# Binance's listenKey management over the WebSocket API (USER_STREAM: ``apiKey``, no
# signature), the REST endpoints' handlers: ``stop`` ends the key's streams as DELETE does.
LISTEN_KEY_METHODS: dict[str, Callable[[h.Request, h.Deps], Any]] = {
    "userDataStream.start": user_data.new_listen_key,
    "userDataStream.ping": user_data.keepalive_listen_key,
    "userDataStream.stop": user_data.close_listen_key,
}
SESSION_METHODS = (
    "session.logon",
    "session.status",
    "session.logout",
    "session.subscriptions",
    "userDataStream.subscribe",
    "userDataStream.subscribe.signature",
    "userDataStream.unsubscribe",
    "session.resume",  # Bourse's own: docs/websocket.md, "Resuming user data"
    *LISTEN_KEY_METHODS,
)
ALL_METHODS = (*METHODS, *SESSION_METHODS)
SESSION_WEIGHT = 2  # Binance's weight of each session and user data stream method

INTERNAL_ERROR = BinanceError(
    errors.DISCONNECTED, "Internal error; unable to process your request. Please try again.", 500
)
NOT_LOGGED_ON = BinanceError(
    errors.UNAUTHORIZED, "You are not authorized to execute this request.", 401
)
ALREADY_SUBSCRIBED = BinanceError(-2035, "User Data Stream subscription already active.")
NOT_SUBSCRIBED = BinanceError(-2036, "User Data Stream subscription not active.")
PARAMS_NOT_OBJECT = BinanceError(-1135, "Invalid 'params' in JSON request; expected an object.")
# Binance's session.logon takes Ed25519 keys only; its answer to an HMAC key (errors.md does
# not list it).
LOGON_NEEDS_ED25519 = BinanceError(-4056, "HMAC_SHA256 API key is not supported.")
_SIGNATURE_PARAMS = frozenset({"apiKey", "signature"})
# Binance's transport parameter: signed with the rest, never passed to a handler.
RETURN_RATE_LIMITS = "returnRateLimits"
_NOT_FOR_HANDLERS = _SIGNATURE_PARAMS | {RETURN_RATE_LIMITS}


@dataclass(frozen=True)
class Context:
    event: WsEvent
    deps: h.Deps
    store: Connections
    usage: limiting.Usage
    resumes: Resumes | None = None


@dataclass(frozen=True)
class Resuming:
    """``session.resume``'s result: the answer is not returned but handed to the replay, which
    posts it before the messages it replays (an answer returned could arrive after them)."""

    subscription_id: int
    start: Callable[[bytes], None]  # the answer's frame -> the replay started


def answer(request_id: Any, result: Any) -> dict[str, Any]:
    return {"id": request_id, "status": 200, "result": result}


def error_answer(request_id: Any, error: BinanceError) -> dict[str, Any]:
    return {"id": request_id, "status": error.http_status, "error": error.as_dict()}


def param_text(name: str, value: Any) -> str:
    """A JSON parameter as the text a REST client would send: strings as they are, booleans
    as ``true``/``false``, lists (``exchangeInfo``'s ``symbols``) as compact JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, list):
        return json.dumps(value, separators=(",", ":"))
    raise errors.invalid_parameter(name)


def read_params(request: dict[str, Any]) -> dict[str, str]:
    params = request.get("params", {})
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise PARAMS_NOT_OBJECT
    return {str(k): param_text(str(k), v) for k, v in params.items() if v is not None}


def signature_payload(params: dict[str, str]) -> str:
    """Binance's WebSocket API signing payload: all but ``signature``, sorted by name."""
    return "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k != "signature")


@dataclass(frozen=True)
class Authorized:
    """A key as read for this request, and the caller it makes."""

    key: ApiKey
    caller: Caller


def _authorized(api_key: str, ctx: Context) -> Authorized:
    """The authorizer's verdict on a key from this address (``bourse.api.auth``), with the
    key as the store has it now: -2015 for an unknown or revoked key or a refused address."""
    if not API_KEY_RE.match(api_key):
        raise BAD_API_KEY_FORMAT
    key = ctx.deps.keys.get(api_key)
    if key is None:
        raise REJECTED_API_KEY
    return Authorized(key, caller_of(key, ctx.event.source_ip))


def verify_signed(params: dict[str, str], ctx: Context) -> Authorized:
    """A request signed by Binance's WebSocket rules: its key and caller."""
    api_key = params.get("apiKey")
    if not api_key:
        raise errors.mandatory("apiKey")
    authorized = _authorized(api_key, ctx)
    if not signature_valid(authorized.key, signature_payload(params), params["signature"]):
        raise INVALID_SIGNATURE
    return authorized


def _require_timestamp(params: dict[str, str], ctx: Context) -> None:
    values = Params(params)
    check_timestamp(
        values.required_int("timestamp"), values.optional_int("recvWindow"), ctx.deps.clock()
    )


def _session_key(state: ConnectionState, ctx: Context) -> Authorized:
    """The logged-on key, checked again: a key that no longer passes (revoked, address refused)
    ends the session, as Binance does, with -2015."""
    if state.session is None:
        raise NOT_LOGGED_ON
    try:
        return _authorized(state.session.api_key, ctx)
    except BinanceError:
        ctx.store.clear_session(ctx.event.connection_id)
        raise


def _state(ctx: Context) -> ConnectionState:
    state = ctx.store.get_connection(ctx.event.connection_id)
    if state is None:
        raise UnknownConnection(ctx.event.connection_id)
    return state


def run_method(method: Method, params: dict[str, str], ctx: Context) -> Any:
    """One implementation, two transports: the REST handler on the equivalent request."""
    if method.permission is None:
        if _SIGNATURE_PARAMS & params.keys():
            raise errors.not_required(sorted(_SIGNATURE_PARAMS & params.keys())[0])
        public = {k: v for k, v in params.items() if k != RETURN_RATE_LIMITS}
        return method.handler(h.Request(_rest_query(public), ""), ctx.deps)
    if "signature" in params:
        authorized = verify_signed(params, ctx)
    elif "apiKey" in params:
        raise errors.mandatory("signature")
    else:
        authorized = _session_key(_state(ctx), ctx)
    rest = {k: v for k, v in params.items() if k not in _NOT_FOR_HANDLERS}
    # The WebSocket signature is verified: the handler gets the equivalent REST request signed
    # with a secret made for it, and a key store that knows only that secret for this key.
    bridge = replace(authorized.key, key_type=HMAC, secret=secrets.token_hex(32), public_key=None)
    query = _rest_query(rest)
    signature = f"signature={sign(bridge.secret, query)}"
    query = f"{query}&{signature}" if query else signature
    deps = replace(ctx.deps, keys=_OneKey(bridge), bus=KnownSymbolsBus(ctx.deps.bus, ctx.deps.view))
    request = h.Request(query, "", authorized.caller)
    store = ctx.deps.rate_limits
    if method.places_orders and store is not None:
        # Counted as REST counts POST /api/v3/order: once its signature and timing hold.
        limiting.count_order(store, request, deps, ctx.deps.clock(), ctx.usage)
    return method.handler(request, deps)


def _rest_query(params: dict[str, str]) -> str:
    """The equivalent REST query string. A JSON string may hold a lone surrogate (``\\udce9``),
    which UTF-8 cannot encode: it is percent-encoded as is, and the handler reads it back as
    U+FFFD, which no parameter accepts (Binance's -1100 and the like, never an error)."""
    return urlencode(sorted(params.items()), errors="surrogatepass")


@dataclass(frozen=True)
class _OneKey:
    key: ApiKey

    def get(self, api_key: str) -> ApiKey | None:
        return self.key if api_key == self.key.api_key else None


# -- sessions and user data


def _session_status(state: ConnectionState, ctx: Context) -> dict[str, Any]:
    now = ctx.deps.clock()
    user_data = bool(ctx.store.account_subscriptions(ctx.event.connection_id))
    return {
        "apiKey": state.session.api_key if state.session else None,
        "authorizedSince": state.session.since_ms if state.session else None,
        "connectedSince": state.connected_at_ms,
        "returnRateLimits": state.return_rate_limits,
        "serverTime": now,
        "userDataStream": user_data,
    }


def run_session(name: str, params: dict[str, str], ctx: Context) -> Any:
    cid = ctx.event.connection_id
    if name == "session.logon":
        # The key type is told only to whoever proved they hold the key (a valid signature).
        authorized = _signed_with_timestamp(params, ctx)
        if authorized.key.key_type != ED25519:
            raise LOGON_NEEDS_ED25519
        caller = authorized.caller
        ctx.store.set_session(cid, caller.api_key, caller.account_id)
        return _session_status(_state(ctx), ctx)
    if name == "session.status":
        _no_params(params)
        return _session_status(_state(ctx), ctx)
    if name == "session.logout":
        _no_params(params)
        ctx.store.clear_session(cid)
        return _session_status(_state(ctx), ctx)
    if name == "session.subscriptions":
        _no_params(params)
        ids = (s.subscription_id for s in ctx.store.account_subscriptions(cid))
        return [{"subscriptionId": i} for i in sorted(i for i in ids if i is not None)]
    if name == "userDataStream.subscribe":
        _no_params(params)
        state = _state(ctx)
        return {"subscriptionId": _subscribe_user_data(_session_key(state, ctx).caller, ctx)}
    if name == "userDataStream.subscribe.signature":
        caller = _signed_with_timestamp(params, ctx).caller
        return {"subscriptionId": _subscribe_user_data(caller, ctx)}
    if name == "session.resume":
        resume_from = params.pop("resumeFrom", None)
        _no_params(params)
        return _resume_user_data(_session_key(_state(ctx), ctx).caller, resume_from, ctx)
    if name in LISTEN_KEY_METHODS:
        return _listen_key_method(LISTEN_KEY_METHODS[name], params, ctx)
    # userDataStream.unsubscribe: one subscription by id, or all of the connection's
    wanted = params.pop("subscriptionId", None)
    _no_params(params)
    active = [s for s in ctx.store.account_subscriptions(cid) if s.subscription_id is not None]
    if wanted is not None:
        active = [s for s in active if str(s.subscription_id) == wanted]
    if not active:
        raise NOT_SUBSCRIBED
    for subscription in active:
        ctx.store.unsubscribe_account(cid, subscription.account_id)
    return {}


def _listen_key_method(
    handler: Callable[[h.Request, h.Deps], Any], params: dict[str, str], ctx: Context
) -> Any:
    api_key = params.pop("apiKey", None)
    if not api_key:
        raise errors.mandatory("apiKey")
    caller = _authorized(api_key, ctx).caller
    rest = {k: v for k, v in params.items() if k != RETURN_RATE_LIMITS}
    return handler(h.Request(_rest_query(rest), "", caller), ctx.deps)


def _signed_with_timestamp(params: dict[str, str], ctx: Context) -> Authorized:
    if "signature" not in params:
        raise errors.mandatory("signature")
    authorized = verify_signed(params, ctx)
    _require_timestamp(params, ctx)
    unknown = params.keys() - {"apiKey", "signature", "timestamp", "recvWindow", RETURN_RATE_LIMITS}
    if unknown:
        raise errors.not_required(sorted(unknown)[0])
    return authorized


def _no_params(params: dict[str, str]) -> None:
    unknown = params.keys() - {RETURN_RATE_LIMITS}
    if unknown:
        raise errors.not_required(sorted(unknown)[0])


def _subscribe_user_data(caller: Caller, ctx: Context, *, positions: bool = False) -> int:
    """The key that authorised the subscription (signed, or the session's) is recorded with it,
    so that revoking the key ends the connection, even after a ``session.logout``.
    ``positions``: every event in the positioned envelope (``session.resume``)."""
    try:
        subscription_id = ctx.store.subscribe_account(
            ctx.event.connection_id,
            caller.account_id,
            with_subscription_id=True,
            api_key=caller.api_key,
            positions=positions or None,
        )
    except AlreadySubscribed:
        raise ALREADY_SUBSCRIBED from None
    assert subscription_id is not None  # with_subscription_id
    return subscription_id


def _resume_user_data(caller: Caller, resume_from: str | None, ctx: Context) -> Any:
    """The session's user data, every event in the positioned envelope
    ``{"subscriptionId", "event", "seq", "n"}``; with ``resumeFrom``, first every event of the
    account after that position, then the live ones, with no gap and nothing twice (the
    hand-over of docs/streams.md, "Resumable streams")."""
    if resume_from is None:
        return {"subscriptionId": _subscribe_user_data(caller, ctx, positions=True)}
    resumes = ctx.resumes
    if resumes is None:
        raise errors.invalid_parameter("resumeFrom")
    try:
        cursor = parse_position(resume_from)
    except InvalidPosition:
        raise errors.invalid_parameter("resumeFrom") from None
    logs = [(account_log(caller.account_id), "")]
    try:
        resumes.check([log for log, _ in logs], cursor)
    except LogGap:
        raise BinanceError(
            errors.INVALID_PARAMETER,
            "Invalid data sent for a parameter. resumeFrom is older than the stream log holds.",
        ) from None
    cid = ctx.event.connection_id
    resumes.mark_replaying(cid, cursor)
    try:
        sid = _subscribe_user_data(caller, ctx, positions=True)
    except BinanceError:
        resumes.forget(cid)
        raise

    def start(first: bytes) -> None:
        resumes.start(cid, cursor, logs, subscription_id=sid, first=first)

    return Resuming(sid, start)


# -- rate limits


def _count_weight(name: str, raw_params: Any, ctx: Context) -> None:
    """The request's weight on its IP's minute, before anything else about it is checked (as
    REST counts a request before its handler runs)."""
    store = ctx.deps.rate_limits
    if store is None:
        return
    method = METHODS.get(name)
    if method is None:
        weight = SESSION_WEIGHT
    else:  # read leniently: a malformed request still has its weight
        lenient = raw_params if isinstance(raw_params, dict) else {}
        weight = method.weight({str(k): str(v) for k, v in lenient.items()})
    limiting.count_weight(store, ctx.event.source_ip, weight, ctx.deps.clock(), ctx.usage)


def _return_rate_limits(params: dict[str, str]) -> bool | None:
    """The request's ``returnRateLimits``; None when it does not say (the connection's
    default then)."""
    value = params.get(RETURN_RATE_LIMITS)
    if value not in (None, "true", "false"):
        raise errors.invalid_parameter(RETURN_RATE_LIMITS)
    return None if value is None else value == "true"


# A connection's default never changes once $connect stored it, and connection ids are never
# reused: kept per container, so a request reads it from DynamoDB once per connection.
_CONNECTION_DEFAULTS: dict[str, bool] = {}
_MAX_CONNECTION_DEFAULTS = 10_000


def _connection_default(event: WsEvent, store: Connections) -> bool:
    """The URL's ``returnRateLimits`` (true unless it said false). Rate limits are advice, not
    the answer: a store that fails leaves them shown rather than failing the request."""
    cid = event.connection_id
    known = _CONNECTION_DEFAULTS.get(cid)
    if known is not None:
        return known
    try:
        state = store.get_connection(cid)
    except Exception:
        log.warning("connection unreadable: rateLimits shown", exc_info=True)
        return True
    if state is None:
        return True
    if len(_CONNECTION_DEFAULTS) >= _MAX_CONNECTION_DEFAULTS:
        _CONNECTION_DEFAULTS.clear()
    _CONNECTION_DEFAULTS[cid] = state.return_rate_limits
    return state.return_rate_limits


def _with_limits(
    body: dict[str, Any], usage: limiting.Usage, deps: h.Deps, show: Callable[[], bool]
) -> dict[str, Any]:
    """A refusal's ``error.data`` and, when shown and anything was counted, ``rateLimits``."""
    if usage.refusal is not None and "error" in body:
        body["error"]["data"] = usage.refusal.data(usage.refused_at)
    counted = usage.weight is not None or usage.orders is not None
    if counted and deps.rate_limits is not None and show():
        body["rateLimits"] = deps.rate_limits.limits.counted(usage.weight, usage.orders)
    return body


# -- the route


def handle(
    event: WsEvent, deps: h.Deps, store: Connections, resumes: Resumes | None = None
) -> dict[str, Any]:
    """One WebSocket API request (its route key is its method)."""
    request_id: Any = None
    resuming: Resuming | None = None
    usage = limiting.Usage()
    asked: bool | None = None  # the request's returnRateLimits, when it has one
    try:
        request = json.loads(event.body or "")
        if not isinstance(request, dict):
            raise BinanceError(-1135, "Invalid JSON request.")
        request_id = request.get("id")
        name = str(request.get("method", event.route_key))
        if name not in ALL_METHODS:
            raise BinanceError(errors.UNKNOWN, f"Unknown method '{name}'.")
        ctx = Context(event, deps, store, usage, resumes)
        _count_weight(name, request.get("params"), ctx)
        params = read_params(request)
        asked = _return_rate_limits(params)
        if name in METHODS:
            body = answer(request_id, run_method(METHODS[name], params, ctx))
        else:
            result = run_session(name, params, ctx)
            if isinstance(result, Resuming):
                resuming = result
                result = {"subscriptionId": result.subscription_id}
            body = answer(request_id, result)
    except json.JSONDecodeError:
        body = error_answer(None, BinanceError(-1135, "Invalid JSON request."))
    except BinanceError as exc:
        body = error_answer(request_id, exc)
    except h.CancelReplaceFailed as exc:
        # Binance's order.cancelReplace failure: the error with both results in ``data``.
        body = {"id": request_id, "status": exc.error.http_status, "error": exc.body()}
    except UnknownConnection:
        body = error_answer(request_id, NOT_LOGGED_ON)
    except Exception:
        log.exception("WebSocket API request failed")
        body = error_answer(request_id, INTERNAL_ERROR)
    shown = asked
    final = _with_limits(
        body, usage, deps,
        lambda: _connection_default(event, store) if shown is None else shown,
    )  # fmt: skip
    if resuming is not None:
        # The replay posts the answer, then the events: nothing goes back from here.
        resuming.start(json.dumps(final, separators=(",", ":")).encode())
        return empty()
    return reply(final)
