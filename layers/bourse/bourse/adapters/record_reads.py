"""Reads of the record: the rolling ticker (more than one indexed range scan) and
``RecordHistory``, the REST API's history view (single indexed queries, docs/record.md).
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

import psycopg
import redis
from psycopg.rows import class_row

from bourse.adapters import postgres
from bourse.adapters.hot_cache import HotCache
from bourse.domain.amounts import format_units
from bourse.record.tickers import DAY_MS, Part, Ticker, combine, minute_span
from bourse.record.views import (
    AccountTradeRow,
    AggTradeRow,
    AmendmentRow,
    KlineRow,
    OrderListRow,
    OrderRow,
    PreventedMatchRow,
    TradeRow,
)

_EDGE = """
SELECT count(*), max(price), min(price), sum(qty), sum(quote_qty), min(trade_id), max(trade_id)
FROM trades WHERE symbol = %(symbol)s AND ts >= %(lo)s AND ts < %(hi)s
"""
_EDGE_ENDS = """
(SELECT price, qty FROM trades WHERE symbol = %(symbol)s AND ts >= %(lo)s AND ts < %(hi)s
 ORDER BY trade_id LIMIT 1)
UNION ALL
(SELECT price, qty FROM trades WHERE symbol = %(symbol)s AND ts >= %(lo)s AND ts < %(hi)s
 ORDER BY trade_id DESC LIMIT 1)
"""
_MINUTES = """
SELECT open, high, low, close, volume, quote_volume, trades, first_trade_id, last_trade_id
FROM klines WHERE symbol = %(symbol)s AND interval = '1m'
  AND open_time >= %(lo)s AND open_time < %(hi)s ORDER BY open_time
"""


def _edge(
    conn: psycopg.Connection[tuple[object, ...]], symbol: str, lo: int, hi: int
) -> list[Part]:
    if hi <= lo:
        return []
    args = {"symbol": symbol, "lo": lo, "hi": hi}
    row = conn.execute(_EDGE, args).fetchone()
    if row is None or not row[0]:
        return []
    ends = conn.execute(_EDGE_ENDS, args).fetchall()
    count, high, low, volume, quote, first_id, last_id = (int(str(v)) for v in row)
    (open_price, _), (close, close_qty) = ends[0], ends[-1]
    return [
        Part(int(str(open_price)), high, low, int(str(close)), int(str(close_qty)), volume,
             quote, count, first_id, last_id)
    ]  # fmt: skip


def rolling_ticker(
    conn: psycopg.Connection[tuple[object, ...]], symbol: str, now_ms: int, window_ms: int = DAY_MS
) -> Ticker:
    """Binance's rolling-window ticker over the trades in (now - window, now]."""
    start, end = now_ms - window_ms + 1, now_ms
    m0, m1 = minute_span(start, end)
    head = _edge(conn, symbol, start, m0)
    minutes: list[Part] = []
    for row in conn.execute(_MINUTES, {"symbol": symbol, "lo": m0, "hi": m1}).fetchall():
        o, h, low, c, volume, quote, count, first_id, last_id = (int(str(v)) for v in row)
        minutes.append(Part(o, h, low, c, 0, volume, quote, count, first_id, last_id))
    tail = _edge(conn, symbol, m1, end + 1)
    parts = head + minutes + tail
    if parts and not tail:
        # A kline does not keep its last trade's quantity: read it from the trades.
        last = conn.execute(
            "SELECT qty FROM trades WHERE symbol = %s AND trade_id = %s",
            (symbol, parts[-1].last_id),
        ).fetchone()
        p = parts[-1]
        parts[-1] = Part(p.open, p.high, p.low, p.close, int(str(last[0])) if last else 0,
                         p.volume, p.quote_volume, p.count, p.first_id, p.last_id)  # fmt: skip
    return combine(symbol, start, end, parts)


# ---------------------------------------------------------------------------- REST history

