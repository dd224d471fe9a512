"""The REST endpoints, one function each: a request in, a Binance body out (or a
``BinanceError``). No I/O of their own: the live view, the command bus, the key store and the
clock come in ``Deps``, so unit tests run them with fakes.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bourse.api import account as account_shapes
from bourse.api import market, record_shapes, retries
from bourse.api.auth import BAD_API_KEY_FORMAT, Caller, signed_params
from bourse.api.dry_runs import dry_run_response
from bourse.api.orders import (
    ORDER_PARAMS,
    RespType,
    check_known,
    generate_client_order_id,
    parse_new_order,
    request_deadline,
    symbol_param,
)
from bourse.api.params import Params, parse_params
from bourse.api.ports import (
    CommandBus,
    EventLogView,
    HistoryView,
    Idempotency,
    KeyStore,
    ListenKeyStore,
    MarketView,
    RateLimiter,
    RecentView,
)
from bourse.api.responses import cancel_response, new_order_response
from bourse.domain import errors
from bourse.domain.amounts import notional
from bourse.domain.commands import (
    CLIENT_ORDER_ID_RE,
    CancelAll,
    CancelOrder,
    CancelReplace,
    Command,
    DryRunOrder,
    NewOrder,
)
from bourse.domain.enums import CancelReplaceMode, Outcome
from bourse.domain.errors import BinanceError
from bourse.domain.events import Reply
from bourse.domain.symbols import (
    SymbolSpec,
    check_lot,
    check_notional,
    check_price,
    check_trailing_delta,
)

TRADE = "TRADE"
USER_DATA = "USER_DATA"
SIGNED_COMMON = frozenset({"recvWindow", "timestamp", "signature"})
CANCEL_PARAMS = SIGNED_COMMON | {
    "symbol",
    "orderId",
    "origClientOrderId",
    "newClientOrderId",
}
CANCEL_ALL_PARAMS = SIGNED_COMMON | {"symbol"}
QUERY_ORDER_PARAMS = SIGNED_COMMON | {"symbol", "orderId", "origClientOrderId"}
OPEN_ORDERS_PARAMS = SIGNED_COMMON | {"symbol"}
ACCOUNT_PARAMS = SIGNED_COMMON | {"omitZeroBalances"}
COMMISSION_PARAMS = SIGNED_COMMON | {"symbol"}
TEST_ORDER_PARAMS = ORDER_PARAMS | {"computeCommissionRates", "dryRun"}
CANCEL_REPLACE_PARAMS = ORDER_PARAMS | {
    "cancelReplaceMode",
    "cancelOrderId",
    "cancelOrigClientOrderId",
    "cancelNewClientOrderId",
}
ORDER_DOES_NOT_EXIST = BinanceError(errors.NO_SUCH_ORDER, errors.MSG_ORDER_NOT_EXIST)


@dataclass(frozen=True)
class Deps:
    view: MarketView
    bus: CommandBus
    keys: KeyStore
    clock: Callable[[], int]
    new_request_id: Callable[[], str] = lambda: uuid.uuid4().hex
    idempotency: Idempotency | None = None
    # The record (PostgreSQL) for the history endpoints and closed orders; None: not wired.
    history: HistoryView | None = None
    # Rate-limit counters (bourse.api.limiting) and listenKeys; None: no limiting / no streams.
    rate_limits: RateLimiter | None = None
    listen_keys: ListenKeyStore | None = None
    # Recently closed orders and fills (Redis), read before the record; None: not wired.
    recent: RecentView | None = None
    # The streams' message log (Redis), for replay by seq (bourse.api.event_replay); None:
    # not wired.
    events: EventLogView | None = None


@dataclass(frozen=True)
class Request:
    """What a handler reads of an HTTP request: the query string as signed, the raw body and,
    for SIGNED endpoints, the caller the authorizer established."""

    query_string: str
    body: str
    caller: Caller | None = None
    # ``signed``'s answers by permission: the rate limiter verifies an order's signature
    # before counting it, and the handler must not pay the key lookup (a Redis round trip
    # for the revocation check) a second time. Failures are not kept: each check raises.
    _verified: dict[str, tuple[Caller, Params]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def public_params(self) -> Params:
        return Params(parse_params(self.query_string, self.body))

    def signed(self, deps: Deps, permission: str) -> tuple[Caller, Params]:
        if self.caller is None:
            raise BAD_API_KEY_FORMAT
        verified = self._verified.get(permission)
        if verified is not None:
            return verified
        params = signed_params(
            self.caller, permission, self.query_string, self.body, deps.keys, deps.clock()
        )
        self._verified[permission] = (self.caller, params)
        return self.caller, params


# ---------------------------------------------------------------------------- market data


def ping(req: Request, deps: Deps) -> dict[str, Any]:
    check_known(req.public_params(), frozenset())
    return {}


def server_time(req: Request, deps: Deps) -> dict[str, Any]:
    check_known(req.public_params(), frozenset())
    return {"serverTime": deps.clock()}


def exchange_info(req: Request, deps: Deps) -> dict[str, Any]:
    limits = deps.rate_limits.limits if deps.rate_limits is not None else None
    return market.exchange_info(req.public_params(), deps.view.symbols(), deps.clock(), limits)


def _known_symbol(deps: Deps, params: Params) -> SymbolSpec:
    name = symbol_param(params)
    spec = deps.view.symbol(name)
    if spec is None:
        raise errors.INVALID_SYMBOL_ERROR
    return spec


def depth(req: Request, deps: Deps) -> dict[str, Any]:
    params = req.public_params()
    check_known(params, market.DEPTH_PARAMS)
    spec = _known_symbol(deps, params)
    limit = market.depth_limit(params)
    return market.depth(deps.view.book(spec.symbol, limit), limit)


def ticker_price(req: Request, deps: Deps) -> dict[str, Any] | list[dict[str, Any]]:
    """GET /api/v3/ticker/price: the last trade price ("0.00000000" before the first)."""
    names, single = market.chosen_symbols(req.public_params(), deps.view.symbols())
    rows = [market.price_ticker(n, deps.view.last_price(n)) for n in names]
    return rows[0] if single else rows


def book_ticker(req: Request, deps: Deps) -> dict[str, Any] | list[dict[str, Any]]:
    """GET /api/v3/ticker/bookTicker: best bid and ask (zeros for an empty side)."""
    names, single = market.chosen_symbols(req.public_params(), deps.view.symbols())
    rows = [market.book_ticker(n, deps.view.bbo(n)) for n in names]
    return rows[0] if single else rows


# ---------------------------------------------------------------------------- trading


def _execute(deps: Deps, command: Command) -> Reply:
    reply = deps.bus.execute(command)
    if reply is None:
        raise errors.EXECUTION_UNKNOWN_ERROR
    return reply


def _failed(reply: Reply) -> BinanceError:
    return BinanceError(reply.code, reply.msg)


def _new_order(deps: Deps, caller: Caller, params: Params) -> tuple[NewOrder, RespType]:
    return parse_new_order(
        params, account_id=caller.account_id, request_id=deps.new_request_id(), ts=deps.clock()
    )


def _order_answer(reply: Reply, resp_type: RespType) -> dict[str, Any]:
    if reply.code != 0 or not reply.parts or reply.parts[0].result is None:
        raise _failed(reply)
    return new_order_response(reply.parts[0].result, resp_type, reply.ts)


# Left out of the idempotency key: they change between a request and its retry.
_RETRY_VARIANT = frozenset({"timestamp", "recvWindow", "signature"})


def idempotency_key(caller: Caller, params: Params) -> str:
    """Account, symbol and newClientOrderId, plus a digest of the other parameters: a retry
    repeats all of them, while a client that reuses a client id for a different order gets a
    key of its own (and the engine's -2010 "Duplicate order sent." while the first is open)."""
    names = sorted(params.names() - _RETRY_VARIANT)
    text = "&".join(f"{n}={params.raw(n)}" for n in names)
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    symbol = (params.raw("symbol") or "").upper()
    return f"order:{caller.account_id}:{symbol}:{params.raw('newClientOrderId')}:{digest}"


# Order statuses that are final in the answer itself (the order is no longer open).
_CLOSED = frozenset({"FILLED", "CANCELED", "REJECTED", "EXPIRED", "EXPIRED_IN_MATCH"})
# Rounds of "the answer on record no longer holds, take the key over" before settling for the
# answer on record (each round another retry of the same request won the key).
_RECLAIM_ROUNDS = 3


def _answer_holds(deps: Deps, caller: Caller, symbol: str, status: int, body: str) -> bool:
    """Whether an answered attempt still stands for a retry: its order is open. A rejection
    placed nothing, and a closed order frees its client id (Binance), so for those the request
    is a new one."""
    if status != 200:
        return False
    stored = json.loads(body)
    if stored.get("status") in _CLOSED:
        return False
    order_id = stored.get("orderId")
    open_orders = deps.view.open_orders(caller.account_id, symbol)
    return any(r.order.order_id == order_id for r in open_orders)


def _replay(status: int, body: str) -> dict[str, Any]:
    stored = json.loads(body)
    if status != 200:
        raise BinanceError(stored["code"], stored["msg"], status)
    return dict(stored)


def new_order(req: Request, deps: Deps) -> dict[str, Any]:
    """POST /api/v3/order. With a newClientOrderId, the same request sent again (after a -1007,
    a lost connection) never becomes a second order while it can be a retry: while the first
    attempt is unanswered it waits for that attempt's reply; while the first attempt's order is
    open it gets the first answer. Once that order is closed (or the attempt was rejected), the
    client id is free as on Binance and the request is a new order. An attempt never answered
    settles (``bourse.api.retries``): then its order, if it placed one, is the answer, and if it
    placed none the retry is the order (docs/api.md, "Retries")."""
    caller, params = req.signed(deps, TRADE)
    order, resp_type = _new_order(deps, caller, params)
    store = deps.idempotency
    if store is None or "newClientOrderId" not in params:
        return _order_answer(_execute(deps, order), resp_type)
    key = idempotency_key(caller, params)
    earlier = store.claim(key, order.request_id)
    settled_since: int | None = None  # set when taking over from a settled, unanswered claim
    for _ in range(_RECLAIM_ROUNDS):
        if earlier is None:
            break
        if earlier.body is not None:
            if _answer_holds(deps, caller, order.symbol, earlier.status, earlier.body):
                return _replay(earlier.status, earlier.body)
        elif not retries.settled(_claimed_at(earlier), deps.clock()):
            # In flight: its command may be in the log. Wait for its reply, send nothing; a
            # rejection placed nothing, so then this request is the order.
            reply = deps.bus.wait(earlier.request_id) or _raise(errors.EXECUTION_UNKNOWN_ERROR)
            if reply.code == 0:
                return _record(store, key, reply, resp_type)
            _record_rejection(store, key, reply)
        else:
            settled_since = _since(earlier)
            found = retries.placed_order(deps.view, deps.recent, deps.history, order, settled_since)
            if found is not None:
                return _answer_found(store, key, found, resp_type)
        # Take the key over from that attempt; another retry may have done so first, and then
        # its claim is what this request finds (in flight: wait for it, next round).
        earlier = store.reclaim(key, earlier.request_id, order.request_id)
    if earlier is not None:
        if earlier.body is not None:
            return _replay(earlier.status, earlier.body)
        raise errors.EXECUTION_UNKNOWN_ERROR
    reply = _execute(deps, order)
    if settled_since is not None and _duplicate(reply):
        # The settled attempt's order reached the live view only after this request looked (a
        # slow batch): the engine refused this one as a duplicate of it, so it is the answer.
        view = deps.view
        found = retries.placed_order(view, deps.recent, deps.history, order, settled_since)
        if found is not None:
            return _answer_found(store, key, found, resp_type)
    return _record(store, key, reply, resp_type)


def _record(store: Idempotency, key: str, reply: Reply, resp_type: RespType) -> dict[str, Any]:
    """The reply as the key's answer: stored, then returned (an order) or raised."""
    try:
        body = _order_answer(reply, resp_type)
    except BinanceError as exc:
        store.complete(key, exc.http_status, json.dumps(exc.as_dict()))
        raise
    store.complete(key, 200, json.dumps(body))
    return body


def _record_rejection(store: Idempotency, key: str, reply: Reply) -> None:
    error = _failed(reply)
    store.complete(key, error.http_status, json.dumps(error.as_dict()))


def _claimed_at(claim: Any) -> int | None:
    # A claim without the time (an item written before claims recorded it) never settles.
    value = getattr(claim, "claimed_at_ms", None)
    return value if isinstance(value, int) else None


def _since(claim: Any) -> int:
    """The earliest creation time of a settled claim's order: the claim's time less the clocks'
    skew (the order's time is the API host's clock at intake, just before the claim)."""
    return (_claimed_at(claim) or 0) - retries.CLOCK_SKEW_MS


def _answer_found(
    store: Idempotency, key: str, found: dict[str, Any], resp_type: RespType
) -> dict[str, Any]:
    body = retries.as_placed(found, resp_type)
    store.complete(key, 200, json.dumps(body))
    return body


def _duplicate(reply: Reply) -> bool:
    return reply.code == errors.NEW_ORDER_REJECTED and reply.msg == errors.MSG_DUPLICATE_ORDER


def _raise(error: BinanceError) -> Reply:
    raise error


def check_static_filters(spec: SymbolSpec, order: NewOrder) -> None:
    """What order/test can check without the book and balances (the engine's first checks)."""
    if order.price is not None:
        check_price(spec, order.price)
    if order.stop_price is not None:
        check_price(spec, order.stop_price)
    if order.trailing_delta is not None:
        if not spec.allow_trailing_stop:
            raise errors.rejected(errors.MSG_TRAILING_NOT_SUPPORTED)
        check_trailing_delta(spec, order.type, order.side == "BUY", order.trailing_delta)
    market_like = order.price is None
    if order.quantity is not None:
        check_lot(spec, order.quantity, market=market_like)
    if order.iceberg_qty is not None:
        check_lot(spec, order.iceberg_qty, market=False)
    if order.price is not None and order.quantity is not None:
        check_notional(spec, notional(order.price, order.quantity), market=False)
    if order.quote_order_qty is not None:
        if not spec.quote_order_qty_market_allowed:
            raise errors.rejected(errors.MSG_UNSUPPORTED_COMBINATION)
        check_notional(spec, order.quote_order_qty, market=True)
    if order.type not in spec.order_types:
        raise errors.rejected(errors.MSG_UNSUPPORTED_COMBINATION)


def test_order(req: Request, deps: Deps) -> dict[str, Any]:
    """POST /api/v3/order/test. Binance's checks and commission rates, and with Bourse's
    ``dryRun=true`` what the order would do now: the engine runs it at a point of the sequence
    on a copy of its book and answers as a FULL order response would, changing nothing
    (docs/api.md, "Dry runs")."""
    caller, params = req.signed(deps, TRADE)
    compute = _flag(params, "computeCommissionRates")
    dry_run = _flag(params, "dryRun")
    check_known(params, TEST_ORDER_PARAMS)
    values = {n: params.raw(n) or "" for n in params.names() - _TEST_FLAGS}
    order, _ = _new_order(deps, caller, Params(values))
    spec = deps.view.symbol(order.symbol)
    if spec is None:
        raise errors.INVALID_SYMBOL_ERROR
    check_static_filters(spec, order)
    body: dict[str, Any] = {}
    if dry_run:
        command = DryRunOrder(order.request_id, order.ts, order, order.deadline)
        body = dry_run_response(_execute(deps, command))
    if compute:
        rates = account_shapes.commission(spec.symbol, deps.view.fees(caller.account_id))
        body.update(
            {
                "standardCommissionForOrder": {
                    "maker": rates["standardCommission"]["maker"],
                    "taker": rates["standardCommission"]["taker"],
                },
                "taxCommissionForOrder": {"maker": "0.00000000", "taker": "0.00000000"},
                "discount": rates["discount"],
            }
        )
    return body


_TEST_FLAGS = frozenset({"computeCommissionRates", "dryRun"})


def _flag(params: Params, name: str) -> bool:
    value = params.optional_str(name)
    if value not in (None, "true", "false"):
        raise errors.invalid_parameter(name)
    return value == "true"


def _either_id(id_name: str, client_id_name: str) -> BinanceError:
    return BinanceError(
        errors.MANDATORY_PARAM_EMPTY_OR_MALFORMED,
        f"Param '{client_id_name}' or '{id_name}' must be sent, but both were empty/null!",
    )


def _cancel_command(
    deps: Deps, caller: Caller, params: Params, *, prefix: str = "", request_id: str
) -> CancelOrder:
    """DELETE order's parameters, or cancelReplace's (the same names with ``cancel``)."""

    def name(base: str) -> str:
        return prefix + base[0].upper() + base[1:] if prefix else base

    id_name, orig_name, new_id_name = (
        name("orderId"), name("origClientOrderId"), name("newClientOrderId")
    )  # fmt: skip
    order_id = params.optional_int(id_name)
    orig = params.optional_str(orig_name)
    if order_id is None and orig is None:
        raise _either_id(id_name, orig_name)
    cancel_id = params.optional_str(new_id_name) or generate_client_order_id()
    if not CLIENT_ORDER_ID_RE.match(cancel_id):
        raise errors.illegal_chars(new_id_name, "^[\\.A-Z\\:/a-z0-9_-]{1,36}$")
    return CancelOrder(
        request_id=request_id,
        ts=deps.clock(),
        account_id=caller.account_id,
        symbol=symbol_param(params),
        order_id=order_id,
        orig_client_order_id=orig,
        cancel_client_order_id=cancel_id,
        deadline=request_deadline(params),
    )


def cancel_order(req: Request, deps: Deps) -> dict[str, Any]:
    caller, params = req.signed(deps, TRADE)
    check_known(params, CANCEL_PARAMS)
    command = _cancel_command(deps, caller, params, request_id=deps.new_request_id())
    reply = _execute(deps, command)
    if reply.code != 0 or not reply.parts or reply.parts[0].result is None:
        raise _failed(reply)
    return cancel_response(reply.parts[0].result, reply.ts)


def cancel_open_orders(req: Request, deps: Deps) -> list[dict[str, Any]]:
    caller, params = req.signed(deps, TRADE)
    check_known(params, CANCEL_ALL_PARAMS)
    command = CancelAll(
        request_id=deps.new_request_id(),
        ts=deps.clock(),
        account_id=caller.account_id,
        symbol=symbol_param(params),
        deadline=request_deadline(params),
    )
    reply = _execute(deps, command)
    if reply.code != 0:
        raise _failed(reply)
    bodies = [cancel_response(p.result, reply.ts) for p in reply.parts if p.result is not None]
    # CancelAll carries no cancel ids; Binance gives each cancel a generated clientOrderId.
    for body in bodies:
        body["clientOrderId"] = body["clientOrderId"] or generate_client_order_id()
    return bodies


def cancel_replace(req: Request, deps: Deps) -> dict[str, Any]:
    """POST /api/v3/order/cancelReplace: success is 200 with both results; a failure is 400
    with Binance's ``{"code", "msg", "data": {...both results...}}``."""
    caller, params = req.signed(deps, TRADE)
    check_known(params, CANCEL_REPLACE_PARAMS)
    mode = params.required_enum("cancelReplaceMode", CancelReplaceMode)
    request_id = deps.new_request_id()
    cancel = _cancel_command(deps, caller, params, prefix="cancel", request_id=request_id)
    new_values = {n: params.raw(n) or "" for n in params.names() & ORDER_PARAMS}
    new, resp_type = parse_new_order(
        Params(new_values), account_id=caller.account_id, request_id=request_id, ts=cancel.ts
    )
    command = CancelReplace(request_id, cancel.ts, mode, cancel, new, request_deadline(params))
    reply = _execute(deps, command)
    if not reply.parts:
        raise _failed(reply)
    cancel_part, new_part = reply.parts
    cancel_body: dict[str, Any] | None = (
        cancel_response(cancel_part.result, reply.ts)
        if cancel_part.result is not None
        else {"code": cancel_part.code, "msg": cancel_part.msg}
    )
    new_body: dict[str, Any] | None
    if new_part.outcome is Outcome.NOT_ATTEMPTED:
        new_body = None
    elif new_part.result is not None:
        new_body = new_order_response(new_part.result, resp_type, reply.ts)
    else:
        new_body = {"code": new_part.code, "msg": new_part.msg}
    data = {
        "cancelResult": str(cancel_part.outcome),
        "newOrderResult": str(new_part.outcome),
        "cancelResponse": cancel_body,
        "newOrderResponse": new_body,
    }
    if reply.code != 0:
        raise CancelReplaceFailed(BinanceError(reply.code, reply.msg), data)
    return data


class CancelReplaceFailed(Exception):
    """A cancel-replace that failed in part or whole: the error plus both results."""

    def __init__(self, error: BinanceError, data: dict[str, Any]) -> None:
        super().__init__(str(error))
        self.error = error
        self.data = data

    def body(self) -> dict[str, Any]:
        return {"code": self.error.code, "msg": self.error.msg, "data": self.data}


# ---------------------------------------------------------------------------- account


def query_order(req: Request, deps: Deps) -> dict[str, Any]:
    caller, params = req.signed(deps, USER_DATA)
    check_known(params, QUERY_ORDER_PARAMS)
    spec = _known_symbol(deps, params)
    order_id = params.optional_int("orderId")
    orig = params.optional_str("origClientOrderId")
    if order_id is None and orig is None:
        raise _either_id("orderId", "origClientOrderId")
    for result in deps.view.open_orders(caller.account_id, spec.symbol):
        info = result.order
        if (order_id is not None and info.order_id == order_id) or (
            order_id is None and info.client_order_id == orig
        ):
            return account_shapes.order_query(result)
    # Closed: recently (the record may not have it yet, or only as it was before), else long
    # enough ago that the record has it. Never the record first: it lags what was answered.
    if deps.recent is not None:
        recent = deps.recent.closed_order(caller.account_id, spec.symbol, order_id, orig)
        if recent is not None:
            return record_shapes.order(recent)
    if deps.history is not None:
        row = deps.history.order(caller.account_id, spec.symbol, order_id, orig)
        if row is not None:
            return record_shapes.order(row)
    raise ORDER_DOES_NOT_EXIST


def open_orders(req: Request, deps: Deps) -> list[dict[str, Any]]:
    caller, params = req.signed(deps, USER_DATA)
    check_known(params, OPEN_ORDERS_PARAMS)
    symbol = _known_symbol(deps, params).symbol if "symbol" in params else None
    return [account_shapes.order_query(r) for r in deps.view.open_orders(caller.account_id,
                                                                          symbol)]  # fmt: skip


def account_info(req: Request, deps: Deps) -> dict[str, Any]:
    caller, params = req.signed(deps, USER_DATA)
    check_known(params, ACCOUNT_PARAMS)
    omit = params.optional_str("omitZeroBalances")
    if omit not in (None, "true", "false"):
        raise errors.invalid_parameter("omitZeroBalances")
    now = deps.clock()
    return account_shapes.account(
        caller.account_id,
        deps.view.balances(caller.account_id),
        deps.view.fees(caller.account_id),
        caller.permissions,
        omit_zero=omit == "true",
        update_time=now,
    )


def account_commission(req: Request, deps: Deps) -> dict[str, Any]:
    caller, params = req.signed(deps, USER_DATA)
    check_known(params, COMMISSION_PARAMS)
    spec = _known_symbol(deps, params)
    return account_shapes.commission(spec.symbol, deps.view.fees(caller.account_id))
