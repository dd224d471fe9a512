"""Untriggered stop orders of one symbol and the choice of the next one to trigger.

Per docs/engine.md, the next stop is the one with the smallest order id among those whose
condition holds for the last trade price, or, for a trailing stop, whose reversal reached its
delta. Plain stops are stored in two dicts by direction, each kept in ascending order id, so
the first holding entry of each dict is that direction's candidate; a heap by stop price says
at once whether any holds, so a price that sets none off costs no scan.

Trailing stops watch every trade price (``observe``): their trigger depends on the path of
prices, not only on the last one. Showing each trade to each trailing stop costs the number
of trailing stops per trade, and the standard workload keeps hundreds of them: it was half
the engine's time. So they are indexed (``_Trails``) by what decides their fate:

- waiting for their stop price: heaps by stop price, like plain stops;
- tracking, by (side, delta): a BUY tracks the lowest price since it started, so a trade at p
  lowers every extreme above p to p. All extremes of a group that a trade moved are then
  equal: they share one ``_Extreme`` (orders with the same extreme), and a group is a list of
  them sorted from the one closest to firing to the one a new low (high) moves. A trade moves
  the buckets at one end (merged into one, the largest kept, so each order moves O(log n)
  times) and fires the buckets at the other, which for one delta is a prefix.
"""

from __future__ import annotations

import heapq
from bisect import insort

import msgspec

from bourse.domain.enums import OrderType
from bourse.domain.symbols import BIPS
from bourse.engine.orders import Order


def triggers_on_rise(order_type: OrderType, is_buy: bool) -> bool:
    """STOP_LOSS BUY and TAKE_PROFIT SELL trigger when the price rises to the stop price."""
    is_stop_loss = order_type in (OrderType.STOP_LOSS, OrderType.STOP_LOSS_LIMIT)
    return is_stop_loss == is_buy


def would_trigger(order_type: OrderType, is_buy: bool, stop_price: int, last_price: int) -> bool:
    if last_price <= 0:
        return False
    if triggers_on_rise(order_type, is_buy):
        return last_price >= stop_price
    return last_price <= stop_price


def trail(is_buy: bool, delta: int, extreme: int, price: int) -> tuple[int, bool]:
    """One trade price on a tracking trailing stop: its new extreme and whether it triggers.

    A BUY tracks the lowest price and triggers on a rise of ``delta`` BIPS from it; a SELL
    tracks the highest and triggers on a fall of ``delta`` BIPS (Binance's trailing stop FAQ).
    Exact integer comparisons: Binance's own examples trigger at untruncated prices
    (43,012.5 = 46,500 * 0.925). ``_Trails`` applies the same rule to a bucket at a time;
    this per-order form is the specification its tests hold it to.
    """
    if is_buy:
        if price < extreme:
            return price, False
        return extreme, price * BIPS >= extreme * (BIPS + delta)
    if price > extreme:
        return price, False
    return extreme, price * BIPS <= extreme * (BIPS - delta)


class _Extreme:
    """Tracking trailing stops of one group that share their extreme price."""

    __slots__ = ("orders", "price")

    def __init__(self, price: int) -> None:
        self.price = price
        self.orders: dict[int, Order] = {}


class _Group:
    """Tracking trailing stops of one side and delta. ``buckets`` is sorted by extreme,
    ascending for BUY and descending for SELL: the front fires first, the back moves."""

    __slots__ = ("buckets", "delta", "is_buy")

    def __init__(self, is_buy: bool, delta: int) -> None:
        self.is_buy = is_buy
        self.delta = delta
        self.buckets: list[_Extreme] = []

    def sort_key(self, bucket: _Extreme) -> int:
        return bucket.price if self.is_buy else -bucket.price