_T = TypeVar("_T")
_TRADE = "trade_id, ts, price, qty, quote_qty, is_buyer_maker"
_AGG = "agg_id, last_trade_id, price, qty, ts, is_buyer_maker"
_KLINE = (
    "open_time, close_time, open, high, low, close, volume, quote_volume, trades,"
    " taker_buy_volume, taker_buy_quote"
)
_ORDER = ", ".join(f.name for f in dataclasses.fields(OrderRow))
_ACCOUNT_TRADE = ", ".join(f.name for f in dataclasses.fields(AccountTradeRow))
# A prevented match is one or two TRADE_PREVENTION reports (the maker's, the taker's: each
# side that expired), each naming the other order: one row per match, with the resting
# maker's price and the taker's STP mode from ``orders`` (index order_events_prevented).
_PREVENTION = "e.exec_type = 'TRADE_PREVENTION'"
_ORDER_LISTS = """
SELECT order_list_id, account_id, symbol, contingency_type, list_status_type, list_order_status,
       list_client_order_id, transaction_time, orders
FROM order_lists WHERE {where} ORDER BY order_list_id {order} LIMIT {limit}
"""
_AMENDMENTS = """
SELECT symbol, order_id, execution_id, orig_client_order_id, new_client_order_id, orig_qty,
       new_qty, ts
FROM order_amendments WHERE {where} ORDER BY execution_id LIMIT %(limit)s
"""
_PREVENTED = """
SELECT m.symbol, m.prevented_match_id, m.taker_order_id, m.maker_order_id,
       taker.stp_mode, maker.price, m.maker_prevented_qty, m.ts
FROM (
    SELECT e.symbol, e.prevented_match_id, min(e.ts) AS ts,
           max(CASE WHEN e.is_maker THEN e.counter_order_id ELSE e.order_id END) AS taker_order_id,
           max(CASE WHEN e.is_maker THEN e.order_id ELSE e.counter_order_id END) AS maker_order_id,
           coalesce(max(e.last_prevented_qty) FILTER (WHERE e.is_maker), 0) AS maker_prevented_qty
    FROM order_events e WHERE {where}
    GROUP BY e.symbol, e.prevented_match_id
    ORDER BY e.prevented_match_id LIMIT %(limit)s
) m
JOIN orders taker ON taker.symbol = m.symbol AND taker.order_id = m.taker_order_id
JOIN orders maker ON maker.symbol = m.symbol AND maker.order_id = m.maker_order_id
ORDER BY m.prevented_match_id
"""
# The cached 24 h ticker (trades of [c0, c1] up to trade last_id) still holds exactly the
# trades of a window [start, end] with c0 <= start <= c1 <= end when no trade of the record is
# in [c0, start) and none came after last_id: two index probes instead of a day of klines.
_CACHE_STALE = """
SELECT EXISTS (SELECT 1 FROM trades WHERE symbol = %(symbol)s AND ts >= %(c0)s AND ts < %(start)s)
    OR EXISTS (SELECT 1 FROM trades WHERE symbol = %(symbol)s AND trade_id > %(last_id)s)
"""


