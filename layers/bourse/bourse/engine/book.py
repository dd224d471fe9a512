"""One symbol's order book: a sorted price ladder per side, a FIFO queue per level.

Each side keeps its level keys in one ascending list with the best level *last*, so the
hot operations (look at the best, remove the best, add near the best) touch the end of the
list. Bids are keyed by price, asks by -price. Canceled orders stay in their level's queue
(lazy deletion) and are skipped when they reach the front; the level's ``live`` count says
when it is really empty.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque
from collections.abc import Iterator
from itertools import islice

from bourse.engine.orders import Order


class Level:
    __slots__ = ("live", "orders", "price", "qty", "total")

    def __init__(self, price: int) -> None:
        self.price = price
        self.orders: deque[Order] = deque()
        self.qty = 0  # displayed quantity (what depth shows)
        self.total = 0  # remaining quantity, iceberg hidden parts included
        self.live = 0  # orders in the queue that are still alive


class BookSide:
    __slots__ = ("is_bid", "keys", "levels")

    def __init__(self, is_bid: bool) -> None:
        self.is_bid = is_bid
        self.keys: list[int] = []  # ascending; best level last
        self.levels: dict[int, Level] = {}  # price -> level

    def key(self, price: int) -> int:
        return price if self.is_bid else -price

    def best(self) -> Level | None:
        keys = self.keys
        if not keys:
            return None
        k = keys[-1]
        return self.levels[k if self.is_bid else -k]

    def level_for(self, price: int) -> Level:
        """The level at ``price``, created (and placed on the ladder) if missing."""
        level = self.levels.get(price)
        if level is None:
            level = self.levels[price] = Level(price)
            k = price if self.is_bid else -price
            keys = self.keys
            if not keys or k > keys[-1]:
                keys.append(k)
            else:
                insort(keys, k)
        return level

    def remove_level(self, level: Level) -> None:
        price = level.price
        del self.levels[price]
        k = price if self.is_bid else -price
        keys = self.keys
        if keys[-1] == k:
            keys.pop()
        else:
            del keys[bisect_left(keys, k)]

    def levels_best_first(self) -> Iterator[Level]:
        """Levels from the best price outwards, lazily (callers usually stop early)."""
        levels = self.levels
        if self.is_bid:
            return (levels[k] for k in reversed(self.keys))
        return (levels[-k] for k in reversed(self.keys))

    def add(self, order: Order) -> None:
        """Put a resting order at the back of its level (its displayed slice already set)."""
        level = self.level_for(order.price)
        level.orders.append(order)
        level.qty += order.displayed
        level.total += order.remaining
        level.live += 1

    def unlink(self, order: Order) -> Level:
        """Take a live order off the book (it stays in the queue, marked dead)."""
        level = self.levels[order.price]
        order.alive = False
        level.qty -= order.displayed
        level.total -= order.remaining
        level.live -= 1
        if level.live == 0:
            self.remove_level(level)
        return level


class Book:
    __slots__ = ("asks", "bids", "orders")

    def __init__(self) -> None:
        self.bids = BookSide(True)
        self.asks = BookSide(False)
        self.orders: dict[int, Order] = {}  # resting orders by id

    def side(self, is_buy: bool) -> BookSide:
        return self.bids if is_buy else self.asks

    def depth(self, limit: int) -> tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]]:
        bids = tuple((lv.price, lv.qty) for lv in islice(self.bids.levels_best_first(), limit))
        asks = tuple((lv.price, lv.qty) for lv in islice(self.asks.levels_best_first(), limit))
        return bids, asks
