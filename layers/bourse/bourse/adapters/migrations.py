"""Versioned SQL migrations for the PostgreSQL (Aurora) schema.

The ``bourse/migrations`` folder is the only place the schema lives: files named
``NNNN_<name>.sql``, applied in version order, each in its own transaction together with its
row in ``schema_migrations``, so a failing file leaves nothing behind. An applied file must never
change (its checksum is recorded); to change the schema, add a file. A session advisory lock
keeps two runners (two Lambdas, a deploy and a developer) from applying the same file twice.

After the files, the runner sets the database's session defaults (``postgres.SESSION_DEFAULTS``:
statement, lock and idle-in-transaction timeouts) that every later session takes, RDS Proxy's
included. With a ``deadline`` (the Migrations custom resource) it waits for the record to accept
connections (RDS Proxy registers its target some time after it is created) and bounds its own
statements, the wait for the lock included, by the time left; without one (the local stack, the
tests) it connects once and its statements have no limit.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

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


def _session_limits(conn: psycopg.Connection, deadline: float | None) -> None:
    """This session's own limits: the time left before the deadline, or none without one (its
    advisory lock pins it to one database connection anyway, so SET costs nothing)."""
    if deadline is None:
        limit_ms = 0
    else:
        limit_ms = int((deadline - time.monotonic()) * 1000)
        if limit_ms <= 0:
            raise MigrationError("the deadline passed before the migrations could start")
    for name in ("statement_timeout", "lock_timeout"):
        conn.execute(sql.SQL("SET {} = {}").format(sql.SQL(name), sql.Literal(limit_ms)))


def set_session_defaults(conn: psycopg.Connection) -> None:
    """The database's defaults for every new session (``postgres.SESSION_DEFAULTS``); the
    owner of the database (the app's role) may set them."""
    dbname = sql.Identifier(conn.info.dbname)
    for name, value in postgres.SESSION_DEFAULTS.items():
        conn.execute(
            sql.SQL("ALTER DATABASE {} SET {} = {}").format(
                dbname, sql.SQL(name), sql.Literal(value)
            )
        )


def grant_iam_auth(dsn: str, master_password: str, deadline: float) -> bool:
    """Let the app's role log in with IAM tokens at the writer itself (a profile without RDS
    Proxy): ``GRANT rds_iam``, as the master user (the DSN's) with its password, once. Aurora
    then refuses that password for the role: on later runs the password is refused, which
    means the grant is done, and the caller goes on with IAM. True when it granted."""
    try:
        conn = postgres.connect_with_retry(
            dsn, deadline, autocommit=True, password=master_password,
            give_up=postgres.is_auth_failure,
        )  # fmt: skip
    except postgres.RecordUnavailable as exc:
        raise MigrationError(str(exc)) from exc
    except psycopg.OperationalError as exc:
        if postgres.is_auth_failure(exc):
            return False  # rds_iam already granted: passwords no longer log this role in
        raise
    with conn:
        row = conn.execute("SELECT to_regrole('rds_iam') IS NOT NULL").fetchone()
        if not row or not row[0]:
            return False  # not Aurora/RDS (the local stack): nothing to grant
        member = conn.execute("SELECT pg_has_role(current_user, 'rds_iam', 'member')").fetchone()
        if member and member[0]:
            return False
        conn.execute(sql.SQL("GRANT rds_iam TO {}").format(sql.Identifier(conn.info.user)))
        return True


def apply_migrations(
    dsn: str, directory: Path = MIGRATIONS_DIR, *, deadline: float | None = None
) -> list[Migration]:
    """Apply every pending migration; return those applied (empty when up to date).
    ``deadline`` (time.monotonic()): connect again with backoff until then while the record
    refuses, and stop any statement still running then; MigrationError says what ran out."""
    migrations = discover(directory)
    # Through bourse.adapters.postgres: on AWS the password is an IAM token for RDS Proxy.
    if deadline is None:
        opened = postgres.connect(dsn, autocommit=True)
    else:
        try:
            opened = postgres.connect_with_retry(dsn, deadline, autocommit=True)
        except postgres.RecordUnavailable as exc:
            raise MigrationError(str(exc)) from exc
    with opened as conn:
        try:
            _session_limits(conn, deadline)
            conn.execute("SELECT pg_advisory_lock(%s)", (_ADVISORY_LOCK_KEY,))
        except (psycopg.errors.QueryCanceled, psycopg.errors.LockNotAvailable) as exc:
            raise MigrationError(
                "another runner held the migrations lock until the deadline"
            ) from exc
        try:
            conn.execute(_CREATE_TABLE)
            # Read history only under the lock: another runner may have just applied files.
            applied = applied_versions(conn)
            _check_history(migrations, applied)
            done: list[Migration] = []
            for migration in migrations:
                if migration.version in applied:
                    continue
                # statement_timeout counts per statement: the time left, again for each file,
                # so the server itself cancels whatever still runs at the deadline.
                _session_limits(conn, deadline)
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
                except psycopg.errors.QueryCanceled as exc:
                    raise MigrationError(
                        f"{migration.path.name} was still running at the deadline and was "
                        f"cancelled (nothing of it is applied): {exc}"
                    ) from exc
                except psycopg.Error as exc:
                    raise MigrationError(f"{migration.path.name} failed: {exc}") from exc
                done.append(migration)
            set_session_defaults(conn)
            return done
        finally:
            if not conn.broken:
                conn.execute("SELECT pg_advisory_unlock(%s)", (_ADVISORY_LOCK_KEY,))
