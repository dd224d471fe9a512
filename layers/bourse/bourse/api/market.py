"""Market data responses: exchangeInfo (symbols as Binance describes them, with their
filters and the published rate limits) and depth. Pure: the handlers pass in what the live
view holds.
"""

from __future__ import annotations

from typing import Any

from bourse.adapters.redis_book import BOOK_LEVELS, Bbo, Book
from bourse.api.orders import check_known
from bourse.api.params import Params
from bourse.api.rate_limits import Limits
from bourse.domain import errors
from bourse.domain.amounts import SCALE, format_units
from bourse.domain.exchange_filters import (
    EXCHANGE_MAX_NUM_ALGO_ORDERS,
    EXCHANGE_MAX_NUM_ICEBERG_ORDERS,
    EXCHANGE_MAX_NUM_ORDERS,
)
from bourse.domain.symbols import SymbolSpec

DEFAULT_DEPTH_LIMIT = 100
EXCHANGE_INFO_PARAMS = frozenset({"symbol", "symbols", "permissions", "showPermissionSets"})
SYMBOLS_RANGE = '^\\[("[A-Z0-9-_.]{1,20}"(,"[A-Z0-9-_.]{1,20}"){0,}){0,1}\\]$'
DEPTH_PARAMS = frozenset({"symbol", "limit"})


def _multiplier(units: int) -> str:
    """PERCENT_PRICE multipliers as Binance prints them: "5", "0.2" (no trailing zeros)."""
    text = format_units(units).rstrip("0").rstrip(".")
    return text or "0"


