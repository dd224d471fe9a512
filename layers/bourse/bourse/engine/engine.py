"""The Engine: commands in, events out (docs/engine.md is the contract).

One ``process`` call handles one command. Handlers either raise ``BinanceError`` before they
change anything (the reply carries it) or change state and append events. While a command
runs, the engine records the first-seen value of every book level and balance it touches;
at the end those records become the command's ``DepthUpdate`` and ``AccountBalances``.
Sequence numbers are stamped on the whole batch at the end.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import msgspec

from bourse.domain import errors
from bourse.domain.amounts import MAX_UNITS, SCALE
from bourse.domain.commands import (
    ADMIN_COMMANDS,
    COMMAND_NAMES,
    FEE_ACCOUNT,
    KEY_ACTIONS,
    WITHDRAW_OUTCOMES,
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
    validate_new_order_shape,
)
from bourse.domain.enums import (
    CancelReplaceMode,
    ExecutionType,
    OrderStatus,
    OrderType,
    Outcome,
    StpMode,
    SymbolStatus,
    TimeInForce,
)
from bourse.domain.errors import BinanceError
from bourse.domain.events import (
    AccountBalances,
    AccountFeesUpdated,
    AccountUpdated,
    AdminAction,
    BalanceUpdate,
    DepthUpdate,
    Event,
    ExecutionReport,
    Fill,
    FundingUpdate,
    OrderAmended,
    OrderInfo,
    OrderResult,
    PreventedMatch,
    Reply,
    ReplyPart,
    SymbolUpdated,
    Trade,
)
from bourse.domain.symbols import ASSET_RE, SymbolSpec
from bourse.engine import acceptance, amend
from bourse.engine.acceptance import (
    check_combination,
    check_exchange_filters,
    check_filters,
    check_state,
    shape_is_plainly_valid,
)
from bourse.engine.balances import Balances
from bourse.engine.book import BookSide, compact
from bourse.engine.order_lists import OrderLists
from bourse.engine.orders import Order
from bourse.engine.registry import ACTIVE, FROZEN, REQUESTED, Registry, Withdrawal
from bourse.engine.symbol_state import SymbolState

_NEW = ExecutionType.NEW
_TRADE = ExecutionType.TRADE
_EXPIRED = ExecutionType.EXPIRED
_CANCELED = ExecutionType.CANCELED
_PREVENTION = ExecutionType.TRADE_PREVENTION
_REPLACED = ExecutionType.REPLACED
_S_NEW = OrderStatus.NEW
_S_PARTIAL = OrderStatus.PARTIALLY_FILLED
_S_FILLED = OrderStatus.FILLED
_S_CANCELED = OrderStatus.CANCELED
_S_EXPIRED = OrderStatus.EXPIRED
_S_EIM = OrderStatus.EXPIRED_IN_MATCH
_CLOSED = frozenset({_S_FILLED, _S_CANCELED, _S_EXPIRED, _S_EIM})
_STP_NONE = StpMode.NONE
_DECREMENT = StpMode.DECREMENT
_GTC = TimeInForce.GTC
_FOK = TimeInForce.FOK
_MARKET_TYPES = frozenset({OrderType.MARKET, OrderType.STOP_LOSS, OrderType.TAKE_PROFIT})
_SUCCESS = Outcome.SUCCESS
_TRADING = SymbolStatus.TRADING
_ADMIN = ADMIN_COMMANDS
MAX_ACCOUNT_ID = 2**53 - 1  # exact in every JSON reader, JavaScript's included
TX_ID_RE = re.compile(r"\A[!-~]{1,128}\Z")  # printable ASCII, no spaces
WITHDRAWAL_ID_RE = re.compile(r"\A[A-Za-z0-9._:/-]{1,64}\Z")
API_KEY_RE = re.compile(r"\A[!-~]{1,256}\Z")
_json = msgspec.json.Encoder()

Result = tuple[int, str, tuple[ReplyPart, ...]]


class Engine:
    def __init__(self) -> None:
        self._seq = 0
        self._symbols: dict[str, SymbolState] = {}
        self._bal = Balances()
        self._reg = Registry()
        self._lists = OrderLists()
        # Per-command scratch.
        self._ts = 0
        self._events: list[Any] = []
        self._touched_bal: dict[tuple[int, str], tuple[list[int], int, int]] = {}
        self._touched_bids: dict[int, int] = {}
        self._touched_asks: dict[int, int] = {}
        self._cmd_sym: SymbolState | None = None
        self._reply_order: Order | None = None  # the new order while its stops cascade
        self._reply_fills: list[Fill] = []
        self._detail = ""  # an admin command's result, for its Reply
        self._handlers: dict[type, Callable[[Any], Result]] = {
            NewOrder: self._on_new_order,
            CancelOrder: self._on_cancel,
            CancelReplace: self._on_cancel_replace,
            CancelAll: self._on_cancel_all,
            AmendOrder: self._on_amend,
            NewOrderList: self._on_new_order_list,
            CancelOrderList: self._on_cancel_order_list,
            AddSymbol: self._on_add_symbol,
            UpdateSymbol: self._on_update_symbol,
            SetSymbolStatus: self._on_set_status,
            DelistSymbol: self._on_delist,
            SetAccountFees: self._on_set_fees,
            CreateAccount: self._on_create_account,
            SetAccountStatus: self._on_set_account_status,
            Deposit: self._on_deposit,
            WithdrawRequest: self._on_withdraw_request,
            WithdrawSettle: self._on_withdraw_settle,
            KeyChange: self._on_key_change,
            RejectedAdmin: self._on_rejected_admin,
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
        admin = kind in _ADMIN
        try:
            if admin:
                self._detail = ""
                self._admit(cmd)
            elif now and 0 < getattr(cmd, "deadline", 0) < now:
                raise errors.LATE_COMMAND_ERROR
            code, msg, parts = self._handlers[kind](cmd)
        except BinanceError as exc:
            code, msg, parts = exc.code, exc.msg, ()
            self._detail = ""
        if self._cmd_sym is not None:
            self._emit_depth(self._cmd_sym)
        if self._touched_bal:
            self._emit_balances()
        if admin:
            events.append(self._admin_action(cmd, code, msg))
            events.append(
                Reply(0, cmd.ts, cmd.request_id, COMMAND_NAMES[kind], code, msg, parts,
                      self._detail)
            )  # fmt: skip
        else:
            detail = self._detail if kind is AmendOrder and not code else ""
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
                for order in sorted(orders.values(), key=_order_id):
                    out.append(_result(order, ()))
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

    def state_hash(self) -> str:
        from bourse.engine.snapshot import state_hash

        return state_hash(self)

    def snapshot(self) -> bytes:
        from bourse.engine.snapshot import encode

        return encode(self)

    @classmethod
    def restore(cls, data: bytes) -> Engine:
        from bourse.engine.snapshot import decode

        return decode(data)

    # ------------------------------------------------------------------ admin and funding
    # Every admin command: refused (-1002) if its request id was already applied (a replayed
    # signed record); otherwise handled, its request id remembered, and recorded by an
    # AdminAction just before the Reply (docs/engine.md "Admin commands").

    def _admit(self, cmd: Any) -> None:
        if type(cmd) is RejectedAdmin:
            # Never remembered: a forger must not be able to burn a request id the admin
            # plane is about to use.
            return
        applied = self._reg.applied
        if cmd.request_id in applied:
            raise errors.UNAUTHORIZED_ERROR
        applied.add(cmd.request_id)

    def _admin_action(self, cmd: Any, code: int, msg: str) -> AdminAction:
        name = cmd.command if type(cmd) is RejectedAdmin else COMMAND_NAMES[type(cmd)]
        detail = _json.encode(cmd).decode()
        return AdminAction(0, cmd.ts, cmd.request_id, name, cmd.principal, code, msg, detail)

    def _on_rejected_admin(self, cmd: RejectedAdmin) -> Result:
        raise errors.UNAUTHORIZED_ERROR

    def _listed(self, name: str) -> SymbolState:
        """A symbol admin commands may still change (known and not delisted)."""
        sym = self._symbol(name)
        if name in self._reg.delisted:
            raise errors.SYMBOL_DELISTED_ERROR
        return sym

    def _on_add_symbol(self, cmd: AddSymbol) -> Result:
        spec = cmd.spec
        if spec.symbol in self._symbols:
            raise errors.invalid_parameter()
        spec.validate()
        self._symbols[spec.symbol] = SymbolState(spec, self._bal)
        self._events.append(SymbolUpdated(0, cmd.ts, spec))
        return 0, "", ()

    def _on_update_symbol(self, cmd: UpdateSymbol) -> Result:
        sym = self._listed(cmd.spec.symbol)
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
            raise errors.invalid_parameter(
                "tickSize and stepSize cannot change while orders are open."
            )
        sym.respec(spec)
        self._events.append(SymbolUpdated(0, cmd.ts, spec))
        return 0, "", ()

    def _on_set_status(self, cmd: SetSymbolStatus) -> Result:
        sym = self._listed(cmd.symbol)
        if cmd.status not in tuple(SymbolStatus):
            raise errors.invalid_parameter()
        sym.respec(sym.spec.with_status(SymbolStatus(cmd.status)))
        self._events.append(SymbolUpdated(0, cmd.ts, sym.spec))
        return 0, "", ()

    def _on_delist(self, cmd: DelistSymbol) -> Result:
        sym = self._listed(cmd.symbol)
        self._reg.delisted.add(cmd.symbol)
        sym.respec(sym.spec.with_status(SymbolStatus.BREAK))
        self._events.append(SymbolUpdated(0, cmd.ts, sym.spec))
        open_orders = [*sym.book.orders.values(), *sym.stops.all_sorted()]
        for order in sorted(open_orders, key=_order_id):
            if order.status not in _CLOSED:  # not already cancelled with its order list
                self._cancel(sym, order, "")
        return 0, "", ()

    def _account(self, account_id: int) -> None:
        if account_id not in self._reg.accounts:
            raise errors.UNKNOWN_ACCOUNT_ERROR

    def _on_set_fees(self, cmd: SetAccountFees) -> Result:
        if cmd.account_id < 1 or not (
            0 <= cmd.maker_rate <= SCALE and 0 <= cmd.taker_rate <= SCALE
        ):
            raise errors.invalid_parameter()
        self._account(cmd.account_id)
        self._bal.fees[cmd.account_id] = (cmd.maker_rate, cmd.taker_rate)
        self._events.append(
            AccountFeesUpdated(0, cmd.ts, cmd.account_id, cmd.maker_rate, cmd.taker_rate)
        )
        return 0, "", ()

    def _on_create_account(self, cmd: CreateAccount) -> Result:
        reg = self._reg
        acct = cmd.account_id or reg.next_account_id
        if not 1 <= acct <= MAX_ACCOUNT_ID:
            raise errors.invalid_parameter()
        if acct in reg.accounts:
            raise errors.ACCOUNT_EXISTS_ERROR
        reg.create(acct)
        self._events.append(AccountUpdated(0, cmd.ts, acct, ACTIVE))
        self._detail = _json.encode({"accountId": acct}).decode()
        return 0, "", ()

    def _on_set_account_status(self, cmd: SetAccountStatus) -> Result:
        self._account(cmd.account_id)
        frozen = bool(cmd.frozen)
        self._reg.accounts[cmd.account_id] = frozen
        status = FROZEN if frozen else ACTIVE
        self._events.append(AccountUpdated(0, cmd.ts, cmd.account_id, status))
        self._detail = _json.encode({"accountId": cmd.account_id, "status": status}).decode()
        return 0, "", ()

    def _on_key_change(self, cmd: KeyChange) -> Result:
        if cmd.action not in KEY_ACTIONS or not API_KEY_RE.match(cmd.api_key):
            raise errors.invalid_parameter()
        self._account(cmd.account_id)
        return 0, "", ()

    def _check_funding(self, account_id: int, asset: str, amount: int) -> None:
        if account_id < 1 or not isinstance(asset, str) or not ASSET_RE.match(asset) or amount <= 0:
            raise errors.invalid_parameter()

    def _funded(self, cmd: Any, funding_id: str, kind: str, status: str, tx_id: str,
                delta: int) -> None:  # fmt: skip
        events = self._events
        events.append(FundingUpdate(0, cmd.ts, funding_id, kind, status, cmd.account_id,
                                    cmd.asset, cmd.amount, tx_id))  # fmt: skip
        events.append(BalanceUpdate(0, cmd.ts, cmd.account_id, cmd.asset, delta))

    def _on_deposit(self, cmd: Deposit) -> Result:
        self._check_funding(cmd.account_id, cmd.asset, cmd.amount)
        tx_id = cmd.tx_id
        if tx_id and not TX_ID_RE.match(tx_id):
            raise errors.invalid_parameter()
        self._account(cmd.account_id)
        reg = self._reg
        if tx_id in reg.deposits:
            if reg.deposits[tx_id] != (cmd.account_id, cmd.asset, cmd.amount):
                raise errors.invalid_parameter(
                    f"txId {tx_id} already used with a different account, asset or amount."
                )
            self._detail = '{"duplicate":true}'
            return 0, "", ()
        if self._bal.free(cmd.account_id, cmd.asset) + cmd.amount > MAX_UNITS:
            raise errors.invalid_parameter()
        entry = self._bal.entry(cmd.account_id, cmd.asset)
        self._touch(entry, cmd.account_id, cmd.asset)
        entry[0] += cmd.amount
        totals = self._bal.totals
        totals[cmd.asset] = totals.get(cmd.asset, 0) + cmd.amount
        if tx_id:
            reg.deposits[tx_id] = (cmd.account_id, cmd.asset, cmd.amount)
        self._funded(cmd, tx_id or cmd.request_id, "DEPOSIT", "CREDITED", tx_id, cmd.amount)
        self._detail = '{"duplicate":false}'
        return 0, "", ()

    def _on_withdraw_request(self, cmd: WithdrawRequest) -> Result:
        self._check_funding(cmd.account_id, cmd.asset, cmd.amount)
        wid = cmd.withdrawal_id
        if not isinstance(wid, str) or not WITHDRAWAL_ID_RE.match(wid):
            raise errors.invalid_parameter()
        self._account(cmd.account_id)
        reg = self._reg
        if wid in reg.withdrawals:
            raise errors.WITHDRAWAL_EXISTS_ERROR
        if self._bal.free(cmd.account_id, cmd.asset) < cmd.amount:
            raise errors.rejected(errors.MSG_INSUFFICIENT_BALANCE)
        entry = self._bal.entry(cmd.account_id, cmd.asset)
        self._touch(entry, cmd.account_id, cmd.asset)
        entry[0] -= cmd.amount
        entry[1] += cmd.amount
        reg.withdrawals[wid] = Withdrawal(cmd.account_id, cmd.asset, cmd.amount)
        self._funded(cmd, wid, "WITHDRAWAL", REQUESTED, "", -cmd.amount)
        self._detail = _json.encode({"withdrawalId": wid, "status": REQUESTED}).decode()
        return 0, "", ()

    def _on_withdraw_settle(self, cmd: WithdrawSettle) -> Result:
        if cmd.outcome not in WITHDRAW_OUTCOMES:
            raise errors.invalid_parameter()
        w = self._reg.withdrawals.get(cmd.withdrawal_id)
        if w is None:
            raise errors.UNKNOWN_WITHDRAWAL_ERROR
        if w.status != REQUESTED:
            raise errors.invalid_parameter(f"Withdrawal {cmd.withdrawal_id} is already {w.status}.")
        entry = self._bal.entry(w.account_id, w.asset)
        self._touch(entry, w.account_id, w.asset)
        entry[1] -= w.amount
        if cmd.outcome == "COMPLETED":
            self._bal.totals[w.asset] -= w.amount  # the money has left the exchange
            delta = 0
        else:
            entry[0] += w.amount
            delta = w.amount
        w.status = cmd.outcome
        ts = cmd.ts
        self._events.append(FundingUpdate(0, ts, cmd.withdrawal_id, "WITHDRAWAL", cmd.outcome,
                                          w.account_id, w.asset, w.amount, ""))  # fmt: skip
        self._events.append(BalanceUpdate(0, ts, w.account_id, w.asset, delta))
        self._detail = _json.encode(
            {"withdrawalId": cmd.withdrawal_id, "status": cmd.outcome,
             "accountId": w.account_id, "asset": w.asset, "amount": w.amount}
        ).decode()  # fmt: skip
        return 0, "", ()

    # ------------------------------------------------------------------ cancels

    def _symbol(self, name: str) -> SymbolState:
        sym = self._symbols.get(name)
        if sym is None:
            raise errors.INVALID_SYMBOL_ERROR
        return sym

    def _find_open(self, sym: SymbolState, cmd: CancelOrder) -> Order:
        if cmd.order_id is not None:
            order = (
                sym.book.orders.get(cmd.order_id)
                or sym.stops.get(cmd.order_id)
                or self._lists.find_pending(sym.spec.symbol, cmd.order_id)
            )
            if order is None or order.account_id != cmd.account_id:
                raise errors.cancel_rejected()
            return order
        open_orders = sym.by_account.get(cmd.account_id)
        order = open_orders.get(cmd.orig_client_order_id or "") if open_orders else None
        if order is None:
            raise errors.cancel_rejected()
        return order

    def _cancel(self, sym: SymbolState, order: Order, cancel_client_id: str) -> OrderResult:
        """Cancel an open order; one of an order list cancels its whole list."""
        lst = self._lists.list_of(order)
        if lst is not None:
            return self._lists.cancel_leg(self, sym, lst, order, cancel_client_id)
        return self._cancel_one(sym, order, cancel_client_id)

    def _cancel_one(self, sym: SymbolState, order: Order, cancel_client_id: str) -> OrderResult:
        """Take an open order (resting or untriggered stop) off and release its lock."""
        self._cmd_sym = sym
        is_stop = order.order_id in sym.stops
        if is_stop:
            sym.stops.remove(order.order_id)
        else:
            side = sym.book.bids if order.is_buy else sym.book.asks
            touched = self._touched_bids if order.is_buy else self._touched_asks
            price = order.price
            if price not in touched:
                touched[price] = side.levels[price].qty
            side.unlink(order)
            del sym.book.orders[order.order_id]
        del sym.by_account[order.account_id][order.info.client_order_id]
        self._release(order)
        order.status = _S_CANCELED
        self._events.append(
            ExecutionReport(
                0, self._ts, order.info, _CANCELED, _S_CANCELED, "NONE", 0, 0, 0,
                order.executed, order.cum_quote, 0, "", -1, not is_stop, False,
                order.working_ts, cancel_client_id, -1, order.prevented_qty, 0, -1,
            )
        )  # fmt: skip
        return _result(order, (), cancel_client_id)

    def _on_cancel(self, cmd: CancelOrder) -> Result:
        sym = self._symbol(cmd.symbol)
        if cmd.order_id is None and cmd.orig_client_order_id is None:
            raise errors.mandatory("orderId")
        order = self._find_open(sym, cmd)
        result = self._cancel(sym, order, cmd.cancel_client_order_id)
        return 0, "", (ReplyPart(_SUCCESS, 0, "", result),)

    def _on_cancel_all(self, cmd: CancelAll) -> Result:
        sym = self._symbol(cmd.symbol)
        open_orders = sym.by_account.get(cmd.account_id)
        if not open_orders:
            raise errors.cancel_rejected()
        parts = []
        for order in sorted(open_orders.values(), key=_order_id):
            if order.status in _CLOSED:
                continue  # already cancelled with its order list
            result = self._cancel(sym, order, "")
            parts.append(ReplyPart(_SUCCESS, 0, "", result))
            parts.extend(self._lists.take_cascaded())
        return 0, "", tuple(parts)

    def _on_amend(self, cmd: AmendOrder) -> Result:
        """Reduce an open order's quantity in place: it keeps its queue position (docs/engine.md
        "Amend keep priority")."""
        sym = self._symbol(cmd.symbol)
        amend.check_request(cmd, bool(self._reg.accounts.get(cmd.account_id)), sym)
        order = amend.find_open(sym, cmd)
        if self._lists.list_of(order) is not None:
            # Binance amends an OCO pair together and a pending order alone; not built yet.
            raise errors.amend_rejected(errors.MSG_AMEND_ORDER_LIST)
        amend.check_new_qty(sym, order, cmd)

        # Accepted: from here on state changes.
        self._cmd_sym = sym
        old = order.info
        info = msgspec.structs.replace(
            old, quantity=cmd.new_qty, client_order_id=cmd.new_client_order_id
        )
        order.info = info
        open_orders = sym.by_account[order.account_id]
        del open_orders[old.client_order_id]
        is_stop = order.order_id in sym.stops
        left = cmd.new_qty - order.executed - order.prevented_qty
        if left <= 0:
            # Amended to no more than it already traded: nothing left to work, it expires.
            self._take_off(sym, order, is_stop)
            order.remaining = 0
            self._release(order)
            order.status = _S_EXPIRED
        else:
            if not is_stop:
                side = sym.book.bids if order.is_buy else sym.book.asks
                touched = self._touched_bids if order.is_buy else self._touched_asks
                level = side.levels[order.price]
                if order.price not in touched:
                    touched[order.price] = level.qty
                level.total -= order.remaining - left
                if order.displayed > left:
                    level.qty -= order.displayed - left
                    order.displayed = left
            order.remaining = left
            keep = order.price * left // SCALE if order.is_buy else left
            self._release_part(order, order.lock - keep)
            open_orders[info.client_order_id] = order
        # Seqs are stamped in list order at the end of process(): this is the report's.
        execution_id = self._seq + len(self._events) + 1
        ts = self._ts
        self._events.append(
            ExecutionReport(
                0, ts, info, _REPLACED, order.status, "NONE", 0, 0, 0, order.executed,
                order.cum_quote, 0, "", -1, not is_stop, False, order.working_ts,
                old.client_order_id, -1, order.prevented_qty, 0, -1,
            )
        )  # fmt: skip
        self._events.append(
            OrderAmended(0, ts, info.symbol, info.order_id, info.account_id, execution_id,
                         old.client_order_id, info.client_order_id, old.quantity, cmd.new_qty)
        )  # fmt: skip
        self._detail = _json.encode(
            {"executionId": execution_id, "origClientOrderId": old.client_order_id,
             "preventedQty": order.prevented_qty}
        ).decode()  # fmt: skip
        return 0, "", (ReplyPart(_SUCCESS, 0, "", _result(order, ())),)

    def _take_off(self, sym: SymbolState, order: Order, is_stop: bool) -> None:
        """Take an open order off its book (or the stops); the caller releases its lock."""
        if is_stop:
            sym.stops.remove(order.order_id)
            return
        side = sym.book.bids if order.is_buy else sym.book.asks
        touched = self._touched_bids if order.is_buy else self._touched_asks
        if order.price not in touched:
            touched[order.price] = side.levels[order.price].qty
        side.unlink(order)
        del sym.book.orders[order.order_id]

    # ------------------------------------------------------------------ order lists

    def _on_new_order_list(self, cmd: NewOrderList) -> Result:
        return 0, "", self._lists.place(self, cmd)

    def _on_cancel_order_list(self, cmd: CancelOrderList) -> Result:
        return 0, "", self._lists.cancel(self, cmd)

    def _on_cancel_replace(self, cmd: CancelReplace) -> Result:
        cancel, new = cmd.cancel, cmd.new_order
        if cancel.order_id is None and cancel.orig_client_order_id is None:
            raise errors.mandatory("orderId")
        validate_new_order_shape(new)
        if (cancel.account_id, cancel.symbol) != (new.account_id, new.symbol):
            # Binance's cancelReplace names one symbol for both; one account and one symbol
            # per command also keeps a single depth diff per command.
            raise errors.invalid_parameter()
        cancel_part: ReplyPart
        try:
            sym = self._symbol(cancel.symbol)
            order = self._find_open(sym, cancel)
            result = self._cancel(sym, order, cancel.cancel_client_order_id)
            cancel_part = ReplyPart(Outcome.SUCCESS, 0, "", result)
            cancel_ok = True
        except BinanceError as exc:
            cancel_part = ReplyPart(Outcome.FAILURE, exc.code, exc.msg, None)
            cancel_ok = False
        if not cancel_ok and cmd.mode == CancelReplaceMode.STOP_ON_FAILURE:
            new_part = ReplyPart(Outcome.NOT_ATTEMPTED, 0, "", None)
            err = errors.CANCEL_REPLACE_FAILED_ERROR
            return err.code, err.msg, (cancel_part, new_part)
        try:
            new_result = self._place(new)
            new_part = ReplyPart(Outcome.SUCCESS, 0, "", new_result)
            new_ok = True
        except BinanceError as exc:
            new_part = ReplyPart(Outcome.FAILURE, exc.code, exc.msg, None)
            new_ok = False
        if cancel_ok and new_ok:
            return 0, "", (cancel_part, new_part)
        err = (
            errors.CANCEL_REPLACE_PARTIAL_ERROR
            if cancel_ok or new_ok
            else errors.CANCEL_REPLACE_FAILED_ERROR
        )
        return err.code, err.msg, (cancel_part, new_part)

    # ------------------------------------------------------------------ new orders

    def _on_new_order(self, cmd: NewOrder) -> Result:
        if not shape_is_plainly_valid(cmd):
            validate_new_order_shape(cmd)
        result = self._place(cmd)
        return 0, "", (ReplyPart(_SUCCESS, 0, "", result),)

    def _place(self, cmd: NewOrder) -> OrderResult:
        """Check, accept and run a (shape-valid) new order; raise before any change."""
        if self._reg.accounts.get(cmd.account_id):
            raise errors.rejected(errors.MSG_ACCOUNT_DISABLED)  # frozen
        sym = self._symbols.get(cmd.symbol)
        if sym is None:
            raise errors.INVALID_SYMBOL_ERROR
        spec = sym.spec
        if spec.status != _TRADING:
            raise errors.rejected(errors.MSG_MARKET_CLOSED)
        stp_mode = check_combination(spec, cmd)
        check_filters(sym, cmd)
        check_exchange_filters(self._symbols.values(), cmd)
        check_state(sym, cmd)
        is_buy = cmd.side == "BUY"
        order_type = cmd.type
        is_stop = order_type in acceptance.STOP_TYPES
        is_market = order_type == OrderType.MARKET
        quantity = cmd.quantity or 0
        qoq = cmd.quote_order_qty or 0
        # What the order locks at acceptance (docs/engine.md, "Orders").
        if is_buy:
            if order_type in _MARKET_TYPES:
                if is_stop:
                    lock = 0
                elif qoq:
                    lock = qoq
                else:
                    lock = acceptance.walk_cost_for_qty(sym.book.asks, quantity)
            else:
                lock = (cmd.price or 0) * quantity // SCALE
        elif qoq:
            lock = acceptance.walk_base_for_quote(sym.book.bids, qoq, sym.step)
        else:
            lock = quantity
        bal = self._bal
        acct = cmd.account_id
        lock_asset, recv_asset = (sym.quote, sym.base) if is_buy else (sym.base, sym.quote)
        lock_key = (acct, lock_asset)
        lock_entry = bal.accounts.get(lock_key)
        if lock and (lock_entry is None or lock_entry[0] < lock):
            raise errors.rejected(errors.MSG_INSUFFICIENT_BALANCE)

        # Accepted: from here on state changes.
        self._cmd_sym = sym
        ts = self._ts
        order_id = sym.next_order_id
        sym.next_order_id = order_id + 1
        info = OrderInfo(
            order_id, acct, spec.symbol, cmd.client_order_id, cmd.side, order_type,
            cmd.time_in_force, quantity, cmd.price or 0, cmd.stop_price or 0,
            cmd.iceberg_qty or 0, qoq, stp_mode, ts, cmd.trailing_delta or 0,
            ts if cmd.trailing_delta and not cmd.stop_price and sym.last_price else -1,
        )  # fmt: skip
        if lock_entry is None:
            lock_entry = bal.entry(acct, lock_asset)
        recv_entry = bal.entry(acct, recv_asset)
        order = Order(info, is_buy, lock_key, lock_entry, (acct, recv_asset), recv_entry)
        if lock:
            touched = self._touched_bal
            if lock_key not in touched:
                touched[lock_key] = (lock_entry, lock_entry[0], lock_entry[1])
            lock_entry[0] -= lock
            lock_entry[1] += lock
            order.lock = lock
        if is_stop:
            if info.trailing_time >= 0:
                order.trail_extreme = sym.last_price  # no stop price: tracks from here
            sym.stops.add(order)
            sym.open_of(acct)[cmd.client_order_id] = order
            self._events.append(
                ExecutionReport(
                    0, ts, info, _NEW, _S_NEW, "NONE", 0, 0, 0, 0, 0, 0, "", -1, False, False,
                    -1,
                )
            )  # fmt: skip
            return _result(order, ())
        order.is_market = is_market
        order.working_ts = ts
        self._events.append(
            ExecutionReport(0, ts, info, _NEW, _S_NEW, "NONE", 0, 0, 0, 0, 0, 0, "", -1, True,
                            False, ts)
        )  # fmt: skip
        fills: list[Fill] = []
        last_before = sym.last_price
        mark = len(self._events)
        self._take(sym, order, fills)
        stops = sym.stops
        if stops.trailing and fills:
            self._observe_trades(sym, mark)
        if (sym.last_price != last_before and (stops.rises or stops.falls)) or stops.fired:
            self._reply_order = order
            self._reply_fills = fills
            try:
                self._run_stops(sym)
            finally:
                self._reply_order = None
        if self._lists.due:
            self._lists.run_due(self)  # OTO working orders this order filled
        return _result(order, tuple(fills))

    def _run_stops(self, sym: SymbolState) -> None:
        stops = sym.stops
        ts = self._ts
        while True:
            order = stops.next_triggered(sym.last_price)
            if order is None:
                return
            stops.remove(order.order_id)
            del sym.by_account[order.account_id][order.info.client_order_id]
            order.working_ts = ts
            info = order.info
            self._events.append(
                ExecutionReport(0, ts, info, _NEW, _S_NEW, "NONE", 0, 0, 0, 0, 0, 0, "", -1,
                                True, False, ts)
            )  # fmt: skip
            if info.order_list_id >= 0:
                self._lists.on_trigger(self, sym, order)  # an OCO leg: the other one expires
            if info.type in _MARKET_TYPES:
                order.is_market = True
                if order.is_buy:
                    cost = acceptance.walk_cost_for_qty(sym.book.asks, order.remaining)
                    entry = order.lock_bal
                    if entry[0] < cost:
                        order.status = _S_EXPIRED
                        self._events.append(
                            ExecutionReport(
                                0, ts, info, _EXPIRED, _S_EXPIRED, "INSUFFICIENT_BALANCE", 0, 0,
                                0, 0, 0, 0, "", -1, True, False, ts,
                            )
                        )  # fmt: skip
                        continue
                    if cost:
                        self._touch(entry, order.account_id, order.lock_key[1])
                        entry[0] -= cost
                        entry[1] += cost
                        order.lock = cost
            mark = len(self._events)
            self._take(sym, order, None)
            if stops.trailing:
                self._observe_trades(sym, mark)

    def _observe_trades(self, sym: SymbolState, start: int) -> None:
        """Show the trailing stops each trade since ``self._events[start]``, in order."""
        stops = sym.stops
        for event in self._events[start:]:
            if type(event) is Trade:
                stops.observe(event.price, self._ts)

    def _take(self, sym: SymbolState, taker: Order, fills: list[Fill] | None) -> None:
        """Match ``taker`` against the opposite side, then rest, expire or finish it."""
        is_buy = taker.is_buy
        opp = sym.book.asks if is_buy else sym.book.bids
        keys = opp.keys
        if keys and (
            taker.is_market or (taker.price >= -keys[-1] if is_buy else taker.price <= keys[-1])
        ):
            if taker.tif == _FOK and not self._fok_fillable(opp, taker):
                self._expire_taker(taker)
                return
            if self._match(sym, taker, fills):
                return  # expired in match
        # By quote, FILLED was decided by the last trade (_quote_spent); else the book ran out.
        unfilled = taker.status != _S_FILLED if taker.info.quote_order_qty else taker.remaining > 0
        if unfilled:
            if not taker.is_market and (taker.tif == _GTC or taker.tif is None):
                self._rest(sym, taker)
            else:
                self._expire_taker(taker)
        elif taker.lock:
            self._release(taker)

    def _match(self, sym: SymbolState, taker: Order, fills: list[Fill] | None) -> bool:
        """The match loop; True if the taker expired in match (STP)."""
        events = self._events
        ts = self._ts
        book = sym.book
        is_buy = taker.is_buy
        if is_buy:
            opp = book.asks
            touched = self._touched_asks
        else:
            opp = book.bids
            touched = self._touched_bids
        keys = opp.keys
        levels = opp.levels
        is_market = taker.is_market
        limit = taker.price
        by_quote = taker.quote_rem > 0
        acct = taker.account_id
        stp = taker.stp_mode
        step = sym.step
        info = taker.info
        bal = self._bal
        fees = bal.fees
        sym_rates = sym.rates  # the market's commissions, unless the account has its own
        taker_rate = fees.get(acct, sym_rates)[1]
        base, quote_asset = sym.base, sym.quote
        fee_base, fee_quote = sym.fee_base, sym.fee_quote
        touched_bal = self._touched_bal
        by_account = sym.by_account
        book_orders = book.orders
        taker_recv = taker.recv_bal
        taker_recv_key = taker.recv_key
        taker_lock = taker.lock_bal
        taker_lock_key = taker.lock_key
        buy_at_limit = is_buy and not is_market

        ended = False  # expired in match by STP
        while keys:
            if taker.remaining <= 0 and not by_quote:
                break
            if by_quote and taker.quote_rem <= 0:
                break
            k = keys[-1]
            level = levels[k if not is_buy else -k]
            price = level.price
            if not is_market and (price > limit if is_buy else price < limit):
                break
            queue = level.orders
            maker = queue[0]
            while not maker.alive:
                queue.popleft()
                maker = queue[0]

            qty = maker.displayed
            if not by_quote and taker.remaining < qty:
                qty = taker.remaining
            if is_market:
                # A market taker never spends more than it locked (docs: "Walking the book").
                if is_buy:
                    cap = taker.lock * SCALE // price
                    cap -= cap % step
                else:
                    cap = taker.lock
                    if by_quote:
                        can = taker.quote_rem * SCALE // price
                        can -= can % step
                        if can < cap:
                            cap = can
                if cap < qty:
                    qty = cap
                if qty <= 0:
                    break
            # Self-trade prevention only where a match could really happen (qty > 0).
            if maker.account_id == acct and stp != _STP_NONE:
                if self._prevent(sym, taker, maker, level, touched):
                    ended = True
                    break
                continue
            quote = price * qty // SCALE
            trade_id = sym.trade_id + 1
            sym.trade_id = trade_id

            # Book bookkeeping.
            if price not in touched:
                touched[price] = level.qty
            level.qty -= qty
            level.total -= qty
            maker.displayed -= qty
            maker.remaining -= qty
            maker.executed += qty
            maker.cum_quote += quote
            if maker.remaining == 0:
                maker.status = _S_FILLED
                maker.alive = False
                queue.popleft()
                live = level.live - 1
                level.live = live
                if live == 0:
                    opp.remove_level(level)
                elif len(queue) > live << 1:
                    compact(queue)  # more dead entries than live ones (see book.py)
                del book_orders[maker.order_id]
                del by_account[maker.account_id][maker.info.client_order_id]
            else:
                maker.status = _S_PARTIAL
                if maker.displayed == 0:
                    # Iceberg: show the next slice at the back of the queue.
                    slice_qty = (
                        maker.iceberg_qty
                        if maker.iceberg_qty < maker.remaining
                        else maker.remaining
                    )
                    maker.displayed = slice_qty
                    level.qty += slice_qty
                    queue.popleft()
                    queue.append(maker)

            # Balances: buyer receives base, seller receives quote, fees to the fee account.
            # Fees are amounts.fee_for written out inline (ceil via negated floor division):
            # this loop runs once per fill and a call costs as much as the arithmetic.
            maker_rate = fees.get(maker.account_id, sym_rates)[0]
            maker_lock = maker.lock_bal
            maker_recv = maker.recv_bal
            key = maker.lock_key
            if key not in touched_bal:
                touched_bal[key] = (maker_lock, maker_lock[0], maker_lock[1])
            key = maker.recv_key
            if key not in touched_bal:
                touched_bal[key] = (maker_recv, maker_recv[0], maker_recv[1])
            if taker_lock_key not in touched_bal:
                touched_bal[taker_lock_key] = (taker_lock, taker_lock[0], taker_lock[1])
            if taker_recv_key not in touched_bal:
                touched_bal[taker_recv_key] = (taker_recv, taker_recv[0], taker_recv[1])
            if is_buy:
                taker_fee = -(-qty * taker_rate // SCALE)
                maker_fee = -(-quote * maker_rate // SCALE)
                spent = limit * qty // SCALE if buy_at_limit else quote
                taker.lock -= spent
                taker_lock[1] -= spent
                taker_lock[0] += spent - quote
                taker_recv[0] += qty - taker_fee
                maker.lock -= qty
                maker_lock[1] -= qty
                maker_recv[0] += quote - maker_fee
                fee_base[0] += taker_fee
                fee_quote[0] += maker_fee
                taker_fee_asset, maker_fee_asset = base, quote_asset
                buyer, seller = taker, maker
            else:
                taker_fee = -(-quote * taker_rate // SCALE)
                maker_fee = -(-qty * maker_rate // SCALE)
                taker.lock -= qty
                taker_lock[1] -= qty
                taker_recv[0] += quote - taker_fee
                maker.lock -= quote
                maker_lock[1] -= quote
                maker_recv[0] += qty - maker_fee
                fee_quote[0] += taker_fee
                fee_base[0] += maker_fee
                taker_fee_asset, maker_fee_asset = quote_asset, base
                buyer, seller = maker, taker

            taker.remaining -= qty
            taker.executed += qty
            taker.cum_quote += quote
            if by_quote:
                taker.quote_rem -= quote
                done = taker.quote_rem == 0 or _quote_spent(opp, taker, step)
            else:
                done = taker.remaining == 0
            taker.status = taker_status = _S_FILLED if done else _S_PARTIAL
            sym.last_price = price

            events.append(
                Trade(0, ts, info.symbol, trade_id, price, qty, quote, buyer.order_id,
                      seller.order_id, buyer.account_id, seller.account_id, not is_buy)
            )  # fmt: skip
            events.append(
                ExecutionReport(
                    0, ts, maker.info, _TRADE, maker.status, "NONE", qty, price, quote,
                    maker.executed, maker.cum_quote, maker_fee, maker_fee_asset, trade_id,
                    True, True, maker.working_ts, "", -1, maker.prevented_qty,
                )
            )  # fmt: skip
            events.append(
                ExecutionReport(
                    0, ts, info, _TRADE, taker_status, "NONE", qty, price, quote,
                    taker.executed, taker.cum_quote, taker_fee, taker_fee_asset, trade_id,
                    True, False, ts, "", -1, taker.prevented_qty,
                )
            )  # fmt: skip
            if maker.info.order_list_id >= 0:
                self._lists.on_maker_trade(self, sym, maker)
            if fills is not None:
                fills.append(Fill(price, qty, taker_fee, taker_fee_asset, trade_id))
            elif maker is self._reply_order:
                # The command's new order, rested, then hit by a stop it triggered.
                fill = Fill(price, qty, maker_fee, maker_fee_asset, trade_id)
                self._reply_fills.append(fill)

        return ended

    def _fok_fillable(self, opp: Any, taker: Order) -> bool:
        need = taker.remaining
        limit = taker.price
        is_buy = taker.is_buy
        own_counts = taker.stp_mode == _STP_NONE
        for level in opp.levels_best_first():
            if level.price > limit if is_buy else level.price < limit:
                break
            if own_counts:
                need -= level.total
            else:
                for order in level.orders:
                    if order.alive and order.account_id != taker.account_id:
                        need -= order.remaining
            if need <= 0:
                return True
        return need <= 0

    def _prevent(
        self, sym: SymbolState, taker: Order, maker: Order, level: Any, touched: dict[int, int]
    ) -> bool:
        """Apply the taker's STP mode to a self-match; True if the taker expired."""
        stp = taker.stp_mode
        price = maker.price
        if taker.quote_rem > 0:
            # A quote-qty taker's "remaining quantity": what its budget buys at this price.
            taker_avail = taker.quote_rem * SCALE // price
            taker_avail -= taker_avail % sym.step
        else:
            taker_avail = taker.remaining
        if stp == _DECREMENT:
            # Both lose the prevented match's quantity; whichever has no more left expires.
            amount = maker.remaining if maker.remaining < taker_avail else taker_avail
            maker_expires = maker.remaining == amount
            taker_expires = taker_avail == amount
            maker_qty = taker_qty = amount
        else:
            maker_expires = stp != StpMode.EXPIRE_TAKER
            taker_expires = stp != StpMode.EXPIRE_MAKER
            maker_qty = maker.remaining if maker_expires else 0
            taker_qty = taker_avail if taker_expires else 0
        pm_id = sym.prevented_id + 1
        sym.prevented_id = pm_id
        ts = self._ts
        events = self._events
        events.append(
            PreventedMatch(0, ts, sym.spec.symbol, pm_id, taker.order_id, maker.order_id,
                           taker.account_id, stp, price, maker_qty, taker_qty)
        )  # fmt: skip
        if maker_expires:
            if price not in touched:
                touched[price] = level.qty
            side = sym.book.asks if taker.is_buy else sym.book.bids
            side.unlink(maker)
            del sym.book.orders[maker.order_id]
            del sym.by_account[maker.account_id][maker.info.client_order_id]
            self._release(maker)
            maker.status = _S_EIM
            maker.prevented_qty += maker_qty
            events.append(
                ExecutionReport(
                    0, ts, maker.info, _PREVENTION, _S_EIM, "NONE", 0, 0, 0, maker.executed,
                    maker.cum_quote, 0, "", -1, True, True, maker.working_ts, "", pm_id,
                    maker.prevented_qty, maker_qty, taker.order_id,
                )
            )  # fmt: skip
            if maker.info.order_list_id >= 0:
                self._lists.on_maker_expired(self, sym, maker)
        elif maker_qty:
            self._decrement_maker(sym, maker, maker_qty, level, touched)
            events.append(
                ExecutionReport(
                    0, ts, maker.info, _PREVENTION, maker.status, "NONE", 0, 0, 0,
                    maker.executed, maker.cum_quote, 0, "", -1, True, True, maker.working_ts,
                    "", pm_id, maker.prevented_qty, maker_qty, taker.order_id,
                )
            )  # fmt: skip
            if maker.info.order_list_id >= 0:
                # An OCO leg that lost quantity works alone from here, as if it had traded.
                self._lists.on_maker_trade(self, sym, maker)
        if taker_expires:
            self._release(taker)
            taker.status = _S_EIM
            taker.prevented_qty += taker_qty
            events.append(
                ExecutionReport(
                    0, ts, taker.info, _PREVENTION, _S_EIM, "NONE", 0, 0, 0, taker.executed,
                    taker.cum_quote, 0, "", -1, True, False, ts, "", pm_id,
                    taker.prevented_qty, taker_qty, maker.order_id,
                )
            )  # fmt: skip
        elif taker_qty:
            self._decrement_taker(taker, taker_qty, price)
            events.append(
                ExecutionReport(
                    0, ts, taker.info, _PREVENTION, taker.status, "NONE", 0, 0, 0,
                    taker.executed, taker.cum_quote, 0, "", -1, True, False, ts, "", pm_id,
                    taker.prevented_qty, taker_qty, maker.order_id,
                )
            )  # fmt: skip
        return taker_expires

    def _decrement_maker(
        self, sym: SymbolState, maker: Order, qty: int, level: Any, touched: dict[int, int]
    ) -> None:
        """STP DECREMENT of a resting order that stays: it keeps its place in the queue with
        ``qty`` less, and releases what that quantity had locked."""
        price = maker.price
        if price not in touched:
            touched[price] = level.qty
        maker.remaining -= qty
        maker.prevented_qty += qty
        level.total -= qty
        if maker.displayed > maker.remaining:
            level.qty -= maker.displayed - maker.remaining
            maker.displayed = maker.remaining
        self._release_part(maker, price * qty // SCALE if maker.is_buy else qty)

    def _decrement_taker(self, taker: Order, qty: int, price: int) -> None:
        """STP DECREMENT of a taker that goes on matching: ``qty`` less (a quote-qty taker's
        budget loses that quantity's notional at ``price``), and its lock with it."""
        taker.prevented_qty += qty
        quote = price * qty // SCALE
        if taker.quote_rem > 0:
            taker.quote_rem -= quote
        else:
            taker.remaining -= qty
        if not taker.is_buy:
            self._release_part(taker, qty)
        elif taker.is_market:
            self._release_part(taker, quote)
        else:
            self._release_part(taker, taker.price * qty // SCALE)

    def _rest(self, sym: SymbolState, order: Order) -> None:
        book = sym.book
        if order.is_buy:
            side, touched = book.bids, self._touched_bids
        else:
            side, touched = book.asks, self._touched_asks
        price = order.price
        level = side.levels.get(price)
        if price not in touched:
            touched[price] = level.qty if level is not None else 0
        if level is None:
            level = side.level_for(price)
        iceberg = order.iceberg_qty
        remaining = order.remaining
        displayed = iceberg if iceberg and iceberg < remaining else remaining
        order.displayed = displayed
        level.orders.append(order)
        level.qty += displayed
        level.total += remaining
        level.live += 1
        book.orders[order.order_id] = order
        open_orders = sym.by_account.get(order.account_id)
        if open_orders is None:
            open_orders = sym.by_account[order.account_id] = {}
        open_orders[order.info.client_order_id] = order

    def _expire_taker(self, taker: Order) -> None:
        self._release(taker)
        taker.status = _S_EXPIRED
        self._events.append(
            ExecutionReport(
                0, self._ts, taker.info, _EXPIRED, _S_EXPIRED, "NONE", 0, 0, 0, taker.executed,
                taker.cum_quote, 0, "", -1, True, False, self._ts, "", -1, taker.prevented_qty,
            )
        )  # fmt: skip

    def _release_part(self, order: Order, amount: int) -> None:
        """Release ``amount`` of what ``order`` holds locked (never more than it holds)."""
        if amount > order.lock:
            amount = order.lock
        if amount:
            entry = order.lock_bal
            self._touch(entry, order.account_id, order.lock_key[1])
            entry[0] += amount
            entry[1] -= amount
            order.lock -= amount

    def _release(self, order: Order) -> None:
        amount = order.lock
        if amount:
            entry = order.lock_bal
            self._touch(entry, order.account_id, order.lock_key[1])
            entry[0] += amount
            entry[1] -= amount
            order.lock = 0

    # ------------------------------------------------------------------ per-command output

    def _touch(self, entry: list[int], account_id: int, asset: str) -> None:
        key = (account_id, asset)
        if key not in self._touched_bal:
            self._touched_bal[key] = (entry, entry[0], entry[1])

    def _emit_depth(self, sym: SymbolState) -> None:
        tb, ta = self._touched_bids, self._touched_asks
        if not tb and not ta:
            return
        book = sym.book
        bids = _changed_levels(tb, book.bids.levels, reverse=True) if tb else ()
        asks = _changed_levels(ta, book.asks.levels, reverse=False) if ta else ()
        tb.clear()
        ta.clear()
        n = len(bids) + len(asks)
        if n:
            first = sym.update_id + 1
            sym.update_id += n
            self._events.append(
                DepthUpdate(0, self._ts, sym.spec.symbol, first, sym.update_id, bids, asks)
            )

    def _emit_balances(self) -> None:
        touched = self._touched_bal
        ts = self._ts
        if len(touched) == 1:
            ((key, (entry, free, locked)),) = touched.items()
            touched.clear()
            if key[0] != FEE_ACCOUNT and (entry[0] != free or entry[1] != locked):
                self._events.append(AccountBalances(0, ts, key[0], ((key[1], entry[0], entry[1]),)))
            return
        changed = sorted(
            [
                (key, entry)
                for key, (entry, free, locked) in touched.items()
                if key[0] != FEE_ACCOUNT and (entry[0] != free or entry[1] != locked)
            ]
        )
        touched.clear()
        events = self._events
        rows: list[tuple[str, int, int]] = []
        account_id = -1
        for (acct, asset), entry in changed:
            if acct != account_id:
                if rows:
                    events.append(AccountBalances(0, ts, account_id, tuple(rows)))
                rows = []
                account_id = acct
            rows.append((asset, entry[0], entry[1]))
        if rows:
            events.append(AccountBalances(0, ts, account_id, tuple(rows)))


def _changed_levels(
    touched: dict[int, int], levels: dict[int, Any], *, reverse: bool
) -> tuple[tuple[int, int], ...]:
    if len(touched) == 1:
        ((price, before),) = touched.items()
        level = levels.get(price)
        qty = level.qty if level is not None else 0
        return ((price, qty),) if qty != before else ()
    out = []
    for price in sorted(touched, reverse=reverse):
        level = levels.get(price)
        qty = level.qty if level is not None else 0
        if qty != touched[price]:
            out.append((price, qty))
    return tuple(out)


def _quote_spent(opp: BookSide, taker: Order, step: int) -> bool:
    """Whether a MARKET order by quote, having traded, is FILLED: what is left of its budget
    cannot take one more lot step at the best price left (Binance: "as close as possible to
    quoteOrderQty" without breaking LOT_SIZE). With no price left it is not: liquidity ran
    out, and the order expires."""
    keys = opp.keys
    if not keys:
        return False
    price: int = keys[-1] if opp.is_bid else -keys[-1]
    can: int = taker.quote_rem * SCALE // price
    can -= can % step
    if not taker.is_buy and taker.lock < can:
        can = taker.lock  # a SELL by quote never sells more base than it locked
    return can == 0


def _order_id(order: Order) -> int:
    return order.order_id


def _result(order: Order, fills: tuple[Fill, ...], cancel_client_id: str = "") -> OrderResult:
    return OrderResult(
        order.info,
        order.status,
        order.executed,
        order.cum_quote,
        order.working_ts,
        fills,
        cancel_client_id,
    )
