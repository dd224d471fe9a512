"""The checks a NEW_ORDER passes before it is accepted, in docs/engine.md's order.

Everything here only reads state; a failing check raises the Binance error and the engine
replies with it, having changed nothing.
"""

from __future__ import annotations

from bourse.domain import errors
from bourse.domain.amounts import SCALE, notional
from bourse.domain.commands import NewOrder
from bourse.domain.enums import OrderType, StpMode
from bourse.domain.symbols import (
    SymbolSpec,
    check_lot,
    check_notional,
    check_percent_price,
    check_price,
)
from bourse.engine.book import BookSide
from bourse.engine.stops import would_trigger
from bourse.engine.symbol_state import SymbolState

PRICED_TYPES = frozenset(
    {OrderType.LIMIT, OrderType.LIMIT_MAKER, OrderType.STOP_LOSS_LIMIT, OrderType.TAKE_PROFIT_LIMIT}
)
MARKET_STOP_TYPES = frozenset({OrderType.STOP_LOSS, OrderType.TAKE_PROFIT})
STOP_TYPES = frozenset(
    {
        OrderType.STOP_LOSS,
        OrderType.STOP_LOSS_LIMIT,
        OrderType.TAKE_PROFIT,
        OrderType.TAKE_PROFIT_LIMIT,
    }
)


def check_combination(spec: SymbolSpec, cmd: NewOrder) -> StpMode:
    """Order type, iceberg, quote quantity and STP mode against what the symbol allows;
    returns the resolved STP mode."""
    if (
        cmd.type not in spec.order_types
        or (cmd.iceberg_qty is not None and not spec.iceberg_allowed)
        or (cmd.quote_order_qty is not None and not spec.quote_order_qty_market_allowed)
        or (cmd.iceberg_qty is not None and cmd.time_in_force not in (None, "GTC"))
    ):
        raise errors.rejected(errors.MSG_UNSUPPORTED_COMBINATION)
    if cmd.stp_mode is None:
        return spec.default_stp
    if cmd.stp_mode not in spec.allowed_stp_modes:
        raise errors.rejected(errors.MSG_STP_NOT_ALLOWED)
    return cmd.stp_mode


def check_filters(sym: SymbolState, cmd: NewOrder) -> None:
    spec = sym.spec
    order_type = cmd.type
    last = sym.last_price
    if cmd.price is not None:
        check_price(spec, cmd.price)
    if cmd.stop_price is not None:
        check_price(spec, cmd.stop_price)
    is_market_qty = order_type is OrderType.MARKET or order_type in MARKET_STOP_TYPES
    if cmd.quantity is not None:
        check_lot(spec, cmd.quantity, market=is_market_qty)
    if cmd.iceberg_qty is not None:
        check_lot(spec, cmd.iceberg_qty, market=False)
    if order_type in PRICED_TYPES:
        assert cmd.price is not None and cmd.quantity is not None
        check_notional(spec, notional(cmd.price, cmd.quantity), market=False)
    elif order_type in MARKET_STOP_TYPES:
        assert cmd.stop_price is not None and cmd.quantity is not None
        check_notional(spec, notional(cmd.stop_price, cmd.quantity), market=True)
    elif cmd.quote_order_qty is not None:
        check_notional(spec, cmd.quote_order_qty, market=True)
    elif last > 0:
        assert cmd.quantity is not None
        check_notional(spec, notional(last, cmd.quantity), market=True)
    if order_type in PRICED_TYPES:
        assert cmd.price is not None
        check_percent_price(spec, cmd.price, last)
    if cmd.iceberg_qty is not None:
        assert cmd.quantity is not None
        if -(-cmd.quantity // cmd.iceberg_qty) > spec.iceberg_parts:
            raise errors.filter_failure("ICEBERG_PARTS")
    open_orders = sym.by_account.get(cmd.account_id)
    if open_orders:
        if len(open_orders) >= spec.max_num_orders:
            raise errors.filter_failure("MAX_NUM_ORDERS")
        if order_type in STOP_TYPES:
            algos = sum(1 for o in open_orders.values() if o.order_id in sym.stops)
            if algos >= spec.max_num_algo_orders:
                raise errors.filter_failure("MAX_NUM_ALGO_ORDERS")
        if cmd.iceberg_qty is not None:
            icebergs = sum(1 for o in open_orders.values() if o.iceberg_qty)
            if icebergs >= spec.max_num_iceberg_orders:
                raise errors.filter_failure("MAX_NUM_ICEBERG_ORDERS")


def check_state(sym: SymbolState, cmd: NewOrder) -> None:
    """Duplicate client id, would-trigger and would-take."""
    open_orders = sym.by_account.get(cmd.account_id)
    if open_orders and cmd.client_order_id in open_orders:
        raise errors.rejected(errors.MSG_DUPLICATE_ORDER)
    is_buy = cmd.side == "BUY"
    if cmd.type in STOP_TYPES:
        assert cmd.stop_price is not None
        if would_trigger(cmd.type, is_buy, cmd.stop_price, sym.last_price):
            raise errors.rejected(errors.MSG_WOULD_TRIGGER)
    elif cmd.type is OrderType.LIMIT_MAKER:
        assert cmd.price is not None
        best = sym.book.asks.best() if is_buy else sym.book.bids.best()
        if best is not None and (cmd.price >= best.price if is_buy else cmd.price <= best.price):
            raise errors.rejected(errors.MSG_WOULD_TAKE)


def walk_cost_for_qty(opposite: BookSide, qty: int) -> int:
    """Quote needed to buy ``qty`` (or the whole book if less) walking asks best first."""
    cost = 0
    keys = opposite.keys
    levels = opposite.levels
    for i in range(len(keys) - 1, -1, -1):
        level = levels[-keys[i]]
        take = level.total if level.total < qty else qty
        cost += level.price * take // SCALE
        qty -= take
        if qty == 0:
            break
    return cost


def walk_base_for_quote(opposite: BookSide, quote: int, step: int) -> int:
    """Base needed to sell for ``quote`` walking bids best first (stops where a level
    can take nothing, like matching does)."""
    base = 0
    keys = opposite.keys
    levels = opposite.levels
    for i in range(len(keys) - 1, -1, -1):
        level = levels[keys[i]]
        can = quote * SCALE // level.price
        can -= can % step
        take = level.total if level.total < can else can
        if take == 0:
            break
        base += take
        quote -= level.price * take // SCALE
    return base
