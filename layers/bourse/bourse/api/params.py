"""Binance request parameters: one flat name -> value map from query string and body.

Binance reads parameters from the query string and from an
``application/x-www-form-urlencoded`` body alike; a name sent twice is an error (-1101), so
is an empty value (-1105). Typed getters turn strings into Bourse values with Binance's codes
and messages, so a handler never sees a malformed value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import TypeVar
from urllib.parse import parse_qsl

from bourse.domain import errors
from bourse.domain.amounts import AmountError, parse_units
from bourse.domain.errors import BinanceError

E = TypeVar("E", bound=StrEnum)

DECIMAL_RANGE = "^([0-9]{1,20})(\\.[0-9]{1,20})?$"
MAX_BODY_BYTES = 64 * 1024


def parse_params(query_string: str, body: str) -> dict[str, str]:
    """Merge query and body parameters; a repeated or empty one is Binance's error."""
    if len(body) > MAX_BODY_BYTES:
        raise BinanceError(errors.TOO_MANY_PARAMETERS, "Request body too large.", 413)
    merged: dict[str, str] = {}
    for source in (query_string, body):
        for name, value in _pairs(source):
            if name in merged:
                raise BinanceError(
                    errors.TOO_MANY_PARAMETERS, f"Duplicate values for parameter '{name}'."
                )
            if value == "":
                raise BinanceError(
                    errors.PARAM_EMPTY, f"A parameter was empty. Parameter '{name}' was empty."
                )
            merged[name] = value
    return merged


def _pairs(source: str) -> Iterable[tuple[str, str]]:
    try:
        return parse_qsl(source, keep_blank_values=True, strict_parsing=False, max_num_fields=200)
    except ValueError as exc:
        raise BinanceError(errors.TOO_MANY_PARAMETERS, "Too many parameters sent.") from exc


class Params:
    """Typed, Binance-erroring access to one request's parameters."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = dict(values)

    def __contains__(self, name: str) -> bool:
        return name in self._values

    def names(self) -> set[str]:
        return set(self._values)

    def raw(self, name: str) -> str | None:
        return self._values.get(name)

    def required_str(self, name: str) -> str:
        value = self._values.get(name)
        if value is None:
            raise errors.mandatory(name)
        return value

    def optional_str(self, name: str) -> str | None:
        return self._values.get(name)

    def required_enum(self, name: str, enum: type[E], error: BinanceError | None = None) -> E:
        value = self.optional_enum(name, enum, error)
        if value is None:
            raise errors.mandatory(name)
        return value

    def optional_enum(
        self, name: str, enum: type[E], error: BinanceError | None = None
    ) -> E | None:
        value = self._values.get(name)
        if value is None:
            return None
        try:
            return enum(value)
        except ValueError:
            raise (error or errors.invalid_parameter(name)) from None

    def optional_decimal(self, name: str) -> int | None:
        """A decimal amount in 1e-8 units: -1100 for a malformed one, -1111 for too precise."""
        value = self._values.get(name)
        if value is None:
            return None
        try:
            return parse_units(value)
        except AmountError as exc:
            if exc.reason.startswith("more than"):
                raise errors.BAD_PRECISION_ERROR from None
            raise errors.illegal_chars(name, DECIMAL_RANGE) from None

    def required_decimal(self, name: str) -> int:
        value = self.optional_decimal(name)
        if value is None:
            raise errors.mandatory(name)
        return value

    def optional_int(self, name: str, *, minimum: int = 0, maximum: int = 2**63 - 1) -> int | None:
        value = self._values.get(name)
        if value is None:
            return None
        if not value.isascii() or not value.isdigit() or len(value) > 19:
            raise errors.illegal_chars(name, "^[0-9]{1,19}$")
        number = int(value)
        if not minimum <= number <= maximum:
            raise errors.invalid_parameter(name)
        return number

    def required_int(self, name: str, *, minimum: int = 0, maximum: int = 2**63 - 1) -> int:
        value = self.optional_int(name, minimum=minimum, maximum=maximum)
        if value is None:
            raise errors.mandatory(name)
        return value
