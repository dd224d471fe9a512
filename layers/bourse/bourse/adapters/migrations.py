"""Versioned SQL migrations for the PostgreSQL (Aurora) schema.

The ``bourse/migrations`` folder is the only place the schema lives: files named
``NNNN_<name>.sql``, applied in version order, each in its own transaction together with its
row in ``schema_migrations``, so a failing file leaves nothing behind. An applied file must never
change (its checksum is recorded); to change the schema, add a file. A session advisory lock
keeps two runners (two Lambdas, a deploy and a developer) from applying the same file twice.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg

from bourse.adapters import postgres

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"

# Any constant works as long as every runner uses the same one; this is "bourse-mg" in ASCII.
_ADVISORY_LOCK_KEY = 0x626F757273652D6D67 & 0x7FFFFFFFFFFFFFFF
_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

_CREATE_TABLE = b"""
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(Exception):
    """The folder and the database disagree, or a file failed; the message says which."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path
    sql: bytes

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql).hexdigest()

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    migrations: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise MigrationError(f"{path}: migration files are named NNNN_lower_snake_name.sql")
        version = int(match.group(1))
        if version in migrations:
            raise MigrationError(f"{path}: version {version} is used twice")
        migrations[version] = Migration(version, match.group(2), path, path.read_bytes())
    return [migrations[v] for v in sorted(migrations)]


def applied_versions(conn: psycopg.Connection) -> dict[int, tuple[str, str]]:
    """version -> (name, checksum) of what the database has applied."""
    rows = conn.execute("SELECT version, name, checksum FROM schema_migrations").fetchall()
    return {int(v): (str(n), str(c)) for v, n, c in rows}


def _check_history(migrations: list[Migration], applied: dict[int, tuple[str, str]]) -> None:
    by_version = {m.version: m for m in migrations}
    for version, (name, checksum) in sorted(applied.items()):
        migration = by_version.get(version)
        if migration is None:
            raise MigrationError(
                f"migration {version:04d}_{name} is applied but its file is missing"
            )
        if migration.checksum != checksum:
            raise MigrationError(
                f"{migration.path.name} changed after it was applied (checksum differs); "
                "add a new migration instead of editing an applied one"
            )
    newest = max(applied, default=0)
    late = [m.label for m in migrations if m.version < newest and m.version not in applied]
    if late:
        raise MigrationError(
            f"{', '.join(late)} older than applied version {newest:04d}; renumber after it"
        )


def apply_migrations(dsn: str, directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Apply every pending migration; return those applied (empty when up to date)."""
    migrations = discover(directory)
    # Through bourse.adapters.postgres: on AWS the password is an IAM token for RDS Proxy.
    with postgres.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_ADVISORY_LOCK_KEY,))
        try:
            conn.execute(_CREATE_TABLE)
            # Read history only under the lock: another runner may have just applied files.
            applied = applied_versions(conn)
            _check_history(migrations, applied)
            done: list[Migration] = []
            for migration in migrations:
                if migration.version in applied:
                    continue
                try:
                    with conn.transaction():
                        # bytes, no parameters: psycopg sends it as one simple query, so a
                        # file may hold many statements.
                        conn.execute(migration.sql)
                        conn.execute(
                            "INSERT INTO schema_migrations (version, name, checksum)"
                            " VALUES (%s, %s, %s)",
                            (migration.version, migration.name, migration.checksum),
                        )
                except psycopg.Error as exc:
                    raise MigrationError(f"{migration.path.name} failed: {exc}") from exc
                done.append(migration)
            return done
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_ADVISORY_LOCK_KEY,))