class _Trails:
    """Trailing stops not yet fired (see the module's docstring)."""

    __slots__ = ("bucket_of", "groups", "heap_falls", "heap_rises", "orders", "unanchored",
                 "waiting")  # fmt: skip

    def __init__(self) -> None:
        self.orders: dict[int, Order] = {}  # every one, whatever its phase
        # Waiting for the stop price: by id, and heaps of (stop price, id) by direction
        # (falls: negated prices). Heap entries of removed orders are dropped lazily.
        self.waiting: dict[int, Order] = {}
        self.heap_rises: list[tuple[int, int]] = []
        self.heap_falls: list[tuple[int, int]] = []
        self.unanchored: dict[int, Order] = {}  # no stop price, no trade yet: the next one
        self.groups: dict[tuple[bool, int], _Group] = {}
        self.bucket_of: dict[int, _Extreme] = {}

    def add(self, order: Order, extreme: int) -> None:
        order_id = order.order_id
        self.orders[order_id] = order
        info = order.info
        if extreme:
            self._track(order, extreme, at_back=False)
        elif info.stop_price:
            self.waiting[order_id] = order
            if triggers_on_rise(info.type, order.is_buy):
                heapq.heappush(self.heap_rises, (info.stop_price, order_id))
            else:
                heapq.heappush(self.heap_falls, (-info.stop_price, order_id))
            self._compact_heaps()
        else:
            self.unanchored[order_id] = order

    def remove(self, order_id: int) -> Order | None:
        order = self.orders.pop(order_id, None)
        if order is None:
            return None
        bucket = self.bucket_of.pop(order_id, None)
        if bucket is not None:
            del bucket.orders[order_id]  # an empty bucket goes when its end is reached
        elif self.waiting.pop(order_id, None) is None:
            del self.unanchored[order_id]
        return order

    def extreme(self, order_id: int) -> int:
        bucket = self.bucket_of.get(order_id)
        return 0 if bucket is None else bucket.price

    def observe(self, price: int, ts: int, fired: dict[int, Order]) -> None:
        """One trade at ``price``: move the extremes, fire what reversed far enough, then
        start tracking what this trade anchors (a stop starts on the trade that meets its
        stop price and is not tested against that same trade)."""
        for group in self.groups.values():
            if group.buckets:
                self._move_and_fire(group, price, fired)
        started: list[Order] = []
        if self.unanchored:
            started.extend(self.unanchored.values())
            self.unanchored.clear()
        if self.waiting:
            self._due(self.heap_rises, price, False, started)
            self._due(self.heap_falls, -price, True, started)
        if started:
            started.sort(key=_order_id)
            for order in started:
                order.info = msgspec.structs.replace(order.info, trailing_time=ts)
                self._track(order, price, at_back=True)

    def _due(self, heap: list[tuple[int, int]], bound: int, falling: bool,
             started: list[Order]) -> None:  # fmt: skip
        waiting = self.waiting
        while heap and heap[0][0] <= bound:
            order_id = heapq.heappop(heap)[1]
            order = waiting.pop(order_id, None)
            if order is not None:
                started.append(order)

    def _compact_heaps(self) -> None:
        """Cancelled waiting stops leave heap entries behind; rebuild before they dominate."""
        waiting = self.waiting
        if len(self.heap_rises) + len(self.heap_falls) > 2 * len(waiting) + 64:
            for heap in (self.heap_rises, self.heap_falls):
                heap[:] = [entry for entry in heap if entry[1] in waiting]
                heapq.heapify(heap)

    def _move_and_fire(self, group: _Group, price: int, fired: dict[int, Order]) -> None:
        buckets = group.buckets
        if not buckets:
            return
        is_buy = group.is_buy
        # The back: every extreme this trade passes becomes the trade's price.
        moved: _Extreme | None = None
        while buckets:
            back = buckets[-1]
            if (back.price <= price) if is_buy else (back.price >= price):
                break
            buckets.pop()
            if moved is None:
                moved = back
                continue
            small, moved = (moved, back) if len(back.orders) > len(moved.orders) else (back, moved)
            bucket_of = self.bucket_of
            for order_id, order in small.orders.items():
                moved.orders[order_id] = order
                bucket_of[order_id] = moved
        if moved is not None:
            moved.price = price
            buckets.append(moved)
        # The front: the buckets whose reversal to this price reached the delta.
        orders = self.orders
        bucket_of = self.bucket_of
        scaled = price * BIPS
        if is_buy:
            limit = BIPS + group.delta
            while buckets and (not buckets[0].orders or scaled >= buckets[0].price * limit):
                for order_id, order in buckets.pop(0).orders.items():
                    del orders[order_id]
                    del bucket_of[order_id]
                    fired[order_id] = order
        else:
            limit = BIPS - group.delta
            while buckets and (not buckets[0].orders or scaled <= buckets[0].price * limit):
                for order_id, order in buckets.pop(0).orders.items():
                    del orders[order_id]
                    del bucket_of[order_id]
                    fired[order_id] = order

    def _track(self, order: Order, extreme: int, at_back: bool) -> None:
        """Start tracking from ``extreme``. A trade's anchors join the back (after the moves,
        the back's extreme is at most that trade's price for BUY, at least for SELL); a
        restored stop is put in its sorted place."""
        is_buy, delta = order.is_buy, order.info.trailing_delta
        group = self.groups.get((is_buy, delta))
        if group is None:
            group = self.groups[(is_buy, delta)] = _Group(is_buy, delta)
        buckets = group.buckets
        bucket: _Extreme | None = None
        if at_back and buckets and buckets[-1].price == extreme:
            bucket = buckets[-1]
        elif at_back:
            bucket = _Extreme(extreme)
            buckets.append(bucket)
        else:
            for candidate in buckets:
                if candidate.price == extreme:
                    bucket = candidate
                    break
            if bucket is None:
                bucket = _Extreme(extreme)
                insort(buckets, bucket, key=group.sort_key)
        bucket.orders[order.order_id] = order
        self.bucket_of[order.order_id] = bucket