class RecordHistory:
    """``bourse.api.ports.HistoryView`` over the record: every read one indexed range scan
    (docs/record.md lists each query and its index), ``LIMIT`` bounding it. One autocommit
    connection per container, opened on the first read and reopened after a failure; the
    rolling tickers answer from the recorder's Redis copy when it is provably exact."""

    def __init__(self, dsn: str, hot: HotCache | None = None) -> None:
        self._pg = postgres.ReusedConnection(dsn)
        self._hot = hot

    def close(self) -> None:
        self._pg.close()

    def _conn(self) -> postgres.Connection:
        return self._pg.get()

    def _rows(self, cls: type[_T], query: str, args: dict[str, object]) -> list[_T]:
        try:
            with self._conn().cursor(row_factory=class_row(cls)) as cur:
                # Composed from this module's constant fragments only (never from input).
                return cur.execute(query.encode(), args).fetchall()
        except psycopg.OperationalError:
            self._pg.close()  # a dead connection (failover, idle timeout): reopen next time
            raise

    def _page(
        self,
        cls: type[_T],
        columns: str,
        table: str,
        where: list[str],
        key: tuple[str, ...],
        args: dict[str, object],
        limit: int,
        newest: bool,
    ) -> list[_T]:
        order = ", ".join(f"{k} DESC" if newest else k for k in key)
        query = (
            f"SELECT {columns} FROM {table} WHERE {' AND '.join(where)}"
            f" ORDER BY {order} LIMIT %(limit)s"
        )
        rows = self._rows(cls, query, {**args, "limit": limit})
        return rows[::-1] if newest else rows

    def trades(self, symbol: str, *, from_id: int | None, limit: int) -> list[TradeRow]:
        where = ["symbol = %(symbol)s"]
        if from_id is not None:
            where.append("trade_id >= %(from_id)s")
        args: dict[str, object] = {"symbol": symbol, "from_id": from_id}
        return self._page(
            TradeRow, _TRADE, "trades", where, ("trade_id",), args, limit, from_id is None
        )

    def agg_trades(
        self,
        symbol: str,
        *,
        from_id: int | None,
        start: int | None,
        end: int | None,
        limit: int,
        newest: bool,
    ) -> list[AggTradeRow]:
        where = ["symbol = %(symbol)s", *_bounds("agg_id", from_id, None, "ts", start, end)]
        timed = from_id is None and (start is not None or end is not None)
        key = ("ts", "agg_id") if timed else ("agg_id",)
        args: dict[str, object] = {"symbol": symbol, "from_id": from_id, "start": start,
                                   "end": end}  # fmt: skip
        return self._page(AggTradeRow, _AGG, "agg_trades", where, key, args, limit, newest)

    def klines(self, symbol: str, interval: str, lo: int, hi: int) -> list[KlineRow]:
        return self._rows(
            KlineRow,
            f"SELECT {_KLINE} FROM klines WHERE symbol = %(symbol)s AND interval = %(interval)s"
            " AND open_time BETWEEN %(lo)s AND %(hi)s ORDER BY open_time",
            {"symbol": symbol, "interval": interval, "lo": lo, "hi": hi},
        )

    def kline_before(self, symbol: str, interval: str, before: int) -> KlineRow | None:
        rows = self._rows(
            KlineRow,
            f"SELECT {_KLINE} FROM klines WHERE symbol = %(symbol)s AND interval = %(interval)s"
            " AND open_time < %(before)s ORDER BY open_time DESC LIMIT 1",
            {"symbol": symbol, "interval": interval, "before": before},
        )
        return rows[0] if rows else None

    def first_kline_open(self, symbol: str, interval: str) -> int | None:
        rows = self._rows(
            KlineRow,
            f"SELECT {_KLINE} FROM klines WHERE symbol = %(symbol)s AND interval = %(interval)s"
            " ORDER BY open_time LIMIT 1",
            {"symbol": symbol, "interval": interval},
        )
        return rows[0].open_time if rows else None

    def ticker(self, symbol: str, start: int, end: int) -> Ticker:
        cached = self._cached_ticker(symbol, start, end)
        if cached is not None:
            return cached
        try:
            return rolling_ticker(self._conn(), symbol, end, end - start + 1)
        except psycopg.OperationalError:
            self._pg.close()
            raise

    def _cached_ticker(self, symbol: str, start: int, end: int) -> Ticker | None:
        # The copy covers 24 h: for a shorter window it is exact only when the whole day's
        # trades fall inside it, rarely worth the probe (and the record's answer is cheap).
        if self._hot is None or end - start + 1 < DAY_MS:
            return None
        try:
            raw = self._hot.ticker(symbol)
        except redis.RedisError:
            return None  # a cache: the record answers
        if raw is None:
            return None
        cached = Ticker(**raw)
        if not cached.open_time <= start <= cached.close_time <= end:
            return None
        args = {"symbol": symbol, "c0": cached.open_time, "start": start,
                "last_id": cached.last_id}  # fmt: skip
        try:
            stale = self._conn().execute(_CACHE_STALE, args).fetchone()
        except psycopg.OperationalError:
            self._pg.close()
            raise
        if stale is None or stale[0]:
            return None
        return dataclasses.replace(cached, open_time=start, close_time=end)

    def last_trade_before(self, symbol: str, before: int) -> TradeRow | None:
        rows = self._rows(
            TradeRow,
            f"SELECT {_TRADE} FROM trades WHERE symbol = %(symbol)s AND ts < %(before)s"
            " ORDER BY ts DESC, trade_id DESC LIMIT 1",
            {"symbol": symbol, "before": before},
        )
        return rows[0] if rows else None

    def orders(
        self,
        account_id: int,
        symbol: str,
        *,
        from_id: int | None,
        start: int | None,
        end: int | None,
        limit: int,
        newest: bool,
    ) -> list[OrderRow]:
        where = [
            "account_id = %(account)s",
            "symbol = %(symbol)s",
            *_bounds("order_id", from_id, None, "created_ts", start, end),
        ]
        timed = from_id is None and (start is not None or end is not None)
        key = ("created_ts", "order_id") if timed else ("order_id",)
        args: dict[str, object] = {"account": account_id, "symbol": symbol, "from_id": from_id,
                                   "start": start, "end": end}  # fmt: skip
        return self._page(OrderRow, _ORDER, "orders", where, key, args, limit, newest)

    def order(
        self, account_id: int, symbol: str, order_id: int | None, client_order_id: str | None
    ) -> OrderRow | None:
        if order_id is not None:
            where = "symbol = %(symbol)s AND order_id = %(id)s AND account_id = %(account)s"
        else:
            where = "account_id = %(account)s AND symbol = %(symbol)s"
            where += " AND client_order_id = %(cid)s"
        rows = self._rows(
            OrderRow,
            f"SELECT {_ORDER} FROM orders WHERE {where} ORDER BY order_id DESC LIMIT 1",
            {"account": account_id, "symbol": symbol, "id": order_id, "cid": client_order_id},
        )
        return rows[0] if rows else None

    def account_trades(
        self,
        account_id: int,
        symbol: str,
        *,
        order_id: int | None,
        from_id: int | None,
        start: int | None,
        end: int | None,
        limit: int,
        newest: bool,
    ) -> list[AccountTradeRow]:
        where = [
            "account_id = %(account)s",
            "symbol = %(symbol)s",
            *_bounds("trade_id", from_id, order_id, "ts", start, end),
        ]
        timed = start is not None or end is not None
        key = ("ts", "trade_id", "is_buyer") if timed else ("trade_id", "is_buyer")
        args: dict[str, object] = {"account": account_id, "symbol": symbol, "from_id": from_id,
                                   "order_id": order_id, "start": start, "end": end}  # fmt: skip
        return self._page(
            AccountTradeRow, _ACCOUNT_TRADE, "account_trades", where, key, args, limit, newest
        )

    def prevented_matches(
        self,
        account_id: int,
        symbol: str,
        *,
        prevented_match_id: int | None,
        order_id: int | None,
        from_id: int | None,
        limit: int,
    ) -> list[PreventedMatchRow]:
        where = ["e.symbol = %(symbol)s", "e.account_id = %(account)s", _PREVENTION]
        if prevented_match_id is not None:
            where.append("e.prevented_match_id = %(pm_id)s")
        if order_id is not None:
            where.append("(e.order_id = %(order_id)s OR e.counter_order_id = %(order_id)s)")
        if from_id is not None:
            where.append("e.prevented_match_id >= %(from_id)s")
        query = _PREVENTED.format(where=" AND ".join(where))
        args: dict[str, object] = {"symbol": symbol, "account": account_id,
                                   "pm_id": prevented_match_id, "order_id": order_id,
                                   "from_id": from_id, "limit": limit}  # fmt: skip
        return self._rows(PreventedMatchRow, query, args)

    # ------------------------------------------------------------------ order lists

    def order_list(
        self, account_id: int, order_list_id: int | None, list_client_order_id: str | None
    ) -> OrderListRow | None:
        """By id (then the client id must match, when given), else the newest list with
        that client id."""
        where = "account_id = %(account)s"
        if order_list_id is not None:
            where += " AND order_list_id = %(id)s"
        if list_client_order_id is not None:
            where += " AND list_client_order_id = %(cid)s"
        rows = self._rows(
            OrderListRow,
            _ORDER_LISTS.format(where=where, order="DESC", limit="1"),
            {"account": account_id, "id": order_list_id, "cid": list_client_order_id},
        )
        return rows[0] if rows else None

    def order_lists(
        self,
        account_id: int,
        *,
        from_id: int | None,
        start_time: int | None,
        end_time: int | None,
        limit: int,
    ) -> list[OrderListRow]:
        """allOrderList: from ``from_id`` up, else the newest ``limit`` in the time window;
        ascending list id either way."""
        where = "account_id = %(account)s"
        if from_id is not None:
            where += " AND order_list_id >= %(from_id)s"
        if start_time is not None:
            where += " AND transaction_time >= %(start)s"
        if end_time is not None:
            where += " AND transaction_time <= %(end)s"
        args: dict[str, object] = {
            "account": account_id,
            "from_id": from_id,
            "start": start_time,
            "end": end_time,
            "limit": limit,
        }
        if from_id is not None:
            query = _ORDER_LISTS.format(where=where, order="ASC", limit="%(limit)s")
            return self._rows(OrderListRow, query, args)
        query = _ORDER_LISTS.format(where=where, order="DESC", limit="%(limit)s")
        return self._rows(OrderListRow, query, args)[::-1]

    def open_order_lists(self, account_id: int) -> list[OrderListRow]:
        where = "account_id = %(account)s AND list_order_status = 'EXECUTING'"
        query = _ORDER_LISTS.format(where=where, order="ASC", limit="ALL")
        return self._rows(OrderListRow, query, {"account": account_id})

    def order_amendments(
        self, account_id: int, symbol: str, order_id: int, *, from_id: int | None, limit: int
    ) -> list[AmendmentRow]:
        where = "symbol = %(symbol)s AND order_id = %(order_id)s AND account_id = %(account)s"
        if from_id is not None:
            where += " AND execution_id >= %(from_id)s"
        query = _AMENDMENTS.format(where=where)
        args: dict[str, object] = {
            "symbol": symbol,
            "order_id": order_id,
            "account": account_id,
            "from_id": from_id,
            "limit": limit,
        }
        return self._rows(AmendmentRow, query, args)


