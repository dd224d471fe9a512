"""Order lists: OCO, OTO and OTOCO (docs/engine.md, "Order lists").

The engine keeps each list's orders as ordinary ``Order`` objects (resting, untriggered stop,
or pending: not yet placed); this module holds what ties them together and reacts to the
engine's hooks: a leg traded, triggered, cancelled or expired in match. Everything else
(matching, stops, balances) stays the engine's.

Money: an OCO's two legs can never both execute, so the pair locks once, the larger of what
each leg would lock alone. The resting leg (a LIMIT_MAKER) holds its own lock, because the
book expects a resting order to hold exactly what it still needs; the other leg holds the
rest. When one leg starts working, the pair's whole lock is released and the working leg
locks what it needs, all within the command, so only the net change is ever reported.
A pending order locks nothing until it is placed; if the account cannot pay for it then, it
expires (as on Binance, whose pending orders are funded by the working order's fill).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bourse.domain import errors
from bourse.domain.amounts import SCALE
from bourse.domain.commands import CancelOrderList, NewOrder, NewOrderList
from bourse.domain.enums import (
    STOP_TYPES,
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
)
from bourse.domain.events import (
    ExecutionReport,
    Fill,
    ListStatus,
    OrderInfo,
    OrderListInfo,
    OrderResult,
    ReplyPart,
)
from bourse.domain.order_lists import STOP_LOSS_TYPES, validate_order_list_shape
from bourse.engine import acceptance
from bourse.engine.cancels import cancel_one
from bourse.engine.command_output import release, touch
from bourse.engine.matching import rest, take
from bourse.engine.orders import Order
from bourse.engine.stop_triggers import observe_trades, run_stops
from bourse.engine.stops import would_trigger

if TYPE_CHECKING:
    from bourse.engine.state import EngineState, Result
    from bourse.engine.symbol_state import SymbolState

_ENDED = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.EXPIRED, OrderStatus.EXPIRED_IN_MATCH}
)
_EXECUTING = ListOrderStatus.EXECUTING
_ALL_DONE = ListOrderStatus.ALL_DONE
# Why a pending order could not be placed, as executionReport's reject reason names it.
_REASONS = {
    errors.MSG_INSUFFICIENT_BALANCE: "INSUFFICIENT_BALANCES",
    errors.MSG_WOULD_TRIGGER: "STOP_PRICE_WOULD_TRIGGER_IMMEDIATELY",
    errors.MSG_WOULD_TAKE: "WOULD_MATCH_IMMEDIATELY",
}


class OrderList:
    __slots__ = (
        "account_id",
        "client_id",
        "contingency",
        "created_ts",
        "legs",
        "list_id",
        "needs",
        "oco",
        "pending",
        "refs",
        "symbol",
        "working",
    )

    def __init__(self, list_id: int, account_id: int, symbol: str, contingency: ContingencyType,
                 client_id: str, created_ts: int) -> None:  # fmt: skip
        self.list_id = list_id
        self.account_id = account_id
        self.symbol = symbol
        self.contingency = contingency
        self.client_id = client_id
        self.created_ts = created_ts
        self.legs: list[Order] = []  # every order, ascending id
        self.refs: tuple[tuple[int, str], ...] = ()  # (order id, client order id) of each leg
        self.working: Order | None = None  # OTO / OTOCO: the order whose fill places the rest
        self.pending: list[Order] = []  # not yet placed (PENDING_NEW)
        self.oco: list[Order] = []  # the live OCO pair, once placed
        self.needs: dict[int, int] = {}  # OCO leg id -> what it locks once it works

    def info(self, status_type: ListStatusType, status: ListOrderStatus) -> OrderListInfo:
        return OrderListInfo(
            self.list_id, self.account_id, self.symbol, self.contingency, status_type, status,
            self.client_id, self.created_ts, self.refs,
        )  # fmt: skip


class OrderLists:
    """Every open order list, plus the list id sequence (one for the whole exchange, since
    Binance queries a list by ``orderListId`` alone)."""

    __slots__ = ("cascaded", "due", "next_list_id", "of_order", "open", "reply", "running")

    def __init__(self) -> None:
        self.next_list_id = 0  # Binance numbers order lists from 0
        self.open: dict[int, OrderList] = {}  # list id -> list, ascending
        self.of_order: dict[tuple[str, int], OrderList] = {}  # (symbol, order id) -> open list
        # Per-command scratch.
        self.due: list[OrderList] = []  # OTO lists whose working order just filled
        self.running = False
        self.reply: OrderListInfo | None = None
        self.cascaded: list[OrderResult] = []  # legs cancelled along with the one asked for

    def take_reply(self) -> OrderListInfo | None:
        """The command's list for its Reply; also ends the command's scratch."""
        reply, self.reply = self.reply, None
        self.cascaded.clear()
        return reply

    def take_cascaded(self) -> list[ReplyPart]:
        parts = [ReplyPart(Outcome.SUCCESS, 0, "", r) for r in self.cascaded]
        self.cascaded.clear()
        return parts

    def list_of(self, order: Order) -> OrderList | None:
        if order.info.order_list_id < 0:
            return None
        return self.of_order.get((order.info.symbol, order.order_id))

    def find_pending(self, symbol: str, order_id: int) -> Order | None:
        lst = self.of_order.get((symbol, order_id))
        if lst is not None:
            for order in lst.pending:
                if order.order_id == order_id:
                    return order
        return None

    def pending_count(self, symbol: str) -> int:
        return sum(len(lst.pending) for lst in self.open.values() if lst.symbol == symbol)

    # ------------------------------------------------------------------ placing a list

    def place(self, engine: EngineState, cmd: NewOrderList) -> tuple[ReplyPart, ...]:
        legs = list(validate_order_list_shape(cmd))
        sym = _check_market(engine, cmd)
        is_oco = cmd.kind == "OCO"
        live = legs if is_oco else legs[:1]  # what goes to the book or the stops now
        stp = [acceptance.check_combination(sym.spec, leg) for leg in legs]
        for leg in legs:
            acceptance.check_filters(sym, leg)
            acceptance.check_exchange_filters(engine._symbols.values(), leg)
        if is_oco:
            _check_oco_prices(legs[0], legs[1], sym.last_price)
        elif cmd.kind == "OTOCO":
            _check_oco_prices(legs[1], legs[2], 0)
        for leg in live:
            acceptance.check_state(sym, leg)
        _check_counts(sym, legs)
        self._check_client_ids(sym, cmd, legs)
        needs = [_lock_needed(leg) for leg in legs]
        lock = max(needs) if is_oco else needs[0]
        is_buy = legs[0].side == Side.BUY
        lock_asset = sym.quote if is_buy else sym.base
        entry = engine._bal.accounts.get((cmd.account_id, lock_asset))
        if lock and (entry is None or entry[0] < lock):
            raise errors.rejected(errors.MSG_INSUFFICIENT_BALANCE)

        # Accepted: from here on state changes.
        engine._cmd_sym = sym
        ts = engine._ts
        contingency = ContingencyType.OCO if is_oco else ContingencyType.OTO
        lst = OrderList(self.next_list_id, cmd.account_id, sym.spec.symbol, contingency,
                        cmd.list_client_order_id, ts)  # fmt: skip
        self.next_list_id += 1
        order_of: dict[int, Order] = {}
        for i in _id_order(cmd.kind, legs):
            order_of[i] = _new_order(engine, sym, legs[i], stp[i], lst.list_id)
        orders = [order_of[i] for i in range(len(legs))]
        lst.legs = sorted(orders, key=_order_id)
        lst.refs = tuple((o.order_id, o.info.client_order_id) for o in lst.legs)
        self.open[lst.list_id] = lst
        for order in orders:
            self.of_order[(lst.symbol, order.order_id)] = lst
            is_pending = not is_oco and order is not orders[0]
            if is_pending or (is_oco and order.info.type in STOP_TYPES):
                # Orders that rest now are indexed by matching.rest.
                sym.open_of(order.account_id)[order.info.client_order_id] = order
        if is_oco:
            lst.oco = sorted(orders, key=_order_id)
            _share_lock(engine, lst, {o.order_id: n for o, n in zip(orders, needs, strict=True)})
        else:
            lst.working = orders[0]
            lst.pending = sorted(orders[1:], key=_order_id)
            _hold(engine, orders[0], needs[0])
        events = engine._events
        for order in lst.legs:
            if order in lst.pending:
                order.status = OrderStatus.PENDING_NEW
                events.append(_report(ts, order, ExecutionType.NEW, OrderStatus.PENDING_NEW))
            elif order.info.type in STOP_TYPES:
                sym.stops.add(order)
                events.append(_report(ts, order, ExecutionType.NEW, OrderStatus.NEW))
            else:
                order.working_ts = ts
                events.append(_report(ts, order, ExecutionType.NEW, OrderStatus.NEW, True))
        events.append(ListStatus(0, ts, lst.info(ListStatusType.EXEC_STARTED, _EXECUTING)))
        # Every order is placed; the first to work: an OCO's LIMIT_MAKER rests, an OTO's
        # working order may trade at once.
        for order in orders:
            if order.info.type is OrderType.LIMIT_MAKER and (is_oco or order is lst.working):
                rest(engine, sym, order)
        working = lst.working
        fills: list[Fill] = []
        if working is not None and working.info.type is OrderType.LIMIT:
            _take_as_new_order(engine, sym, working, fills)
        if working is not None and working.status is OrderStatus.FILLED:
            if lst not in self.due:
                self.due.append(lst)
        elif working is not None and working.status in _ENDED:
            self._end_pending(engine, sym, lst)
        # The reply shows the list as placed: pending orders of a working order that filled
        # at once are still PENDING_NEW there (rest-api.md, OTO), placed just after.
        parts = tuple(
            ReplyPart(Outcome.SUCCESS, 0, "", _result(o, fills=fills if o is working else []))
            for o in lst.legs
        )
        if self.open.get(lst.list_id) is lst:
            self.reply = lst.info(ListStatusType.EXEC_STARTED, _EXECUTING)
        else:
            self.reply = lst.info(ListStatusType.ALL_DONE, _ALL_DONE)
        self.run_due(engine)
        return parts

    def _check_client_ids(self, sym: SymbolState, cmd: NewOrderList, legs: list[NewOrder]) -> None:
        ids = [leg.client_order_id for leg in legs]
        open_orders = sym.by_account.get(cmd.account_id) or {}
        if len(set(ids)) != len(ids) or any(i in open_orders for i in ids):
            raise errors.rejected(errors.MSG_DUPLICATE_ORDER)
        for lst in self.open.values():
            if lst.account_id == cmd.account_id and lst.client_id == cmd.list_client_order_id:
                raise errors.rejected(errors.MSG_DUPLICATE_ORDER)

    # ------------------------------------------------------------------ engine hooks

    def run_due(self, engine: EngineState) -> None:
        """Place the pending orders of lists whose working order filled (after the match that
        filled it: placing orders inside a match would change the book being walked)."""
        if self.running:
            return
        self.running = True
        try:
            while self.due:
                lst = self.due.pop(0)
                if self.open.get(lst.list_id) is lst:
                    self._activate_pending(engine, engine._symbols[lst.symbol], lst)
        finally:
            self.running = False

    def on_maker_trade(self, engine: EngineState, sym: SymbolState, maker: Order) -> None:
        """A list's resting order traded: an OCO leg starts working; an OTO's working order
        that filled makes its list due."""
        lst = self.of_order.get((sym.spec.symbol, maker.order_id))
        if lst is None:
            return
        if maker in lst.oco:
            self._oco_fires(engine, sym, lst, maker)
        elif maker is lst.working and maker.remaining == 0 and lst not in self.due:
            self.due.append(lst)

    def on_trigger(self, engine: EngineState, sym: SymbolState, order: Order) -> None:
        """A list's stop triggered (already out of the stops and the open orders)."""
        lst = self.of_order.get((sym.spec.symbol, order.order_id))
        if lst is not None and order in lst.oco:
            self._oco_fires(engine, sym, lst, order)

    def on_maker_expired(self, engine: EngineState, sym: SymbolState, maker: Order) -> None:
        """A list's resting order expired in match (STP): the rest of its list expires."""
        lst = self.of_order.get((sym.spec.symbol, maker.order_id))
        if lst is None:
            return
        for order in lst.oco:
            if order is not maker:
                _expire(engine, sym, order)
        self._end_pending(engine, sym, lst)

    def cancel_leg(self, engine: EngineState, sym: SymbolState, lst: OrderList, order: Order,
                   cancel_client_id: str) -> OrderResult:  # fmt: skip
        """Cancelling one order of a list cancels the whole list; the asked-for order's
        result is returned, the others' are kept in ``cascaded``."""
        results = self._cancel_list(engine, sym, lst, cancel_client_id)
        asked = next(r for r in results if r.order.order_id == order.order_id)
        self.cascaded.extend(r for r in results if r is not asked)
        return asked

    def cancel(self, engine: EngineState, cmd: CancelOrderList) -> tuple[ReplyPart, ...]:
        sym = engine._symbol(cmd.symbol)
        if cmd.order_list_id is None and cmd.list_client_order_id is None:
            raise errors.mandatory("orderListId")
        lst: OrderList | None = None
        if cmd.order_list_id is not None:
            lst = self.open.get(cmd.order_list_id)
            if lst is not None and cmd.list_client_order_id not in (None, lst.client_id):
                lst = None
        else:
            for candidate in self.open.values():
                if (candidate.account_id, candidate.client_id) == (
                    cmd.account_id,
                    cmd.list_client_order_id,
                ):
                    lst = candidate
                    break
        if lst is None or lst.account_id != cmd.account_id or lst.symbol != sym.spec.symbol:
            raise errors.cancel_rejected()  # "Unknown order sent.", as for an order
        results = self._cancel_list(engine, sym, lst, cmd.cancel_client_order_id)
        self.reply = lst.info(ListStatusType.ALL_DONE, _ALL_DONE)
        return tuple(ReplyPart(Outcome.SUCCESS, 0, "", r) for r in results)

    # ------------------------------------------------------------------ transitions

    def _cancel_list(self, engine: EngineState, sym: SymbolState, lst: OrderList,
                     cancel_client_id: str) -> list[OrderResult]:  # fmt: skip
        self._close(lst)
        engine._cmd_sym = sym
        results = []
        for order in lst.legs:
            if order in lst.pending:
                del sym.by_account[order.account_id][order.info.client_order_id]
                order.status = OrderStatus.CANCELED
                engine._events.append(
                    _report(engine._ts, order, ExecutionType.CANCELED, OrderStatus.CANCELED,
                            cancel_client_id=cancel_client_id)
                )  # fmt: skip
                results.append(_result(order, cancel_client_id))
            elif order.status not in _ENDED:
                results.append(cancel_one(engine, sym, order, cancel_client_id))
        lst.pending = []
        self._done(engine, lst)
        return results

    def _oco_fires(
        self, engine: EngineState, sym: SymbolState, lst: OrderList, fired: Order
    ) -> None:
        """One leg of a live OCO starts working: the pair's lock becomes that leg's own, the
        other leg expires, and the list is done."""
        entry = fired.lock_bal
        touch(engine, entry, fired.account_id, fired.lock_key[1])
        total = sum(o.lock for o in lst.oco)
        need = lst.needs[fired.order_id] if fired.info.type in STOP_TYPES else fired.lock
        for order in lst.oco:
            order.lock = 0
        fired.lock = need
        entry[0] += total - need
        entry[1] -= total - need
        for order in lst.oco:
            if order is not fired:
                _expire(engine, sym, order)
        self._close(lst)
        self._done(engine, lst)

    def _activate_pending(self, engine: EngineState, sym: SymbolState, lst: OrderList) -> None:
        pending = lst.pending
        lst.pending = []
        lst.working = None  # filled: nothing more depends on it
        problem = _placement_problem(engine, sym, pending)
        events = engine._events
        ts = engine._ts
        if problem:
            for order in pending:
                del sym.by_account[order.account_id][order.info.client_order_id]
                order.status = OrderStatus.EXPIRED
                events.append(_report(ts, order, ExecutionType.EXPIRED, OrderStatus.EXPIRED,
                                      reason=problem))  # fmt: skip
            self._close(lst)
            self._done(engine, lst)
            return
        engine._cmd_sym = sym
        needs = {o.order_id: _lock_needed_order(sym, o) for o in pending}
        for order in pending:
            order.status = OrderStatus.NEW
            is_stop = order.info.type in STOP_TYPES
            if is_stop:
                sym.stops.add(order)  # after larger ids: Stops keeps its id order
            else:
                order.working_ts = ts
            events.append(_report(ts, order, ExecutionType.NEW, OrderStatus.NEW, not is_stop))
        if len(pending) == 2:  # OTOCO: the pending OCO pair goes live
            lst.oco = pending
            _share_lock(engine, lst, needs)
            events.append(ListStatus(0, ts, lst.info(ListStatusType.EXEC_STARTED, _EXECUTING)))
            for order in pending:
                if order.info.type is OrderType.LIMIT_MAKER:
                    rest(engine, sym, order)
            return
        order = pending[0]
        _hold(engine, order, needs[order.order_id])
        self._close(lst)
        self._done(engine, lst)
        if order.info.type in STOP_TYPES:
            return
        # From here matching.rest indexes it, if it rests at all.
        del sym.by_account[order.account_id][order.info.client_order_id]
        if order.info.type is OrderType.LIMIT_MAKER:
            rest(engine, sym, order)
            return
        order.is_market = order.info.type is OrderType.MARKET
        _take_as_new_order(engine, sym, order, [])

    def _end_pending(self, engine: EngineState, sym: SymbolState, lst: OrderList) -> None:
        """The working order ended without filling: the pending orders expire with it."""
        if self.open.get(lst.list_id) is not lst:
            return
        for order in lst.pending:
            del sym.by_account[order.account_id][order.info.client_order_id]
            order.status = OrderStatus.EXPIRED
            engine._events.append(
                _report(engine._ts, order, ExecutionType.EXPIRED, OrderStatus.EXPIRED)
            )
        lst.pending = []
        self._close(lst)
        self._done(engine, lst)

    def _close(self, lst: OrderList) -> None:
        if self.open.pop(lst.list_id, None) is None:
            return
        for order in lst.legs:
            self.of_order.pop((lst.symbol, order.order_id), None)

    def _done(self, engine: EngineState, lst: OrderList) -> None:
        info = lst.info(ListStatusType.ALL_DONE, _ALL_DONE)
        engine._events.append(ListStatus(0, engine._ts, info))


