"""The checks a NEW_ORDER passes before it is accepted, in docs/engine.md's order.

Everything here only reads state; a failing check raises the Binance error and the engine
replies with it, having changed nothing.
"""

from __future__ import annotations

from collections.abc import Iterable

from bourse.domain import errors
from bourse.domain.amounts import SCALE, notional
from bourse.domain.commands import CLIENT_ORDER_ID_RE, NewOrder
from bourse.domain.enums import OrderType, StpMode
from bourse.domain.exchange_filters import (
    EXCHANGE_MAX_NUM_ALGO_ORDERS,
    EXCHANGE_MAX_NUM_ICEBERG_ORDERS,
    EXCHANGE_MAX_NUM_ORDERS,
)
from bourse.domain.symbols import (
    SymbolSpec,
    check_lot,
    check_notional,
    check_percent_price,
    check_percent_price_by_side,
    check_price,
    check_trailing_delta,
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


_SIDES = frozenset({"BUY", "SELL"})
_TIFS = frozenset({"GTC", "IOC", "FOK"})


def shape_is_plainly_valid(cmd: NewOrder) -> bool:
    """A quick sufficient condition for ``validate_new_order_shape`` to pass, covering the
    common LIMIT and MARKET shapes; anything else goes through the full validator (which
    also produces the right error)."""
    if cmd.account_id < 1 or cmd.side not in _SIDES or cmd.stop_price is not None:
        return False
    if cmd.iceberg_qty is not None or not CLIENT_ORDER_ID_RE.match(cmd.client_order_id):
        return False
    if cmd.trailing_delta is not None:
        return False
    order_type = cmd.type
    if order_type is OrderType.LIMIT:
        qty, price = cmd.quantity, cmd.price
        return (
            cmd.time_in_force in _TIFS
            and qty is not None
            and qty > 0
            and price is not None
            and price > 0
            and cmd.quote_order_qty is None
        )
    if order_type is OrderType.MARKET:
        if cmd.time_in_force is not None or cmd.price is not None:
            return False
        qty, quote = cmd.quantity, cmd.quote_order_qty
        if qty is None:
            return quote is not None and quote > 0
        return quote is None and qty > 0
    return False


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
    if cmd.trailing_delta is not None and not spec.allow_trailing_stop:
        raise errors.rejected(errors.MSG_TRAILING_NOT_SUPPORTED)
    if cmd.stp_mode is None:
        return spec.default_stp
    if cmd.stp_mode not in spec.allowed_stp_modes:
        raise errors.rejected(errors.MSG_STP_NOT_ALLOWED)
    return cmd.stp_mode


def check_filters(sym: SymbolState, cmd: NewOrder) -> None:
    """-1013 filters in the documented order. Each check is inlined for the passing case
    and defers to the domain function (which raises the right error) when it fails."""
    spec = sym.spec
    order_type = cmd.type
    last = sym.last_price
    price = cmd.price
    qty = cmd.quantity
    if price is not None and (
        price < spec.min_price or price > spec.max_price or price % spec.tick_size
    ):
        check_price(spec, price)
    if cmd.stop_price is not None:
        check_price(spec, cmd.stop_price)
    is_market_qty = order_type == OrderType.MARKET or order_type in MARKET_STOP_TYPES
    if qty is not None:
        if qty < spec.min_qty or qty > spec.max_qty or qty % spec.step_size:
            check_lot(spec, qty, market=is_market_qty)
        if is_market_qty:
            check_lot(spec, qty, market=True)
    if cmd.iceberg_qty is not None:
        check_lot(spec, cmd.iceberg_qty, market=False)
    if order_type in PRICED_TYPES:
        assert price is not None and qty is not None
        amount = price * qty // SCALE
        if amount < spec.min_notional or amount > spec.max_notional:
            check_notional(spec, amount, market=False)
        if last > 0:
            check_percent_price(spec, price, last)
            check_percent_price_by_side(spec, price, last, is_buy=cmd.side == "BUY")
    elif order_type in MARKET_STOP_TYPES:
        assert qty is not None
        # A trailing stop without a stop price is valued at the last price, like MARKET.
        reference = cmd.stop_price if cmd.stop_price is not None else last
        if reference > 0:
            check_notional(spec, notional(reference, qty), market=True)
    elif cmd.quote_order_qty is not None:
        check_notional(spec, cmd.quote_order_qty, market=True)
    elif last > 0:
        assert qty is not None
        check_notional(spec, notional(last, qty), market=True)
    if cmd.trailing_delta is not None:
        check_trailing_delta(spec, order_type, cmd.side == "BUY", cmd.trailing_delta)
    if cmd.iceberg_qty is not None:
        assert qty is not None
        if -(-qty // cmd.iceberg_qty) > spec.iceberg_parts:
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


def check_exchange_filters(symbols: Iterable[SymbolState], cmd: NewOrder) -> None:
    """EXCHANGE_MAX_NUM_ORDERS / _ALGO_ORDERS / _ICEBERG_ORDERS: the account's open orders
    on every symbol (counted only up to what the order needs to know)."""
    account = cmd.account_id
    is_algo = cmd.type in STOP_TYPES
    orders = algos = icebergs = 0
    for sym in symbols:
        open_orders = sym.by_account.get(account)
        if not open_orders:
            continue
        orders += len(open_orders)
        if is_algo:
            algos += sum(1 for o in open_orders.values() if o.order_id in sym.stops)
        if cmd.iceberg_qty is not None:
            icebergs += sum(1 for o in open_orders.values() if o.iceberg_qty)
    if orders >= EXCHANGE_MAX_NUM_ORDERS:
        raise errors.filter_failure("EXCHANGE_MAX_NUM_ORDERS")
    if is_algo and algos >= EXCHANGE_MAX_NUM_ALGO_ORDERS:
        raise errors.filter_failure("EXCHANGE_MAX_NUM_ALGO_ORDERS")
    if cmd.iceberg_qty is not None and icebergs >= EXCHANGE_MAX_NUM_ICEBERG_ORDERS:
        raise errors.filter_failure("EXCHANGE_MAX_NUM_ICEBERG_ORDERS")


def check_state(sym: SymbolState, cmd: NewOrder) -> None:
    """Duplicate client id, would-trigger and would-take."""
    open_orders = sym.by_account.get(cmd.account_id)
    if open_orders and cmd.client_order_id in open_orders:
        raise errors.rejected(errors.MSG_DUPLICATE_ORDER)
    is_buy = cmd.side == "BUY"
    if cmd.type in STOP_TYPES:
        # A trailing stop without a stop price starts tracking at once: nothing to trigger.
        if cmd.stop_price is not None and would_trigger(
            cmd.type, is_buy, cmd.stop_price, sym.last_price
        ):
            raise errors.rejected(errors.MSG_WOULD_TRIGGER)
    elif cmd.type == OrderType.LIMIT_MAKER:
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
