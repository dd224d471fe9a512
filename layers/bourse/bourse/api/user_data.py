"""GET /api/v3/rateLimit/order (SIGNED, USER_DATA) and the legacy userDataStream listenKey
endpoints (USER_STREAM: an API key, no signature), answered exactly as Binance answers them.

A listenKey is valid 60 minutes; PUT extends it by 60 minutes, DELETE ends it, POST on an
account with a live key returns that key, extended (``bourse.adapters.listen_keys``). The
WebSocket API accepts ``/ws/<listenKey>`` while the key is live.
"""

from __future__ import annotations

from typing import Any

from bourse.api.auth import BAD_API_KEY_FORMAT, Caller, live_key
from bourse.api.handlers import SIGNED_COMMON, USER_DATA, Deps, Request
from bourse.api.orders import check_known
from bourse.api.params import Params
from bourse.api.ports import ListenKeyStore
from bourse.domain import errors
from bourse.domain.errors import BinanceError

LISTEN_KEY_NOT_FOUND = BinanceError(errors.INVALID_LISTEN_KEY, "This listenKey does not exist.")
RATE_LIMIT_PARAMS = SIGNED_COMMON
LISTEN_KEY_PARAMS = frozenset({"listenKey"})


def order_rate_limit(req: Request, deps: Deps) -> list[dict[str, Any]]:
    """The account's ORDERS limiters with their counts in the current windows."""
    caller, params = req.signed(deps, USER_DATA)
    check_known(params, RATE_LIMIT_PARAMS)
    if deps.rate_limits is None:
        raise RuntimeError("rateLimit/order needs the rate-limit store")
    counts = deps.rate_limits.order_counts(caller.account_id, deps.clock())
    return deps.rate_limits.limits.order_status(counts)


def _stream(req: Request, deps: Deps) -> tuple[Caller, Params, ListenKeyStore]:
    if req.caller is None:
        raise BAD_API_KEY_FORMAT
    if deps.listen_keys is None:
        raise RuntimeError("userDataStream needs the listenKey store")
    live_key(req.caller, deps.keys)  # -2015 for a key revoked since the authorizer's answer
    return req.caller, req.public_params(), deps.listen_keys


def new_listen_key(req: Request, deps: Deps) -> dict[str, Any]:
    """POST /api/v3/userDataStream: ``{"listenKey": ...}``."""
    caller, params, keys = _stream(req, deps)
    check_known(params, frozenset())
    return {"listenKey": keys.create(caller.account_id, api_key=caller.api_key)}


def keepalive_listen_key(req: Request, deps: Deps) -> dict[str, Any]:
    """PUT /api/v3/userDataStream: ``{}``; -1125 for a key that is not the caller's live one."""
    caller, params, keys = _stream(req, deps)
    check_known(params, LISTEN_KEY_PARAMS)
    listen_key = params.required_str("listenKey")
    if not keys.keepalive(listen_key, caller.account_id, api_key=caller.api_key):
        raise LISTEN_KEY_NOT_FOUND
    return {}


def close_listen_key(req: Request, deps: Deps) -> dict[str, Any]:
    """DELETE /api/v3/userDataStream: ``{}``; -1125 likewise."""
    caller, params, keys = _stream(req, deps)
    check_known(params, LISTEN_KEY_PARAMS)
    if not keys.close(params.required_str("listenKey"), caller.account_id):
        raise LISTEN_KEY_NOT_FOUND
    return {}
