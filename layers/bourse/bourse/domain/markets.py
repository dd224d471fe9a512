"""The markets Bourse lists out of the box, with Binance-like filters.

Seeded by ``make run`` and used by tests. Each spec keeps tick_size * step_size a multiple of
1e-8 quote units (ETHBTC therefore steps in 0.001 ETH where Binance uses 0.0001): that is what
makes every trade's quote amount exact.
"""

from __future__ import annotations

from bourse.domain.amounts import parse_units
from bourse.domain.symbols import SymbolSpec


def _spec(
    symbol: str,
    base: str,
    quote: str,
    *,
    tick: str,
    step: str,
    min_notional: str,
    max_price: str,
    max_qty: str,
) -> SymbolSpec:
    return SymbolSpec(
        symbol=symbol,
        base_asset=base,
        quote_asset=quote,
        tick_size=parse_units(tick),
        min_price=parse_units(tick),
        max_price=parse_units(max_price),
        step_size=parse_units(step),
        min_qty=parse_units(step),
        max_qty=parse_units(max_qty),
        market_min_qty=0,
        market_max_qty=parse_units(max_qty),
        min_notional=parse_units(min_notional),
    )


DEFAULT_MARKETS: tuple[SymbolSpec, ...] = (
    _spec("BTCUSDT", "BTC", "USDT", tick="0.01", step="0.00001", min_notional="5",
          max_price="1000000", max_qty="9000"),
    _spec("ETHUSDT", "ETH", "USDT", tick="0.01", step="0.0001", min_notional="5",
          max_price="1000000", max_qty="100000"),
    _spec("ETHBTC", "ETH", "BTC", tick="0.00001", step="0.001", min_notional="0.0001",
          max_price="1000", max_qty="100000"),
)  # fmt: skip

# What the demo account starts with: (asset, amount as a decimal string).
DEMO_FUNDS: tuple[tuple[str, str], ...] = (
    ("BTC", "10"),
    ("ETH", "100"),
    ("USDT", "1000000"),
)
