"""The record's PostgreSQL writer: one batch of events, one transaction, exactly once.

Idempotency is by seq. The consumer's row in ``applied_events`` is locked (FOR UPDATE) at the
start of the transaction and holds the highest seq applied; events at or below it are dropped
before mapping, so a re-delivered batch (or the overlapping part of a differently cut one)
changes nothing, and two writers for the same consumer serialise instead of interleaving. The
mark moves in the same transaction as the rows, so a writer killed mid-batch leaves either all
of the batch or none of it. Seqs skipped over (a poison record reported failed while the rest
of its batch lands) are written to ``record_gaps`` for an operator, never silently.

Throughput: append-only tables are filled with COPY; current-state tables (orders, balances,
klines) are COPYed into session temp tables and merged with one INSERT .. ON CONFLICT each, so
a batch costs a handful of round trips whatever its size. The connection is opened once and
reused (a Lambda container keeps it between invocations); a broken one is replaced on the next
batch. prepare_threshold=None keeps psycopg from preparing statements, which would pin
connections behind RDS Proxy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import psycopg

from bourse.adapters import postgres
from bourse.domain.events import Event, SymbolUpdated, Trade
from bourse.record.rows import (
    ACCOUNT_COLUMNS,
    ACCOUNT_TRADE_COLUMNS,
    ADMIN_LOG_COLUMNS,
    AGG_TRADE_COLUMNS,
    AMENDMENT_COLUMNS,
    BALANCE_COLUMNS,
    FUNDING_COLUMNS,
    KLINE_COLUMNS,
    LEDGER_COLUMNS,
    ORDER_COLUMNS,
    ORDER_EVENT_COLUMNS,
    ORDER_LIST_COLUMNS,
    TRADE_COLUMNS,
    Row,
    Rows,
    map_events,
)


@dataclass(slots=True)
class WriteResult:
    received: int  # events handed in
    applied: int  # events above the high-water mark, now recorded
    first_seq: int  # of the applied ones (0 when none)
    last_seq: int  # the high-water mark after the batch
    gaps: list[tuple[int, int]] = field(default_factory=list)
    klines: list[Row] = field(default_factory=list)  # stored state of the klines touched
    traded: dict[str, int] = field(default_factory=dict)  # symbol -> its last trade time


# Called inside the transaction after the rows are written and before the commit, with the
# events being applied: a failure rolls the batch back.
BeforeCommit = Callable[[list[Event]], None]
# Called inside the transaction as soon as the mark is known, with the mark: starts work that
# runs beside the writes (the S3 archive put) and returns what waits for it, called before
# the commit; so the work overlaps the writes, and its failure still rolls the batch back.
Alongside = Callable[[int], Callable[[], None]]

_TEMP_TABLES = (
    "CREATE TEMP TABLE IF NOT EXISTS orders_in (LIKE orders) ON COMMIT DELETE ROWS;"
    "CREATE TEMP TABLE IF NOT EXISTS balances_in (LIKE balances) ON COMMIT DELETE ROWS;"
    "CREATE TEMP TABLE IF NOT EXISTS klines_in (LIKE klines) ON COMMIT DELETE ROWS;"
)

_MERGE_ORDERS = f"""
INSERT INTO orders SELECT * FROM orders_in
ON CONFLICT (symbol, order_id) DO UPDATE SET
    {", ".join(f"{c} = EXCLUDED.{c}" for c in ORDER_COLUMNS[2:])}
WHERE orders.last_seq < EXCLUDED.last_seq
"""

_MERGE_BALANCES = """
INSERT INTO balances SELECT * FROM balances_in
ON CONFLICT (account_id, asset) DO UPDATE SET
    free = EXCLUDED.free, locked = EXCLUDED.locked,
    last_seq = EXCLUDED.last_seq, update_ts = EXCLUDED.update_ts
WHERE balances.last_seq < EXCLUDED.last_seq
"""

# The fee account's balance is the running sum of the commissions it received; the
# high-water mark guarantees each commission is added once.
_ADD_FEE_INCOME = """
INSERT INTO balances (account_id, asset, free, locked, last_seq, update_ts)
VALUES (0, %s, %s, 0, %s, %s)
ON CONFLICT (account_id, asset) DO UPDATE SET
    free = balances.free + EXCLUDED.free,
    last_seq = EXCLUDED.last_seq, update_ts = EXCLUDED.update_ts
