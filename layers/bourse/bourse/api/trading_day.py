"""GET /api/v3/ticker/tradingDay (Binance's "Trading Day Ticker"): the statistics of the
current trading day, midnight to now in ``timeZone`` (UTC by default), for ``symbol`` or
``symbols`` (one of them required, at most 100), FULL or MINI. Read from the record through
``Deps.history``, as the other tickers are (``bourse.api.history``). Pure.

``openTime`` is the day's first millisecond and ``closeTime`` its last, as Binance shows them,
though the trades counted are those up to now (the rest of the day has not happened yet).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from bourse.api import record_shapes as shapes
from bourse.api.handlers import Deps, Request
from bourse.api.history import (
    MAX_ROLLING_SYMBOLS,
    TOO_MANY_SYMBOLS,
    _history,
    _ticker_type,
    _without,
    time_zone_ms,
)
from bourse.api.market import chosen_symbols
from bourse.api.orders import check_known
from bourse.domain import errors
from bourse.domain.errors import BinanceError
from bourse.record.tickers import DAY_MS

TRADING_DAY_PARAMS = frozenset({"symbol", "symbols", "timeZone", "type", "symbolStatus"})
SYMBOL_OR_SYMBOLS = BinanceError(
    errors.MANDATORY_PARAM_EMPTY_OR_MALFORMED,
    "Param 'symbol' or 'symbols' must be sent, but both were empty/null!",
)
STATUS_MISMATCH = BinanceError(
    -1220, "The symbol's status does not match the requested symbolStatus."
)


def trading_day_bounds(now_ms: int, tz_ms: int) -> tuple[int, int]:
    """The first and last millisecond of the day ``now_ms`` falls in, in a zone ``tz_ms``
    from UTC, as UTC epoch milliseconds."""
    start = (now_ms + tz_ms) // DAY_MS * DAY_MS - tz_ms
    return start, start + DAY_MS - 1


def trading_day_ticker(req: Request, deps: Deps) -> dict[str, Any] | list[dict[str, Any]]:
    params = req.public_params()
    check_known(params, TRADING_DAY_PARAMS)
    full = _ticker_type(params)
    tz_ms = time_zone_ms(params.optional_str("timeZone"))
    if "symbol" not in params and "symbols" not in params:
        raise SYMBOL_OR_SYMBOLS
    names, single = chosen_symbols(_without(params, "type", "timeZone"), deps.view.symbols())
    if single and not names:
        raise STATUS_MISMATCH
    if len(names) > MAX_ROLLING_SYMBOLS:
        raise TOO_MANY_SYMBOLS
    now = deps.clock()
    start, end = trading_day_bounds(now, tz_ms)
    history = _history(deps)
    rows = [
        shapes.ticker(dataclasses.replace(history.ticker(n, start, now), close_time=end), full=full)
        for n in names
    ]
    return rows[0] if single else rows
