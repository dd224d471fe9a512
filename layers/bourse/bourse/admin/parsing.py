"""The admin API's JSON bodies in, its JSON answers out: strict parsing (unknown fields, wrong
types and malformed amounts are Binance-style errors) and the shapes of markets, accounts and
keys. Pure: no I/O."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from bourse.admin.ports import KeyRecord
from bourse.domain import errors
from bourse.domain.amounts import SCALE, AmountError, format_units, parse_units
from bourse.domain.enums import SymbolStatus
from bourse.domain.errors import BinanceError
from bourse.domain.symbols import ASSET_RE, SYMBOL_RE, SymbolSpec

# Binance's parameter names for the market fields, and the SymbolSpec field each sets.
MARKET_AMOUNTS: dict[str, str] = {
    "tickSize": "tick_size",
    "minPrice": "min_price",
    "maxPrice": "max_price",
    "stepSize": "step_size",
    "minQty": "min_qty",
    "maxQty": "max_qty",
    "minNotional": "min_notional",
    "makerCommission": "maker_commission",
    "takerCommission": "taker_commission",
    # PERCENT_PRICE_BY_SIDE (all four, or all "0" to unlist it)
    "bidMultiplierUp": "bid_multiplier_up",
    "bidMultiplierDown": "bid_multiplier_down",
    "askMultiplierUp": "ask_multiplier_up",
    "askMultiplierDown": "ask_multiplier_down",
}
# TRAILING_DELTA bounds: JSON integers, in BIPS.
MARKET_BIPS: dict[str, str] = {
    "minTrailingAboveDelta": "min_trailing_above_delta",
    "maxTrailingAboveDelta": "max_trailing_above_delta",
    "minTrailingBelowDelta": "min_trailing_below_delta",
    "maxTrailingBelowDelta": "max_trailing_below_delta",
}
MARKET_REQUIRED = ("symbol", "baseAsset", "quoteAsset", "tickSize", "minPrice", "maxPrice",
                   "stepSize", "minQty", "maxQty")  # fmt: skip
MARKET_FIELDS = frozenset({"symbol", "baseAsset", "quoteAsset", *MARKET_AMOUNTS, *MARKET_BIPS})
# What the API calls a permission -> what the key table stores (Binance's names).
PERMISSIONS = {"READ": "USER_DATA", "TRADE": "TRADE"}
API_PERMISSIONS = {stored: name for name, stored in PERMISSIONS.items()}
ACCOUNT_ID_MAX = 2**53 - 1  # exact in every JSON reader
TX_ID_RE = re.compile(r"\A[!-~]{1,128}\Z")  # printable ASCII, no spaces (the engine's rule)
# The engine also allows "/", which a path segment cannot carry.
WITHDRAWAL_ID_RE = re.compile(r"\A[A-Za-z0-9._:-]{1,64}\Z")
API_KEY_RE = re.compile(r"\A[A-Za-z0-9]{1,256}\Z")
LABEL_MAX = 128

UNKNOWN_MARKET = BinanceError(errors.BAD_SYMBOL, "Invalid symbol.", 404)
UNKNOWN_ACCOUNT = BinanceError(errors.INVALID_PARAMETER, errors.UNKNOWN_ACCOUNT_ERROR.msg, 404)
UNKNOWN_WITHDRAWAL = BinanceError(
    errors.INVALID_PARAMETER, errors.UNKNOWN_WITHDRAWAL_ERROR.msg, 404
)
UNKNOWN_KEY = BinanceError(errors.INVALID_PARAMETER, "Invalid data sent for a parameter. "
                           "Unknown API key.", 404)  # fmt: skip
BAD_JSON = BinanceError(errors.INVALID_PARAMETER, "Invalid data sent for a parameter. "
                        "The body must be a JSON object.")  # fmt: skip


class Body:
    """A JSON object body; every field must be read (``done``), as Binance refuses unread
    parameters (-1104)."""

    def __init__(self, text: str | None) -> None:
        if not text or not text.strip():
            self.fields: dict[str, Any] = {}
        else:
            try:
                loaded = json.loads(text)
            except ValueError:
                raise BAD_JSON from None
            if not isinstance(loaded, dict):
                raise BAD_JSON
            self.fields = loaded
        self._read: set[str] = set()

    def __contains__(self, name: str) -> bool:
        return name in self.fields and self.fields[name] is not None

    def raw(self, name: str) -> Any:
        self._read.add(name)
        return self.fields.get(name)

    def done(self) -> None:
        unread = set(self.fields) - self._read
        if unread:
            raise BinanceError(
                errors.UNKNOWN_PARAM, f"An unknown parameter was sent: '{sorted(unread)[0]}'."
            )

    def string(self, name: str, *, required: bool = True, default: str = "") -> str:
        value = self.raw(name)
        if value is None or value == "":
            if required:
                raise errors.mandatory(name)
            return default
        if not isinstance(value, str):
            raise errors.invalid_parameter(f"{name} must be a string.")
        return value

    def amount(self, name: str, *, required: bool = True, positive: bool = False) -> int | None:
        value = self.raw(name)
        if value is None or value == "":
            if required:
                raise errors.mandatory(name)
            return None
        return amount(name, value, positive=positive)

    def account_id(self, name: str = "accountId", *, required: bool = True) -> int | None:
        value = self.raw(name)
        if value is None:
            if required:
                raise errors.mandatory(name)
            return None
        return account_id(value, name)

    def string_list(self, name: str) -> tuple[str, ...]:
        value = self.raw(name)
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise errors.invalid_parameter(f"{name} must be a list of strings.")
        return tuple(value)


def amount(name: str, value: Any, *, positive: bool = False) -> int:
    """A decimal string (numbers are refused: a JSON number may already have lost digits)."""
    if not isinstance(value, str):
        raise errors.invalid_parameter(f"{name} must be a decimal string.")
    try:
        units = parse_units(value)
    except AmountError as exc:
        if exc.reason.startswith("more than"):
            raise errors.BAD_PRECISION_ERROR from None
        raise errors.invalid_parameter(f"{name}: {exc.reason}.") from None
    if positive and units <= 0:
        raise errors.invalid_parameter(f"{name} must be positive.")
    return units


def account_id(value: Any, name: str = "accountId") -> int:
    """An account id from a body (a JSON integer) or a path (its decimal text)."""
    if isinstance(value, str) and value.isdigit() and len(value) <= 16:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= ACCOUNT_ID_MAX:
        raise errors.invalid_parameter(f"{name} must be an integer from 1 to {ACCOUNT_ID_MAX}.")
    return value


def symbol_name(value: str) -> str:
    name = value.upper()
    if not SYMBOL_RE.match(name):
        raise errors.illegal_chars("symbol", "^[A-Z0-9]{2,20}$")
    return name


def asset_name(value: str) -> str:
    name = value.upper()
    if not ASSET_RE.match(name):
        raise errors.illegal_chars("asset", "^[A-Z0-9]{1,20}$")
    return name


def tx_id(value: str) -> str:
    if not TX_ID_RE.match(value):
        raise errors.illegal_chars("txId", "printable ASCII without spaces, 1 to 128")
    return value


def withdrawal_id(value: str) -> str:
    if not WITHDRAWAL_ID_RE.match(value):
        raise errors.illegal_chars("withdrawalId", "^[A-Za-z0-9._:-]{1,64}$")
    return value


def api_key(value: str) -> str:
    if not API_KEY_RE.match(value):
        raise UNKNOWN_KEY
    return value


def rate(name: str, value: Any) -> int:
    """A commission rate as a decimal fraction ("0.001" = 0.1%), at most 1."""
    units = amount(name, value)
    if units > SCALE:
        raise errors.invalid_parameter(f"{name} must be at most 1.")
    return units


# ---------------------------------------------------------------------------------- markets


def new_market(body: Body) -> SymbolSpec:
    """POST /admin/markets: a new symbol's spec (status TRADING)."""
    for name in MARKET_REQUIRED:
        if name not in body:
            raise errors.mandatory(name)
    values: dict[str, Any] = {
        "symbol": symbol_name(body.string("symbol")),
        "base_asset": asset_name(body.string("baseAsset")),
        "quote_asset": asset_name(body.string("quoteAsset")),
    }
    values.update(_market_amounts(body))
    spec = SymbolSpec(**values)
    spec.validate()
    return spec


