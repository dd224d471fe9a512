"""Exchange filters: limits on one account's open orders across every symbol.

Binance lists them in exchangeInfo's top-level ``exchangeFilters``; Bourse's values are
Binance's documented examples (filters.md) and are the same for every account.
"""

from __future__ import annotations

EXCHANGE_MAX_NUM_ORDERS = 1000  # open orders of any kind
EXCHANGE_MAX_NUM_ALGO_ORDERS = 200  # untriggered STOP_LOSS(_LIMIT) / TAKE_PROFIT(_LIMIT)
EXCHANGE_MAX_NUM_ICEBERG_ORDERS = 10000  # orders with an icebergQty
