"""The functions' PostgreSQL roles on the real server (migration 0006): each runs its own code
as its role, and the server refuses (SQLSTATE 42501, nothing changed) what its role may not do.

One database of this module's own, migrated from nothing by the owner as on AWS; the roles
belong to the cluster, so this is also a run of the migration over roles that already exist.
tests/unit/test_pg_function_roles.py checks the grants against the code statically.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from bourse.adapters.migrations import apply_migrations
from bourse.adapters.record_reads import RecordHistory, funding_history, rolling_ticker
from bourse.adapters.record_store import RecordStore
from bourse.adapters.settlement_store import SettlementStore
from bourse.domain.events import Event, Trade
from bourse.record.rows import fills_of
from bourse.settings import Settings, get_settings
from devstack.gateway.runtime import function_environment
from devstack.gateway.template_api import load_rest_api
from tests.integration.record_support import engine_run, scratch_database

pytestmark = pytest.mark.integration

DENIED = "42501"  # insufficient_privilege


@pytest.fixture(scope="module")
def dsn(local_stack: Settings) -> Iterator[str]:
    with scratch_database(local_stack.pg_dsn, "test_pg_roles") as owner_dsn:
        yield owner_dsn


@pytest.fixture(scope="module")
def events(dsn: str) -> list[Event]:
    """A run of the engine, recorded by the recorder's own code as its own role."""
    run, _engine = engine_run(400)
    store = RecordStore(_as(dsn, "bourse_recorder"), "test-roles")
    try:
        store.write(run)
    finally:
        store.close()
    return run


def _as(dsn: str, role: str) -> str:
    return make_conninfo(dsn, user=role)


def _refused(dsn: str, role: str, statement: str) -> str:
    with psycopg.connect(_as(dsn, role), autocommit=True) as conn:
        try:
            conn.execute(statement.encode())
        except psycopg.Error as exc:
            return str(exc.sqlstate)
    return "allowed"


def _count(dsn: str, table: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}".encode()).fetchone()
        assert row is not None
        return int(str(row[0]))


def test_the_template_gives_each_function_its_role(
    dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A function's settings (its template environment, as the gateway and the event sources
    give it) connect it as its own role, whatever user the DSN names."""
    settings = get_settings()
    api = load_rest_api(settings.stage, settings.region, settings.moto_port)
    expected = {
        "MarketDataFunction": "bourse_reader", "AccountFunction": "bourse_reader",
        "AdminFunction": "bourse_reader", "WsApiFunction": "bourse_reader",
        "RecorderFunction": "bourse_recorder", "SettlementFunction": "bourse_settlement",
    }  # fmt: skip
    try:
        for function, role in expected.items():
            env = function_environment(api.functions[function].environment, {})
            monkeypatch.setattr(os, "environ", {**os.environ, **env, "BOURSE_PG_DSN": dsn})
            get_settings.cache_clear()
            with psycopg.connect(get_settings().pg_dsn) as conn:
                row = conn.execute("SELECT current_user").fetchone()
            assert row == (role,), function
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


def test_the_reader_reads_the_record(dsn: str, events: list[Event]) -> None:
    symbol = next(ev.symbol for ev in events if isinstance(ev, Trade))
    history = RecordHistory(_as(dsn, "bourse_reader"))
    try:
        assert history.trades(symbol, from_id=None, limit=5)
        assert history.klines(symbol, "1m", 0, 2**62)
    finally:
        history.close()
    assert len(funding_history(_as(dsn, "bourse_reader"), None, 10)) == 10  # the run's deposits


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO trades SELECT * FROM trades LIMIT 1",
        "UPDATE balances SET free = free + 1",
        "DELETE FROM orders",
        "TRUNCATE ledger_entries",
        "INSERT INTO applied_events (consumer, last_seq) VALUES ('forged', 0)",
        "CREATE TABLE stolen (a int)",
        "CREATE TEMP TABLE scratch (a int)",
        "CREATE INDEX ON trades (qty)",
        "ALTER TABLE trades ADD COLUMN note text",
        "DROP TABLE klines",
    ],
)
def test_the_reader_may_not_write_or_change_the_schema(
    dsn: str, events: list[Event], statement: str
) -> None:
    before = {t: _count(dsn, t) for t in ("trades", "orders", "ledger_entries")}
    assert _refused(dsn, "bourse_reader", statement) == DENIED
    assert {t: _count(dsn, t) for t in before} == before


def test_the_recorder_runs_its_hot_cache_reads(dsn: str, events: list[Event]) -> None:
    trade = next(ev for ev in reversed(events) if isinstance(ev, Trade))
    with psycopg.connect(_as(dsn, "bourse_recorder")) as conn:
        assert rolling_ticker(conn, trade.symbol, trade.ts).count > 0


@pytest.mark.parametrize(
    "statement",
    [
        # the record is appended and merged, never rewritten or removed
        "DELETE FROM trades",
        "TRUNCATE orders",
        "UPDATE trades SET qty = qty + 1",
        "UPDATE ledger_entries SET amount = amount * 2",
        "DELETE FROM record_gaps",
        "SELECT * FROM record_gaps",
        # settlement's tables are not the recorder's
        "SELECT * FROM settled_fills",
        "INSERT INTO settlement_breaks (symbol, trade_id, is_buyer, account_id, problem)"
        " VALUES ('X', 1, true, 1, 'forged')",
        "UPDATE daily_statements SET fees = 0",
        # nor the schema
        "CREATE TABLE stolen (a int)",
        "DROP TABLE klines",
        "ALTER TABLE orders SET (fillfactor = 100)",
    ],
)
def test_the_recorder_touches_only_what_it_writes(
    dsn: str, events: list[Event], statement: str
) -> None:
    assert _refused(dsn, "bourse_recorder", statement) == DENIED


def test_settlement_settles_as_its_role_and_writes_nothing_else(
    dsn: str, events: list[Event]
) -> None:
    store = SettlementStore(_as(dsn, "bourse_settlement"))
    try:
        fills = fills_of(events)[:4]
        assert fills
        assert all(store.settle(fill) == [] for fill in fills)
        assert all(store.settle(fill) is None for fill in fills)  # once only
    finally:
        store.close()
    trades = _count(dsn, "trades")
    for statement in (
        "INSERT INTO trades SELECT * FROM trades LIMIT 1",
        "UPDATE ledger_entries SET amount = 1",
        "DELETE FROM settled_fills",
        "UPDATE balances SET free = 0",
        "SELECT * FROM orders",
        "CREATE TABLE stolen (a int)",
    ):
        assert _refused(dsn, "bourse_settlement", statement) == DENIED, statement
    assert _count(dsn, "trades") == trades


def test_the_migrations_run_again_over_roles_that_exist(local_stack: Settings, dsn: str) -> None:
    """Another database of the same cluster (the roles exist already), and the same one again
    (every deploy): nothing fails, nothing more to apply."""
    with (
        scratch_database(local_stack.pg_dsn, "test_pg_roles_again") as other,
        psycopg.connect(_as(other, "bourse_reader")) as conn,
    ):
        assert conn.execute("SELECT count(*) FROM trades").fetchone() == (0,)
    assert apply_migrations(dsn) == []
