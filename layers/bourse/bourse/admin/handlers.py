"""The admin API's handlers (docs/admin-api.md): one function per route, request in, JSON-able
answer out, every refusal a ``BinanceError`` (HTTP 400, 404 for an unknown market, account,
key or withdrawal, 503 -1007 when the engine does not answer in time).

Every change is an admin command carrying the caller's IAM ARN (``principal``), applied by the
engine in sequence and recorded (AdminAction); key operations write the key table first (the
key must work, or stop working, at once) and then send a KeyChange command, so that they are
recorded in the same sequence. Reads come from the live view, the key table and the record.
Pure: the ports (``bourse.admin.ports``) do the I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from bourse.admin import parsing as p
from bourse.admin import webhooks as wh
from bourse.admin.ports import AdminDeps, KeyRecord
from bourse.domain import errors
from bourse.domain.amounts import format_units
from bourse.domain.commands import (
    AddSymbol,
    Command,
    CreateAccount,
    DelistSymbol,
    Deposit,
    KeyChange,
    SetAccountFees,
    SetAccountStatus,
    SetSymbolStatus,
    UpdateSymbol,
    WithdrawRequest,
    WithdrawSettle,
)
from bourse.domain.enums import SymbolStatus
from bourse.domain.errors import BinanceError
from bourse.domain.symbols import SymbolSpec

ACTIVE = "ACTIVE"
FROZEN = "FROZEN"
REVOKED = "REVOKED"
FUNDING_LIMIT_DEFAULT = 100
FUNDING_LIMIT_MAX = 1000
NO_PRINCIPAL = BinanceError(errors.UNAUTHORIZED, errors.MSG_UNAUTHORIZED, 403)
# Engine refusals that mean "no such thing": answered 404.
_NOT_FOUND = {(e.code, e.msg): e for e in (p.UNKNOWN_ACCOUNT, p.UNKNOWN_WITHDRAWAL,
                                           p.UNKNOWN_MARKET)}  # fmt: skip


@dataclass(frozen=True)
class AdminRequest:
    """What a handler reads of a request: API Gateway's path parameters and query string, the
    raw body, and the caller's IAM ARN (``requestContext.identity.userArn``)."""

    principal: str
    path: Mapping[str, str]
    query: Mapping[str, str]
    body: str | None = None


Handler = Callable[[AdminRequest, AdminDeps], dict[str, Any]]


@dataclass(frozen=True)
class AdminRoute:
    method: str
    path: str  # API Gateway's form, as template.yaml declares it: /admin/markets/{symbol}
    handler: Handler


# ---------------------------------------------------------------------------- the engine


def _execute(req: AdminRequest, deps: AdminDeps, make: Callable[[str, int, str], Command]) -> (
    dict[str, Any]
):  # fmt: skip
    """Send the command built by ``make(request_id, ts, principal)``; its reply's detail."""
    if not req.principal:
        raise NO_PRINCIPAL
    command = make(deps.new_request_id(), deps.clock(), req.principal)
    reply = deps.bus.execute(command)
    if reply is None:
        raise errors.EXECUTION_UNKNOWN_ERROR
    if reply.code != 0:
        raise _NOT_FOUND.get((reply.code, reply.msg), BinanceError(reply.code, reply.msg))
    return p.detail(reply.detail)


def _empty_body(req: AdminRequest) -> None:
    p.Body(req.body).done()


# ---------------------------------------------------------------------------- markets


def _market(deps: AdminDeps, req: AdminRequest) -> SymbolSpec:
    spec = deps.view.symbol(p.symbol_name(req.path.get("symbol", "")))
    if spec is None:
        raise p.UNKNOWN_MARKET
    return spec


def list_markets(req: AdminRequest, deps: AdminDeps) -> dict[str, Any]:
    return {"markets": [p.market_json(spec) for spec in deps.view.symbols().values()]}


def add_market(req: AdminRequest, deps: AdminDeps) -> dict[str, Any]:
    body = p.Body(req.body)
    spec = p.new_market(body)
    body.done()
    _execute(req, deps, lambda rid, ts, who: AddSymbol(rid, ts, spec, who))
    return p.market_json(spec)


def update_market(req: AdminRequest, deps: AdminDeps) -> dict[str, Any]:
    current = _market(deps, req)
    body = p.Body(req.body)
    spec = p.market_patch(body, current)
    body.done()
    _execute(req, deps, lambda rid, ts, who: UpdateSymbol(rid, ts, spec, who))
    return p.market_json(replace(spec, status=current.status))  # the engine keeps the status


