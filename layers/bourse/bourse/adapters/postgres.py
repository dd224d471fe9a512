"""PostgreSQL connections for the record's readers and writers.

Locally the DSN carries everything (trust authentication). On AWS the functions reach Aurora
through RDS Proxy with IAM authentication: the password is a short-lived token signed with the
function's role (``rds-db:connect``), generated here for each new connection. A token only has
to be valid when the connection opens, so a connection kept across invocations outlives it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from bourse.settings import get_settings


def connect(dsn: str, **kwargs: Any) -> psycopg.Connection[tuple[object, ...]]:
    settings = get_settings()
    if settings.pg_iam_auth:
        from bourse.adapters import aws

        params = conninfo_to_dict(dsn)
        kwargs["password"] = aws.client("rds").generate_db_auth_token(
            DBHostname=str(params["host"]),
            Port=int(str(params.get("port") or 5432)),
            DBUsername=str(params["user"]),
            Region=settings.region,
        )
    conn: psycopg.Connection[tuple[object, ...]] = psycopg.connect(dsn, **kwargs)
    return conn


Connection = psycopg.Connection[tuple[object, ...]]


class ReusedConnection:
    """One autocommit connection kept across invocations of a function (a Lambda container
    keeps its module state), reopened when it was closed or broke; ``on_open`` prepares each
    new connection (session temp tables, type lookups)."""

    def __init__(self, dsn: str, on_open: Callable[[Connection], None] | None = None) -> None:
        self._dsn = dsn
        self._on_open = on_open
        self._conn: Connection | None = None

    def get(self) -> Connection:
        conn = self._conn
        if conn is None or conn.closed or conn.broken:
            if conn is not None:
                conn.close()
            conn = connect(self._dsn, autocommit=True, prepare_threshold=None)
            if self._on_open is not None:
                self._on_open(conn)
            self._conn = conn
        return conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
