"""Fixed-point amounts: Binance decimal strings <-> integers in 1e-8 units.

Every asset amount and every price inside Bourse is an ``int`` counting 10**-8 of its unit
(Binance formats every amount with 8 decimals). Parsing is strict because these strings come
from traders: no sign, no exponent, no NaN or infinity, no spaces, no more significant
decimals than allowed, nothing that would not fit a PostgreSQL ``bigint``. ``float`` is never
involved.
"""

from __future__ import annotations

import re

DECIMALS = 8
SCALE: int = 10**DECIMALS
MAX_UNITS = 2**63 - 1  # fits bigint in PostgreSQL and int64 in every client

_DECIMAL_RE = re.compile(r"\A([0-9]{1,30})(?:\.([0-9]{1,40}))?\Z")


class AmountError(ValueError):
    """A decimal string that is not an acceptable amount; ``reason`` says why in words."""

    def __init__(self, text: str, reason: str) -> None:
        super().__init__(f"{text!r}: {reason}")
        self.text = text
        self.reason = reason


def parse_units(text: str, decimals: int = DECIMALS) -> int:
    """Parse a non-negative decimal string into integer units of 10**-decimals.

    Trailing zeros beyond ``decimals`` are accepted ("0.100000000"); a significant digit
    beyond it is not (that is Binance's -1111 "Precision is over the maximum").
    """
    if not isinstance(text, str):
        raise AmountError(repr(text), "not a string")
    match = _DECIMAL_RE.match(text)
    if match is None:
        raise AmountError(text, "not a plain non-negative decimal number")
    whole, frac = match.group(1), match.group(2) or ""
    if len(frac) > decimals:
        if frac[decimals:].strip("0"):
            raise AmountError(text, f"more than {decimals} decimals")
        frac = frac[:decimals]
    scale: int = 10**decimals
    units = int(whole) * scale + (int(frac.ljust(decimals, "0")) if decimals else 0)
    if units > MAX_UNITS:
        raise AmountError(text, "too large")
    return units


def format_units(units: int, decimals: int = DECIMALS) -> str:
    """Format integer units as Binance does: always ``decimals`` places ("0.01000000")."""
    sign = "-" if units < 0 else ""
    whole, frac = divmod(abs(units), 10**decimals)
    if decimals == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{frac:0{decimals}d}"


def notional(price: int, qty: int) -> int:
    """Quote units for ``qty`` base units at ``price`` quote units per whole base unit.

    Exact for every order that passes the symbol's filters, because a symbol is only accepted
    when tick_size * step_size is a multiple of SCALE (see SymbolSpec.validate).
    """
    return price * qty // SCALE


def fee_for(amount: int, rate: int) -> int:
    """Fee on ``amount`` at ``rate`` (1e-8 units, 0.1% = 100_000), rounded up: the
    exchange's favour, deterministically."""
    return -(-amount * rate // SCALE)
