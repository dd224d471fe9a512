"""Fixed-point amounts: strict parsing, Binance formatting, fees and exact notionals."""

from __future__ import annotations

from fractions import Fraction
from math import gcd
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bourse.domain.amounts import (
    DECIMALS,
    MAX_UNITS,
    SCALE,
    AmountError,
    fee_for,
    format_units,
    notional,
    parse_units,
)
from bourse.domain.symbols import SymbolSpec

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "units"),
    [
        ("0", 0),
        ("1", SCALE),
        ("0.1", 10_000_000),
        ("0.01000000", 1_000_000),
        ("0.00000001", 1),
        ("1.5", 150_000_000),
        ("00012.5", 1_250_000_000),  # leading zeros are harmless
        ("0.100000000", 10_000_000),  # a trailing zero beyond 8 decimals is accepted
        ("2.50000000000000000000", 250_000_000),
        ("123456789.12345678", 12_345_678_912_345_678),
        ("92233720368.54775807", MAX_UNITS),  # the largest bigint
    ],
)
def test_parse_units_accepts(text: str, units: int) -> None:
    assert parse_units(text) == units


@pytest.mark.parametrize(
    "text",
    [
        "",
        "-1",
        "+1",
        "-0",
        "1e5",
        "1E5",
        "1.5e-3",
        "NaN",
        "nan",
        "inf",
        "-inf",
        "Infinity",
        " 1",
        "1 ",
        "1 000",
        "1\n",
        ".",
        "1.",
        ".5",
        "1,5",
        "1.2.3",
        "0x10",
        "1_000",
        "\u0661",  # ARABIC-INDIC DIGIT ONE: not an ASCII digit
        "\uff11",  # FULLWIDTH DIGIT ONE
        "0.000000001",  # a significant 9th decimal (Binance -1111)
        "0.123456789",
        "1.000000001",
        "92233720368.54775808",  # one unit beyond 2**63-1
        "99999999999999999999",
        "1" * 31,  # more whole digits than anything sane
        "0." + "0" * 41,  # more decimals than the pattern allows at all
    ],
)
def test_parse_units_rejects(text: str) -> None:
    with pytest.raises(AmountError) as info:
        parse_units(text)
    assert isinstance(info.value, ValueError)
    assert info.value.reason


@pytest.mark.parametrize("value", [1.5, 1, None, b"1", ["1"]])
def test_parse_units_rejects_non_strings(value: Any) -> None:  # not a str, on purpose
    with pytest.raises(AmountError, match="not a string"):
        parse_units(value)


def test_parse_units_other_precisions() -> None:
    assert parse_units("15", decimals=0) == 15
    assert parse_units("15.000", decimals=0) == 15
    assert parse_units("1.23", decimals=2) == 123
    assert parse_units("1.230", decimals=2) == 123
    with pytest.raises(AmountError):
        parse_units("1.5", decimals=0)
    with pytest.raises(AmountError):
        parse_units("1.235", decimals=2)


@pytest.mark.parametrize(
    ("units", "text"),
    [
        (0, "0.00000000"),
        (1, "0.00000001"),
        (1_000_000, "0.01000000"),  # Binance's formatting
        (SCALE, "1.00000000"),
        (150_000_000, "1.50000000"),
        (MAX_UNITS, "92233720368.54775807"),
        (-5, "-0.00000005"),
        (-SCALE, "-1.00000000"),
    ],
)
def test_format_units(units: int, text: str) -> None:
    assert format_units(units) == text


def test_format_units_other_precisions() -> None:
    assert format_units(15, decimals=0) == "15"
    assert format_units(123, decimals=2) == "1.23"
    assert format_units(5, decimals=2) == "0.05"


@given(st.integers(0, MAX_UNITS))
def test_round_trip(units: int) -> None:
    text = format_units(units)
    assert parse_units(text) == units
    whole, frac = text.split(".")
    assert len(frac) == DECIMALS and whole == str(units // SCALE)


@given(st.integers(0, 8), st.integers(0, 10**15))
def test_round_trip_any_precision(decimals: int, units: int) -> None:
    assert parse_units(format_units(units, decimals), decimals) == units


@given(
    st.integers(0, 10**10),
    st.text(alphabet="0123456789", min_size=0, max_size=8),
    st.integers(0, 12),
)
def test_parse_matches_exact_decimal_value(whole: int, frac: str, trailing_zeros: int) -> None:
    text = f"{whole}.{frac}{'0' * trailing_zeros}" if frac or trailing_zeros else str(whole)
    expected = Fraction(whole) + (Fraction(int(frac), 10 ** len(frac)) if frac else 0)
    assert parse_units(text) == expected * SCALE


@given(st.integers(1, 10**12), st.integers(1, 9))
def test_parse_rejects_any_significant_ninth_decimal(whole: int, digit: int) -> None:
    with pytest.raises(AmountError, match="decimals"):
        parse_units(f"{whole}.00000000{digit}")


# ------------------------------------------------------------------------------------ fees


@pytest.mark.parametrize(
    ("amount", "rate", "fee"),
    [
        (0, 100_000, 0),
        (1, 100_000, 1),  # 0.001 units rounds up to 1: the exchange's favour
        (999, 100_000, 1),
        (1000, 100_000, 1),
        (1001, 100_000, 2),
        (SCALE, 100_000, 100_000),  # 0.1% of 1.0
        (12_345, 0, 0),
        (12_345, SCALE, 12_345),  # a 100% rate takes everything, never more
        (3, 333_333, 1),
    ],
)
def test_fee_examples(amount: int, rate: int, fee: int) -> None:
    assert fee_for(amount, rate) == fee


@given(st.integers(0, MAX_UNITS), st.integers(0, SCALE))
def test_fee_is_the_ceiling(amount: int, rate: int) -> None:
    fee = fee_for(amount, rate)
    exact = Fraction(amount * rate, SCALE)
    assert fee >= exact > fee - 1
    assert 0 <= fee <= amount


# ------------------------------------------------------------------------------- notional


def _valid_tick_step(draw_tick: int, multiple: int) -> tuple[int, int]:
    """A (tick, step) pair with tick * step a multiple of SCALE, as SymbolSpec requires."""
    step = multiple * (SCALE // gcd(draw_tick, SCALE))
    return draw_tick, step


@given(
    st.integers(1, 10**9),
    st.integers(1, 1000),
    st.integers(1, 10**6),
    st.integers(1, 10**6),
)
def test_notional_exact_for_valid_specs(
    tick: int, multiple: int, price_ticks: int, qty_steps: int
) -> None:
    tick, step = _valid_tick_step(tick, multiple)
    spec = SymbolSpec(
        symbol="ABCXYZ",
        base_asset="ABC",
        quote_asset="XYZ",
        tick_size=tick,
        min_price=tick,
        max_price=MAX_UNITS,
        step_size=step,
        min_qty=step,
        max_qty=MAX_UNITS,
    )
    spec.validate()  # the spec is accepted...
    price, qty = price_ticks * tick, qty_steps * step
    # ...and then no valid (price, qty) ever rounds
    assert notional(price, qty) * SCALE == price * qty


def test_notional_examples() -> None:
    assert notional(100 * SCALE, SCALE // 100) == SCALE  # 0.01 at 100 = 1
    assert notional(3 * SCALE, 2 * SCALE) == 6 * SCALE
    assert notional(1, 1) == 0  # floors where the spec would not allow it
