"""The order path's "is this market listed?" (``KnownSymbolsBus``) reads Redis once per
market and container: a market is never unlisted (a delisted one stays in the view, in
BREAK), so a market seen listed is remembered, while an unknown one is asked about each time
(it may be listed a moment later)."""

from __future__ import annotations

import pytest

from bourse.adapters.live_api import RedisMarketView
from bourse.adapters.redis_book import SYMBOLS_KEY, encode_spec
from bourse.domain.markets import DEFAULT_MARKETS

pytestmark = pytest.mark.unit

SPEC = DEFAULT_MARKETS[0]


class CountingRedis:
    def __init__(self) -> None:
        self.hashes: dict[str, dict[str, bytes]] = {SYMBOLS_KEY: {}}
        self.reads = 0

    def hget(self, key: str, field: str) -> bytes | None:
        self.reads += 1
        return self.hashes.get(key, {}).get(field)


def test_a_listed_market_is_read_once_an_unknown_one_every_time() -> None:
    client = CountingRedis()
    view = RedisMarketView(client)
    assert not view.is_listed(SPEC.symbol)
    assert not view.is_listed(SPEC.symbol)
    assert client.reads == 2
    client.hashes[SYMBOLS_KEY][SPEC.symbol] = encode_spec(SPEC)  # listed meanwhile
    assert view.is_listed(SPEC.symbol)
    assert view.is_listed(SPEC.symbol)
    assert client.reads == 3