# ---------------------------------------------------------------------------------------------
# Checks (read only)


def _reference_price(leg: NewOrder) -> int:
    """The price Binance compares for a leg: a LIMIT_MAKER's or TAKE_PROFIT_LIMIT's limit
    price (errors.md: "LIMIT_MAKER price"), otherwise the stop price."""
    if leg.type in (OrderType.LIMIT_MAKER, OrderType.TAKE_PROFIT_LIMIT):
        return leg.price or 0
    return leg.stop_price or 0


def _check_oco_prices(above: NewOrder, below: NewOrder, last: int) -> None:
    """above > last > below (last only once the symbol has traded)."""
    high, low = _reference_price(above), _reference_price(below)
    if not high > low or (last > 0 and not high > last > low):
        raise errors.rejected(errors.MSG_OCO_BAD_PRICES)


def _check_market(engine: EngineState, cmd: NewOrderList) -> SymbolState:
    if engine._reg.accounts.get(cmd.account_id):
        raise errors.rejected(errors.MSG_ACCOUNT_DISABLED)
    sym = engine._symbols.get(cmd.symbol)
    if sym is None:
        raise errors.INVALID_SYMBOL_ERROR
    if sym.spec.status != SymbolStatus.TRADING:
        raise errors.rejected(errors.MSG_MARKET_CLOSED)
    return sym


