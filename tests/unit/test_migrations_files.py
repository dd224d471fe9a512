"""How the migration runner reads the migrations folder (no database needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bourse.adapters.migrations import MIGRATIONS_DIR, MigrationError, _check_history, discover

pytestmark = pytest.mark.unit


def test_shipped_migrations_are_well_formed() -> None:
    migrations = discover(MIGRATIONS_DIR)
    assert migrations[0].version == 1
    assert [m.version for m in migrations] == sorted({m.version for m in migrations})
    assert all(m.sql.strip() for m in migrations)


def test_files_are_ordered_by_version(tmp_path: Path) -> None:
    (tmp_path / "0010_later.sql").write_text("SELECT 1;")
    (tmp_path / "0002_earlier.sql").write_text("SELECT 1;")
    assert [m.label for m in discover(tmp_path)] == ["0002_earlier", "0010_later"]


@pytest.mark.parametrize("name", ["1_short.sql", "0001-dash.sql", "0001_Upper.sql", "x.sql"])
def test_badly_named_files_are_refused(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="NNNN_lower_snake_name"):
        discover(tmp_path)


def test_a_version_used_twice_is_refused(tmp_path: Path) -> None:
    (tmp_path / "0001_a.sql").write_text("SELECT 1;")
    (tmp_path / "0001_b.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="used twice"):
        discover(tmp_path)


def test_history_checks(tmp_path: Path) -> None:
    (tmp_path / "0001_a.sql").write_text("SELECT 1;")
    (tmp_path / "0002_b.sql").write_text("SELECT 2;")
    a, b = discover(tmp_path)
    _check_history([a, b], {1: ("a", a.checksum)})  # one pending: fine
    with pytest.raises(MigrationError, match="changed after it was applied"):
        _check_history([a, b], {1: ("a", "0" * 64)})
    with pytest.raises(MigrationError, match="file is missing"):
        _check_history([b], {1: ("a", a.checksum), 2: ("b", b.checksum)})
    with pytest.raises(MigrationError, match="older than applied version"):
        _check_history([a, b], {2: ("b", b.checksum)})
