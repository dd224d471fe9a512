"""A batch of engine events -> the Binance stream messages it causes, and the per-symbol
state the aggregated streams need (book, klines, 24 h window).

``StreamState.apply(events)`` is deterministic: the same events from the same state give the
same messages, so the state can be rebuilt by replaying the event stream, or seeded at start
from the live view (``Seed``: the matching service's Redis book, the recorder's newest klines)
and continued from there. Events whose seq the state has already applied are skipped (a batch
delivered again by the event source is not published twice).

What a batch publishes, per symbol it touched, in this order:

- ``<s>@trade`` per trade; ``<s>@aggTrade`` per run of trades of one taker at one price;
  ``<s>@bookTicker`` per depth update that changes the best bid or ask;
- ``<s>@depth`` and ``<s>@depth@100ms``: the batch's depth updates merged per second (per
  100 ms) of event time, into as few diffs as the size limit allows (Binance merges a
  second's or 100 ms' worth; we never merge across batches, nothing is held back);
- ``<s>@depth5|10|20`` (and ``@100ms``): the top of the book after the batch, if it changed;
- ``<s>@kline_<i>`` for every interval: each kline the batch closed (``x`` true), then the
  current one; ``<s>@miniTicker``, ``<s>@ticker``, ``<s>@ticker_<w>`` (1h, 4h, 1d),
  ``<s>@avgPrice``, and one ``!miniTicker@arr``, ``!ticker@arr`` and ``!ticker_<w>@arr``
  (the symbols with trades in the batch);
- user data per account, in event order: executionReport, outboundAccountPosition,
  balanceUpdate (every funding step: deposit, withdrawal request, completion, failure,
  cancel).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import msgspec

from bourse.domain.events import (
    AccountBalances,
    BalanceUpdate,
    DepthUpdate,
    Event,
    ExecutionReport,
    ListStatus,
    Trade,
)
from bourse.record.intervals import INTERVALS
from bourse.streams import frames, payloads
from bourse.streams.book import EMPTY, Level, LocalBook
from bourse.streams.rolling import (
    AVG_PRICE_MS,
    TICKER_WINDOWS_MS,
    Candle,
    Rolling,
    fold_kline,
)

PARTIAL_DEPTHS = (5, 10, 20)
MINI_TICKER_ARR = "!miniTicker@arr"
TICKER_ARR = "!ticker@arr"
ALL_MARKET_ARRAYS = (
    MINI_TICKER_ARR, TICKER_ARR, *(f"!ticker_{size}@arr" for size in TICKER_WINDOWS_MS)
)  # fmt: skip
_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True, slots=True)
class Message:
    stream: str
    data: bytes  # the payload, JSON


@dataclass
class Batch:
    """The messages of one batch: market ones in publishing order, user data by account."""

    market: list[Message] = field(default_factory=list)
    user: dict[int, list[bytes]] = field(default_factory=dict)


class Seed(Protocol):
    """Where a fresh state finds a symbol it has not seen yet (the broadcaster: Redis)."""

    def book(self, symbol: str) -> tuple[int, list[Level], list[Level]] | None: ...

    def klines(self, symbol: str) -> dict[str, Candle]: ...


class _NoSeed:
    def book(self, symbol: str) -> tuple[int, list[Level], list[Level]] | None:
        return None

    def klines(self, symbol: str) -> dict[str, Candle]:
        return {}


@dataclass
class _Agg:
    first: int
    last: int
    taker: int
    price: int
    qty: int
    ts: int
    m: bool


class _SymbolBatch:
    """What one symbol accumulates during a batch."""

    __slots__ = ("agg", "book_changed", "closed", "depth", "last_ts", "traded")

    def __init__(self) -> None:
        self.depth: list[DepthUpdate] = []
        self.book_changed = False
        self.closed: dict[str, list[tuple[Candle, int]]] = {}
        self.last_ts = 0
        self.traded = False
        self.agg: _Agg | None = None


class StreamState:
    def __init__(self, seed: Seed | None = None) -> None:
        self.seed: Seed = seed or _NoSeed()
        self.last_seq = 0
        self.books: dict[str, LocalBook] = {}
        self.klines: dict[str, dict[str, Candle]] = {}
        self.rolling: dict[str, Rolling] = {}

    # ------------------------------------------------------------------ state per symbol

    def _book(self, symbol: str, ev: DepthUpdate) -> LocalBook | None:
        """The symbol's book ready to take ``ev``, or None when ``ev`` is already in it or the
        state cannot catch up yet (a gap the seed does not close: partial depth and
        bookTicker of the symbol wait until it does)."""
        book = self.books.get(symbol)
        if book is not None and ev.first_update_id <= book.update_id:
            return None
        if book is None or not book.follows(ev):
            seeded = self.seed.book(symbol)
            if seeded is None:
                if ev.first_update_id != 1:
                    return None
                book = LocalBook()
            else:
                book = LocalBook(*seeded)
            self.books[symbol] = book
            if ev.first_update_id <= book.update_id or not book.follows(ev):
                return None
        return book

    def _klines(self, symbol: str) -> dict[str, Candle]:
        got = self.klines.get(symbol)
        if got is None:
            got = self.klines[symbol] = dict(self.seed.klines(symbol))
        return got

    # ------------------------------------------------------------------ one batch

    def apply(self, events: Iterable[Event]) -> Batch:
        out = Batch()
        touched: dict[str, _SymbolBatch] = {}

        def sym(symbol: str) -> _SymbolBatch:
            got = touched.get(symbol)
            if got is None:
                got = touched[symbol] = _SymbolBatch()
            return got

        for ev in events:
            if ev.seq <= self.last_seq:
                continue
            self.last_seq = ev.seq
            if isinstance(ev, Trade):
                self._trade(ev, sym(ev.symbol), out)
            elif isinstance(ev, DepthUpdate):
                self._depth(ev, sym(ev.symbol), out)
            elif isinstance(ev, ExecutionReport):
                out.user.setdefault(ev.order.account_id, []).append(
                    _encode(payloads.execution_report(ev))
                )
            elif isinstance(ev, ListStatus):
                account_id = ev.order_list.account_id
                out.user.setdefault(account_id, []).append(_encode(payloads.list_status(ev)))
            elif isinstance(ev, AccountBalances):
                out.user.setdefault(ev.account_id, []).extend(_positions(ev))
            elif isinstance(ev, BalanceUpdate):
                out.user.setdefault(ev.account_id, []).append(_encode(payloads.balance_update(ev)))
            # Nothing else has a Binance stream: a funding step (FundingUpdate) reaches its
            # account as the balanceUpdate and outboundAccountPosition around it; AdminAction,
            # AccountUpdated, AccountFeesUpdated, SymbolUpdated, Reply are the admin plane's.
        # The all-market streams' arrays (!miniTicker@arr, !ticker@arr, !ticker_<w>@arr).
        arrays: dict[str, list[bytes]] = {name: [] for name in ALL_MARKET_ARRAYS}
        for symbol, acc in touched.items():
            self._flush_agg(symbol, acc, out)
            self._end_of_batch(symbol, acc, out, arrays)
        for stream, items in arrays.items():
            for group in frames.chunks(items):
                out.market.append(Message(stream, b"[" + b",".join(group) + b"]"))
        return out

    def _trade(self, ev: Trade, acc: _SymbolBatch, out: Batch) -> None:
        name = ev.symbol.lower()
        out.market.append(Message(f"{name}@trade", _encode(payloads.trade(ev))))
        taker = ev.seller_order_id if ev.is_buyer_maker else ev.buyer_order_id
        agg = acc.agg
        if agg is not None and (
            agg.last == ev.trade_id - 1 and agg.taker == taker and agg.price == ev.price
        ):
            agg.last = ev.trade_id
            agg.qty += ev.qty
            agg.ts = ev.ts
        else:
            self._flush_agg(ev.symbol, acc, out)
            acc.agg = _Agg(
                ev.trade_id, ev.trade_id, taker, ev.price, ev.qty, ev.ts, ev.is_buyer_maker
            )
        klines = self._klines(ev.symbol)
        for interval in INTERVALS:
            current = klines.get(interval)
            if current is not None and current.last_id >= ev.trade_id:
                continue  # the seed already holds this trade
            candle, closed = fold_kline(current, interval, ev)
            klines[interval] = candle
            if closed is not None:
                acc.closed.setdefault(interval, []).append((closed, ev.ts))
        rolling = self.rolling.get(ev.symbol)
        if rolling is None:
            rolling = self.rolling[ev.symbol] = Rolling()
        rolling.add(ev)
        acc.traded = True
        acc.last_ts = max(acc.last_ts, ev.ts)

    def _flush_agg(self, symbol: str, acc: _SymbolBatch, out: Batch) -> None:
        agg = acc.agg
        if agg is None:
            return
        acc.agg = None
        payload = payloads.agg_trade(
            symbol, agg.first, agg.first, agg.last, agg.price, agg.qty, agg.ts, agg.m
        )
        out.market.append(Message(f"{symbol.lower()}@aggTrade", _encode(payload)))

    def _depth(self, ev: DepthUpdate, acc: _SymbolBatch, out: Batch) -> None:
        acc.depth.append(ev)
        acc.last_ts = max(acc.last_ts, ev.ts)
        book = self._book(ev.symbol, ev)
        if book is None:
            # Already in a seed that is ahead of the stream: the book is current, publish it.
            current = self.books.get(ev.symbol)
            acc.book_changed |= current is not None and current.update_id >= ev.final_update_id
            return
        before = (book.best_bid, book.best_ask)
        book.apply(ev)
        acc.book_changed = True
        if (book.best_bid, book.best_ask) != before:
            payload = payloads.book_ticker(ev.symbol, ev.final_update_id, *_bbo(book))
            out.market.append(Message(f"{ev.symbol.lower()}@bookTicker", _encode(payload)))

    def _end_of_batch(
        self, symbol: str, acc: _SymbolBatch, out: Batch, arrays: dict[str, list[bytes]]
    ) -> None:
        name = symbol.lower()
        market = out.market
        if acc.depth:
            for stream, period_ms in ((f"{name}@depth", 1000), (f"{name}@depth@100ms", 100)):
                for run in _by_period(acc.depth, period_ms):
                    for diff in frames.depth_diffs(symbol, run):
                        market.append(Message(stream, _encode(diff)))
        book = self.books.get(symbol)
        if acc.book_changed and book is not None:
            bids, asks = book.top(PARTIAL_DEPTHS[-1])
            for n in PARTIAL_DEPTHS:
                data = _encode(payloads.partial_depth(book.update_id, bids[:n], asks[:n]))
                market.append(Message(f"{name}@depth{n}", data))
                market.append(Message(f"{name}@depth{n}@100ms", data))
        if not acc.traded:
            return
        ts = acc.last_ts
        klines = self.klines[symbol]
        for interval in INTERVALS:
            stream = f"{name}@kline_{interval}"
            for closed, closed_ts in acc.closed.get(interval, ()):
                payload = payloads.kline(symbol, interval, closed, True, closed_ts)
                market.append(Message(stream, _encode(payload)))
            market.append(
                Message(
                    stream, _encode(payloads.kline(symbol, interval, klines[interval], False, ts))
                )
            )
        rolling = self.rolling[symbol]
        window = rolling.window(ts)
        mini = _encode(payloads.mini_ticker(symbol, window, ts))
        arrays[MINI_TICKER_ARR].append(mini)
        market.append(Message(f"{name}@miniTicker", mini))
        bid, ask = _bbo(book) if book is not None else (EMPTY, EMPTY)
        full = _encode(payloads.ticker(symbol, window, bid, ask, ts))
        arrays[TICKER_ARR].append(full)
        market.append(Message(f"{name}@ticker", full))
        for size, span_ms in TICKER_WINDOWS_MS.items():
            data = _encode(payloads.window_ticker(symbol, size, rolling.since(span_ms, ts), ts))
            arrays[f"!ticker_{size}@arr"].append(data)
            market.append(Message(f"{name}@ticker_{size}", data))
        average = payloads.avg_price(symbol, rolling.since(AVG_PRICE_MS, ts), rolling.last_ts, ts)
        market.append(Message(f"{name}@avgPrice", _encode(average)))


def _by_period(updates: list[DepthUpdate], period_ms: int) -> Iterator[list[DepthUpdate]]:
    """The batch's updates in runs of one period of event time each: a diff stream merges
    what its update speed spans (1000 ms for ``@depth``, 100 ms for ``@depth@100ms``) and no
    more. Nothing waits for a later batch: a stream is never held back (no timer runs here)."""
    run: list[DepthUpdate] = []
    for ev in updates:
        if run and ev.ts // period_ms != run[-1].ts // period_ms:
            yield run
            run = []
        run.append(ev)
    if run:
        yield run


def _bbo(book: LocalBook) -> tuple[Level, Level]:
    return book.best_bid, book.best_ask


def _positions(ev: AccountBalances) -> list[bytes]:
    """outboundAccountPosition, in as many parts as the size limit needs (see frames)."""
    per = max(1, frames.BUDGET // 160)  # one balance entry is well under 160 bytes
    out = []
    for start in range(0, len(ev.balances), per):
        part = AccountBalances(ev.seq, ev.ts, ev.account_id, ev.balances[start : start + per])
        out.append(_encode(payloads.account_position(part)))
    return out
