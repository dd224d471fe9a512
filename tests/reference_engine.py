"""A naive reference matching engine, written from docs/engine.md only.

It is deliberately simple and slow so that it is easy to check by reading: the books are plain
lists of orders scanned and sorted on every step, balances are a dict of dicts, depth diffs
come from comparing full displayed-depth snapshots taken before and after each command, and
balance events from comparing full balance snapshots. The differential tests feed it and the
fast engine (``bourse.engine``) the same commands and require identical events.

Nothing here is shared with the fast engine except the domain package (commands, events,
errors, filters, amounts).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any, TypeVar

import msgspec

from bourse.domain import errors
from bourse.domain.amounts import MAX_UNITS, SCALE, fee_for, notional
from bourse.domain.commands import (
    ADMIN_COMMANDS,
    CLIENT_ORDER_ID_RE,
    COMMAND_NAMES,
    FEE_ACCOUNT,
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
    STOP_TYPES,
    CancelReplaceMode,
    ContingencyType,
    ExecutionType,
    ListOrderStatus,
    ListStatusType,
    OrderStatus,
    OrderType,
    Outcome,
    Side,
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
    ListStatus,
    OrderAmended,
    OrderInfo,
    OrderListInfo,
    OrderResult,
    PreventedMatch,
    Reply,
    ReplyPart,
    SymbolUpdated,
    Trade,
)
from bourse.domain.exchange_filters import (
    EXCHANGE_MAX_NUM_ALGO_ORDERS,
    EXCHANGE_MAX_NUM_ICEBERG_ORDERS,
    EXCHANGE_MAX_NUM_ORDERS,
)
from bourse.domain.symbols import (
    ASSET_RE,
    SymbolSpec,
    check_lot,
    check_notional,
    check_percent_price,
    check_price,
)

TX_ID_RE = re.compile(r"\A[!-~]{1,128}\Z")
WITHDRAWAL_ID_RE = re.compile(r"\A[A-Za-z0-9._:/-]{1,64}\Z")
API_KEY_RE = re.compile(r"\A[!-~]{1,256}\Z")
LIMIT_TYPES = (
    OrderType.LIMIT,
    OrderType.LIMIT_MAKER,
    OrderType.STOP_LOSS_LIMIT,
    OrderType.TAKE_PROFIT_LIMIT,
)
ENDED = (
    OrderStatus.FILLED,
    OrderStatus.CANCELED,
    OrderStatus.EXPIRED,
    OrderStatus.EXPIRED_IN_MATCH,
)
STOP_LOSS_TYPES = (OrderType.STOP_LOSS, OrderType.STOP_LOSS_LIMIT)
TAKE_PROFIT_TYPES = (OrderType.TAKE_PROFIT, OrderType.TAKE_PROFIT_LIMIT)
NO_TIF_TYPES = (OrderType.MARKET, OrderType.STOP_LOSS, OrderType.TAKE_PROFIT, OrderType.LIMIT_MAKER)
# ADMIN_COMMANDS as a tuple, for isinstance (commands are never subclassed)
ADMIN_TYPES = (
    AddSymbol,
    UpdateSymbol,
    SetSymbolStatus,
    DelistSymbol,
    SetAccountFees,
    CreateAccount,
    SetAccountStatus,
    Deposit,
    WithdrawRequest,
    WithdrawSettle,
    KeyChange,
    RejectedAdmin,
)
assert frozenset(ADMIN_TYPES) == ADMIN_COMMANDS

# what a command handler returns: (code, msg, reply parts); code 0 is success
HandlerResult = tuple[int, str, Sequence[ReplyPart]]
E = TypeVar("E", bound=Event)


def _given(value: int | None) -> int:
    """An optional order parameter that validate_new_order_shape made sure is there."""
    assert value is not None
    return value


@dataclass(eq=False)  # orders are compared by identity
class RefOrder:
    info: OrderInfo
    remaining: int  # base quantity still to fill (0 for quote_order_qty orders)
    lock_asset: str
    locked: int = 0  # what this order currently holds locked
    executed: int = 0
    cum_quote: int = 0
    slice: int = 0  # icebergs: what is left of the displayed slice
    arrival: int = 0  # position in its level's queue (smaller = earlier)
    working_ts: int = -1
    pending_stop: bool = False  # an untriggered stop
    status: OrderStatus = OrderStatus.NEW
    fills: list[Fill] = field(default_factory=list)
    prevented: int = 0  # cumulative quantity STP took away (Binance's preventedQuantity)
    prevented_quote: int = 0  # quote-qty orders: the budget STP DECREMENT took away
    quote_done: bool = False  # quote-qty orders: budget spent as closely as LOT_SIZE allows
    # trailing stops (Binance's trailing stop FAQ): whether it tracks prices yet, the best
    # price since it started, and whether a reversal of trailingDelta BIPS has fired it
    tracking: bool = False
    best_price: int = 0
    fired: bool = False

    @property
    def side(self) -> Side:
        return self.info.side

    @property
    def account(self) -> int:
        return self.info.account_id

    @property
    def is_iceberg(self) -> bool:
        return self.info.iceberg_qty > 0

    @property
    def by_quote(self) -> bool:
        return self.info.quote_order_qty > 0

    @property
    def budget_left(self) -> int:
        """Quote-qty orders: what is left of quoteOrderQty to spend."""
        return self.info.quote_order_qty - self.cum_quote - self.prevented_quote

    def available_at(self, price: int, step: int) -> int:
        """The base quantity this order may still trade at ``price`` (a quote-qty order: what
        its budget buys there, in whole lot steps)."""
        if self.by_quote:
            afford = self.budget_left * SCALE // price
            return afford - afford % step
        return self.remaining

    def displayed(self) -> int:
        return self.slice if self.is_iceberg else self.remaining


@dataclass
class RefWithdrawal:
    account: int
    asset: str
    amount: int
    status: str  # REQUESTED, then COMPLETED, FAILED or CANCELED


@dataclass(eq=False)
class RefList:
    """An open order list (docs/engine.md "Order lists")."""

    list_id: int
    account: int
    symbol: str
    kind: str  # OCO, OTO, OTOCO
    client_id: str
    ts: int
    orders: list[RefOrder]  # ascending order id
    working: RefOrder | None = None  # until it fills
    pair: list[RefOrder] = field(default_factory=list)  # the live OCO pair
    needs: dict[int, int] = field(default_factory=dict)  # pair leg id -> its own lock

    def info(self, done: bool) -> OrderListInfo:
        return OrderListInfo(
            order_list_id=self.list_id,
            account_id=self.account,
            symbol=self.symbol,
            contingency_type=ContingencyType.OCO if self.kind == "OCO" else ContingencyType.OTO,
            list_status_type=ListStatusType.ALL_DONE if done else ListStatusType.EXEC_STARTED,
            list_order_status=ListOrderStatus.ALL_DONE if done else ListOrderStatus.EXECUTING,
            list_client_order_id=self.client_id,
            transaction_ts=self.ts,
            orders=tuple((o.info.order_id, o.info.client_order_id) for o in self.orders),
        )


@dataclass
class RefSymbol:
    spec: SymbolSpec
    resting: list[RefOrder] = field(default_factory=list)  # on the book, any side, any order
    stops: list[RefOrder] = field(default_factory=list)  # untriggered stops
    pending: list[RefOrder] = field(default_factory=list)  # order lists' PENDING_NEW orders
    last_price: int = 0  # 0: no trade yet
    next_order_id: int = 1
    next_trade_id: int = 1
    next_prevented_id: int = 1
    update_id: int = 0


class ReferenceEngine:
    def __init__(self) -> None:
        self.symbols: dict[str, RefSymbol] = {}
        self.bal: dict[int, dict[str, list[int]]] = {}  # account -> asset -> [free, locked]
        self.fees: dict[int, tuple[int, int]] = {}  # account -> (maker, taker)
        self.seq = 0
        self.arrival = 0
        self.out: list[Event] = []
        self.ts = 0
        self.bal_before: dict[int, dict[str, tuple[int, int]]] = {}
        # the admin plane's registry
        self.accounts: dict[int, bool] = {}  # created account -> frozen
        self.deposits: dict[str, tuple[int, str, int]] = {}  # tx id -> (account, asset, amount)
        self.withdrawals: dict[str, RefWithdrawal] = {}
        self.applied: set[str] = set()  # admin request ids seen (replays are refused)
        self.delisted: set[str] = set()
        self.detail = ""
        # order lists
        self.lists: dict[int, RefList] = {}  # open ones
        self.next_list_id = 0
        self.due: list[RefList] = []  # working order filled, pending orders not placed yet
        self.placing_due = False
        self.reply_list: OrderListInfo | None = None
        self.also_canceled: list[OrderResult] = []  # a list's other orders, for CANCEL_ALL

    # ------------------------------------------------------------------ public interface
    def balances(self) -> dict[int, dict[str, tuple[int, int]]]:
        """Non-zero (free, locked) pairs only, fee account included."""
        out: dict[int, dict[str, tuple[int, int]]] = {}
        for acct, assets in self.bal.items():
            for asset, (free, locked) in assets.items():
                if free or locked:
                    out.setdefault(acct, {})[asset] = (free, locked)
        return out

    def open_refs(self, account_id: int, symbol: str) -> list[RefOrder]:
        """The account's open orders in the symbol (resting and untriggered), by order id."""
        sym = self.symbols[symbol]
        return sorted(self._mine(sym, account_id), key=lambda o: o.info.order_id)

    def process(self, cmd: Command) -> list[Event]:
        self.out = []
        self.ts = cmd.ts
        depth_before = {name: self._depth(s) for name, s in self.symbols.items()}
        # balances before the command, of every account the command touches (copied by
        # _entry on first touch: every balance change goes through _entry)
        self.bal_before = {}
        handlers: dict[type, Callable[[Any], HandlerResult]] = {
            NewOrder: self._new_order_cmd,
            CancelOrder: self._cancel_cmd,
            CancelReplace: self._cancel_replace_cmd,
            CancelAll: self._cancel_all_cmd,
            AmendOrder: self._amend_cmd,
            NewOrderList: self._new_list_cmd,
            CancelOrderList: self._cancel_list_cmd,
            AddSymbol: self._add_symbol,
            UpdateSymbol: self._update_symbol,
            SetSymbolStatus: self._set_status,
            DelistSymbol: self._delist,
            SetAccountFees: self._set_fees,
            CreateAccount: self._create_account,
            SetAccountStatus: self._set_account_status,
            Deposit: self._deposit,
            WithdrawRequest: self._withdraw_request,
            WithdrawSettle: self._withdraw_settle,
            KeyChange: self._key_change,
            RejectedAdmin: self._rejected_admin,
        }
        handler = handlers[type(cmd)]
        admin = cmd if isinstance(cmd, ADMIN_TYPES) else None
        self.detail = ""
        self.reply_list = None
        parts: Sequence[ReplyPart]
        if admin is not None and type(cmd) is not RejectedAdmin and cmd.request_id in self.applied:
            e = errors.UNAUTHORIZED_ERROR  # a replayed admin record
            code, msg, parts = e.code, e.msg, ()
        else:
            if admin is not None and type(cmd) is not RejectedAdmin:
                self.applied.add(cmd.request_id)
            code, msg, parts = handler(cmd)
        if code != 0:
            self.detail = ""
        # depth diffs, per symbol
        for name, sym in self.symbols.items():
            depth_then = depth_before.get(name, ({}, {}))
            depth_now = self._depth(sym)
            changed: list[tuple[tuple[int, int], ...]] = []
            for side_idx in (0, 1):
                levels = set(depth_then[side_idx]) | set(depth_now[side_idx])
                diff = [
                    (p, depth_now[side_idx].get(p, 0))
                    for p in levels
                    if depth_then[side_idx].get(p, 0) != depth_now[side_idx].get(p, 0)
                ]
                diff.sort(key=lambda lv: -lv[0] if side_idx == 0 else lv[0])
                changed.append(tuple(diff))
            n = len(changed[0]) + len(changed[1])
            if n:
                first = sym.update_id + 1
                sym.update_id += n
                self._emit(
                    DepthUpdate,
                    symbol=name,
                    first_update_id=first,
                    final_update_id=sym.update_id,
                    bids=changed[0],
                    asks=changed[1],
                )
        # balance diffs, per account
        for acct in sorted(self.bal_before):
            if acct == FEE_ACCOUNT:
                continue
            bal_then = self.bal_before[acct]
            bal_now = self._account_snapshot(acct)
            moved = tuple(
                (asset, *bal_now.get(asset, (0, 0)))
                for asset in sorted(set(bal_then) | set(bal_now))
                if bal_then.get(asset, (0, 0)) != bal_now.get(asset, (0, 0))
            )
            if moved:
                self._emit(AccountBalances, account_id=acct, balances=moved)
        if admin is not None:
            self._emit(
                AdminAction,
                request_id=admin.request_id,
                command=(
                    admin.command
                    if isinstance(admin, RejectedAdmin)
                    else COMMAND_NAMES[type(admin)]
                ),
                principal=admin.principal,
                code=code,
                msg=msg,
                detail=msgspec.json.encode(cmd).decode(),
            )
        self._emit(
            Reply,
            request_id=cmd.request_id,
            command=COMMAND_NAMES[type(cmd)],
            code=code,
            msg=msg,
            parts=tuple(parts),
            detail=self.detail,
            order_list=self.reply_list if code == 0 else None,
        )
        return self.out

    # ------------------------------------------------------------------ helpers
    def _emit(self, cls: type[E], **fields: Any) -> E:
        self.seq += 1
        event = cls(seq=self.seq, ts=self.ts, **fields)
        self.out.append(event)
        return event

    def _depth(self, sym: RefSymbol) -> tuple[dict[int, int], dict[int, int]]:
        bids: dict[int, int] = {}
        asks: dict[int, int] = {}
        for o in sym.resting:
            info = o.info
            levels = bids if info.side is Side.BUY else asks
            shown = o.slice if info.iceberg_qty else o.remaining
            levels[info.price] = levels.get(info.price, 0) + shown
        return bids, asks

    def _account_snapshot(self, acct: int) -> dict[str, tuple[int, int]]:
        return {asset: (fl[0], fl[1]) for asset, fl in self.bal.get(acct, {}).items()}

    def _free(self, acct: int, asset: str) -> int:
        return self.bal.get(acct, {}).get(asset, [0, 0])[0]

    def _entry(self, acct: int, asset: str) -> list[int]:
        """The mutable [free, locked] of an account's asset (the only way to change one)."""
        if acct not in self.bal_before:
            self.bal_before[acct] = self._account_snapshot(acct)
        return self.bal.setdefault(acct, {}).setdefault(asset, [0, 0])

    def _lock(self, order: RefOrder, amount: int) -> None:
        if amount == 0:
            return
        e = self._entry(order.account, order.lock_asset)
        e[0] -= amount
        e[1] += amount
        order.locked += amount

    def _unlock(self, order: RefOrder, amount: int) -> None:
        if amount == 0:
            return
        e = self._entry(order.account, order.lock_asset)
        e[0] += amount
        e[1] -= amount
        order.locked -= amount

    def _spend(self, order: RefOrder, amount: int) -> None:
        """Take ``amount`` out of the order's lock (it leaves the account)."""
        if amount == 0:
            return
        e = self._entry(order.account, order.lock_asset)
        e[1] -= amount
        order.locked -= amount

    def _credit(self, acct: int, asset: str, amount: int) -> None:
        if amount == 0:
            return
        self._entry(acct, asset)[0] += amount

    def _rates(self, acct: int, spec: SymbolSpec) -> tuple[int, int]:
        """The account's own rates if it has any, else the market's commissions."""
        return self.fees.get(acct, (spec.maker_commission, spec.taker_commission))

    def _best(self, sym: RefSymbol, side: Side) -> RefOrder | None:
        """The first order of ``side`` in price-time priority (a linear scan)."""
        orders = [o for o in sym.resting if o.side is side]
        if not orders:
            return None
        if side is Side.BUY:
            return min(orders, key=lambda o: (-o.info.price, o.arrival))
        return min(orders, key=lambda o: (o.info.price, o.arrival))

    def _levels(self, sym: RefSymbol, side: Side) -> list[tuple[int, int]]:
        """(price, total remaining incl. hidden), best first."""
        totals: dict[int, int] = {}
        for o in sym.resting:
            if o.side is side:
                totals[o.info.price] = totals.get(o.info.price, 0) + o.remaining
        return sorted(totals.items(), key=lambda lv: -lv[0] if side is Side.BUY else lv[0])

    def _walk_buy_cost(self, sym: RefSymbol, qty: int) -> int:
        cost = 0
        left = qty
        for price, total in self._levels(sym, Side.SELL):
            if left == 0:
                break
            take = min(left, total)
            cost += notional(price, take)
            left -= take
        return cost

    def _walk_sell_base(self, sym: RefSymbol, quote: int) -> int:
        step = sym.spec.step_size
        base = 0
        left = quote
        for price, total in self._levels(sym, Side.BUY):
            afford = left * SCALE // price
            afford -= afford % step
            take = min(total, afford)
            if take == 0:
                break
            base += take
            left -= notional(price, take)
        return base

    def _report(self, order: RefOrder, exec_type: ExecutionType, **extra: Any) -> None:
        fields: dict[str, Any] = dict(
            order=order.info,
            exec_type=exec_type,
            status=order.status,
            reject_reason="NONE",
            last_qty=0,
            last_price=0,
            last_quote=0,
            cum_qty=order.executed,
            cum_quote=order.cum_quote,
            commission=0,
            commission_asset="",
            trade_id=-1,
            is_working=not order.pending_stop,
            is_maker=False,
            working_ts=order.working_ts,
            prevented_qty=order.prevented,
        )
        fields.update(extra)
        self._emit(ExecutionReport, **fields)

    def _result(self, order: RefOrder, cancel_client_order_id: str = "") -> OrderResult:
        return OrderResult(
            order=order.info,
            status=order.status,
            executed_qty=order.executed,
            cum_quote=order.cum_quote,
            working_ts=order.working_ts,
            fills=tuple(order.fills),
            cancel_client_order_id=cancel_client_order_id,
        )

    # ------------------------------------------------------------------ admin and funding
    def _add_symbol(self, cmd: AddSymbol) -> HandlerResult:
        try:
            cmd.spec.validate()
        except BinanceError as err:
            return err.code, err.msg, ()
        if cmd.spec.symbol in self.symbols:
            e = errors.invalid_parameter()
            return e.code, e.msg, ()
        self.symbols[cmd.spec.symbol] = RefSymbol(spec=cmd.spec)
        self._emit(SymbolUpdated, spec=cmd.spec)
        return 0, "", ()

    def _not_listed(self, name: str) -> BinanceError | None:
        if name not in self.symbols:
            return errors.INVALID_SYMBOL_ERROR
        if name in self.delisted:
            return errors.SYMBOL_DELISTED_ERROR
        return None

    def _update_symbol(self, cmd: UpdateSymbol) -> HandlerResult:
        e = self._not_listed(cmd.spec.symbol)
        if e is not None:
            return e.code, e.msg, ()
        sym = self.symbols[cmd.spec.symbol]
        old = sym.spec
        new = replace(cmd.spec, status=old.status)
        if (new.base_asset, new.quote_asset) != (old.base_asset, old.quote_asset):
            e = errors.invalid_parameter("baseAsset and quoteAsset cannot change.")
            return e.code, e.msg, ()
        try:
            new.validate()
        except BinanceError as err:
            return err.code, err.msg, ()
        grid_changed = (new.tick_size, new.step_size) != (old.tick_size, old.step_size)
        if grid_changed and (sym.resting or sym.stops):
            e = errors.invalid_parameter(
                "tickSize and stepSize cannot change while orders are open."
            )
            return e.code, e.msg, ()
        sym.spec = new
        self._emit(SymbolUpdated, spec=new)
        return 0, "", ()

    def _set_status(self, cmd: SetSymbolStatus) -> HandlerResult:
        e = self._not_listed(cmd.symbol)
        if e is not None:
            return e.code, e.msg, ()
        sym = self.symbols[cmd.symbol]
        if cmd.status not in tuple(SymbolStatus):
            e = errors.invalid_parameter()
            return e.code, e.msg, ()
        sym.spec = sym.spec.with_status(cmd.status)
        self._emit(SymbolUpdated, spec=sym.spec)
        return 0, "", ()

    def _delist(self, cmd: DelistSymbol) -> HandlerResult:
        e = self._not_listed(cmd.symbol)
        if e is not None:
            return e.code, e.msg, ()
        sym = self.symbols[cmd.symbol]
        self.delisted.add(cmd.symbol)
        sym.spec = sym.spec.with_status(SymbolStatus.BREAK)
        self._emit(SymbolUpdated, spec=sym.spec)
        for order in sorted(sym.resting + sym.stops, key=lambda o: o.info.order_id):
            if order.status not in ENDED:  # not canceled with its list already
                self._do_cancel(order, "")
        return 0, "", ()

    def _set_fees(self, cmd: SetAccountFees) -> HandlerResult:
        rates_ok = 0 <= cmd.maker_rate <= SCALE and 0 <= cmd.taker_rate <= SCALE
        if cmd.account_id < 1 or not rates_ok:
            e = errors.invalid_parameter()
            return e.code, e.msg, ()
        if cmd.account_id not in self.accounts:
            e = errors.UNKNOWN_ACCOUNT_ERROR
            return e.code, e.msg, ()
        self.fees[cmd.account_id] = (cmd.maker_rate, cmd.taker_rate)
        self._emit(
            AccountFeesUpdated,
            account_id=cmd.account_id,
            maker_rate=cmd.maker_rate,
            taker_rate=cmd.taker_rate,
        )
        return 0, "", ()

    def _create_account(self, cmd: CreateAccount) -> HandlerResult:
        acct = cmd.account_id or (max(self.accounts, default=0) + 1)
        if not 1 <= acct <= 2**53 - 1:
            e = errors.invalid_parameter()
            return e.code, e.msg, ()
        if acct in self.accounts:
            e = errors.ACCOUNT_EXISTS_ERROR
            return e.code, e.msg, ()
        self.accounts[acct] = False
        self._emit(AccountUpdated, account_id=acct, status="ACTIVE")
        self.detail = json.dumps({"accountId": acct}, separators=(",", ":"))
        return 0, "", ()

    def _set_account_status(self, cmd: SetAccountStatus) -> HandlerResult:
        if cmd.account_id not in self.accounts:
            e = errors.UNKNOWN_ACCOUNT_ERROR
            return e.code, e.msg, ()
        self.accounts[cmd.account_id] = cmd.frozen
        status = "FROZEN" if cmd.frozen else "ACTIVE"
        self._emit(AccountUpdated, account_id=cmd.account_id, status=status)
        self.detail = json.dumps(
            {"accountId": cmd.account_id, "status": status}, separators=(",", ":")
        )
        return 0, "", ()

    def _key_change(self, cmd: KeyChange) -> HandlerResult:
        if cmd.action not in ("CREATED", "REVOKED", "ROTATED") or not API_KEY_RE.match(cmd.api_key):
            e = errors.invalid_parameter()
            return e.code, e.msg, ()
        if cmd.account_id not in self.accounts:
            e = errors.UNKNOWN_ACCOUNT_ERROR
            return e.code, e.msg, ()
        return 0, "", ()

    def _rejected_admin(self, cmd: RejectedAdmin) -> HandlerResult:
        e = errors.UNAUTHORIZED_ERROR
        return e.code, e.msg, ()

    def _funding_error(self, cmd: Deposit | WithdrawRequest) -> BinanceError | None:
        # one message for every -1130 of funding (the parameter is not named)
        bad = (
            cmd.account_id < 1
            or not isinstance(cmd.asset, str)
            or not ASSET_RE.match(cmd.asset)
            or cmd.amount <= 0
        )
        return errors.invalid_parameter() if bad else None

    def _deposit(self, cmd: Deposit) -> HandlerResult:
        e = self._funding_error(cmd)
        if e is None and cmd.tx_id and not TX_ID_RE.match(cmd.tx_id):
            e = errors.invalid_parameter()
        if e is None and cmd.account_id not in self.accounts:
            e = errors.UNKNOWN_ACCOUNT_ERROR
        if e is None and cmd.tx_id in self.deposits:
            if self.deposits[cmd.tx_id] == (cmd.account_id, cmd.asset, cmd.amount):
                self.detail = '{"duplicate":true}'
                return 0, "", ()
            e = errors.invalid_parameter(
                f"txId {cmd.tx_id} already used with a different account, asset or amount."
            )
        if e is None and self._free(cmd.account_id, cmd.asset) + cmd.amount > MAX_UNITS:
            e = errors.invalid_parameter()
        if e is not None:
            return e.code, e.msg, ()
        self._entry(cmd.account_id, cmd.asset)[0] += cmd.amount
        if cmd.tx_id:
            self.deposits[cmd.tx_id] = (cmd.account_id, cmd.asset, cmd.amount)
        self._emit(FundingUpdate, funding_id=cmd.tx_id or cmd.request_id, kind="DEPOSIT",
                   status="CREDITED", account_id=cmd.account_id, asset=cmd.asset,
                   amount=cmd.amount, tx_id=cmd.tx_id)  # fmt: skip
        self._emit(BalanceUpdate, account_id=cmd.account_id, asset=cmd.asset, delta=cmd.amount)
        self.detail = '{"duplicate":false}'
        return 0, "", ()

    def _withdraw_request(self, cmd: WithdrawRequest) -> HandlerResult:
        e = self._funding_error(cmd)
        wid = cmd.withdrawal_id
        if e is None and not WITHDRAWAL_ID_RE.match(wid):
            e = errors.invalid_parameter()
        if e is None and cmd.account_id not in self.accounts:
            e = errors.UNKNOWN_ACCOUNT_ERROR
        if e is None and wid in self.withdrawals:
            e = errors.WITHDRAWAL_EXISTS_ERROR
        if e is None and self._free(cmd.account_id, cmd.asset) < cmd.amount:
            e = errors.rejected(errors.MSG_INSUFFICIENT_BALANCE)
        if e is not None:
            return e.code, e.msg, ()
        entry = self._entry(cmd.account_id, cmd.asset)
        entry[0] -= cmd.amount
        entry[1] += cmd.amount
        self.withdrawals[wid] = RefWithdrawal(cmd.account_id, cmd.asset, cmd.amount, "REQUESTED")
        self._emit(FundingUpdate, funding_id=wid, kind="WITHDRAWAL", status="REQUESTED",
                   account_id=cmd.account_id, asset=cmd.asset, amount=cmd.amount,
                   tx_id="")  # fmt: skip
        self._emit(BalanceUpdate, account_id=cmd.account_id, asset=cmd.asset, delta=-cmd.amount)
        self.detail = json.dumps(
            {"withdrawalId": wid, "status": "REQUESTED"}, separators=(",", ":")
        )
        return 0, "", ()

    def _withdraw_settle(self, cmd: WithdrawSettle) -> HandlerResult:
        if cmd.outcome not in ("COMPLETED", "FAILED", "CANCELED"):
            e = errors.invalid_parameter()
            return e.code, e.msg, ()
        w = self.withdrawals.get(cmd.withdrawal_id)
        if w is None:
            e = errors.UNKNOWN_WITHDRAWAL_ERROR
            return e.code, e.msg, ()
        acct, asset, amount = w.account, w.asset, w.amount
        if w.status != "REQUESTED":
            e = errors.invalid_parameter(f"Withdrawal {cmd.withdrawal_id} is already {w.status}.")
            return e.code, e.msg, ()
        entry = self._entry(acct, asset)
        entry[1] -= amount
        delta = 0
        if cmd.outcome != "COMPLETED":
            entry[0] += amount
            delta = amount
        w.status = cmd.outcome
        self._emit(FundingUpdate, funding_id=cmd.withdrawal_id, kind="WITHDRAWAL",
                   status=cmd.outcome, account_id=acct, asset=asset, amount=amount,
                   tx_id="")  # fmt: skip
        self._emit(BalanceUpdate, account_id=acct, asset=asset, delta=delta)
        self.detail = json.dumps(
            {"withdrawalId": cmd.withdrawal_id, "status": cmd.outcome, "accountId": acct,
             "asset": asset, "amount": amount},
            separators=(",", ":"),
        )  # fmt: skip
        return 0, "", ()

    # ------------------------------------------------------------------ cancels
    def _find_open(self, cmd: CancelOrder) -> RefOrder | None:
        sym = self.symbols[cmd.symbol]
        for o in sym.resting + sym.stops + sym.pending:
            if o.account != cmd.account_id:
                continue
            if cmd.order_id is not None:
                if o.info.order_id == cmd.order_id:
                    return o
            elif o.info.client_order_id == cmd.orig_client_order_id:
                return o
        return None

    def _cancel_error(self, cmd: CancelOrder) -> BinanceError | None:
        if cmd.symbol not in self.symbols:
            return errors.INVALID_SYMBOL_ERROR
        if cmd.order_id is None and cmd.orig_client_order_id is None:
            return errors.mandatory("orderId")
        if self._find_open(cmd) is None:
            return errors.cancel_rejected()
        return None

    def _do_cancel(self, order: RefOrder, cancel_client_order_id: str) -> OrderResult:
        lst = self._list_of(order)
        if lst is not None:  # the whole list goes
            results = self._cancel_list(lst, cancel_client_order_id)
            mine = [r for r in results if r.order.order_id == order.info.order_id]
            self.also_canceled = [r for r in results if r.order.order_id != order.info.order_id]
            return mine[0]
        return self._cancel_one(order, cancel_client_order_id)

    def _cancel_one(self, order: RefOrder, cancel_client_order_id: str) -> OrderResult:
        sym = self.symbols[order.info.symbol]
        if order in sym.pending:
            sym.pending.remove(order)
            order.status = OrderStatus.CANCELED
            order.fills = []
            self._report(
                order,
                ExecutionType.CANCELED,
                cancel_client_order_id=cancel_client_order_id,
                is_working=False,
            )
            return self._result(order, cancel_client_order_id)
        if order.pending_stop:
            sym.stops.remove(order)
        else:
            sym.resting.remove(order)
        self._unlock(order, order.locked)
        order.status = OrderStatus.CANCELED
        order.fills = []
        self._report(order, ExecutionType.CANCELED, cancel_client_order_id=cancel_client_order_id)
        return self._result(order, cancel_client_order_id)

    def _cancel_cmd(self, cmd: CancelOrder) -> HandlerResult:
        e = self._cancel_error(cmd)
        if e is not None:
            return e.code, e.msg, ()
        order = self._find_open(cmd)
        assert order is not None  # _cancel_error found it
        result = self._do_cancel(order, cmd.cancel_client_order_id)
        return 0, "", (ReplyPart(Outcome.SUCCESS, 0, "", result),)

    def _cancel_all_cmd(self, cmd: CancelAll) -> HandlerResult:
        if cmd.symbol not in self.symbols:
            e = errors.INVALID_SYMBOL_ERROR
            return e.code, e.msg, ()
        orders = self.open_refs(cmd.account_id, cmd.symbol)
        if not orders:
            e = errors.cancel_rejected()
            return e.code, e.msg, ()
        parts = []
        done: set[int] = set()
        for o in orders:
            if o.info.order_id in done:
                continue  # canceled with its list
            self.also_canceled = []
            parts.append(ReplyPart(Outcome.SUCCESS, 0, "", self._do_cancel(o, "")))
            for r in self.also_canceled:
                parts.append(ReplyPart(Outcome.SUCCESS, 0, "", r))
                done.add(r.order.order_id)
        return 0, "", parts

    def _amend_error(self, cmd: AmendOrder) -> tuple[BinanceError | None, RefOrder | None]:
        """rest-api.md "Order Amend Keep Priority" and errors.md's -2038 messages."""
        if cmd.symbol not in self.symbols:
            return errors.INVALID_SYMBOL_ERROR, None
        sym = self.symbols[cmd.symbol]
        if cmd.order_id is None and cmd.orig_client_order_id is None:
            return errors.mandatory("orderId"), None
        if not CLIENT_ORDER_ID_RE.match(cmd.new_client_order_id):
            return errors.illegal_chars("newClientOrderId", "^[\\.A-Z\\:/a-z0-9_-]{1,36}$"), None
        if cmd.new_qty <= 0:
            return errors.INVALID_QUANTITY_ERROR, None
        if self.accounts.get(cmd.account_id):
            return errors.amend_rejected(errors.MSG_ACCOUNT_DISABLED), None
        if sym.spec.status is not SymbolStatus.TRADING:
            return errors.amend_rejected(errors.MSG_MARKET_CLOSED), None
        mine = self._mine(sym, cmd.account_id)  # an order list's pending orders included
        if cmd.order_id is not None:
            placed = [o for o in mine if o not in sym.pending]
            found = [o for o in placed if o.info.order_id == cmd.order_id]
        else:
            found = [o for o in mine if o.info.client_order_id == cmd.orig_client_order_id]
        if not found:
            return errors.amend_rejected(), None
        order = found[0]
        if self._list_of(order) is not None:
            return errors.amend_rejected(errors.MSG_AMEND_ORDER_LIST), None
        if cmd.new_qty == order.info.quantity:
            return errors.amend_rejected(errors.MSG_NO_STATE_CHANGE), None
        if cmd.new_qty > order.info.quantity:
            return errors.amend_rejected(errors.MSG_AMEND_INCREASE), None
        try:
            market = order.info.type in (OrderType.STOP_LOSS, OrderType.TAKE_PROFIT)
            check_lot(sym.spec, cmd.new_qty, market=market)
        except BinanceError as e:
            return e, None
        if any(o is not order and o.info.client_order_id == cmd.new_client_order_id for o in mine):
            return errors.amend_rejected(errors.MSG_DUPLICATE_ORDER), None
        return None, order

    def _amend_cmd(self, cmd: AmendOrder) -> HandlerResult:
        """Order amend keep priority (faqs/order_amend_keep_priority.md): only the quantity
        shrinks; the order keeps its id and its place in the queue."""
        e, order = self._amend_error(cmd)
        if e is not None:
            return e.code, e.msg, ()
        assert order is not None
        sym = self.symbols[cmd.symbol]
        old = order.info
        order.info = msgspec.structs.replace(
            old, quantity=cmd.new_qty, client_order_id=cmd.new_client_order_id
        )
        # Binance: original quantity - executed - prevented = what is left to execute
        left = cmd.new_qty - order.executed - order.prevented
        if left <= 0:
            (sym.stops if order.pending_stop else sym.resting).remove(order)
            order.remaining = 0
            self._unlock(order, order.locked)
            order.status = OrderStatus.EXPIRED
        else:
            order.remaining = left
            order.slice = min(order.slice, left)
            keep = notional(order.info.price, left) if order.side is Side.BUY else left
            self._unlock(order, order.locked - keep)
        self._report(order, ExecutionType.REPLACED, cancel_client_order_id=old.client_order_id)
        execution_id = self.seq  # the REPLACED report's
        self._emit(
            OrderAmended,
            symbol=cmd.symbol,
            order_id=old.order_id,
            account_id=old.account_id,
            execution_id=execution_id,
            orig_client_order_id=old.client_order_id,
            new_client_order_id=cmd.new_client_order_id,
            orig_qty=old.quantity,
            new_qty=cmd.new_qty,
        )
        self.detail = json.dumps(
            {
                "executionId": execution_id,
                "origClientOrderId": old.client_order_id,
                "preventedQty": order.prevented,
            },
            separators=(",", ":"),
        )
        order.fills = []
        return 0, "", (ReplyPart(Outcome.SUCCESS, 0, "", self._result(order)),)

    def _cancel_replace_cmd(self, cmd: CancelReplace) -> HandlerResult:
        c, n = cmd.cancel, cmd.new_order
        try:
            if c.order_id is None and c.orig_client_order_id is None:
                raise errors.mandatory("orderId")
            validate_new_order_shape(n)
            if (c.account_id, c.symbol) != (n.account_id, n.symbol):
                raise errors.invalid_parameter()
        except BinanceError as err:
            return err.code, err.msg, ()
        cancel_error = self._cancel_error(c)
        if cancel_error is not None:
            cancel_part = ReplyPart(Outcome.FAILURE, cancel_error.code, cancel_error.msg, None)
            if cmd.mode is CancelReplaceMode.STOP_ON_FAILURE:
                e = errors.CANCEL_REPLACE_FAILED_ERROR
                new_part = ReplyPart(Outcome.NOT_ATTEMPTED, 0, "", None)
                return e.code, e.msg, (cancel_part, new_part)
        else:
            order = self._find_open(c)
            assert order is not None  # _cancel_error found it
            canceled = self._do_cancel(order, c.cancel_client_order_id)
            cancel_part = ReplyPart(Outcome.SUCCESS, 0, "", canceled)
        new_error, result = self._place(n)
        if new_error is not None:
            new_part = ReplyPart(Outcome.FAILURE, new_error.code, new_error.msg, None)
        else:
            new_part = ReplyPart(Outcome.SUCCESS, 0, "", result)
        failures = (cancel_error is not None) + (new_error is not None)
        if failures == 0:
            return 0, "", (cancel_part, new_part)
        e = errors.CANCEL_REPLACE_PARTIAL_ERROR
        if failures == 2:
            e = errors.CANCEL_REPLACE_FAILED_ERROR
        return e.code, e.msg, (cancel_part, new_part)

    # ------------------------------------------------------------------ new orders
    def _new_order_cmd(self, cmd: NewOrder) -> HandlerResult:
        e, result = self._place(cmd)
        if e is not None:
            return e.code, e.msg, ()
        return 0, "", (ReplyPart(Outcome.SUCCESS, 0, "", result),)

    def _check_new(self, cmd: NewOrder) -> tuple[BinanceError | None, int]:
        """Every acceptance check in the documented order; returns (error, amount to lock)."""
        try:
            validate_new_order_shape(cmd)
        except BinanceError as e:
            return e, 0
        err = self._market_error(cmd.account_id, cmd.symbol)
        if err is not None:
            return err, 0
        sym = self.symbols[cmd.symbol]
        err = (
            self._combination_error(sym.spec, cmd)
            or self._filter_error(sym, cmd)
            or self._state_error(sym, cmd)
        )
        if err is not None:
            return err, 0
        lock = self._lock_for(sym, cmd)
        asset = sym.spec.quote_asset if cmd.side is Side.BUY else sym.spec.base_asset
        if self._free(cmd.account_id, asset) < lock:
            return errors.rejected(errors.MSG_INSUFFICIENT_BALANCE), 0
        return None, lock

    def _market_error(self, account_id: int, symbol: str) -> BinanceError | None:
        if self.accounts.get(account_id):
            return errors.rejected(errors.MSG_ACCOUNT_DISABLED)  # a frozen account
        sym = self.symbols.get(symbol)
        if sym is None:
            return errors.INVALID_SYMBOL_ERROR
        if sym.spec.status is not SymbolStatus.TRADING:
            return errors.rejected(errors.MSG_MARKET_CLOSED)
        return None

    @staticmethod
    def _combination_error(spec: SymbolSpec, cmd: NewOrder) -> BinanceError | None:
        t = cmd.type
        unsupported = (
            t not in spec.order_types
            or (cmd.iceberg_qty is not None and not spec.iceberg_allowed)
            or (cmd.quote_order_qty is not None and not spec.quote_order_qty_market_allowed)
            or (cmd.iceberg_qty is not None and cmd.time_in_force not in (None, TimeInForce.GTC))
        )
        if unsupported:
            return errors.rejected(errors.MSG_UNSUPPORTED_COMBINATION)
        if cmd.trailing_delta is not None and not spec.allow_trailing_stop:
            return errors.rejected("Trailing stop orders are not supported for this symbol.")
        if cmd.stp_mode is not None and cmd.stp_mode not in spec.allowed_stp_modes:
            return errors.rejected(errors.MSG_STP_NOT_ALLOWED)
        return None

    def _mine(self, sym: RefSymbol, account_id: int) -> list[RefOrder]:
        """The account's open orders in the symbol: resting, untriggered, pending (lists)."""
        return [o for o in sym.resting + sym.stops + sym.pending if o.account == account_id]

    def _filter_error(self, sym: RefSymbol, cmd: NewOrder) -> BinanceError | None:
        spec = sym.spec
        t = cmd.type
        is_stop = t in STOP_TYPES
        market_like = t in (OrderType.MARKET, OrderType.STOP_LOSS, OrderType.TAKE_PROFIT)
        last = sym.last_price
        try:
            if cmd.price is not None:
                check_price(spec, cmd.price)
            if cmd.stop_price is not None:
                check_price(spec, cmd.stop_price)
            if cmd.quantity is not None:
                check_lot(spec, cmd.quantity, market=market_like)
            if cmd.iceberg_qty is not None:
                check_lot(spec, cmd.iceberg_qty, market=False)
            if t in LIMIT_TYPES:
                check_notional(
                    spec, notional(_given(cmd.price), _given(cmd.quantity)), market=False
                )
            elif t is OrderType.MARKET:
                if cmd.quote_order_qty is not None:
                    check_notional(spec, cmd.quote_order_qty, market=True)
                elif last > 0:
                    check_notional(spec, notional(last, _given(cmd.quantity)), market=True)
            elif cmd.stop_price is not None:  # STOP_LOSS, TAKE_PROFIT
                check_notional(spec, notional(cmd.stop_price, _given(cmd.quantity)), market=True)
            elif last > 0:  # a trailing STOP_LOSS / TAKE_PROFIT without a stop price
                check_notional(spec, notional(last, _given(cmd.quantity)), market=True)
            if t in LIMIT_TYPES:
                check_percent_price(spec, _given(cmd.price), last)
                self._check_percent_price_by_side(spec, cmd.side, _given(cmd.price), last)
            if cmd.trailing_delta is not None:
                self._check_trailing_delta(spec, t, cmd.side, cmd.trailing_delta)
            if cmd.iceberg_qty is not None:
                parts = -(-_given(cmd.quantity) // cmd.iceberg_qty)
                if parts > spec.iceberg_parts:
                    raise errors.filter_failure("ICEBERG_PARTS")
        except BinanceError as e:
            return e
        mine = self._mine(sym, cmd.account_id)
        if len(mine) >= spec.max_num_orders:
            return errors.filter_failure("MAX_NUM_ORDERS")
        if is_stop and len([o for o in mine if o.pending_stop]) >= spec.max_num_algo_orders:
            return errors.filter_failure("MAX_NUM_ALGO_ORDERS")
        if cmd.iceberg_qty is not None and (
            len([o for o in mine if o.is_iceberg]) >= spec.max_num_iceberg_orders
        ):
            return errors.filter_failure("MAX_NUM_ICEBERG_ORDERS")
        everywhere = [o for s in self.symbols.values() for o in self._mine(s, cmd.account_id)]
        if len(everywhere) >= EXCHANGE_MAX_NUM_ORDERS:
            return errors.filter_failure("EXCHANGE_MAX_NUM_ORDERS")
        if is_stop and sum(o.pending_stop for o in everywhere) >= EXCHANGE_MAX_NUM_ALGO_ORDERS:
            return errors.filter_failure("EXCHANGE_MAX_NUM_ALGO_ORDERS")
        if cmd.iceberg_qty is not None and (
            sum(o.is_iceberg for o in everywhere) >= EXCHANGE_MAX_NUM_ICEBERG_ORDERS
        ):
            return errors.filter_failure("EXCHANGE_MAX_NUM_ICEBERG_ORDERS")
        return None

    def _state_error(self, sym: RefSymbol, cmd: NewOrder) -> BinanceError | None:
        """Duplicate client id, would trigger, would take."""
        t = cmd.type
        last = sym.last_price
        if any(
            o.info.client_order_id == cmd.client_order_id for o in self._mine(sym, cmd.account_id)
        ):
            return errors.rejected(errors.MSG_DUPLICATE_ORDER)
        if (
            t in STOP_TYPES
            and cmd.stop_price is not None
            and last > 0
            and self._stop_holds(t, cmd.side, cmd.stop_price, last)
        ):
            return errors.rejected(errors.MSG_WOULD_TRIGGER)
        if t is OrderType.LIMIT_MAKER and self._would_take(sym, cmd.side, _given(cmd.price)):
            return errors.rejected(errors.MSG_WOULD_TAKE)
        return None

    def _would_take(self, sym: RefSymbol, side: Side, price: int) -> bool:
        opposite = self._levels(sym, Side.SELL if side is Side.BUY else Side.BUY)
        if not opposite:
            return False
        best = opposite[0][0]
        return price >= best if side is Side.BUY else price <= best

    def _lock_for(self, sym: RefSymbol, cmd: NewOrder) -> int:
        """What an order locks when placed now."""
        t = cmd.type
        if cmd.side is Side.BUY:
            if cmd.price is not None:
                return notional(cmd.price, _given(cmd.quantity))
            if t is OrderType.MARKET and cmd.quote_order_qty is not None:
                return cmd.quote_order_qty
            if t is OrderType.MARKET:
                return self._walk_buy_cost(sym, _given(cmd.quantity))
            return 0  # STOP_LOSS / TAKE_PROFIT BUY lock when triggered
        if t is OrderType.MARKET and cmd.quote_order_qty is not None:
            return self._walk_sell_base(sym, cmd.quote_order_qty)
        return _given(cmd.quantity)

    @staticmethod
    def _check_percent_price_by_side(spec: SymbolSpec, side: Side, price: int, last: int) -> None:
        """filters.md: a BUY within [last * bidMultiplierDown, last * bidMultiplierUp], a SELL
        within the ask multipliers; a market without the filter sets them all to 0."""
        if last <= 0 or spec.bid_multiplier_up == 0:
            return
        if side is Side.BUY:
            low, high = spec.bid_multiplier_down, spec.bid_multiplier_up
        else:
            low, high = spec.ask_multiplier_down, spec.ask_multiplier_up
        ratio = Fraction(price, last)
        if not Fraction(low, SCALE) <= ratio <= Fraction(high, SCALE):
            raise errors.filter_failure("PERCENT_PRICE_BY_SIDE")

    @staticmethod
    def _check_trailing_delta(spec: SymbolSpec, t: OrderType, side: Side, delta: int) -> None:
        """The trailing stop FAQ's table: STOP_LOSS(_LIMIT) BUY and TAKE_PROFIT(_LIMIT) SELL
        use the "above" bounds, the other four the "below" ones."""
        stop_loss = t in (OrderType.STOP_LOSS, OrderType.STOP_LOSS_LIMIT)
        above = (stop_loss and side is Side.BUY) or (not stop_loss and side is Side.SELL)
        if above:
            bounds = (spec.min_trailing_above_delta, spec.max_trailing_above_delta)
        else:
            bounds = (spec.min_trailing_below_delta, spec.max_trailing_below_delta)
        if not bounds[0] <= delta <= bounds[1]:
            raise errors.filter_failure("TRAILING_DELTA")

    @staticmethod
    def _stop_holds(t: OrderType, side: Side, stop_price: int, last: int) -> bool:
        rising = (t in (OrderType.STOP_LOSS, OrderType.STOP_LOSS_LIMIT)) == (side is Side.BUY)
        return last >= stop_price if rising else last <= stop_price

    def _place(self, cmd: NewOrder) -> tuple[BinanceError | None, OrderResult | None]:
        error, lock = self._check_new(cmd)
        if error is not None:
            return error, None
        sym = self.symbols[cmd.symbol]
        spec = sym.spec
        info = OrderInfo(
            order_id=sym.next_order_id,
            account_id=cmd.account_id,
            symbol=cmd.symbol,
            client_order_id=cmd.client_order_id,
            side=cmd.side,
            type=cmd.type,
            time_in_force=None if cmd.type in NO_TIF_TYPES else cmd.time_in_force,
            quantity=cmd.quantity or 0,
            price=cmd.price or 0,
            stop_price=cmd.stop_price or 0,
            iceberg_qty=cmd.iceberg_qty or 0,
            quote_order_qty=cmd.quote_order_qty or 0,
            stp_mode=cmd.stp_mode if cmd.stp_mode is not None else spec.default_stp,
            created_ts=cmd.ts,
            trailing_delta=cmd.trailing_delta or 0,
        )
        sym.next_order_id += 1
        order = RefOrder(
            info=info,
            remaining=info.quantity,
            lock_asset=spec.quote_asset if cmd.side is Side.BUY else spec.base_asset,
        )
        self._lock(order, lock)
        if cmd.type in STOP_TYPES:
            order.pending_stop = True
            if cmd.trailing_delta is not None and cmd.stop_price is None and sym.last_price > 0:
                self._start_tracking(order, sym.last_price)  # FAQ scenario E: from the last
            sym.stops.append(order)
            self._report(order, ExecutionType.NEW)
            return None, self._result(order)
        order.working_ts = self.ts
        self._report(order, ExecutionType.NEW)
        price_before = sym.last_price
        self._run_taker(sym, order, cmd.type)
        if sym.last_price != price_before or any(o.fired for o in sym.stops):
            self._trigger_stops(sym)
        # as the command left it, with all of this command's fills (a stop triggered by it may
        # have traded against it as a maker)
        result = self._result(order)
        self._place_due()
        return None, result

    # ------------------------------------------------------------------ matching
    def _trigger_stops(self, sym: RefSymbol) -> None:
        while True:
            holding = [
                o
                for o in sym.stops
                if o.fired
                or (
                    not o.info.trailing_delta
                    and self._stop_holds(o.info.type, o.side, o.info.stop_price, sym.last_price)
                )
            ]
            if not holding:
                return
            stop = min(holding, key=lambda o: o.info.order_id)
            sym.stops.remove(stop)
            stop.pending_stop = False
            stop.working_ts = self.ts
            self._report(stop, ExecutionType.NEW)
            lst = self._list_of(stop)
            if lst is not None and stop in lst.pair:
                self._fire(lst, stop)
            if stop.info.type in (OrderType.STOP_LOSS, OrderType.TAKE_PROFIT):
                if stop.side is Side.BUY:
                    cost = self._walk_buy_cost(sym, stop.remaining)
                    if self._free(stop.account, stop.lock_asset) < cost:
                        stop.status = OrderStatus.EXPIRED
                        self._report(
                            stop, ExecutionType.EXPIRED, reject_reason="INSUFFICIENT_BALANCE"
                        )
                        continue
                    self._lock(stop, cost)
                self._run_taker(sym, stop, OrderType.MARKET)
            else:
                self._run_taker(sym, stop, OrderType.LIMIT)

    def _start_tracking(self, order: RefOrder, price: int) -> None:
        order.tracking = True
        order.best_price = price
        order.info = msgspec.structs.replace(order.info, trailing_time=self.ts)

    def _watch_trailing(self, sym: RefSymbol, price: int) -> None:
        """Every trade moves the trailing stops of its symbol (the trailing stop FAQ): one not
        yet tracking starts at the first trade that meets its stop price (any trade, without
        one); one tracking fires when the price has come back by trailingDelta BIPS from the
        best price since it started, and otherwise records a better best price."""
        for order in sym.stops:
            delta = order.info.trailing_delta
            if not delta or order.fired:
                continue
            if not order.tracking:
                stop = order.info.stop_price
                if stop == 0 or self._stop_holds(order.info.type, order.side, stop, price):
                    self._start_tracking(order, price)
                continue
            move = Fraction(price - order.best_price, order.best_price) * 10_000
            if order.side is Side.BUY:
                if move >= delta:
                    order.fired = True
                order.best_price = min(order.best_price, price)
            else:
                if -move >= delta:
                    order.fired = True
                order.best_price = max(order.best_price, price)

    def _crosses(self, taker: RefOrder, behaves: OrderType, maker_price: int) -> bool:
        if behaves is OrderType.MARKET:
            return True
        if taker.side is Side.BUY:
            return maker_price <= taker.info.price
        return maker_price >= taker.info.price

    def _filled(self, order: RefOrder) -> bool:
        if order.by_quote:
            return order.quote_done or order.budget_left == 0
        return order.remaining == 0

    def _quote_done(self, sym: RefSymbol, taker: RefOrder) -> bool:
        """rest-api.md: a MARKET order by quoteOrderQty "will not break LOT_SIZE filter rules;
        the order will execute a quantity that will have the notional value as close as
        possible to quoteOrderQty". So once it has traded, it is done (FILLED) as soon as the
        next price on the book cannot take one more step of it; an empty book is liquidity
        running out instead (it expires)."""
        opposite = Side.SELL if taker.side is Side.BUY else Side.BUY
        maker = self._best(sym, opposite)
        if maker is None or taker.executed == 0:
            return False
        can = taker.available_at(maker.info.price, sym.spec.step_size)
        if taker.side is Side.SELL:
            can = min(can, taker.locked)
        return can == 0

    def _run_taker(self, sym: RefSymbol, taker: RefOrder, behaves: OrderType) -> None:
        """Match a taker (``behaves`` is MARKET or LIMIT/LIMIT_MAKER) and finish it."""
        spec = sym.spec
        step = spec.step_size
        tif = taker.info.time_in_force
        opposite = Side.SELL if taker.side is Side.BUY else Side.BUY
        if tif is TimeInForce.FOK:
            fillable = sum(
                o.remaining
                for o in sym.resting
                if o.side is opposite
                and self._crosses(taker, behaves, o.info.price)
                and (o.account != taker.account or taker.info.stp_mode is StpMode.NONE)
            )
            if fillable < taker.remaining:
                taker.status = OrderStatus.EXPIRED
                self._unlock(taker, taker.locked)
                self._report(taker, ExecutionType.EXPIRED)
                return
        expired_in_match = False
        while not self._filled(taker):
            maker = self._best(sym, opposite)
            if maker is None or not self._crosses(taker, behaves, maker.info.price):
                break
            price = maker.info.price
            # how much this match can be
            if taker.by_quote:
                qty = min(maker.displayed(), taker.available_at(price, step))
            else:
                qty = min(taker.remaining, maker.displayed())
            if behaves is OrderType.MARKET and taker.side is Side.BUY and not taker.by_quote:
                afford = taker.locked * SCALE // price
                qty = min(qty, afford - afford % step)
            if taker.by_quote and taker.side is Side.SELL:
                qty = min(qty, taker.locked)
            if qty == 0:
                break
            if maker.account == taker.account and taker.info.stp_mode is not StpMode.NONE:
                expired_in_match = self._prevent(sym, taker, maker)
                if expired_in_match:
                    break
                continue
            self._trade(sym, taker, maker, price, qty, behaves)
        if expired_in_match:
            self._unlock(taker, taker.locked)
            return
        if self._filled(taker):
            self._unlock(taker, taker.locked)
            return
        if behaves is not OrderType.MARKET and tif in (None, TimeInForce.GTC):
            # rests (LIMIT GTC, LIMIT_MAKER, triggered *_LIMIT GTC)
            self.arrival += 1
            taker.arrival = self.arrival
            if taker.is_iceberg:
                taker.slice = min(taker.info.iceberg_qty, taker.remaining)
            sym.resting.append(taker)
            return
        taker.status = OrderStatus.EXPIRED
        self._unlock(taker, taker.locked)
        self._report(taker, ExecutionType.EXPIRED)

    def _prevent(self, sym: RefSymbol, taker: RefOrder, maker: RefOrder) -> bool:
        mode = taker.info.stp_mode
        price = maker.info.price
        # a quote-qty taker's "remaining quantity": what its budget buys at the maker's price
        taker_left = taker.available_at(price, sym.spec.step_size)
        if mode is StpMode.DECREMENT:
            # stp_faq.md: both orders' prevented quantity grows by the prevented match's;
            # the smaller order expires, both if they are equal
            prevented = min(maker.remaining, taker_left)
            maker_expires = maker.remaining == prevented
            taker_expires = taker_left == prevented
            maker_qty = taker_qty = prevented
        else:
            maker_expires = mode in (StpMode.EXPIRE_MAKER, StpMode.EXPIRE_BOTH)
            taker_expires = mode in (StpMode.EXPIRE_TAKER, StpMode.EXPIRE_BOTH)
            maker_qty = maker.remaining if maker_expires else 0
            taker_qty = taker_left if taker_expires else 0
        pm_id = sym.next_prevented_id
        sym.next_prevented_id += 1
        self._emit(
            PreventedMatch,
            symbol=sym.spec.symbol,
            prevented_match_id=pm_id,
            taker_order_id=taker.info.order_id,
            maker_order_id=maker.info.order_id,
            account_id=taker.account,
            stp_mode=mode,
            price=maker.info.price,
            maker_prevented_qty=maker_qty,
            taker_prevented_qty=taker_qty,
        )
        if maker_expires:
            sym.resting.remove(maker)
            self._unlock(maker, maker.locked)
            maker.status = OrderStatus.EXPIRED_IN_MATCH
        if maker_qty:
            maker.prevented += maker_qty
            if not maker_expires:
                # DECREMENT: it stays where it is in the queue, with less to trade
                maker.remaining -= maker_qty
                maker.slice = min(maker.slice, maker.remaining)
                freed = notional(price, maker_qty) if maker.side is Side.BUY else maker_qty
                self._unlock(maker, min(freed, maker.locked))
            self._report(
                maker,
                ExecutionType.TRADE_PREVENTION,
                prevented_match_id=pm_id,
                last_prevented_qty=maker_qty,
                counter_order_id=taker.info.order_id,
                is_maker=True,
            )
            lst = self._list_of(maker)
            if lst is not None and maker_expires:
                self._list_expires(lst, maker)
            elif lst is not None and maker in lst.pair:
                self._fire(lst, maker)  # an OCO leg that lost quantity works alone from here
        if taker_expires:
            taker.status = OrderStatus.EXPIRED_IN_MATCH
        if taker_qty:
            taker.prevented += taker_qty
            if not taker_expires:
                prevented_quote = notional(price, taker_qty)
                if taker.by_quote:
                    taker.prevented_quote += prevented_quote
                else:
                    taker.remaining -= taker_qty
                if taker.side is Side.SELL:
                    freed = taker_qty
                elif taker.info.price == 0:
                    freed = prevented_quote  # a market BUY locked what the book would cost
                else:
                    freed = notional(taker.info.price, taker_qty)
                self._unlock(taker, min(freed, taker.locked))
            self._report(
                taker,
                ExecutionType.TRADE_PREVENTION,
                prevented_match_id=pm_id,
                last_prevented_qty=taker_qty,
                counter_order_id=maker.info.order_id,
            )
        return taker_expires

    def _trade(
        self,
        sym: RefSymbol,
        taker: RefOrder,
        maker: RefOrder,
        price: int,
        qty: int,
        behaves: OrderType,
    ) -> None:
        spec = sym.spec
        quote = notional(price, qty)
        trade_id = sym.next_trade_id
        sym.next_trade_id += 1
        buyer, seller = (taker, maker) if taker.side is Side.BUY else (maker, taker)
        self._emit(
            Trade,
            symbol=spec.symbol,
            trade_id=trade_id,
            price=price,
            qty=qty,
            quote_qty=quote,
            buyer_order_id=buyer.info.order_id,
            seller_order_id=seller.info.order_id,
            buyer_account_id=buyer.account,
            seller_account_id=seller.account,
            is_buyer_maker=buyer is maker,
        )
        sym.last_price = price
        self._watch_trailing(sym, price)
        commissions = {}
        for order in (maker, taker):
            is_maker = order is maker
            maker_rate, taker_rate = self._rates(order.account, spec)
            rate = maker_rate if is_maker else taker_rate
            if order.side is Side.BUY:
                # pays quote from its lock; a priced BUY releases the rest of notional(limit, qty)
                self._spend(order, quote)
                if order.info.price > 0 and not (order is taker and behaves is OrderType.MARKET):
                    self._unlock(order, notional(order.info.price, qty) - quote)
                fee = fee_for(qty, rate)
                self._credit(order.account, spec.base_asset, qty - fee)
                self._credit(FEE_ACCOUNT, spec.base_asset, fee)
                commissions[is_maker] = (fee, spec.base_asset)
            else:
                self._spend(order, qty)
                fee = fee_for(quote, rate)
                self._credit(order.account, spec.quote_asset, quote - fee)
                self._credit(FEE_ACCOUNT, spec.quote_asset, fee)
                commissions[is_maker] = (fee, spec.quote_asset)
            order.executed += qty
            order.cum_quote += quote
            if not order.by_quote:
                order.remaining -= qty
            order.status = (
                OrderStatus.FILLED if self._filled(order) else (OrderStatus.PARTIALLY_FILLED)
            )
            order.fills.append(
                Fill(
                    price=price,
                    qty=qty,
                    commission=commissions[is_maker][0],
                    commission_asset=commissions[is_maker][1],
                    trade_id=trade_id,
                )
            )
        # a filled maker leaves the book; a used-up iceberg slice refills at the back
        if maker.remaining == 0:
            sym.resting.remove(maker)
            self._unlock(maker, maker.locked)
        elif maker.is_iceberg:
            maker.slice -= qty
            if maker.slice == 0:
                maker.slice = min(maker.info.iceberg_qty, maker.remaining)
                self.arrival += 1
                maker.arrival = self.arrival
        if taker.by_quote and self._quote_done(sym, taker):
            # decided against the book as this trade left it (the filled maker gone)
            taker.quote_done = True
            taker.status = OrderStatus.FILLED
        for order in (maker, taker):
            fee, asset = commissions[order is maker]
            self._report(
                order,
                ExecutionType.TRADE,
                last_qty=qty,
                last_price=price,
                last_quote=quote,
                commission=fee,
                commission_asset=asset,
                trade_id=trade_id,
                is_maker=order is maker,
            )
        lst = self._list_of(maker)
        if lst is not None and maker in lst.pair:
            self._fire(lst, maker)
        elif lst is not None and maker is lst.working and maker.remaining == 0:
            self.due.append(lst)

    # ------------------------------------------------------------------ order lists
    # Written from docs/engine.md "Order lists" and Binance's rest-api.md / errors.md.

    def _list_of(self, order: RefOrder) -> RefList | None:
        if order.info.order_list_id < 0:
            return None
        lst = self.lists.get(order.info.order_list_id)
        return lst if lst is not None and order in lst.orders else None

    def _list_done(self, lst: RefList) -> None:
        del self.lists[lst.list_id]
        self._emit(ListStatus, order_list=lst.info(done=True))

    @staticmethod
    def _pair_error(above: NewOrder, below: NewOrder) -> BinanceError | None:
        if above.side is not below.side or above.quantity != below.quantity:
            return errors.invalid_parameter()
        allowed = (*STOP_LOSS_TYPES, *TAKE_PROFIT_TYPES, OrderType.LIMIT_MAKER)
        if above.type not in allowed or below.type not in allowed:
            return errors.OCO_ORDER_TYPE_ERROR
        if above.type is OrderType.LIMIT_MAKER and below.type is OrderType.LIMIT_MAKER:
            return errors.OCO_BOTH_LIMIT_ERROR
        if above.side is Side.BUY:
            # a buy OCO: the stop loss above, the limit maker / take profit below
            if above.type is OrderType.LIMIT_MAKER:
                return errors.BUY_OCO_LIMIT_ERROR
            if above.type in TAKE_PROFIT_TYPES:
                return errors.BUY_OCO_TAKE_PROFIT_ERROR
            if below.type in STOP_LOSS_TYPES:
                return errors.BUY_OCO_STOP_LOSS_ERROR
            return None
        if above.type in STOP_LOSS_TYPES:
            return errors.SELL_OCO_STOP_LOSS_ERROR
        if below.type is OrderType.LIMIT_MAKER:
            return errors.SELL_OCO_LIMIT_ERROR
        if below.type in TAKE_PROFIT_TYPES:
            return errors.SELL_OCO_TAKE_PROFIT_ERROR
        return None

    @staticmethod
    def _compared_price(leg: NewOrder) -> int:
        if leg.type in (OrderType.LIMIT_MAKER, OrderType.TAKE_PROFIT_LIMIT):
            return _given(leg.price)
        return _given(leg.stop_price)

    def _list_error(self, cmd: NewOrderList) -> BinanceError | None:
        """Every check of docs/engine.md's NEW_ORDER_LIST row but the balance, in order."""
        n = {"OCO": 2, "OTO": 2, "OTOCO": 3}.get(cmd.kind)
        if n is None:
            return errors.invalid_parameter("contingencyType")
        if len(cmd.orders) != n:
            return errors.invalid_parameter()
        if not re.fullmatch(r"[.A-Za-z0-9:/_-]{1,36}", cmd.list_client_order_id):
            return errors.illegal_chars("listClientOrderId", "^[\\.A-Z\\:/a-z0-9_-]{1,36}$")
        legs = cmd.orders
        if cmd.kind == "OCO":
            above, below = legs[0], legs[1]
        else:
            if legs[0].type not in (OrderType.LIMIT, OrderType.LIMIT_MAKER):
                return errors.INVALID_ORDER_TYPE_ERROR
            above, below = legs[-2], legs[-1]
        if cmd.kind != "OTO":
            err = self._pair_error(above, below)
            if err is not None:
                return err
        for leg in cmd.orders:
            if leg.account_id != cmd.account_id or leg.symbol != cmd.symbol:
                return errors.invalid_parameter()
            try:
                validate_new_order_shape(leg)
            except BinanceError as shape_error:
                return shape_error
            if leg.quote_order_qty is not None or leg.trailing_delta is not None:
                return errors.rejected(errors.MSG_UNSUPPORTED_COMBINATION)
        err = self._market_error(cmd.account_id, cmd.symbol)
        if err is not None:
            return err
        sym = self.symbols[cmd.symbol]
        for leg in legs:
            err = self._combination_error(sym.spec, leg)
            if err is not None:
                return err
        for leg in legs:
            err = self._filter_error(sym, leg)
            if err is not None:
                return err
        if cmd.kind != "OTO":
            high, low = self._compared_price(above), self._compared_price(below)
            last = sym.last_price if cmd.kind == "OCO" else 0
            if high <= low or (last > 0 and not low < last < high):
                return errors.rejected(errors.MSG_OCO_BAD_PRICES)
        placed_now = legs if cmd.kind == "OCO" else legs[:1]
        for leg in placed_now:
            err = self._state_error(sym, leg)
            if err is not None:
                return err
        mine = self._mine(sym, cmd.account_id)
        if len(mine) + len(legs) > sym.spec.max_num_orders:
            return errors.filter_failure("MAX_NUM_ORDERS")
        stops_in_list = len([leg for leg in legs if leg.type in STOP_TYPES])
        stops_open = len(
            [o for o in mine if o.pending_stop or (o in sym.pending and o.info.type in STOP_TYPES)]
        )
        if stops_in_list and stops_open + stops_in_list > sym.spec.max_num_algo_orders:
            return errors.filter_failure("MAX_NUM_ALGO_ORDERS")
        ids = [leg.client_order_id for leg in legs]
        taken = {o.info.client_order_id for o in mine}
        if len(set(ids)) < len(ids) or any(i in taken for i in ids):
            return errors.rejected(errors.MSG_DUPLICATE_ORDER)
        for lst in self.lists.values():
            if lst.account == cmd.account_id and lst.client_id == cmd.list_client_order_id:
                return errors.rejected(errors.MSG_DUPLICATE_ORDER)
        return None

    def _share(self, lst: RefList, pair: list[RefOrder], needs: dict[int, int]) -> None:
        """An OCO pair locks its larger need once; the limit maker holds its own need."""
        lst.pair = pair
        lst.needs = needs
        makers = [o for o in pair if o.info.type is OrderType.LIMIT_MAKER]
        first = makers[0] if makers else pair[0]
        other = pair[1] if first is pair[0] else pair[0]
        self._lock(first, needs[first.info.order_id])
        self._lock(other, max(0, needs[other.info.order_id] - needs[first.info.order_id]))

    def _rest_now(self, sym: RefSymbol, order: RefOrder) -> None:
        self.arrival += 1
        order.arrival = self.arrival
        if order.is_iceberg:
            order.slice = min(order.info.iceberg_qty, order.remaining)
        sym.resting.append(order)

    def _new_list_cmd(self, cmd: NewOrderList) -> HandlerResult:
        e = self._list_error(cmd)
        if e is not None:
            return e.code, e.msg, ()
        sym = self.symbols[cmd.symbol]
        spec = sym.spec
        legs = list(cmd.orders)
        needs = [self._lock_for(sym, leg) for leg in legs]
        lock = max(needs) if cmd.kind == "OCO" else needs[0]
        lock_asset = spec.quote_asset if legs[0].side is Side.BUY else spec.base_asset
        if self._free(cmd.account_id, lock_asset) < lock:
            e = errors.rejected(errors.MSG_INSUFFICIENT_BALANCE)
            return e.code, e.msg, ()
        list_id = self.next_list_id
        self.next_list_id += 1
        # order ids: working, then the pair's stop-loss leg, then its other leg
        numbering = list(range(len(legs)))
        if cmd.kind != "OTO":
            a, b = len(legs) - 2, len(legs) - 1
            if legs[a].type not in STOP_LOSS_TYPES:
                numbering[a], numbering[b] = b, a
        made: dict[int, RefOrder] = {}
        for i in numbering:
            leg = legs[i]
            info = OrderInfo(
                order_id=sym.next_order_id,
                account_id=cmd.account_id,
                symbol=cmd.symbol,
                client_order_id=leg.client_order_id,
                side=leg.side,
                type=leg.type,
                time_in_force=leg.time_in_force,
                quantity=_given(leg.quantity),
                price=leg.price or 0,
                stop_price=leg.stop_price or 0,
                iceberg_qty=leg.iceberg_qty or 0,
                quote_order_qty=0,
                stp_mode=leg.stp_mode if leg.stp_mode is not None else spec.default_stp,
                created_ts=cmd.ts,
                order_list_id=list_id,
            )
            sym.next_order_id += 1
            leg_asset = spec.quote_asset if leg.side is Side.BUY else spec.base_asset
            made[i] = RefOrder(info=info, remaining=info.quantity, lock_asset=leg_asset)
        orders = sorted(made.values(), key=lambda o: o.info.order_id)
        lst = RefList(list_id, cmd.account_id, cmd.symbol, cmd.kind, cmd.list_client_order_id,
                      cmd.ts, orders)  # fmt: skip
        self.lists[list_id] = lst
        if cmd.kind == "OCO":
            pair = orders
            self._share(lst, pair, {made[i].info.order_id: needs[i] for i in range(2)})
            for o in pair:
                if o.info.type in STOP_TYPES:
                    o.pending_stop = True
                    sym.stops.append(o)
        else:
            lst.working = made[0]
            self._lock(made[0], needs[0])
            for o in orders:
                if o is not made[0]:
                    o.status = OrderStatus.PENDING_NEW
                    sym.pending.append(o)
        for o in orders:
            if o.status is OrderStatus.PENDING_NEW:
                self._report(o, ExecutionType.NEW, is_working=False)
            elif o.pending_stop:
                self._report(o, ExecutionType.NEW)
            else:
                o.working_ts = self.ts
                self._report(o, ExecutionType.NEW)
        self._emit(ListStatus, order_list=lst.info(done=False))
        working = lst.working
        for o in orders:
            if o.info.type is OrderType.LIMIT_MAKER and o.status is OrderStatus.NEW:
                self._rest_now(sym, o)
        if working is not None and working.info.type is OrderType.LIMIT:
            price_before = sym.last_price
            self._run_taker(sym, working, OrderType.LIMIT)
            if sym.last_price != price_before or any(o.fired for o in sym.stops):
                self._trigger_stops(sym)
        if working is not None and working.status is OrderStatus.FILLED:
            if lst not in self.due:
                self.due.append(lst)
        elif working is not None and working.status in ENDED:
            self._list_expires(lst, working)
        parts = [ReplyPart(Outcome.SUCCESS, 0, "", self._result(o)) for o in orders]
        self.reply_list = lst.info(done=list_id not in self.lists)
        self._place_due()
        return 0, "", parts

    def _cancel_list_cmd(self, cmd: CancelOrderList) -> HandlerResult:
        if cmd.symbol not in self.symbols:
            e = errors.INVALID_SYMBOL_ERROR
            return e.code, e.msg, ()
        if cmd.order_list_id is None and cmd.list_client_order_id is None:
            e = errors.mandatory("orderListId")
            return e.code, e.msg, ()
        found = None
        for lst in self.lists.values():
            if lst.account != cmd.account_id or lst.symbol != cmd.symbol:
                continue
            if cmd.order_list_id is not None:
                if lst.list_id == cmd.order_list_id and cmd.list_client_order_id in (
                    None,
                    lst.client_id,
                ):
                    found = lst
            elif lst.client_id == cmd.list_client_order_id:
                found = lst
        if found is None:
            e = errors.cancel_rejected()
            return e.code, e.msg, ()
        results = self._cancel_list(found, cmd.cancel_client_order_id)
        self.reply_list = found.info(done=True)
        return 0, "", [ReplyPart(Outcome.SUCCESS, 0, "", r) for r in results]

    def _cancel_list(self, lst: RefList, cancel_client_order_id: str) -> list[OrderResult]:
        del self.lists[lst.list_id]
        results = [
            self._cancel_one(o, cancel_client_order_id) for o in lst.orders if o.status not in ENDED
        ]
        self._emit(ListStatus, order_list=lst.info(done=True))
        return results

    def _take_off(self, order: RefOrder) -> None:
        """A list's order that expires because its list ended."""
        sym = self.symbols[order.info.symbol]
        for where in (sym.resting, sym.stops, sym.pending):
            if order in where:
                where.remove(order)
        self._unlock(order, order.locked)
        order.status = OrderStatus.EXPIRED
        self._report(order, ExecutionType.EXPIRED)

    def _fire(self, lst: RefList, fired: RefOrder) -> None:
        """One leg of a live OCO starts working: the other expires, the list ends."""
        total = sum(o.locked for o in lst.pair)
        need = lst.needs[fired.info.order_id] if fired.info.type in STOP_TYPES else fired.locked
        entry = self._entry(fired.account, fired.lock_asset)
        for o in lst.pair:
            o.locked = 0
        fired.locked = need
        entry[0] += total - need
        entry[1] -= total - need
        for o in lst.pair:
            if o is not fired:
                self._take_off(o)
        self._list_done(lst)

    def _list_expires(self, lst: RefList, gone: RefOrder) -> None:
        """A list's order ended without filling (expired, or in match): the rest expire."""
        if lst.list_id not in self.lists:
            return
        sym = self.symbols[lst.symbol]
        for o in lst.pair:
            if o is not gone and o.status not in ENDED:
                self._take_off(o)
        for o in lst.orders:
            if o in sym.pending:
                sym.pending.remove(o)
                o.status = OrderStatus.EXPIRED
                self._report(o, ExecutionType.EXPIRED, is_working=False)
        self._list_done(lst)

    def _place_due(self) -> None:
        if self.placing_due:
            return
        self.placing_due = True
        try:
            while self.due:
                lst = self.due.pop(0)
                if lst.list_id in self.lists:
                    self._place_pending(lst)
        finally:
            self.placing_due = False

    def _pending_problem(self, sym: RefSymbol, pending: list[RefOrder]) -> str:
        needs = [self._lock_for(sym, self._as_new(o)) for o in pending]
        if max(needs) and self._free(pending[0].account, pending[0].lock_asset) < max(needs):
            return "INSUFFICIENT_BALANCES"
        for o in pending:
            info = o.info
            if info.type in STOP_TYPES:
                if sym.last_price > 0 and self._stop_holds(
                    info.type, info.side, info.stop_price, sym.last_price
                ):
                    return "STOP_PRICE_WOULD_TRIGGER_IMMEDIATELY"
            elif info.type is OrderType.LIMIT_MAKER and self._would_take(
                sym, info.side, info.price
            ):
                return "WOULD_MATCH_IMMEDIATELY"
        return ""

    @staticmethod
    def _as_new(o: RefOrder) -> NewOrder:
        i = o.info
        return NewOrder("", 0, i.account_id, i.symbol, i.side, i.type, i.client_order_id,
                        quantity=i.quantity, price=i.price or None)  # fmt: skip

    def _place_pending(self, lst: RefList) -> None:
        sym = self.symbols[lst.symbol]
        pending = [o for o in lst.orders if o in sym.pending]
        lst.working = None
        problem = self._pending_problem(sym, pending)
        if problem:
            for o in pending:
                sym.pending.remove(o)
                o.status = OrderStatus.EXPIRED
                self._report(o, ExecutionType.EXPIRED, reject_reason=problem, is_working=False)
            self._list_done(lst)
            return
        needs = {o.info.order_id: self._lock_for(sym, self._as_new(o)) for o in pending}
        for o in pending:
            sym.pending.remove(o)
            o.status = OrderStatus.NEW
            if o.info.type in STOP_TYPES:
                o.pending_stop = True
                sym.stops.append(o)
            else:
                o.working_ts = self.ts
            self._report(o, ExecutionType.NEW)
        if len(pending) == 2:
            self._share(lst, pending, needs)
            self._emit(ListStatus, order_list=lst.info(done=False))
            for o in pending:
                if o.info.type is OrderType.LIMIT_MAKER:
                    self._rest_now(sym, o)
            return
        (order,) = pending
        self._lock(order, needs[order.info.order_id])
        self._list_done(lst)
        t = order.info.type
        if t in STOP_TYPES:
            return
        if t is OrderType.LIMIT_MAKER:
            self._rest_now(sym, order)
            return
        price_before = sym.last_price
        self._run_taker(sym, order, OrderType.MARKET if t is OrderType.MARKET else OrderType.LIMIT)
        if sym.last_price != price_before or any(o.fired for o in sym.stops):
            self._trigger_stops(sym)

    # ------------------------------------------------------------------ invariants
    def check_invariants(self, totals: dict[str, int]) -> None:
        """Raise AssertionError if an invariant of docs/engine.md does not hold.

        ``totals``: asset -> deposits minus completed withdrawals, kept by the caller.
        """
        sums: dict[str, int] = {}
        for acct, assets in self.bal.items():
            for asset, (free, locked) in assets.items():
                assert free >= 0 and locked >= 0, f"negative balance {acct} {asset}"
                sums[asset] = sums.get(asset, 0) + free + locked
        for asset in set(sums) | set(totals):
            assert sums.get(asset, 0) == totals.get(asset, 0), f"{asset} total drifted"
        expected_locks: dict[tuple[int, str], int] = {}
        for w in self.withdrawals.values():
            if w.status == "REQUESTED":  # a requested withdrawal holds its amount locked
                key = (w.account, w.asset)
                expected_locks[key] = expected_locks.get(key, 0) + w.amount
        for sym in self.symbols.values():
            for o in sym.resting + sym.stops + sym.pending:
                key = (o.account, o.lock_asset)
                expected_locks[key] = expected_locks.get(key, 0) + o.locked
                assert o.remaining > 0 and o.executed + o.prevented + o.remaining == o.info.quantity
                if o in sym.resting:
                    if o.side is Side.BUY:
                        assert o.locked == notional(o.info.price, o.remaining)
                    else:
                        assert o.locked == o.remaining
            bids = [o.info.price for o in sym.resting if o.side is Side.BUY]
            asks = [o.info.price for o in sym.resting if o.side is Side.SELL]
            if bids and asks:
                assert max(bids) < min(asks), f"{sym.spec.symbol} crossed"
        for acct, assets in self.bal.items():
            for asset, (_free, locked) in assets.items():
                assert locked == expected_locks.get((acct, asset), 0), (
                    f"locked {acct} {asset} = {locked}, orders lock "
                    f"{expected_locks.get((acct, asset), 0)}"
                )