def market_patch(body: Body, current: SymbolSpec) -> SymbolSpec:
    """PATCH /admin/markets/{symbol}: the listed spec with the fields sent replaced."""
    changes = _market_amounts(body)
    if not changes:
        raise errors.BinanceError(
            errors.PARAM_EMPTY,
            "Parameter was empty: send at least one of "
            + ", ".join([*MARKET_AMOUNTS, *MARKET_BIPS])
            + ".",
        )
    spec = replace(current, **changes)  # type: ignore[arg-type]  # (int fields only)
    spec.validate()
    return spec


def _market_amounts(body: Body) -> dict[str, int]:
    changes: dict[str, int] = {}
    for name, field_name in MARKET_AMOUNTS.items():
        if name not in body:
            body.raw(name)
            continue
        if name.endswith("Commission"):
            changes[field_name] = rate(name, body.raw(name))
        else:
            units = body.amount(name)
            assert units is not None
            changes[field_name] = units
    for name, field_name in MARKET_BIPS.items():
        value = body.raw(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value < 10_000:
            raise errors.invalid_parameter(f"{name} must be an integer from 1 to 9999 (BIPS).")
        changes[field_name] = value
    return changes


def market_json(spec: SymbolSpec) -> dict[str, Any]:
    return {
        "symbol": spec.symbol,
        "baseAsset": spec.base_asset,
        "quoteAsset": spec.quote_asset,
        "status": SymbolStatus(spec.status).value,
        "tickSize": format_units(spec.tick_size),
        "minPrice": format_units(spec.min_price),
        "maxPrice": format_units(spec.max_price),
        "stepSize": format_units(spec.step_size),
        "minQty": format_units(spec.min_qty),
        "maxQty": format_units(spec.max_qty),
        "minNotional": format_units(spec.min_notional),
        "makerCommission": format_units(spec.maker_commission),
        "takerCommission": format_units(spec.taker_commission),
        **{name: format_units(getattr(spec, field)) for name, field in _BY_SIDE.items()},
        **{name: getattr(spec, field) for name, field in MARKET_BIPS.items()},
    }


_BY_SIDE = {name: field for name, field in MARKET_AMOUNTS.items() if "Multiplier" in name}


# ---------------------------------------------------------------------------------- keys


def permissions(names: Iterable[str]) -> tuple[str, ...]:
    """The API's READ/TRADE -> the stored names (USER_DATA/TRADE)."""
    out = []
    for name in names:
        stored = PERMISSIONS.get(name.upper())
        if stored is None:
            raise errors.invalid_parameter(f"permissions: {name!r} is not READ or TRADE.")
        out.append(stored)
    return tuple(dict.fromkeys(out))


def key_json(key: KeyRecord, secret: str | None = None) -> dict[str, Any]:
    shape: dict[str, Any] = {
        "apiKey": key.api_key,
        "type": key.key_type,
        "permissions": [API_PERMISSIONS.get(p, p) for p in key.permissions],
        "ipAllowList": list(key.ip_allow_list),
        "label": key.label,
        "accountId": key.account_id,
        "createdAt": key.created_at_ms,
        "status": key.status,
    }
    if secret is not None:
        shape["secret"] = secret
    return shape


def balances_json(balances: Mapping[str, tuple[int, int]]) -> list[dict[str, str]]:
    return [
        {"asset": asset, "free": format_units(free), "locked": format_units(locked)}
        for asset, (free, locked) in sorted(balances.items())
    ]


def detail(text: str) -> dict[str, Any]:
    """A Reply's detail (JSON text, empty when none) as a dict."""
    if not text:
        return {}
    try:
        loaded = json.loads(text)
    except ValueError:
        return {}
    return loaded if isinstance(loaded, dict) else {}
