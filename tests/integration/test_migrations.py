"""The migration runner against real PostgreSQL, each test in a throwaway database."""

from __future__ import annotations

import shutil
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from bourse.adapters.migrations import MIGRATIONS_DIR, MigrationError, apply_migrations, discover
from bourse.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture()
def empty_db(local_stack: Settings) -> Iterator[str]:
    """A fresh database, made and dropped by the app's own role (it has CREATEDB)."""
    name = f"test_migrations_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(local_stack.pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield make_conninfo(local_stack.pg_dsn, dbname=name)
    with psycopg.connect(local_stack.pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def _tables(dsn: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchall()
    return {r[0] for r in rows}


def _history(dsn: str) -> list[tuple[int, str, str]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT version, name, checksum FROM schema_migrations ORDER BY version"
        ).fetchall()
    return [(int(v), str(n), str(c)) for v, n, c in rows]


def test_apply_on_empty_database_then_again_changes_nothing(empty_db: str) -> None:
    applied = apply_migrations(empty_db)
    assert [m.version for m in applied] == [m.version for m in discover()]
    assert {"schema_migrations", "accounts", "symbols", "exchange_meta"} <= _tables(empty_db)
    history = _history(empty_db)
    assert [(v, n) for v, n, _ in history] == [(m.version, m.name) for m in discover()]

    assert apply_migrations(empty_db) == []
    assert _history(empty_db) == history


def test_the_stack_database_is_migrated(local_stack: Settings) -> None:
    assert [v for v, _, _ in _history(local_stack.pg_dsn)] == [m.version for m in discover()]


def test_a_changed_applied_migration_is_refused(empty_db: str, tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, folder)
    apply_migrations(empty_db, folder)
    first = sorted(folder.glob("*.sql"))[0]
    first.write_text(first.read_text() + "\nCREATE TABLE sneaky (id int);\n")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        apply_migrations(empty_db, folder)
    assert "sneaky" not in _tables(empty_db)


def test_a_failing_migration_leaves_nothing_behind(empty_db: str, tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, folder)
    (folder / "9000_broken.sql").write_text(
        "CREATE TABLE half_done (id int);\nSELECT no_such_function();\n"
    )
    with pytest.raises(MigrationError, match=r"9000_broken\.sql failed"):
        apply_migrations(empty_db, folder)
    assert "half_done" not in _tables(empty_db)
    assert 9000 not in [v for v, _, _ in _history(empty_db)]
    (folder / "9000_broken.sql").write_text("CREATE TABLE fixed (id int);\n")
    assert [m.version for m in apply_migrations(empty_db, folder)] == [9000]


def test_concurrent_runners_apply_each_file_once(empty_db: str) -> None:
    results: list[list[int]] = []
    errors: list[BaseException] = []

    def runner() -> None:
        try:
            results.append([m.version for m in apply_migrations(empty_db)])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=runner) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(results, key=len) == [[], [], [], [m.version for m in discover()]]
