"""SymbolSpec.validate and the exchange filters (check_price / check_lot / check_notional /
check_percent_price), with Binance's codes and messages."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bourse.domain import errors
from bourse.domain.amounts import MAX_UNITS, SCALE
from bourse.domain.enums import StpMode, SymbolStatus
from bourse.domain.errors import BinanceError
from bourse.domain.symbols import (
    SymbolSpec,
    check_lot,
    check_notional,
    check_percent_price,
    check_price,
    market_notional_estimate,
)

pytestmark = pytest.mark.unit

SPEC = SymbolSpec(
    symbol="BTCUSDT",
    base_asset="BTC",
    quote_asset="USDT",
    tick_size=SCALE // 100,  # 0.01
    min_price=SCALE // 100,
    max_price=1_000_000 * SCALE,
    step_size=SCALE // 100_000,  # 0.00001
    min_qty=SCALE // 100_000,
    max_qty=9000 * SCALE,
    market_min_qty=SCALE // 100_000,
    market_max_qty=100 * SCALE,
    min_notional=5 * SCALE,
    max_notional=9_000_000 * SCALE,
)


def _error(fn: Callable[..., object], *args: Any, **kwargs: Any) -> BinanceError:
    with pytest.raises(BinanceError) as info:
        fn(*args, **kwargs)
    return info.value


# --------------------------------------------------------------------------- validate


def test_a_consistent_spec_validates() -> None:
    SPEC.validate()
    assert SPEC.status is SymbolStatus.TRADING


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"symbol": "btcusdt"}, "symbol must be"),
        ({"symbol": "B"}, "symbol must be"),
        ({"symbol": "BTC-USDT"}, "symbol must be"),
        ({"base_asset": "btc"}, "assets must be"),
        ({"quote_asset": ""}, "assets must be"),
        ({"quote_asset": "BTC"}, "must differ"),
        ({"tick_size": 0, "min_price": 0}, "tick_size must be positive"),
        ({"step_size": -1}, "step_size must be positive"),
        # a 0.01 tick and a 0.0000001 step: 0.01 * 0.0000001 quote is below 1e-8
        ({"step_size": 10, "min_qty": 10}, "tick_size * step_size"),
        ({"min_price": 2 * SCALE, "max_price": SCALE}, "min_price <= max_price"),
        ({"min_qty": -1}, "min_qty <= max_qty"),
        ({"max_qty": MAX_UNITS + 1}, "min_qty <= max_qty"),
        ({"market_min_qty": 5, "market_max_qty": 4}, "market_min_qty <= market_max_qty"),
        ({"min_notional": 10, "max_notional": 9}, "min_notional <= max_notional"),
        ({"min_price": SCALE // 1000}, "at least one tick"),
        ({"min_qty": 0}, "at least one tick/step"),
        ({"min_price": SCALE // 100 + 1}, "min_price must be a multiple of tick_size"),
        ({"min_qty": SCALE // 100_000 + 1}, "min_qty must be a multiple of step_size"),
        ({"multiplier_up": SCALE - 1}, "multiplier_down <= 1 <= multiplier_up"),
        ({"multiplier_down": 0}, "multiplier_down <= 1 <= multiplier_up"),
        ({"multiplier_down": SCALE + 1}, "multiplier_down <= 1 <= multiplier_up"),
        ({"max_num_orders": 0}, "max_num_orders must be at least 1"),
        ({"max_num_algo_orders": 0}, "max_num_algo_orders must be at least 1"),
        ({"max_num_iceberg_orders": 0}, "max_num_iceberg_orders must be at least 1"),
        ({"iceberg_parts": 0}, "iceberg_parts must be at least 1"),
        (
            {"allowed_stp_modes": (StpMode.NONE,), "default_stp": StpMode.EXPIRE_MAKER},
            "default_stp must be one of allowed_stp_modes",
        ),
    ],
)
def test_inconsistent_specs_are_rejected(changes: dict[str, Any], problem: str) -> None:
    e = _error(replace(SPEC, **changes).validate)
    assert e.code == errors.INVALID_PARAMETER == -1130
    assert e.msg.startswith("Invalid data sent for a parameter.")
    assert problem in e.msg


def test_validate_lists_every_problem() -> None:
    e = _error(replace(SPEC, base_asset="x", max_num_orders=0).validate)
    assert "assets must be" in e.msg and "max_num_orders" in e.msg


@given(st.integers(1, 10**8), st.integers(1, 10**8))
def test_tick_step_rule(tick: int, step: int) -> None:
    spec = replace(SPEC, tick_size=tick, min_price=tick, step_size=step, min_qty=step)
    if tick * step % SCALE == 0:
        spec.validate()
    else:
        assert "tick_size * step_size" in _error(spec.validate).msg


def test_with_status_changes_only_the_status() -> None:
    halted = SPEC.with_status(SymbolStatus.HALT)
    assert halted.status is SymbolStatus.HALT
    assert replace(halted, status=SymbolStatus.TRADING) == SPEC


# --------------------------------------------------------------------------- PRICE_FILTER


def test_check_price() -> None:
    check_price(SPEC, SPEC.min_price)
    check_price(SPEC, SPEC.max_price)
    check_price(SPEC, 12_345 * SCALE // 100)
    for bad in (0, -SCALE):
        e = _error(check_price, SPEC, bad)
        assert (e.code, e.msg) == (-1013, "Invalid price.")
    for bad in (SPEC.max_price + SPEC.tick_size, SCALE + 1, SPEC.min_price - 1):
        e = _error(check_price, SPEC, bad)
        assert (e.code, e.msg) == (-1013, "Filter failure: PRICE_FILTER")


# --------------------------------------------------------------------- LOT_SIZE / MARKET


def test_check_lot() -> None:
    check_lot(SPEC, SPEC.min_qty, market=False)
    check_lot(SPEC, SPEC.max_qty, market=False)
    for bad in (0, -1):
        e = _error(check_lot, SPEC, bad, market=False)
        assert (e.code, e.msg) == (-1013, "Invalid quantity.")
    for bad in (SPEC.max_qty + SPEC.step_size, SPEC.step_size + 1):
        e = _error(check_lot, SPEC, bad, market=True)
        assert (e.code, e.msg) == (-1013, "Filter failure: LOT_SIZE")


def test_market_lot_size_only_for_market_orders() -> None:
    qty = SPEC.market_max_qty + SPEC.step_size  # fine for LOT_SIZE, too big for a market
    check_lot(SPEC, qty, market=False)
    e = _error(check_lot, SPEC, qty, market=True)
    assert (e.code, e.msg) == (-1013, "Filter failure: MARKET_LOT_SIZE")
    spec = replace(SPEC, market_min_qty=10 * SPEC.step_size)
    check_lot(spec, SPEC.step_size, market=False)
    assert _error(check_lot, spec, SPEC.step_size, market=True).msg.endswith("MARKET_LOT_SIZE")


# ------------------------------------------------------------------------------ NOTIONAL


def test_check_notional_limit_orders() -> None:
    check_notional(SPEC, SPEC.min_notional, market=False)
    check_notional(SPEC, SPEC.max_notional, market=False)
    for bad in (SPEC.min_notional - 1, SPEC.max_notional + 1):
        e = _error(check_notional, SPEC, bad, market=False)
        assert (e.code, e.msg) == (-1013, "Filter failure: NOTIONAL")


def test_check_notional_market_flags() -> None:
    # defaults: the min applies to market orders, the max does not
    assert _error(check_notional, SPEC, SPEC.min_notional - 1, market=True).code == -1013
    check_notional(SPEC, SPEC.max_notional + 1, market=True)
    flipped = replace(SPEC, apply_min_to_market=False, apply_max_to_market=True)
    check_notional(flipped, 0, market=True)
    e = _error(check_notional, flipped, SPEC.max_notional + 1, market=True)
    assert e.msg == "Filter failure: NOTIONAL"


# ------------------------------------------------------------------------- PERCENT_PRICE


def test_check_percent_price() -> None:
    last = 100 * SCALE
    check_percent_price(SPEC, 10**12, 0)  # no trade yet: no band
    check_percent_price(SPEC, 500 * SCALE, last)  # exactly 5x: inside
    check_percent_price(SPEC, 20 * SCALE, last)  # exactly 0.2x: inside
    for bad in (500 * SCALE + 1, 20 * SCALE - 1):
        e = _error(check_percent_price, SPEC, bad, last)
        assert (e.code, e.msg) == (-1013, "Filter failure: PERCENT_PRICE")


def test_market_notional_estimate() -> None:
    assert market_notional_estimate(SCALE // 100, 0) is None
    assert market_notional_estimate(SCALE // 100, 100 * SCALE) == SCALE
