"""The Engine: commands in, events out (docs/engine.md is the contract).

One ``process`` call handles one command. Handlers either raise ``BinanceError`` before they
change anything (the reply carries it) or change state and append events. While a command
runs, the engine records the first-seen value of every book level and balance it touches;
at the end those records become the command's ``DepthUpdate`` and ``AccountBalances``.
Sequence numbers are stamped on the whole batch at the end.

The handlers live beside it, one module per concern (docs/engine.md, "Where the code
lives"); this module dispatches to them and answers the queries.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bourse.domain import errors
from bourse.domain.commands import (
    ADMIN_COMMANDS,
    COMMAND_NAMES,
    AddSymbol,
    AmendOrder,
    CancelAll,
    CancelOrder,
    CancelOrderList,
    CancelReplace,
    Command,
    CreateAccount,
    DelistSymbol,
    Deposit,
    DryRunOrder,
    KeyChange,
    NewOrder,
    NewOrderList,
    RejectedAdmin,
    SetAccountFees,
    SetAccountStatus,
    SetSymbolStatus,
    UpdateSymbol,
    WithdrawRequest,
    WithdrawSettle,
)
from bourse.domain.errors import BinanceError
from bourse.domain.events import Event, OrderResult, Reply
from bourse.domain.symbols import SymbolSpec
from bourse.engine import admin, amend, cancels, dry_run, funding, order_lists, placing
from bourse.engine.command_output import emit_balances, emit_depth, order_id_of, order_result
from bourse.engine.snapshot import encode as encode_snapshot
from bourse.engine.snapshot import load as load_snapshot
from bourse.engine.snapshot import state_hash as hash_state
from bourse.engine.state import EngineState, Result

_ADMIN = ADMIN_COMMANDS
# Traders' commands whose successful Reply carries a detail.
_DETAILED = frozenset({AmendOrder, DryRunOrder})


class Engine(EngineState):
    def __init__(self) -> None:
        super().__init__()
        # Handlers take the engine first: plain functions, so a command costs one call.
        self._handlers: dict[type, Callable[[EngineState, Any], Result]] = {
            NewOrder: placing.on_new_order,
            CancelOrder: cancels.on_cancel,
            CancelReplace: cancels.on_cancel_replace,
            CancelAll: cancels.on_cancel_all,
            AmendOrder: amend.on_amend,
            NewOrderList: order_lists.on_new_order_list,
            CancelOrderList: order_lists.on_cancel_order_list,
            DryRunOrder: dry_run.on_dry_run,
            AddSymbol: admin.on_add_symbol,
            UpdateSymbol: admin.on_update_symbol,
            SetSymbolStatus: admin.on_set_status,
            DelistSymbol: admin.on_delist,
            SetAccountFees: admin.on_set_fees,
            CreateAccount: admin.on_create_account,
            SetAccountStatus: admin.on_set_account_status,
            Deposit: funding.on_deposit,
            WithdrawRequest: funding.on_withdraw_request,
            WithdrawSettle: funding.on_withdraw_settle,
            KeyChange: admin.on_key_change,
            RejectedAdmin: admin.on_rejected_admin,
        }

    # ------------------------------------------------------------------ interface

    def _forget_command_symbol(self) -> None:
        # A method, not an inline assignment: after ``self._cmd_sym = None`` in process() the
        # type checker (and mypyc, which enforces it at run time) would take the attribute
        # to be None for the rest of the function, though the handler sets it.
        self._cmd_sym = None

    def process(self, cmd: Command, now: int = 0) -> list[Event]:
        """Apply one command. ``now``: the sequencer's clock (ms since the epoch) for the batch
        that holds the command, 0 for none; a trader's command whose ``deadline`` is before it
        is refused with -1021 and changes nothing (docs/engine.md, "Late commands")."""
        self._ts = cmd.ts
        events: list[Any] = []
        self._events = events
        self._forget_command_symbol()
        kind = type(cmd)
        is_admin = kind in _ADMIN
        try:
            if is_admin:
                self._detail = ""
                admin.admit(self, cmd)
            elif now and 0 < getattr(cmd, "deadline", 0) < now:
                raise errors.LATE_COMMAND_ERROR
            code, msg, parts = self._handlers[kind](self, cmd)
        except BinanceError as exc:
            code, msg, parts = exc.code, exc.msg, ()
            self._detail = ""
        if self._cmd_sym is not None:
            emit_depth(self, self._cmd_sym)
        if self._touched_bal:
            emit_balances(self)
        if is_admin:
            events.append(admin.admin_action(self, cmd, code, msg))
            events.append(
                Reply(0, cmd.ts, cmd.request_id, COMMAND_NAMES[kind], code, msg, parts,
                      self._detail)
            )  # fmt: skip
        else:
            detail = self._detail if kind in _DETAILED and not code else ""
            events.append(
                Reply(
                    0,
                    cmd.ts,
                    cmd.request_id,
                    COMMAND_NAMES[kind],
                    code,
                    msg,
                    parts,
                    detail,
                    self._lists.take_reply(),
                )
            )
        seq = self._seq
        for event in events:
            seq += 1
            event.seq = seq
        self._seq = seq
        return events

    def balances(self) -> dict[int, dict[str, tuple[int, int]]]:
        return self._bal.as_nested()

    def depth(
        self, symbol: str, limit: int = 100
    ) -> tuple[int, tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]]:
        sym = self._symbols.get(symbol)
        if sym is None:
            raise errors.INVALID_SYMBOL_ERROR
        bids, asks = sym.book.depth(limit)
        return sym.update_id, bids, asks

    def open_orders(self, account_id: int, symbol: str | None = None) -> list[OrderResult]:
        out = []
        for name, sym in self._symbols.items():
            if symbol is not None and name != symbol:
                continue
            orders = sym.by_account.get(account_id)
            if orders:
                for order in sorted(orders.values(), key=order_id_of):
                    out.append(order_result(order, ()))
        return out

    def symbols(self) -> dict[str, SymbolSpec]:
        return {name: sym.spec for name, sym in self._symbols.items()}

    def accounts(self) -> dict[int, str]:
        """Created accounts, ascending id -> "ACTIVE" | "FROZEN"."""
        reg = self._reg
        return {acct: reg.status(acct) for acct in sorted(reg.accounts)}

    def account_fees(self) -> dict[int, tuple[int, int]]:
        """Accounts with their own rates (SetAccountFees) -> (maker, taker), ascending id."""
        return dict(sorted(self._bal.fees.items()))

    def withdrawals(self) -> dict[str, tuple[int, str, int, str]]:
        """Every withdrawal ever requested -> (account, asset, amount, status), by id."""
        return {
            wid: (w.account_id, w.asset, w.amount, w.status)
            for wid, w in sorted(self._reg.withdrawals.items())
        }

    def deposits(self) -> dict[str, tuple[int, str, int]]:
        """Credited deposits that named a tx id -> (account, asset, amount), by tx id."""
        return dict(sorted(self._reg.deposits.items()))

    def delisted(self) -> tuple[str, ...]:
        return tuple(sorted(self._reg.delisted))

    def state_hash(self, *, seq: bool = True) -> str:
        return hash_state(self, seq=seq)

    def snapshot(self) -> bytes:
        return encode_snapshot(self)

    @classmethod
    def restore(cls, data: bytes) -> Engine:
        engine = cls()
        load_snapshot(engine, data)
        return engine