"""

# A kline part covers trades first_trade_id..last_trade_id; the guard refuses a part whose
# trades the stored kline already holds.
_MERGE_KLINES = f"""
INSERT INTO klines SELECT * FROM klines_in
ON CONFLICT (symbol, interval, open_time) DO UPDATE SET
    high = GREATEST(klines.high, EXCLUDED.high),
    low = LEAST(klines.low, EXCLUDED.low),
    close = EXCLUDED.close,
    volume = klines.volume + EXCLUDED.volume,
    quote_volume = klines.quote_volume + EXCLUDED.quote_volume,
    trades = klines.trades + EXCLUDED.trades,
    taker_buy_volume = klines.taker_buy_volume + EXCLUDED.taker_buy_volume,
    taker_buy_quote = klines.taker_buy_quote + EXCLUDED.taker_buy_quote,
    last_trade_id = EXCLUDED.last_trade_id
WHERE klines.last_trade_id < EXCLUDED.first_trade_id
RETURNING {", ".join(f"klines.{c}" for c in KLINE_COLUMNS)}
"""

# An aggregate trade whose run of trades began in an earlier batch (a command whose events
# were split over records) continues the newest stored one of its symbol.
_CONTINUE_AGG = """
UPDATE agg_trades SET last_trade_id = %(last)s, qty = qty + %(qty)s
WHERE symbol = %(symbol)s
  AND agg_id = (SELECT max(agg_id) FROM agg_trades WHERE symbol = %(symbol)s)
  AND last_trade_id = %(first)s - 1 AND taker_order_id = %(taker)s AND price = %(price)s
"""

_UPSERT_SYMBOL = """
INSERT INTO symbols (symbol, base_asset, quote_asset, status, base_asset_precision,
                     quote_asset_precision)
VALUES (%s, %s, %s, %s, %s, %s)
ON CONFLICT (symbol) DO UPDATE SET status = EXCLUDED.status
"""

# Admin commands are rare (people, not programs, send them): plain multi-row statements.
# ON CONFLICT DO NOTHING / the seq guards only back up the high-water mark, as elsewhere.
_INSERT_ADMIN_LOG = f"""
INSERT INTO admin_log ({", ".join(ADMIN_LOG_COLUMNS)})
VALUES ({", ".join(["%s"] * (len(ADMIN_LOG_COLUMNS) - 1))}, %s::jsonb)
ON CONFLICT (seq) DO NOTHING
"""

# A funding id keeps its first step's requested_* (the stored row's, or this batch's first);
# status and updated_* move forward only.
_MERGE_FUNDING = f"""
INSERT INTO funding ({", ".join(FUNDING_COLUMNS)})
VALUES ({", ".join(["%s"] * len(FUNDING_COLUMNS))})
ON CONFLICT (funding_id, kind) DO UPDATE SET
    account_id = EXCLUDED.account_id, asset = EXCLUDED.asset, amount = EXCLUDED.amount,
    status = EXCLUDED.status, tx_id = EXCLUDED.tx_id,
    updated_seq = EXCLUDED.updated_seq, updated_ts = EXCLUDED.updated_ts
WHERE funding.updated_seq < EXCLUDED.updated_seq
"""

_MERGE_ACCOUNT = f"""
INSERT INTO accounts ({", ".join(ACCOUNT_COLUMNS)})
VALUES ({", ".join(["%s"] * len(ACCOUNT_COLUMNS))})
ON CONFLICT (account_id) DO UPDATE SET
    status = EXCLUDED.status, last_seq = EXCLUDED.last_seq, update_ts = EXCLUDED.update_ts
WHERE accounts.last_seq < EXCLUDED.last_seq
"""

# An order list's row follows its newest ListStatus (orders as JSON text -> jsonb).
_MERGE_ORDER_LIST = f"""
INSERT INTO order_lists ({", ".join(ORDER_LIST_COLUMNS)})
VALUES ({", ".join(["%s"] * 8)}, %s::jsonb, %s, %s)
ON CONFLICT (order_list_id) DO UPDATE SET
    list_status_type = EXCLUDED.list_status_type,
    list_order_status = EXCLUDED.list_order_status,
    update_ts = EXCLUDED.update_ts, last_seq = EXCLUDED.last_seq
