"""A symbol's displayed order book as the diff stream describes it, for partial depth and
bookTicker: the same levels the engine shows, kept from ``DepthUpdate`` events."""

from __future__ import annotations

import heapq

from bourse.domain.events import DepthUpdate

Level = tuple[int, int]
EMPTY: Level = (0, 0)


class LocalBook:
    __slots__ = ("asks", "best_ask", "best_bid", "bids", "update_id")

    def __init__(
        self, update_id: int = 0, bids: list[Level] | None = None, asks: list[Level] | None = None
    ) -> None:
        self.bids: dict[int, int] = dict(bids or ())
        self.asks: dict[int, int] = dict(asks or ())
        self.update_id = update_id
        self.best_bid = self._best(self.bids, True)
        self.best_ask = self._best(self.asks, False)

    @staticmethod
    def _best(side: dict[int, int], highest: bool) -> Level:
        if not side:
            return EMPTY
        price = max(side) if highest else min(side)
        return price, side[price]

    def follows(self, ev: DepthUpdate) -> bool:
        return ev.first_update_id == self.update_id + 1

    def apply(self, ev: DepthUpdate) -> None:
        """Apply the next update (the caller checked ``follows``)."""
        bids, asks = self.bids, self.asks
        for price, qty in ev.bids:
            if qty:
                bids[price] = qty
            else:
                bids.pop(price, None)
        for price, qty in ev.asks:
            if qty:
                asks[price] = qty
            else:
                asks.pop(price, None)
        # The best level moves only when a changed level is at or beyond it: skip the scan
        # otherwise (most updates are deeper in the book).
        if ev.bids and (not self.best_bid[0] or ev.bids[0][0] >= self.best_bid[0]):
            self.best_bid = self._best(bids, True)
        if ev.asks and (not self.best_ask[0] or ev.asks[0][0] <= self.best_ask[0]):
            self.best_ask = self._best(asks, False)
        self.update_id = ev.final_update_id

    def top(self, n: int) -> tuple[list[Level], list[Level]]:
        bids = heapq.nlargest(n, self.bids.items())
        asks = heapq.nsmallest(n, self.asks.items())
        return bids, asks