def _set_status(status: SymbolStatus) -> Handler:
    def handler(req: AdminRequest, deps: AdminDeps) -> dict[str, Any]:
        current = _market(deps, req)
        _empty_body(req)
        _execute(req, deps, lambda rid, ts, who: SetSymbolStatus(rid, ts, current.symbol,
                                                                 status, who))  # fmt: skip
        return p.market_json(replace(current, status=status))

    handler.__name__ = f"set_status_{status.value.lower()}"
    return handler


halt_market = _set_status(SymbolStatus.HALT)
resume_market = _set_status(SymbolStatus.TRADING)


def delist_market(req: AdminRequest, deps: AdminDeps) -> dict[str, Any]:
    current = _market(deps, req)
    _empty_body(req)
    _execute(req, deps, lambda rid, ts, who: DelistSymbol(rid, ts, current.symbol, who))
    return p.market_json(replace(current, status=SymbolStatus.BREAK))


# ---------------------------------------------------------------------------- accounts


def _path_account(req: AdminRequest) -> int:
    try:
        return p.account_id(req.path.get("accountId", ""))
    except BinanceError:
        raise p.UNKNOWN_ACCOUNT from None


def _known_account(req: AdminRequest, deps: AdminDeps) -> tuple[int, str]:
    account = _path_account(req)
    status = deps.view.account_status(account)
    if status is None:
        raise p.UNKNOWN_ACCOUNT
    return account, status


def _fees_json(fees: tuple[int, int] | None) -> dict[str, str | None]:
    maker, taker = (None, None) if fees is None else (format_units(fees[0]), format_units(fees[1]))
    return {"makerCommission": maker, "takerCommission": taker}


def create_account(req: AdminRequest, deps: AdminDeps) -> dict[str, Any]:
    body = p.Body(req.body)
    wanted = body.account_id(required=False) or 0
    body.done()
    detail = _execute(req, deps, lambda rid, ts, who: CreateAccount(rid, ts, wanted, who))
    return {"accountId": int(detail.get("accountId", wanted)), "status": ACTIVE}


def list_accounts(req: AdminRequest, deps: AdminDeps) -> dict[str, Any]:
    accounts = sorted(deps.view.accounts().items())
    return {"accounts": [{"accountId": a, "status": s} for a, s in accounts]}


def get_account(req: AdminRequest, deps: AdminDeps) -> dict[str, Any]:
    account, status = _known_account(req, deps)
    return {
        "accountId": account,
        "status": status,
        "balances": p.balances_json(deps.view.balances(account)),
        **_fees_json(deps.view.fees(account)),
        "keys": [p.key_json(key) for key in deps.keys.list(account)],
    }


def _set_frozen(frozen: bool) -> Handler:
    def handler(req: AdminRequest, deps: AdminDeps) -> dict[str, Any]:
        account = _path_account(req)
        _empty_body(req)
        detail = _execute(
            req, deps, lambda rid, ts, who: SetAccountStatus(rid, ts, account, frozen, who)
        )
        return {"accountId": account, "status": detail.get("status", FROZEN if frozen else ACTIVE)}

    handler.__name__ = "freeze_account" if frozen else "unfreeze_account"
    return handler


freeze_account = _set_frozen(True)
unfreeze_account = _set_frozen(False)


def set_account_fees(req: AdminRequest, deps: AdminDeps) -> dict[str, Any]:
    account, status = _known_account(req, deps)
    body = p.Body(req.body)
    maker = p.rate("makerCommission", body.string("makerCommission"))
    taker = p.rate("takerCommission", body.string("takerCommission"))
    body.done()
    _execute(req, deps, lambda rid, ts, who: SetAccountFees(rid, ts, account, maker, taker, who))
    return {"accountId": account, "status": status, **_fees_json((maker, taker))}


# ---------------------------------------------------------------------------- keys


def _key_change(req: AdminRequest, deps: AdminDeps, key: KeyRecord, action: str) -> None:
    account, name = key.account_id, key.api_key
    _execute(req, deps, lambda rid, ts, who: KeyChange(rid, ts, account, name, action, who))


def _new_key(
    req: AdminRequest,
    deps: AdminDeps,
    account: int,
    key_type: str,
    permissions: tuple[str, ...],
    ip_allow_list: tuple[str, ...],
    label: str,
    public_key: str | None,
) -> tuple[KeyRecord, str | None]:
    """Writes a new key, then records it (KeyChange CREATED). A key the engine did not
    record is revoked again: no key exists that the sequence does not know of."""
    if not req.principal:
        raise NO_PRINCIPAL
    try:
        key, secret = deps.keys.create(
            account, key_type, permissions, ip_allow_list, label, public_key, deps.clock()
        )
    except ValueError as exc:
        raise errors.invalid_parameter(f"{exc}.") from None
    try:
        _key_change(req, deps, key, "CREATED")
    except BinanceError:
        deps.keys.revoke(key.api_key)
        raise
    return key, secret