class Stops:
    __slots__ = ("falls", "fired", "heap_falls", "heap_rises", "rises", "trails")

    def __init__(self) -> None:
        self.rises: dict[int, Order] = {}  # trigger when last >= stop price; id order
        self.falls: dict[int, Order] = {}  # trigger when last <= stop price; id order
        # (stop price, id) and (-stop price, id): the top says whether any stop holds.
        self.heap_rises: list[tuple[int, int]] = []
        self.heap_falls: list[tuple[int, int]] = []
        self.trails = _Trails()  # trailing stops not yet triggered
        # Trailing stops whose reversal reached their delta, waiting their turn in the
        # command that moved the price (never left over between commands).
        self.fired: dict[int, Order] = {}

    @property
    def trailing(self) -> dict[int, Order]:
        """Trailing stops not yet triggered, by id."""
        return self.trails.orders

    def __len__(self) -> int:
        return len(self.rises) + len(self.falls) + len(self.trails.orders) + len(self.fired)

    def __contains__(self, order_id: int) -> bool:
        return (
            order_id in self.rises
            or order_id in self.falls
            or order_id in self.trails.orders
            or order_id in self.fired
        )

    def get(self, order_id: int) -> Order | None:
        return (
            self.rises.get(order_id)
            or self.falls.get(order_id)
            or self.trails.orders.get(order_id)
            or self.fired.get(order_id)
        )

    def add(self, order: Order, trail_extreme: int = 0) -> None:
        """``trail_extreme``: a trailing stop's extreme when it is already tracking (placed
        without a stop price after a trade, or restored from a snapshot)."""
        info = order.info
        order_id = order.order_id
        if info.trailing_delta:
            self.trails.add(order, trail_extreme)
            return
        if triggers_on_rise(info.type, order.is_buy):
            group, heap, key = self.rises, self.heap_rises, info.stop_price
        else:
            group, heap, key = self.falls, self.heap_falls, -info.stop_price
        # An order list's pending leg is added after orders with larger ids were: the dict
        # must stay in id order (the first holding entry is the smallest id).
        out_of_order = bool(group) and next(reversed(group)) > order_id
        group[order_id] = order
        if out_of_order:
            ordered = sorted(group.items())
            group.clear()
            group.update(ordered)
        heapq.heappush(heap, (key, order_id))
        if len(heap) > 2 * len(group) + 64:
            heap[:] = [entry for entry in heap if entry[1] in group]
            heapq.heapify(heap)

    def remove(self, order_id: int) -> None:
        # Heap entries are dropped lazily, when they reach the top or at a rebuild.
        if self.rises.pop(order_id, None) is not None:
            return
        if self.falls.pop(order_id, None) is not None:
            return
        if self.trails.remove(order_id) is not None:
            return
        del self.fired[order_id]

    def trail_extreme(self, order_id: int) -> int:
        """A trailing stop's best price since it started tracking (0: not tracking yet)."""
        return self.trails.extreme(order_id)

    def all_sorted(self) -> list[Order]:
        return sorted(
            [*self.rises.values(), *self.falls.values(), *self.trails.orders.values(),
             *self.fired.values()],
            key=_order_id,
        )  # fmt: skip

    def observe(self, price: int, ts: int) -> None:
        """One trade at ``price``: every trailing stop starts tracking (if its stop price
        condition now holds), moves its extreme, or fires."""
        self.trails.observe(price, ts, self.fired)

    def next_triggered(self, last_price: int) -> Order | None:
        """The holding stop with the smallest order id, or None."""
        best: Order | None = None
        if self.fired:
            best = min(self.fired.values(), key=_order_id)
        if self._top(self.heap_rises, self.rises) <= last_price:
            for order in self.rises.values():
                if last_price >= order.info.stop_price:
                    if best is None or order.order_id < best.order_id:
                        best = order
                    break
        if -self._top(self.heap_falls, self.falls) >= last_price:
            for order in self.falls.values():
                if last_price <= order.info.stop_price:
                    if best is None or order.order_id < best.order_id:
                        best = order
                    break
        return best

    @staticmethod
    def _top(heap: list[tuple[int, int]], live: dict[int, Order]) -> int:
        """The smallest key of a live order in ``heap`` (popping dead ones), or a key no
        price reaches."""
        while heap:
            key, order_id = heap[0]
            if order_id in live:
                return key
            heapq.heappop(heap)
        return 1 << 62


def _order_id(order: Order) -> int:
    return order.order_id
