"""One symbol's order book: a sorted price ladder per side, a FIFO queue per level.

Each side keeps its level keys in one ascending list with the best level *last*, so the
hot operations (look at the best, remove the best, add near the best) touch the end of the
list. Bids are keyed by price, asks by -price.

A level's queue is a deque: the fill loop only looks at, pops and appends at its ends. An
order taken off the book from the middle of its queue (a cancel, an STP-expired maker) is
marked dead (``alive`` False) and left in place; the match loop pops dead entries when they
reach the front. So that canceled orders cannot pile up at a level that never trades,
``unlink`` removes an order at either end of its queue at once, and whatever takes a live
order out of a queue (``unlink``, a maker filled in the match loop) compacts the queue (the
live entries, in their order) when it holds more dead entries than live ones. Hence a
queue never holds more than twice its live orders (``len(orders) <= 2 * live``, after every
change); a compaction of n entries drops more than n/2 dead ones, each left by one removal,
so it costs O(1) amortized per removal; and the fill loop pays one comparison per filled
maker. The level's ``live`` count says when it is really empty; an empty level is dropped,
dead entries and all.
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


def compact(queue: deque[Order]) -> None:
    """Drop a queue's dead entries, keeping the live ones in their order. In place, so that
    a caller holding the queue (the match loop) still has the level's."""
    kept = [o for o in queue if o.alive]
    queue.clear()
    queue.extend(kept)


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
        """Levels from the best price outwards, lazily (callers usually stop early).

        A generator function, not a generator expression: mypyc compiles a returned
        generator expression into a list of every level, so each call cost the whole ladder
        (a FOK order's fillability check was a p99 outlier in the compiled engine only)."""
        levels = self.levels
        keys = self.keys
        sign = 1 if self.is_bid else -1
        for i in range(len(keys) - 1, -1, -1):
            yield levels[sign * keys[i]]

    def add(self, order: Order) -> None:
        """Put a resting order at the back of its level (its displayed slice already set)."""
        level = self.level_for(order.price)
        level.orders.append(order)
        level.qty += order.displayed
        level.total += order.remaining
        level.live += 1

    def unlink(self, order: Order) -> Level:
        """Take a live order off the book: out of its queue if it is at either end, else
        marked dead in place (see the module's docstring)."""
        level = self.levels[order.price]
        order.alive = False
        level.qty -= order.displayed
        level.total -= order.remaining
        live = level.live - 1
        level.live = live
        if live == 0:
            self.remove_level(level)
            return level
        queue = level.orders
        if queue[-1] is order:
            queue.pop()
        elif queue[0] is order:
            queue.popleft()
        if len(queue) > 2 * live:
            compact(queue)
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