def _check_counts(sym: SymbolState, legs: list[NewOrder]) -> None:
    """MAX_NUM_ORDERS and MAX_NUM_ALGO_ORDERS count every order of the list (filters.md)."""
    spec = sym.spec
    open_orders = sym.by_account.get(legs[0].account_id) or {}
    if len(open_orders) + len(legs) > spec.max_num_orders:
        raise errors.filter_failure("MAX_NUM_ORDERS")
    algos = sum(
        1
        for o in open_orders.values()
        if o.order_id in sym.stops
        or (o.status is OrderStatus.PENDING_NEW and o.info.type in STOP_TYPES)
    )
    new_algos = sum(1 for leg in legs if leg.type in STOP_TYPES)
    if new_algos and algos + new_algos > spec.max_num_algo_orders:
        raise errors.filter_failure("MAX_NUM_ALGO_ORDERS")


def _lock_needed(leg: NewOrder) -> int:
    """What a leg locks when it is placed (docs/engine.md "Orders"): a sell its quantity, a
    priced buy its price times quantity, a market-priced stop buy nothing until triggered."""
    qty = leg.quantity or 0
    if leg.side == Side.SELL:
        return qty
    if leg.price is None:
        return 0
    return leg.price * qty // SCALE


def _lock_needed_order(sym: SymbolState, order: Order) -> int:
    info = order.info
    if not order.is_buy:
        return info.quantity
    if info.type is OrderType.MARKET:
        return acceptance.walk_cost_for_qty(sym.book.asks, info.quantity)
    return info.price * info.quantity // SCALE