WHERE order_lists.last_seq < EXCLUDED.last_seq
"""


_COPIED: dict[str, Sequence[str]] = {
    "order_events": ORDER_EVENT_COLUMNS,
    "order_amendments": AMENDMENT_COLUMNS,
    "trades": TRADE_COLUMNS,
    "account_trades": ACCOUNT_TRADE_COLUMNS,
    "ledger_entries": LEDGER_COLUMNS,
    "agg_trades": AGG_TRADE_COLUMNS,
    "orders_in": ORDER_COLUMNS,
    "balances_in": BALANCE_COLUMNS,
    "klines_in": KLINE_COLUMNS,
}


def _column_types(
    conn: psycopg.Connection[tuple[object, ...]], table: str, columns: Sequence[str]
) -> list[int]:
    """The type OIDs of ``columns``, as binary COPY needs them (read from the table itself)."""
    cur = conn.execute(f"SELECT {', '.join(columns)} FROM {table} LIMIT 0".encode())
    assert cur.description is not None
    return [col.type_code for col in cur.description]


class RecordStore:
    """Writes event batches into the record for one consumer (its high-water mark's name)."""

    def __init__(self, dsn: str, consumer: str) -> None:
        self._consumer = consumer
        self._pg = postgres.ReusedConnection(dsn, on_open=self._prepare)
        self._assets: dict[str, tuple[str, str]] = {}
        self._types: dict[str, list[int]] = {}

    def _prepare(self, conn: psycopg.Connection[tuple[object, ...]]) -> None:
        conn.execute(_TEMP_TABLES)
        self._types = {
            table: _column_types(conn, table, columns) for table, columns in _COPIED.items()
        }

    def connection(self) -> psycopg.Connection[tuple[object, ...]]:
        return self._pg.get()

    def close(self) -> None:
        self._pg.close()

    def high_water_mark(self) -> int:
        row = (
            self.connection()
            .execute("SELECT last_seq FROM applied_events WHERE consumer = %s", (self._consumer,))
            .fetchone()
        )
        return 0 if row is None else int(str(row[0]))

    def write(
        self,
        events: Sequence[Event],
        before_commit: BeforeCommit | None = None,
        alongside: Alongside | None = None,
        seqs: Sequence[int] | None = None,
    ) -> WriteResult:
        """Apply ``events`` (any order, duplicates allowed) in one transaction. ``seqs``: every
        seq delivered, when the events handed in leave out those the record keeps nothing of
        (``bourse.record.delivery``), so that the mark and the gaps still count them."""
        try:
            return self._write(events, before_commit, alongside, seqs)
        except psycopg.OperationalError:
            # The connection may be dead (failover, idle timeout): start afresh next time.
            self.close()
            raise

    def _write(
        self,
        events: Sequence[Event],
        before_commit: BeforeCommit | None,
        alongside: Alongside | None,
        seqs: Sequence[int] | None,
    ) -> WriteResult:
        conn = self.connection()
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(
                "INSERT INTO applied_events (consumer, last_seq) VALUES (%s, 0)"
                " ON CONFLICT DO NOTHING",
                (self._consumer,),
            )
            row = cur.execute(
                "SELECT last_seq FROM applied_events WHERE consumer = %s FOR UPDATE",
                (self._consumer,),
            ).fetchone()
            assert row is not None
            hwm = int(str(row[0]))
            fresh: dict[int, Event] = {}
            for ev in events:
                if ev.seq > hwm:
                    fresh[ev.seq] = ev  # a seq twice in one delivery is the same event
            new = [fresh[s] for s in sorted(fresh)]
            received = len(events) if seqs is None else len(seqs)
            applied = None if seqs is None else sorted({s for s in seqs if s > hwm})
            if not (new if applied is None else applied):
                return WriteResult(received, 0, 0, hwm)
            finish = alongside(hwm) if alongside is not None else None
            self._load_assets(cur, new)
            rows = map_events(new, self._assets, start_after=hwm, seqs=applied)
            klines = self._write_rows(cur, rows)
            if rows.gaps:
                cur.executemany(
                    "INSERT INTO record_gaps (consumer, from_seq, to_seq) VALUES (%s, %s, %s)"
                    " ON CONFLICT DO NOTHING",
                    [(self._consumer, a, b) for a, b in rows.gaps],
                )
            cur.execute(
                "UPDATE applied_events SET last_seq = %s, updated_at = now() WHERE consumer = %s",
                (rows.last_seq, self._consumer),
            )
            if finish is not None:
                finish()
            if before_commit is not None:
                before_commit(new)
        traded: dict[str, int] = {}
        for trade in rows.trades:
            traded[str(trade[0])] = int(str(trade[3]))
        return WriteResult(
            received, rows.events, rows.first_seq, rows.last_seq, rows.gaps, klines, traded
        )

    def _copy(
        self,
        cur: psycopg.Cursor[tuple[object, ...]],
        table: str,
        columns: Sequence[str],
        rows: Sequence[Row],
    ) -> None:
        """COPY in binary: the server skips parsing text into bigints (most columns here)."""
        if not rows:
            return
        with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(self._types[table])
            for row in rows:
                copy.write_row(row)

    def _load_assets(self, cur: psycopg.Cursor[tuple[object, ...]], events: list[Event]) -> None:
        defined = {ev.spec.symbol for ev in events if isinstance(ev, SymbolUpdated)}
        wanted = {
            ev.symbol
            for ev in events
            if isinstance(ev, Trade) and ev.symbol not in self._assets and ev.symbol not in defined
        }
        if wanted:
            for symbol, base, quote in cur.execute(
                "SELECT symbol, base_asset, quote_asset FROM symbols WHERE symbol = ANY(%s)",
                (sorted(wanted),),
            ).fetchall():
                self._assets[str(symbol)] = (str(base), str(quote))

    def _write_rows(self, cur: psycopg.Cursor[tuple[object, ...]], rows: Rows) -> list[Row]:
        """Write ``rows``; returns the stored state of the klines they touched."""
        if rows.symbols:
            cur.executemany(_UPSERT_SYMBOL, list(rows.symbols.values()))
        if rows.admin_log:
            cur.executemany(_INSERT_ADMIN_LOG, rows.admin_log)
        if rows.funding:
            cur.executemany(_MERGE_FUNDING, list(rows.funding.values()))
        if rows.accounts:
            cur.executemany(_MERGE_ACCOUNT, list(rows.accounts.values()))
        if rows.order_lists:
            cur.executemany(_MERGE_ORDER_LIST, list(rows.order_lists.values()))
        self._copy(cur, "order_events", ORDER_EVENT_COLUMNS, rows.order_events)
        self._copy(cur, "order_amendments", AMENDMENT_COLUMNS, rows.amendments)
        self._copy(cur, "trades", TRADE_COLUMNS, rows.trades)
        self._copy(cur, "account_trades", ACCOUNT_TRADE_COLUMNS, rows.account_trades)
        self._copy(cur, "ledger_entries", LEDGER_COLUMNS, rows.ledger)
        if rows.orders:
            self._copy(cur, "orders_in", ORDER_COLUMNS, list(rows.orders.values()))
            cur.execute(_MERGE_ORDERS)
        if rows.balances:
            self._copy(cur, "balances_in", BALANCE_COLUMNS, list(rows.balances.values()))
            cur.execute(_MERGE_BALANCES)
        for asset, (amount, seq, ts) in sorted(rows.fee_income.items()):
            cur.execute(_ADD_FEE_INCOME, (asset, amount, seq, ts))
        klines: list[Row] = []
        if rows.klines:
            self._copy(cur, "klines_in", KLINE_COLUMNS, [k.row() for k in rows.klines.values()])
            klines = list(cur.execute(_MERGE_KLINES).fetchall())
        self._write_agg_trades(cur, rows)
        return klines

    def _write_agg_trades(self, cur: psycopg.Cursor[tuple[object, ...]], rows: Rows) -> None:
        inserts: list[Row] = []
        seen: set[str] = set()
        for agg in rows.agg_trades:
            if agg.symbol not in seen:
                seen.add(agg.symbol)
                cur.execute(
                    _CONTINUE_AGG,
                    {
                        "last": agg.last_trade_id, "qty": agg.qty, "symbol": agg.symbol,
                        "first": agg.agg_id, "taker": agg.taker_order_id, "price": agg.price,
                    },
                )  # fmt: skip
                if cur.rowcount == 1:
                    continue
            inserts.append(agg.row())
        self._copy(cur, "agg_trades", AGG_TRADE_COLUMNS, inserts)