def create_key(req: AdminRequest, deps: AdminDeps) -> dict[str, Any]:
    account, _ = _known_account(req, deps)
    body = p.Body(req.body)
    key_type = body.string("type", required=False, default="HMAC").upper()
    if "permissions" not in body:
        raise errors.mandatory("permissions")
    permissions = p.permissions(body.string_list("permissions"))
    if not permissions:
        raise errors.mandatory("permissions")
    ip_allow_list = body.string_list("ipAllowList")
    label = body.string("label", required=False)
    if len(label) > p.LABEL_MAX:
        raise errors.invalid_parameter(f"label is longer than {p.LABEL_MAX} characters.")
    public_key = body.string("publicKey", required=False) or None
    body.done()
    key, secret = _new_key(
        req, deps, account, key_type, permissions, ip_allow_list, label, public_key
    )
    return p.key_json(key, secret)


def list_keys(req: AdminRequest, deps: AdminDeps) -> dict[str, Any]:
    account, _ = _known_account(req, deps)
    return {"keys": [p.key_json(key) for key in deps.keys.list(account)]}


def _path_key(req: AdminRequest, deps: AdminDeps) -> KeyRecord:
    key = deps.keys.describe(p.api_key(req.path.get("apiKey", "")))
    if key is None:
        raise p.UNKNOWN_KEY
    return key


def _revoke(req: AdminRequest, deps: AdminDeps, key: KeyRecord) -> KeyRecord:
    """REVOKED in the table (it stops working at once), its sessions closed."""
    revoked = deps.keys.revoke(key.api_key)
    if revoked is None:
        raise p.UNKNOWN_KEY
    deps.keys.close_sessions(key.api_key, key.account_id)
    return revoked


def revoke_key(req: AdminRequest, deps: AdminDeps) -> dict[str, Any]:
    key = _path_key(req, deps)
    _empty_body(req)
    if not req.principal:
        raise NO_PRINCIPAL
    revoked = _revoke(req, deps, key)
    if key.status != REVOKED:  # revoking again changes nothing: nothing to record
        _key_change(req, deps, key, "REVOKED")
    return p.key_json(revoked)


def rotate_key(req: AdminRequest, deps: AdminDeps) -> dict[str, Any]:
    """A new key with the old one's account, type, permissions, allow-list and label (an
    Ed25519 key needs its new public key); then the old one is revoked. Recorded as the new
    key CREATED and the old one ROTATED."""
    old = _path_key(req, deps)
    body = p.Body(req.body)
    public_key = body.string("publicKey", required=False) or None
    body.done()
    if old.status != ACTIVE:
        raise errors.invalid_parameter("The API key is revoked.")
    key, secret = _new_key(req, deps, old.account_id, old.key_type, tuple(old.permissions),
                           tuple(old.ip_allow_list), old.label, public_key)  # fmt: skip
    _revoke(req, deps, old)
    _key_change(req, deps, old, "ROTATED")
    return p.key_json(key, secret)


# ---------------------------------------------------------------------------- funding


def deposit(req: AdminRequest, deps: AdminDeps) -> dict[str, Any]:
    body = p.Body(req.body)
    account = body.account_id()
    asset = p.asset_name(body.string("asset"))
    amount = body.amount("amount", positive=True)
    tx_id = p.tx_id(body.string("txId"))
    body.done()
    assert account is not None and amount is not None
    detail = _execute(req, deps, lambda rid, ts, who: Deposit(rid, ts, account, asset, amount,
                                                              tx_id, who))  # fmt: skip
    return {
        "txId": tx_id,
        "accountId": account,
        "asset": asset,
        "amount": format_units(amount),
        "status": "CREDITED",
        "duplicate": bool(detail.get("duplicate", False)),
    }


def request_withdrawal(req: AdminRequest, deps: AdminDeps) -> dict[str, Any]:
    body = p.Body(req.body)
    account = body.account_id()
    asset = p.asset_name(body.string("asset"))
    amount = body.amount("amount", positive=True)
    given = body.string("withdrawalId", required=False)
    body.done()
    assert account is not None and amount is not None
    wid = p.withdrawal_id(given) if given else f"w{deps.new_request_id()}"
    detail = _execute(
        req, deps, lambda rid, ts, who: WithdrawRequest(rid, ts, account, asset, amount, wid, who)
    )
    return {
        "withdrawalId": wid,
        "accountId": account,
        "asset": asset,
        "amount": format_units(amount),
        "status": str(detail.get("status", "REQUESTED")),
    }