def _placement_problem(engine: EngineState, sym: SymbolState, pending: list[Order]) -> str:
    """Why pending orders cannot be placed now ("" if they can): funds, or a stop that would
    trigger / a LIMIT_MAKER that would take at once."""
    needs = [_lock_needed_order(sym, o) for o in pending]
    need = max(needs)
    order = pending[0]
    if need and order.lock_bal[0] < need:
        return _REASONS[errors.MSG_INSUFFICIENT_BALANCE]
    for order in pending:
        info = order.info
        if info.type in STOP_TYPES:
            if would_trigger(info.type, order.is_buy, info.stop_price, sym.last_price):
                return _REASONS[errors.MSG_WOULD_TRIGGER]
        elif info.type is OrderType.LIMIT_MAKER:
            best = sym.book.asks.best() if order.is_buy else sym.book.bids.best()
            if best is not None and (
                info.price >= best.price if order.is_buy else info.price <= best.price
            ):
                return _REASONS[errors.MSG_WOULD_TAKE]
    return ""


# ---------------------------------------------------------------------------------------------
# Building and moving money


def _id_order(kind: str, legs: list[NewOrder]) -> list[int]:
    """In which order a list's legs get their order ids: the working order first, then the
    OCO pair's stop-loss leg, then its other leg (as in Binance's documented responses)."""
    if kind == "OTO":
        return [0, 1]
    first = 0 if kind == "OCO" else 1
    pair = [first, first + 1]
    pair.sort(key=lambda i: legs[i].type not in STOP_LOSS_TYPES)
    return pair if kind == "OCO" else [0, *pair]


