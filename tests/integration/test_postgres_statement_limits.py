"""Statement limits on real PostgreSQL: the migration runner sets the database's session
defaults that every later connection takes, and bounds its own statements by its deadline."""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from bourse.adapters import postgres
from bourse.adapters.migrations import (
    _ADVISORY_LOCK_KEY,
    MIGRATIONS_DIR,
    MigrationError,
    apply_migrations,
)
from bourse.settings import Settings
from tests.integration.record_support import drop_database

pytestmark = pytest.mark.integration


@pytest.fixture()
def empty_db(local_stack: Settings) -> Iterator[str]:
    name = f"test_pg_timeouts_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(local_stack.pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield make_conninfo(local_stack.pg_dsn, dbname=name)
    # Not a bare DROP .. WITH (FORCE): an autovacuum worker busy with the new tables cannot be
    # signalled by the app's role (CI failed on it); drop_database waits it out.
    drop_database(local_stack.pg_dsn, name)


def _show(conn: psycopg.Connection, name: str) -> str:
    row = conn.execute(sql.SQL("SHOW {}").format(sql.SQL(name))).fetchone()
    assert row is not None
    return str(row[0])


def test_every_new_session_takes_the_statement_limits(empty_db: str) -> None:
    apply_migrations(empty_db)
    with postgres.connect(empty_db, autocommit=True) as conn:
        assert _show(conn, "statement_timeout") == "30s"
        assert _show(conn, "lock_timeout") == "10s"
        assert _show(conn, "idle_in_transaction_session_timeout") == "1min"
        with pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute("SET statement_timeout = '200ms'")
            conn.execute("SELECT pg_sleep(2)")
    # applying again (every deploy) changes nothing
    assert apply_migrations(empty_db) == []


def test_a_migration_running_at_the_deadline_is_cancelled_and_leaves_nothing(
    empty_db: str, tmp_path: Path
) -> None:
    folder = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, folder)
    apply_migrations(empty_db, folder)
    (folder / "9000_slow.sql").write_text("CREATE TABLE slow (id int);\nSELECT pg_sleep(30);\n")
    started = time.monotonic()
    with pytest.raises(MigrationError, match=r"9000_slow\.sql was still running at the deadline"):
        apply_migrations(empty_db, folder, deadline=started + 1.5)
    assert time.monotonic() - started < 5
    with psycopg.connect(empty_db) as conn:
        assert conn.execute("SELECT to_regclass('slow')").fetchone() == (None,)
        assert conn.execute(
            "SELECT count(*) FROM schema_migrations WHERE version = 9000"
        ).fetchone() == (0,)


def test_a_runner_waiting_for_the_lock_gives_up_at_its_deadline(empty_db: str) -> None:
    apply_migrations(empty_db)
    with psycopg.connect(empty_db, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (_ADVISORY_LOCK_KEY,))
        started = time.monotonic()
        with pytest.raises(MigrationError, match="held the migrations lock until the deadline"):
            apply_migrations(empty_db, deadline=started + 1.0)
        assert time.monotonic() - started < 4


def test_grant_iam_auth_does_nothing_where_there_is_no_rds_iam(empty_db: str) -> None:
    """The local PostgreSQL has no rds_iam role (Aurora's): nothing to grant, no error."""
    from bourse.adapters.migrations import grant_iam_auth

    assert grant_iam_auth(empty_db, "unused-with-trust-auth", time.monotonic() + 10) is False