def symbol_filters(spec: SymbolSpec) -> list[dict[str, Any]]:
    return [
        {
            "filterType": "PRICE_FILTER",
            "minPrice": format_units(spec.min_price),
            "maxPrice": format_units(spec.max_price),
            "tickSize": format_units(spec.tick_size),
        },
        {
            "filterType": "LOT_SIZE",
            "minQty": format_units(spec.min_qty),
            "maxQty": format_units(spec.max_qty),
            "stepSize": format_units(spec.step_size),
        },
        {"filterType": "ICEBERG_PARTS", "limit": spec.iceberg_parts},
        {
            "filterType": "MARKET_LOT_SIZE",
            "minQty": format_units(spec.market_min_qty),
            "maxQty": format_units(spec.market_max_qty),
            "stepSize": format_units(spec.step_size),
        },
        {
            # Bourse's reference price is the last trade, not a 5-minute average: avgPriceMins 0.
            "filterType": "PERCENT_PRICE",
            "multiplierUp": _multiplier(spec.multiplier_up),
            "multiplierDown": _multiplier(spec.multiplier_down),
            "avgPriceMins": 0,
        },
        {
            "filterType": "NOTIONAL",
            "minNotional": format_units(spec.min_notional),
            "applyMinToMarket": spec.apply_min_to_market,
            "maxNotional": format_units(spec.max_notional),
            "applyMaxToMarket": spec.apply_max_to_market,
            "avgPriceMins": 0,
        },
        *_percent_price_by_side(spec),
        {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": spec.max_num_orders},
        {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": spec.max_num_algo_orders},
        {
            "filterType": "MAX_NUM_ICEBERG_ORDERS",
            "maxNumIcebergOrders": spec.max_num_iceberg_orders,
        },
        {
            "filterType": "TRAILING_DELTA",
            "minTrailingAboveDelta": spec.min_trailing_above_delta,
            "maxTrailingAboveDelta": spec.max_trailing_above_delta,
            "minTrailingBelowDelta": spec.min_trailing_below_delta,
            "maxTrailingBelowDelta": spec.max_trailing_below_delta,
        },
    ]


def _percent_price_by_side(spec: SymbolSpec) -> list[dict[str, Any]]:
    """Listed only when the market sets it (all four multipliers)."""
    if not spec.has_percent_price_by_side:
        return []
    return [
        {
            "filterType": "PERCENT_PRICE_BY_SIDE",
            "bidMultiplierUp": _multiplier(spec.bid_multiplier_up),
            "bidMultiplierDown": _multiplier(spec.bid_multiplier_down),
            "askMultiplierUp": _multiplier(spec.ask_multiplier_up),
            "askMultiplierDown": _multiplier(spec.ask_multiplier_down),
            "avgPriceMins": 0,
        }
    ]


EXCHANGE_FILTERS: list[dict[str, Any]] = [
    {"filterType": "EXCHANGE_MAX_NUM_ORDERS", "maxNumOrders": EXCHANGE_MAX_NUM_ORDERS},
    {
        "filterType": "EXCHANGE_MAX_NUM_ALGO_ORDERS",
        "maxNumAlgoOrders": EXCHANGE_MAX_NUM_ALGO_ORDERS,
    },
    {
        "filterType": "EXCHANGE_MAX_NUM_ICEBERG_ORDERS",
        "maxNumIcebergOrders": EXCHANGE_MAX_NUM_ICEBERG_ORDERS,
    },
]


def symbol_info(spec: SymbolSpec) -> dict[str, Any]:
    return {
        "symbol": spec.symbol,
        "status": str(spec.status),
        "baseAsset": spec.base_asset,
        "baseAssetPrecision": spec.base_asset_precision,
        "quoteAsset": spec.quote_asset,
        "quotePrecision": spec.quote_precision,
        "quoteAssetPrecision": spec.quote_precision,
        "baseCommissionPrecision": spec.base_asset_precision,
        "quoteCommissionPrecision": spec.quote_precision,
        "orderTypes": [str(t) for t in spec.order_types],
        "icebergAllowed": spec.iceberg_allowed,
        "ocoAllowed": True,
        "otoAllowed": True,
        "quoteOrderQtyMarketAllowed": spec.quote_order_qty_market_allowed,
        "allowTrailingStop": spec.allow_trailing_stop,
        "cancelReplaceAllowed": True,
        "amendAllowed": True,  # PUT /api/v3/order/amend/keepPriority, on every symbol
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": symbol_filters(spec),
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": str(spec.default_stp),
        "allowedSelfTradePreventionModes": [str(m) for m in spec.allowed_stp_modes],
    }


def _symbol_list(raw: str) -> list[str]:
    """``symbols=["BTCUSDT","ETHUSDT"]`` as Binance takes it (a JSON-ish list)."""
    inner = raw.strip()
    if not (inner.startswith("[") and inner.endswith("]")):
        raise errors.illegal_chars("symbols", SYMBOLS_RANGE)
    names = [part.strip().strip('"') for part in inner[1:-1].split(",") if part.strip()]
    if not names:
        raise errors.mandatory("symbols")
    return names


def exchange_info(
    params: Params,
    specs: dict[str, SymbolSpec],
    server_time: int,
    rate_limits: Limits | None = None,
) -> dict[str, Any]:
    """``rate_limits``: the limits enforced (``bourse.api.rate_limits``), Binance's by default."""
    check_known(params, EXCHANGE_INFO_PARAMS)
    wanted: list[str] | None = None
    if "symbol" in params and "symbols" in params:
        raise errors.BAD_COMBO_ERROR
    if "symbol" in params:
        wanted = [params.required_str("symbol").upper()]
    elif "symbols" in params:
        wanted = [s.upper() for s in _symbol_list(params.required_str("symbols"))]
    if wanted is None:
        chosen = list(specs.values())
    else:
        missing = [name for name in wanted if name not in specs]
        if missing:
            raise errors.INVALID_SYMBOL_ERROR
        chosen = [specs[name] for name in wanted]
    return {
        "timezone": "UTC",
        "serverTime": server_time,
        "rateLimits": (rate_limits or Limits()).published(),
        "exchangeFilters": EXCHANGE_FILTERS,
        "symbols": [symbol_info(spec) for spec in chosen],
    }


TICKER_PARAMS = frozenset({"symbol", "symbols", "symbolStatus"})


def chosen_symbols(params: Params, specs: dict[str, SymbolSpec]) -> tuple[list[str], bool]:
    """The symbols a ticker request names (``symbol``, ``symbols`` or all), and whether the
    answer is one object (``symbol``) rather than a list."""
    check_known(params, TICKER_PARAMS)
    if "symbol" in params and "symbols" in params:
        raise errors.BAD_COMBO_ERROR
    status = params.optional_str("symbolStatus")
    if "symbol" in params:
        names, single = [params.required_str("symbol").upper()], True
    elif "symbols" in params:
        names, single = [s.upper() for s in _symbol_list(params.required_str("symbols"))], False
    else:
        names, single = list(specs), False
    if any(name not in specs for name in names):
        raise errors.INVALID_SYMBOL_ERROR
    if status is not None:
        if status not in ("TRADING", "HALT", "BREAK"):
            raise errors.invalid_parameter("symbolStatus")
        names = [n for n in names if str(specs[n].status) == status]
    return names, single


def price_ticker(symbol: str, last_price: int | None) -> dict[str, Any]:
    return {"symbol": symbol, "price": format_units(last_price or 0)}


def book_ticker(symbol: str, bbo: Bbo | None) -> dict[str, Any]:
    best = bbo or Bbo(0, 0, 0, 0, 0)
    return {
        "symbol": symbol,
        "bidPrice": format_units(best.bidPrice),
        "bidQty": format_units(best.bidQty),
        "askPrice": format_units(best.askPrice),
        "askQty": format_units(best.askQty),
    }


def depth_limit(params: Params) -> int:
    """Binance's depth limit: default 100, at least 1; more than 5000 is served as 5000."""
    limit = params.optional_int("limit", minimum=1)
    if limit is None:
        return DEFAULT_DEPTH_LIMIT
    return min(limit, BOOK_LEVELS)


def depth(book: Book | None, limit: int) -> dict[str, Any]:
    if book is None:  # listed, but the matching service has not written its book yet
        return {"lastUpdateId": 0, "bids": [], "asks": []}
    return {
        "lastUpdateId": book.lastUpdateId,
        "bids": [[format_units(p), format_units(q)] for p, q in book.bids[:limit]],
        "asks": [[format_units(p), format_units(q)] for p, q in book.asks[:limit]],
    }


def rate_to_decimal(rate: int) -> str:
    """A fee rate in 1e-8 units (0.1% = 100_000) as Binance's decimal string "0.00100000"."""
    return format_units(rate)


def rate_to_bps(rate: int) -> int:
    """Binance's legacy integer commission (basis points: 0.1% -> 10)."""
    return int(rate * 10_000 // SCALE)
