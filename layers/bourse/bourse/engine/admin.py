"""Admin commands other than funding: markets (list, change, halt, delist) and accounts
(create, freeze, fees, keys), and what every admin command goes through — refused if its
request id was already applied (a replayed signed record), else remembered, and recorded by
an AdminAction just before its Reply (docs/engine.md "Admin commands")."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import msgspec

from bourse.domain import errors
from bourse.domain.amounts import SCALE
from bourse.domain.commands import (
    COMMAND_NAMES,
    KEY_ACTIONS,
    AddSymbol,
    CreateAccount,
    DelistSymbol,
    KeyChange,
    RejectedAdmin,
    SetAccountFees,
    SetAccountStatus,
    SetSymbolStatus,
    UpdateSymbol,
)
from bourse.domain.enums import SymbolStatus
from bourse.domain.events import AccountFeesUpdated, AccountUpdated, AdminAction, SymbolUpdated
from bourse.engine.cancels import CLOSED, cancel_order
from bourse.engine.command_output import order_id_of
from bourse.engine.registry import ACTIVE, FROZEN
from bourse.engine.symbol_state import SymbolState

if TYPE_CHECKING:
    from bourse.engine.state import EngineState, Result

MAX_ACCOUNT_ID = 2**53 - 1  # exact in every JSON reader, JavaScript's included
API_KEY_RE = re.compile(r"\A[!-~]{1,256}\Z")
_json = msgspec.json.Encoder()


def admit(eng: EngineState, cmd: Any) -> None:
    if type(cmd) is RejectedAdmin:
        # Never remembered: a forger must not be able to burn a request id the admin
        # plane is about to use.
        return
    applied = eng._reg.applied
    if cmd.request_id in applied:
        raise errors.UNAUTHORIZED_ERROR
    applied.add(cmd.request_id)


def admin_action(eng: EngineState, cmd: Any, code: int, msg: str) -> AdminAction:
    name = cmd.command if type(cmd) is RejectedAdmin else COMMAND_NAMES[type(cmd)]
    detail = _json.encode(cmd).decode()
    return AdminAction(0, cmd.ts, cmd.request_id, name, cmd.principal, code, msg, detail)


def on_rejected_admin(eng: EngineState, cmd: RejectedAdmin) -> Result:
    raise errors.UNAUTHORIZED_ERROR


def _listed(eng: EngineState, name: str) -> SymbolState:
    """A symbol admin commands may still change (known and not delisted)."""
    sym = eng._symbol(name)
    if name in eng._reg.delisted:
        raise errors.SYMBOL_DELISTED_ERROR
    return sym


def on_add_symbol(eng: EngineState, cmd: AddSymbol) -> Result:
    spec = cmd.spec
    if spec.symbol in eng._symbols:
        raise errors.invalid_parameter()
    spec.validate()
    eng._symbols[spec.symbol] = SymbolState(spec, eng._bal)
    eng._events.append(SymbolUpdated(0, cmd.ts, spec))
    return 0, "", ()


def on_update_symbol(eng: EngineState, cmd: UpdateSymbol) -> Result:
    sym = _listed(eng, cmd.spec.symbol)
    old = sym.spec
    spec = replace(cmd.spec, status=old.status)
    if (spec.base_asset, spec.quote_asset) != (old.base_asset, old.quote_asset):
        raise errors.invalid_parameter("baseAsset and quoteAsset cannot change.")
    spec.validate()
    if (spec.tick_size, spec.step_size) != (old.tick_size, old.step_size) and (
        sym.book.orders or len(sym.stops)
    ):
        # Open orders were accepted on the old grid; a trade of one of them on a new grid
        # could round its notional, which the engine guarantees never happens.
        raise errors.invalid_parameter("tickSize and stepSize cannot change while orders are open.")
    sym.respec(spec)
    eng._events.append(SymbolUpdated(0, cmd.ts, spec))
    return 0, "", ()


def on_set_status(eng: EngineState, cmd: SetSymbolStatus) -> Result:
    sym = _listed(eng, cmd.symbol)
    if cmd.status not in tuple(SymbolStatus):
        raise errors.invalid_parameter()
    sym.respec(sym.spec.with_status(SymbolStatus(cmd.status)))
    eng._events.append(SymbolUpdated(0, cmd.ts, sym.spec))
    return 0, "", ()


def on_delist(eng: EngineState, cmd: DelistSymbol) -> Result:
    sym = _listed(eng, cmd.symbol)
    eng._reg.delisted.add(cmd.symbol)
    sym.respec(sym.spec.with_status(SymbolStatus.BREAK))
    eng._events.append(SymbolUpdated(0, cmd.ts, sym.spec))
    open_orders = [*sym.book.orders.values(), *sym.stops.all_sorted()]
    for order in sorted(open_orders, key=order_id_of):
        if order.status not in CLOSED:  # not already cancelled with its order list
            cancel_order(eng, sym, order, "")
    return 0, "", ()


def on_set_fees(eng: EngineState, cmd: SetAccountFees) -> Result:
    if cmd.account_id < 1 or not (0 <= cmd.maker_rate <= SCALE and 0 <= cmd.taker_rate <= SCALE):
        raise errors.invalid_parameter()
    eng._account(cmd.account_id)
    eng._bal.fees[cmd.account_id] = (cmd.maker_rate, cmd.taker_rate)
    eng._events.append(
        AccountFeesUpdated(0, cmd.ts, cmd.account_id, cmd.maker_rate, cmd.taker_rate)
    )
    return 0, "", ()


def on_create_account(eng: EngineState, cmd: CreateAccount) -> Result:
    reg = eng._reg
    acct = cmd.account_id or reg.next_account_id
    if not 1 <= acct <= MAX_ACCOUNT_ID:
        raise errors.invalid_parameter()
    if acct in reg.accounts:
        raise errors.ACCOUNT_EXISTS_ERROR
    reg.create(acct)
    eng._events.append(AccountUpdated(0, cmd.ts, acct, ACTIVE))
    eng._detail = _json.encode({"accountId": acct}).decode()
    return 0, "", ()


def on_set_account_status(eng: EngineState, cmd: SetAccountStatus) -> Result:
    eng._account(cmd.account_id)
    frozen = bool(cmd.frozen)
    eng._reg.accounts[cmd.account_id] = frozen
    status = FROZEN if frozen else ACTIVE
    eng._events.append(AccountUpdated(0, cmd.ts, cmd.account_id, status))
    eng._detail = _json.encode({"accountId": cmd.account_id, "status": status}).decode()
    return 0, "", ()


def on_key_change(eng: EngineState, cmd: KeyChange) -> Result:
    if cmd.action not in KEY_ACTIONS or not API_KEY_RE.match(cmd.api_key):
        raise errors.invalid_parameter()
    eng._account(cmd.account_id)
    return 0, "", ()
