"""A client's local order book kept exactly as Binance documents it, for the stream tests."""

from __future__ import annotations

from decimal import Decimal
from typing import Any


class LocalOrderBook:
    """A client maintaining a book as Binance documents it ("How to manage a local order book
    correctly"): buffer the diff stream, take a REST snapshot, drop buffered events with
    u <= lastUpdateId, the first applied event must have U <= lastUpdateId + 1 <= u, and each
    next one U == previous u + 1 (else: start over)."""

    def __init__(self) -> None:
        self.buffer: list[dict[str, Any]] = []
        self.last: int | None = None
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}
        self.straddled = False  # the first applied event had U <= lastUpdateId < u

    def on_event(self, ev: dict[str, Any]) -> None:
        if self.last is None:
            self.buffer.append(ev)
            return
        if ev["u"] <= self.last:
            return
        if ev["U"] > self.last + 1:
            raise AssertionError(f"gap: U={ev['U']} after u={self.last}")
        self._apply(ev)

    def on_snapshot(self, snapshot: dict[str, Any]) -> bool:
        """Takes the REST snapshot; False when it is older than the first buffered event
        (step 3: the caller fetches it again)."""
        if self.buffer and snapshot["lastUpdateId"] < self.buffer[0]["U"] - 1:
            return False
        self.last = snapshot["lastUpdateId"]
        self.bids = {Decimal(p): Decimal(q) for p, q in snapshot["bids"]}
        self.asks = {Decimal(p): Decimal(q) for p, q in snapshot["asks"]}
        buffered, self.buffer = self.buffer, []
        for ev in buffered:
            self.on_event(ev)
        return True

    def _apply(self, ev: dict[str, Any]) -> None:
        assert self.last is not None
        assert ev["U"] <= self.last + 1 <= ev["u"]
        self.straddled = self.straddled or ev["U"] <= self.last
        for side, levels in ((self.bids, ev["b"]), (self.asks, ev["a"])):
            for p, q in levels:
                if Decimal(q) == 0:
                    side.pop(Decimal(p), None)
                else:
                    side[Decimal(p)] = Decimal(q)
        self.last = ev["u"]

    def top(self) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        bids = sorted(self.bids.items(), reverse=True)
        asks = sorted(self.asks.items())
        return [(f"{p:.8f}", f"{q:.8f}") for p, q in bids], [
            (f"{p:.8f}", f"{q:.8f}") for p, q in asks
        ]