def _new_order(engine: EngineState, sym: SymbolState, cmd: NewOrder, stp: StpMode,
               list_id: int) -> Order:  # fmt: skip
    order_id = sym.next_order_id
    sym.next_order_id = order_id + 1
    acct = cmd.account_id
    info = OrderInfo(
        order_id, acct, sym.spec.symbol, cmd.client_order_id, cmd.side, cmd.type,
        cmd.time_in_force, cmd.quantity or 0, cmd.price or 0, cmd.stop_price or 0,
        cmd.iceberg_qty or 0, 0, stp, engine._ts, order_list_id=list_id,
    )  # fmt: skip
    is_buy = cmd.side == Side.BUY
    lock_asset, recv_asset = (sym.quote, sym.base) if is_buy else (sym.base, sym.quote)
    bal = engine._bal
    return Order(info, is_buy, (acct, lock_asset), bal.entry(acct, lock_asset),
                 (acct, recv_asset), bal.entry(acct, recv_asset))  # fmt: skip


def _take_as_new_order(
    engine: EngineState, sym: SymbolState, order: Order, fills: list[Fill]
) -> None:
    """Run ``order`` as a NEW_ORDER's taker runs (placing.place): match, show the trades to
    trailing stops, trigger the stops that hold; fills of it by stops it triggers count."""
    last_before = sym.last_price
    mark = len(engine._events)
    take(engine, sym, order, fills)
    stops = sym.stops
    if stops.trailing and fills:
        observe_trades(engine, sym, mark)
    if (sym.last_price != last_before and (stops.rises or stops.falls)) or stops.fired:
        engine._reply_order, engine._reply_fills = order, fills
        try:
            run_stops(engine, sym)
        finally:
            engine._reply_order = None


