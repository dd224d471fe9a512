"""Funding, the only way money enters or leaves the exchange: DEPOSIT (idempotent by its tx
id) and a withdrawal's two steps, WITHDRAW_REQUEST (the amount locked) and WITHDRAW_SETTLE
(it leaves, or comes back)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import msgspec

from bourse.domain import errors
from bourse.domain.amounts import MAX_UNITS
from bourse.domain.commands import WITHDRAW_OUTCOMES, Deposit, WithdrawRequest, WithdrawSettle
from bourse.domain.events import BalanceUpdate, FundingUpdate
from bourse.domain.symbols import ASSET_RE
from bourse.engine.command_output import touch
from bourse.engine.registry import REQUESTED, Withdrawal

if TYPE_CHECKING:
    from bourse.engine.state import EngineState, Result

TX_ID_RE = re.compile(r"\A[!-~]{1,128}\Z")  # printable ASCII, no spaces
WITHDRAWAL_ID_RE = re.compile(r"\A[A-Za-z0-9._:/-]{1,64}\Z")
_json = msgspec.json.Encoder()


def _check_funding(eng: EngineState, account_id: int, asset: str, amount: int) -> None:
    if account_id < 1 or not isinstance(asset, str) or not ASSET_RE.match(asset) or amount <= 0:
        raise errors.invalid_parameter()


def _funded(eng: EngineState, cmd: Any, funding_id: str, kind: str, status: str, tx_id: str,
            delta: int) -> None:  # fmt: skip
    events = eng._events
    events.append(FundingUpdate(0, cmd.ts, funding_id, kind, status, cmd.account_id,
                                cmd.asset, cmd.amount, tx_id))  # fmt: skip
    events.append(BalanceUpdate(0, cmd.ts, cmd.account_id, cmd.asset, delta))


def on_deposit(eng: EngineState, cmd: Deposit) -> Result:
    _check_funding(eng, cmd.account_id, cmd.asset, cmd.amount)
    tx_id = cmd.tx_id
    if tx_id and not TX_ID_RE.match(tx_id):
        raise errors.invalid_parameter()
    eng._account(cmd.account_id)
    reg = eng._reg
    if tx_id in reg.deposits:
        if reg.deposits[tx_id] != (cmd.account_id, cmd.asset, cmd.amount):
            raise errors.invalid_parameter(
                f"txId {tx_id} already used with a different account, asset or amount."
            )
        eng._detail = '{"duplicate":true}'
        return 0, "", ()
    if eng._bal.free(cmd.account_id, cmd.asset) + cmd.amount > MAX_UNITS:
        raise errors.invalid_parameter()
    entry = eng._bal.entry(cmd.account_id, cmd.asset)
    touch(eng, entry, cmd.account_id, cmd.asset)
    entry[0] += cmd.amount
    totals = eng._bal.totals
    totals[cmd.asset] = totals.get(cmd.asset, 0) + cmd.amount
    if tx_id:
        reg.deposits[tx_id] = (cmd.account_id, cmd.asset, cmd.amount)
    _funded(eng, cmd, tx_id or cmd.request_id, "DEPOSIT", "CREDITED", tx_id, cmd.amount)
    eng._detail = '{"duplicate":false}'
    return 0, "", ()


def on_withdraw_request(eng: EngineState, cmd: WithdrawRequest) -> Result:
    _check_funding(eng, cmd.account_id, cmd.asset, cmd.amount)
    wid = cmd.withdrawal_id
    if not isinstance(wid, str) or not WITHDRAWAL_ID_RE.match(wid):
        raise errors.invalid_parameter()
    eng._account(cmd.account_id)
    reg = eng._reg
    if wid in reg.withdrawals:
        raise errors.WITHDRAWAL_EXISTS_ERROR
    if eng._bal.free(cmd.account_id, cmd.asset) < cmd.amount:
        raise errors.rejected(errors.MSG_INSUFFICIENT_BALANCE)
    entry = eng._bal.entry(cmd.account_id, cmd.asset)
    touch(eng, entry, cmd.account_id, cmd.asset)
    entry[0] -= cmd.amount
    entry[1] += cmd.amount
    reg.withdrawals[wid] = Withdrawal(cmd.account_id, cmd.asset, cmd.amount)
    _funded(eng, cmd, wid, "WITHDRAWAL", REQUESTED, "", -cmd.amount)
    eng._detail = _json.encode({"withdrawalId": wid, "status": REQUESTED}).decode()
    return 0, "", ()


def on_withdraw_settle(eng: EngineState, cmd: WithdrawSettle) -> Result:
    if cmd.outcome not in WITHDRAW_OUTCOMES:
        raise errors.invalid_parameter()
    w = eng._reg.withdrawals.get(cmd.withdrawal_id)
    if w is None:
        raise errors.UNKNOWN_WITHDRAWAL_ERROR
    if w.status != REQUESTED:
        raise errors.invalid_parameter(f"Withdrawal {cmd.withdrawal_id} is already {w.status}.")
    entry = eng._bal.entry(w.account_id, w.asset)
    touch(eng, entry, w.account_id, w.asset)
    entry[1] -= w.amount
    if cmd.outcome == "COMPLETED":
        eng._bal.totals[w.asset] -= w.amount  # the money has left the exchange
        delta = 0
    else:
        entry[0] += w.amount
        delta = w.amount
    w.status = cmd.outcome
    ts = cmd.ts
    eng._events.append(FundingUpdate(0, ts, cmd.withdrawal_id, "WITHDRAWAL", cmd.outcome,
                                      w.account_id, w.asset, w.amount, ""))  # fmt: skip
    eng._events.append(BalanceUpdate(0, ts, w.account_id, w.asset, delta))
    eng._detail = _json.encode(
        {"withdrawalId": cmd.withdrawal_id, "status": cmd.outcome,
         "accountId": w.account_id, "asset": w.asset, "amount": w.amount}
    ).decode()  # fmt: skip
    return 0, "", ()
