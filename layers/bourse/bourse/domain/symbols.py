"""Symbol specifications: the market's rules, as Binance's exchangeInfo filters describe them.

All prices and quantities are integer 1e-8 units (see ``amounts``). ``check_order_filters``
is the one place the price/quantity/notional filters are applied; the engine calls it at
acceptance, and the API may call it earlier to fail fast (the engine stays authoritative).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from bourse.domain import errors
from bourse.domain.amounts import MAX_UNITS, SCALE, notional
from bourse.domain.enums import OrderType, StpMode, SymbolStatus

SYMBOL_RE = re.compile(r"\A[A-Z0-9]{2,20}\Z")
ASSET_RE = re.compile(r"\A[A-Z0-9]{1,20}\Z")

ALL_ORDER_TYPES: tuple[OrderType, ...] = tuple(OrderType)
ALL_STP_MODES: tuple[StpMode, ...] = tuple(StpMode)
BIPS = 10_000  # trailingDelta is in basis points: 10_000 BIPS = 100%
MAX_TRAILING_DELTA = BIPS - 1  # a 100% fall would put a SELL trigger at a price of 0


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    symbol: str
    base_asset: str
    quote_asset: str
    # PRICE_FILTER
    tick_size: int
    min_price: int
    max_price: int
    # LOT_SIZE
    step_size: int
    min_qty: int
    max_qty: int
    # MARKET_LOT_SIZE (the step is LOT_SIZE's)
    market_min_qty: int = 0
    market_max_qty: int = MAX_UNITS
    # NOTIONAL
    min_notional: int = 0
    max_notional: int = MAX_UNITS
    apply_min_to_market: bool = True
    apply_max_to_market: bool = False
    # PERCENT_PRICE against the last trade price (Binance's avgPriceMins = 0); 1e-8 units
    multiplier_up: int = 5 * SCALE
    multiplier_down: int = SCALE // 5
    # PERCENT_PRICE_BY_SIDE against the last trade price, 1e-8 units; all four 0: not listed
    bid_multiplier_up: int = 0
    bid_multiplier_down: int = 0
    ask_multiplier_up: int = 0
    ask_multiplier_down: int = 0
    # TRAILING_DELTA, in BIPS: "above" bounds STOP_LOSS BUY and TAKE_PROFIT SELL (the stops
    # that trigger on a rise), "below" the other two (see docs/engine.md, "Trailing stops")
    min_trailing_above_delta: int = 10
    max_trailing_above_delta: int = 2000
    min_trailing_below_delta: int = 10
    max_trailing_below_delta: int = 2000
    allow_trailing_stop: bool = True
    # MAX_NUM_ORDERS / MAX_NUM_ALGO_ORDERS / MAX_NUM_ICEBERG_ORDERS per account, ICEBERG_PARTS
    max_num_orders: int = 200
    max_num_algo_orders: int = 5
    max_num_iceberg_orders: int = 5
    iceberg_parts: int = 10
    base_asset_precision: int = 8
    quote_precision: int = 8
    status: SymbolStatus = SymbolStatus.TRADING
    order_types: tuple[OrderType, ...] = ALL_ORDER_TYPES
    iceberg_allowed: bool = True
    quote_order_qty_market_allowed: bool = True
    default_stp: StpMode = StpMode.EXPIRE_MAKER
    allowed_stp_modes: tuple[StpMode, ...] = ALL_STP_MODES
    # The market's commission rates, 1e-8 units (0.1% = 100_000): what a fill pays unless the
    # account has its own rates (SetAccountFees).
    maker_commission: int = 100_000
    taker_commission: int = 100_000

    def validate(self) -> None:
        """Raise ``BinanceError`` (-1130) if the spec is not internally consistent."""
        problems = list(self._problems())
        if problems:
            raise errors.invalid_parameter(f"{self.symbol}: " + "; ".join(problems))

    def _problems(self) -> list[str]:
        out = []
        if not SYMBOL_RE.match(self.symbol):
            out.append("symbol must be 2-20 of A-Z0-9")
        if not ASSET_RE.match(self.base_asset) or not ASSET_RE.match(self.quote_asset):
            out.append("assets must be 1-20 of A-Z0-9")
        if self.base_asset == self.quote_asset:
            out.append("base and quote asset must differ")
        for name in ("tick_size", "step_size"):
            if getattr(self, name) <= 0:
                out.append(f"{name} must be positive")
        if self.tick_size > 0 and self.step_size > 0 and (self.tick_size * self.step_size) % SCALE:
            # Guarantees notional(price, qty) is exact for every valid order.
            out.append("tick_size * step_size must be a multiple of 1e-8 quote units")
        for lo, hi in (
            ("min_price", "max_price"),
            ("min_qty", "max_qty"),
            ("market_min_qty", "market_max_qty"),
            ("min_notional", "max_notional"),
        ):
            lo_v, hi_v = getattr(self, lo), getattr(self, hi)
            if lo_v < 0 or hi_v > MAX_UNITS or lo_v > hi_v:
                out.append(f"need 0 <= {lo} <= {hi} <= max")
        if self.min_price < self.tick_size or self.min_qty < self.step_size:
            out.append("min_price/min_qty must be at least one tick/step")
        if self.min_price % self.tick_size if self.tick_size > 0 else False:
            out.append("min_price must be a multiple of tick_size")
        if self.min_qty % self.step_size if self.step_size > 0 else False:
            out.append("min_qty must be a multiple of step_size")
        if not (0 < self.multiplier_down <= SCALE <= self.multiplier_up):
            out.append("need 0 < multiplier_down <= 1 <= multiplier_up")
        out.extend(self._percent_by_side_problems())
        for lo, hi in (
            ("min_trailing_above_delta", "max_trailing_above_delta"),
            ("min_trailing_below_delta", "max_trailing_below_delta"),
        ):
            if not 1 <= getattr(self, lo) <= getattr(self, hi) <= MAX_TRAILING_DELTA:
                out.append(f"need 1 <= {lo} <= {hi} <= {MAX_TRAILING_DELTA}")
        for name in (
            "max_num_orders",
            "max_num_algo_orders",
            "max_num_iceberg_orders",
            "iceberg_parts",
        ):
            if getattr(self, name) < 1:
                out.append(f"{name} must be at least 1")
        for name in ("maker_commission", "taker_commission"):
            if not 0 <= getattr(self, name) <= SCALE:
                out.append(f"{name} must be between 0 and 1e8 (100%)")
        if self.default_stp not in self.allowed_stp_modes:
            out.append("default_stp must be one of allowed_stp_modes")
        return out

    @property
    def has_percent_price_by_side(self) -> bool:
        return self.bid_multiplier_up > 0

    def _percent_by_side_problems(self) -> list[str]:
        multipliers = (
            self.bid_multiplier_up,
            self.bid_multiplier_down,
            self.ask_multiplier_up,
            self.ask_multiplier_down,
        )
        if not any(multipliers):
            return []
        if not (
            0 < self.bid_multiplier_down <= SCALE <= self.bid_multiplier_up <= MAX_UNITS
            and 0 < self.ask_multiplier_down <= SCALE <= self.ask_multiplier_up <= MAX_UNITS
        ):
            return ["PERCENT_PRICE_BY_SIDE: need all four multipliers, 0 < down <= 1 <= up"]
        return []

    def with_status(self, status: SymbolStatus) -> SymbolSpec:
        return replace(self, status=status)


def check_price(spec: SymbolSpec, price: int) -> None:
    """PRICE_FILTER for a limit or stop price."""
    if price <= 0:
        raise errors.INVALID_PRICE_ERROR
    if price < spec.min_price or price > spec.max_price or price % spec.tick_size:
        raise errors.filter_failure("PRICE_FILTER")


def check_lot(spec: SymbolSpec, qty: int, *, market: bool) -> None:
    """LOT_SIZE (and MARKET_LOT_SIZE for market orders)."""
    if qty <= 0:
        raise errors.INVALID_QUANTITY_ERROR
    if qty < spec.min_qty or qty > spec.max_qty or qty % spec.step_size:
        raise errors.filter_failure("LOT_SIZE")
    if market and (qty < spec.market_min_qty or qty > spec.market_max_qty):
        raise errors.filter_failure("MARKET_LOT_SIZE")


def check_notional(spec: SymbolSpec, quote_amount: int, *, market: bool) -> None:
    """NOTIONAL: min applies to market orders only if apply_min_to_market (likewise max)."""
    if (not market or spec.apply_min_to_market) and quote_amount < spec.min_notional:
        raise errors.filter_failure("NOTIONAL")
    if (not market or spec.apply_max_to_market) and quote_amount > spec.max_notional:
        raise errors.filter_failure("NOTIONAL")


def check_percent_price(spec: SymbolSpec, price: int, last_price: int) -> None:
    """PERCENT_PRICE against the last trade price; no reference yet means no band."""
    if last_price <= 0:
        return
    if (
        price * SCALE > last_price * spec.multiplier_up
        or price * SCALE < last_price * spec.multiplier_down
    ):
        raise errors.filter_failure("PERCENT_PRICE")


def check_percent_price_by_side(
    spec: SymbolSpec, price: int, last_price: int, *, is_buy: bool
) -> None:
    """PERCENT_PRICE_BY_SIDE: the bid multipliers for a BUY, the ask ones for a SELL, against
    the last trade price (Binance's avgPriceMins = 0); not listed or no trade yet: no band."""
    if last_price <= 0 or not spec.has_percent_price_by_side:
        return
    if is_buy:
        up, down = spec.bid_multiplier_up, spec.bid_multiplier_down
    else:
        up, down = spec.ask_multiplier_up, spec.ask_multiplier_down
    if price * SCALE > last_price * up or price * SCALE < last_price * down:
        raise errors.filter_failure("PERCENT_PRICE_BY_SIDE")


def trails_above(order_type: OrderType, is_buy: bool) -> bool:
    """STOP_LOSS BUY and TAKE_PROFIT SELL (and their LIMIT forms): the stops that trigger on a
    rise, whose trailingDelta the TRAILING_DELTA filter's "above" bounds govern."""
    is_stop_loss = order_type in (OrderType.STOP_LOSS, OrderType.STOP_LOSS_LIMIT)
    return is_stop_loss == is_buy


def check_trailing_delta(spec: SymbolSpec, order_type: OrderType, is_buy: bool, delta: int) -> None:
    """TRAILING_DELTA: the above or below bounds, by the order's type and side."""
    if trails_above(order_type, is_buy):
        low, high = spec.min_trailing_above_delta, spec.max_trailing_above_delta
    else:
        low, high = spec.min_trailing_below_delta, spec.max_trailing_below_delta
    if not low <= delta <= high:
        raise errors.filter_failure("TRAILING_DELTA")


def market_notional_estimate(qty: int, last_price: int) -> int | None:
    """Binance checks a market order's notional at the average price; Bourse uses the last."""
    return notional(last_price, qty) if last_price > 0 else None
