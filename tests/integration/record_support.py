"""Helpers shared by the record's integration tests: a throwaway migrated database, a
reference event stream from the engine, and a canonical dump of the record's tables."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from bourse.adapters.migrations import apply_migrations
from bourse.domain.events import Event
from bourse.engine import Engine
from matching_service.workload import commands as workload

# table -> ORDER BY that makes its dump canonical (timestamps of our own clock left out)
RECORD_TABLES: dict[str, str] = {
    "orders": "symbol, order_id",
    "order_events": "seq",
    "trades": "symbol, trade_id",
    "account_trades": "account_id, symbol, trade_id, is_buyer",
    "balances": "account_id, asset",
    "ledger_entries": "seq, leg",
    "klines": "symbol, interval, open_time",
    "agg_trades": "symbol, agg_id",
    "symbols": "symbol",
    "admin_log": "seq",
    "funding": "funding_id, kind",
    "accounts": "account_id",
    "order_amendments": "seq",
    "order_lists": "order_list_id",
}


@contextmanager
def scratch_database(base_dsn: str, prefix: str) -> Iterator[str]:
    """A new database with every migration applied; dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(base_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = make_conninfo(base_dsn, dbname=name)
    try:
        apply_migrations(dsn)
        yield dsn
    finally:
        drop_database(base_dsn, name)


def drop_database(base_dsn: str, name: str) -> None:
    """DROP .. WITH (FORCE), retried: FORCE may not terminate an autovacuum worker that is
    busy with the freshly written tables (the app's role may not signal it), so wait it out."""
    for attempt in range(40):
        try:
            with psycopg.connect(base_dsn, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
            return
        except (psycopg.errors.InsufficientPrivilege, psycopg.errors.ObjectInUse):
            if attempt == 39:
                raise
            time.sleep(0.5)


def engine_run(count: int, seed: int = 7) -> tuple[list[Event], Engine]:
    engine = Engine()
    events: list[Event] = []
    for cmd in workload(count, seed=seed):
        events.extend(engine.process(cmd))
    return events, engine


def dump(dsn: str) -> dict[str, str]:
    """A digest of each record table's full contents, in key order."""
    out: dict[str, str] = {}
    with psycopg.connect(dsn) as conn:
        for table, order in RECORD_TABLES.items():
            cols = [
                r[0]
                for r in conn.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = %s"
                    " AND column_name NOT IN ('created_at', 'updated_at')"
                    " ORDER BY ordinal_position",
                    (table,),
                ).fetchall()
            ]
            query = f"SELECT {', '.join(cols)} FROM {table} ORDER BY {order}"
            digest = hashlib.sha256()
            for row in conn.execute(query.encode()):
                digest.update(repr(row).encode())
            out[table] = digest.hexdigest()
    return out


def truncate_record(dsn: str) -> None:
    with psycopg.connect(dsn) as conn:
        # every table the recorder writes: a table left out keeps a run's rows into the next
        tables = ", ".join(["applied_events", "record_gaps", *RECORD_TABLES])
        conn.execute(f"TRUNCATE {tables}".encode())


def record_balances(dsn: str) -> dict[int, dict[str, tuple[int, int]]]:
    out: dict[int, dict[str, tuple[int, int]]] = {}
    with psycopg.connect(dsn) as conn:
        for account, asset, free, locked in conn.execute(
            "SELECT account_id, asset, free, locked FROM balances WHERE free <> 0 OR locked <> 0"
        ).fetchall():
            out.setdefault(account, {})[asset] = (free, locked)
    return out


def unbalanced_trades(dsn: str) -> list[tuple[object, ...]]:
    """(symbol, trade_id, asset, sum) for every trade whose legs and fees do not net to 0."""
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT symbol, trade_id, asset, sum(amount) FROM ledger_entries"
            " WHERE trade_id IS NOT NULL GROUP BY symbol, trade_id, asset"
            " HAVING sum(amount) <> 0"
        ).fetchall()