def _hold(engine: EngineState, order: Order, amount: int) -> None:
    if amount:
        entry = order.lock_bal
        touch(engine, entry, order.account_id, order.lock_key[1])
        entry[0] -= amount
        entry[1] += amount
        order.lock += amount


def _share_lock(engine: EngineState, lst: OrderList, needs: dict[int, int]) -> None:
    """Lock an OCO pair once: its LIMIT_MAKER (if any) holds its own need, the other leg the
    rest of the larger need."""
    lst.needs = needs
    pair = sorted(lst.oco, key=lambda o: o.info.type is not OrderType.LIMIT_MAKER)
    first, second = pair
    _hold(engine, first, needs[first.order_id])
    _hold(engine, second, max(0, needs[second.order_id] - needs[first.order_id]))


def _expire(engine: EngineState, sym: SymbolState, order: Order) -> None:
    """Take a live leg off (book or stops) because its list ended; releases its lock."""
    if order.status in _ENDED:
        return
    on_book = order.order_id in sym.book.orders
    if on_book:
        side = sym.book.bids if order.is_buy else sym.book.asks
        touched = engine._touched_bids if order.is_buy else engine._touched_asks
        if order.price not in touched:
            touched[order.price] = side.levels[order.price].qty
        side.unlink(order)
        del sym.book.orders[order.order_id]
    elif order.order_id in sym.stops:
        sym.stops.remove(order.order_id)
    open_orders = sym.by_account.get(order.account_id) or {}
    if open_orders.get(order.info.client_order_id) is order:
        del open_orders[order.info.client_order_id]
    release(engine, order)
    order.status = OrderStatus.EXPIRED
    engine._events.append(_report(engine._ts, order, ExecutionType.EXPIRED, OrderStatus.EXPIRED,
                                  on_book))  # fmt: skip


def _report(ts: int, order: Order, exec_type: ExecutionType, status: OrderStatus,
            working: bool = False, *, reason: str = "NONE",
            cancel_client_id: str = "") -> ExecutionReport:  # fmt: skip
    return ExecutionReport(
        0, ts, order.info, exec_type, status, reason, 0, 0, 0, order.executed, order.cum_quote,
        0, "", -1, working, False, order.working_ts, cancel_client_id, -1, order.prevented_qty,
    )  # fmt: skip


def _result(order: Order, cancel_client_id: str = "", fills: list[Fill] | None = None
            ) -> OrderResult:  # fmt: skip
    return OrderResult(order.info, order.status, order.executed, order.cum_quote,
                       order.working_ts, tuple(fills or ()), cancel_client_id)  # fmt: skip


def _order_id(order: Order) -> int:
    return order.order_id


def on_new_order_list(engine: EngineState, cmd: NewOrderList) -> Result:
    return 0, "", engine._lists.place(engine, cmd)


def on_cancel_order_list(engine: EngineState, cmd: CancelOrderList) -> Result:
    return 0, "", engine._lists.cancel(engine, cmd)
