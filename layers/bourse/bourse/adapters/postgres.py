"""PostgreSQL connections for the record's readers and writers.

Locally the DSN carries everything (trust authentication). On AWS the functions reach Aurora
through RDS Proxy with IAM authentication: the password is a short-lived token signed with the
function's role (``rds-db:connect``), generated here for each new connection. A token only has
to be valid when the connection opens, so a connection kept across invocations outlives it.
"""

from __future__ import annotations

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