def _amount_text(value: Any) -> str | None:
    """An amount from a reply's detail: integer units, or already a decimal string."""
    if isinstance(value, bool) or value is None:
        return None
    return format_units(value) if isinstance(value, int) else str(value)


def _settle(outcome: str) -> Handler:
    def handler(req: AdminRequest, deps: AdminDeps) -> dict[str, Any]:
        try:
            wid = p.withdrawal_id(req.path.get("withdrawalId", ""))
        except BinanceError:
            raise p.UNKNOWN_WITHDRAWAL from None
        _empty_body(req)
        detail = _execute(req, deps, lambda rid, ts, who: WithdrawSettle(rid, ts, wid, outcome,
                                                                         who))  # fmt: skip
        account = detail.get("accountId")
        return {
            "withdrawalId": wid,
            "accountId": account if isinstance(account, int) else None,
            "asset": detail.get("asset"),
            "amount": _amount_text(detail.get("amount")),
            "status": str(detail.get("status", outcome)),
        }

    handler.__name__ = f"withdrawal_{outcome.lower()}"
    return handler


complete_withdrawal = _settle("COMPLETED")
fail_withdrawal = _settle("FAILED")
cancel_withdrawal = _settle("CANCELED")


def funding_history(req: AdminRequest, deps: AdminDeps) -> dict[str, Any]:
    unknown = set(req.query) - {"accountId", "limit"}
    if unknown:
        raise BinanceError(
            errors.UNKNOWN_PARAM, f"An unknown parameter was sent: '{sorted(unknown)[0]}'."
        )
    account = p.account_id(req.query["accountId"]) if req.query.get("accountId") else None
    raw_limit = req.query.get("limit") or str(FUNDING_LIMIT_DEFAULT)
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= FUNDING_LIMIT_MAX:
        raise errors.invalid_parameter(f"limit must be from 1 to {FUNDING_LIMIT_MAX}.")
    return {"funding": deps.funding(account, int(raw_limit))}


ROUTES: tuple[AdminRoute, ...] = (
    AdminRoute("GET", "/admin/markets", list_markets),
    AdminRoute("POST", "/admin/markets", add_market),
    AdminRoute("PATCH", "/admin/markets/{symbol}", update_market),
    AdminRoute("POST", "/admin/markets/{symbol}/halt", halt_market),
    AdminRoute("POST", "/admin/markets/{symbol}/resume", resume_market),
    AdminRoute("POST", "/admin/markets/{symbol}/delist", delist_market),
    AdminRoute("POST", "/admin/accounts", create_account),
    AdminRoute("GET", "/admin/accounts", list_accounts),
    AdminRoute("GET", "/admin/accounts/{accountId}", get_account),
    AdminRoute("POST", "/admin/accounts/{accountId}/freeze", freeze_account),
    AdminRoute("POST", "/admin/accounts/{accountId}/unfreeze", unfreeze_account),
    AdminRoute("PUT", "/admin/accounts/{accountId}/fees", set_account_fees),
    AdminRoute("POST", "/admin/accounts/{accountId}/keys", create_key),
    AdminRoute("GET", "/admin/accounts/{accountId}/keys", list_keys),
    AdminRoute("DELETE", "/admin/keys/{apiKey}", revoke_key),
    AdminRoute("POST", "/admin/keys/{apiKey}/rotate", rotate_key),
    AdminRoute("POST", "/admin/deposits", deposit),
    AdminRoute("POST", "/admin/withdrawals", request_withdrawal),
    AdminRoute("POST", "/admin/withdrawals/{withdrawalId}/complete", complete_withdrawal),
    AdminRoute("POST", "/admin/withdrawals/{withdrawalId}/fail", fail_withdrawal),
    AdminRoute("POST", "/admin/withdrawals/{withdrawalId}/cancel", cancel_withdrawal),
    AdminRoute("GET", "/admin/funding", funding_history),
    # Push without a socket (bourse.admin.webhooks, docs/webhooks.md)
    AdminRoute("POST", "/admin/accounts/{accountId}/webhooks", wh.add_webhook),
    AdminRoute("GET", "/admin/accounts/{accountId}/webhooks", wh.list_webhooks),
    AdminRoute("DELETE", "/admin/accounts/{accountId}/webhooks/{webhookId}", wh.remove_webhook),
    AdminRoute("PUT", "/admin/accounts/{accountId}/queue", wh.open_queue),
    AdminRoute("DELETE", "/admin/accounts/{accountId}/queue", wh.close_queue),
)