def _bounds(
    id_column: str,
    from_id: int | None,
    order_id: int | None,
    ts_column: str,
    start: int | None,
    end: int | None,
) -> list[str]:
    """The optional conditions of a history read, as SQL with named parameters."""
    out = []
    if order_id is not None:
        out.append("order_id = %(order_id)s")
    if from_id is not None:
        out.append(f"{id_column} >= %(from_id)s")
    if start is not None:
        out.append(f"{ts_column} >= %(start)s")
    if end is not None:
        out.append(f"{ts_column} <= %(end)s")
    return out


# ---------------------------------------------------------------------------- admin: funding

_FUNDING_COLUMNS = (
    "SELECT funding_id, kind, status, account_id, asset, amount, tx_id, updated_ts FROM funding"
)
# Newest step first; one range scan of funding_by_update / funding_by_account.
_FUNDING_ALL = _FUNDING_COLUMNS + " ORDER BY updated_seq DESC LIMIT %(limit)s"
_FUNDING_OF_ACCOUNT = (
    _FUNDING_COLUMNS + " WHERE account_id = %(account)s ORDER BY updated_seq DESC LIMIT %(limit)s"
)

# One connection per DSN and container, reused across admin requests (as RecordHistory's).
_funding_connections: dict[str, postgres.ReusedConnection] = {}


def funding_history(dsn: str, account_id: int | None, limit: int) -> list[dict[str, Any]]:
    """GET /admin/funding: deposits and withdrawals (all accounts, or one), newest step first,
    each ``{fundingId, kind, status, accountId, asset, amount, txId, updatedAt}`` with the
    amount a decimal string and updatedAt in ms."""
    pg = _funding_connections.get(dsn)
    if pg is None:
        pg = _funding_connections[dsn] = postgres.ReusedConnection(dsn)
    query = _FUNDING_ALL if account_id is None else _FUNDING_OF_ACCOUNT
    try:
        rows = pg.get().execute(query, {"account": account_id, "limit": limit}).fetchall()
    except psycopg.OperationalError:
        pg.close()  # a dead connection (failover, idle timeout): reopen next time
        raise
    return [
        {
            "fundingId": str(funding_id),
            "kind": str(kind),
            "status": str(status),
            "accountId": int(str(account)),
            "asset": str(asset),
            "amount": format_units(int(str(amount))),
            "txId": str(tx_id),
            "updatedAt": int(str(updated_ts)),
        }
        for funding_id, kind, status, account, asset, amount, tx_id, updated_ts in rows
    ]
