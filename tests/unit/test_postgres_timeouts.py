"""PostgreSQL fails fast: connect and TCP limits on every connection, statement limits as the
database's session defaults, and the migration runner waiting for RDS Proxy's target until its
deadline. No PostgreSQL here: a socket that never answers, and fakes of psycopg.connect."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
from psycopg import sql

from bourse.adapters import migrations, postgres

pytestmark = pytest.mark.unit

DSN = "host=127.0.0.1 port=5432 dbname=bourse user=bourse"


class FakeConnect:
    """psycopg.connect stand-in: fails ``failures`` times, then returns a marker."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.connected: list[object] = []  # what it returned

    def __call__(self, dsn: str, **kwargs: Any) -> Any:
        self.calls.append((dsn, kwargs))
        if len(self.calls) <= self.failures:
            raise psycopg.OperationalError("connection refused: the proxy has no target yet")
        self.connected.append(SimpleNamespace(dsn=dsn, kwargs=kwargs))
        return self.connected[-1]


@pytest.fixture()
def fake_connect(monkeypatch: pytest.MonkeyPatch) -> FakeConnect:
    fake = FakeConnect()
    monkeypatch.setattr(psycopg, "connect", fake)
    return fake


def test_every_connection_gets_the_client_limits(fake_connect: FakeConnect) -> None:
    postgres.connect(DSN, autocommit=True)
    _dsn, kwargs = fake_connect.calls[0]
    assert kwargs["autocommit"] is True
    for name, value in postgres.CLIENT_LIMITS.items():
        assert kwargs[name] == value
    assert int(kwargs["connect_timeout"]) <= 10
    # nothing for the server's startup packet: RDS Proxy refuses `options`
    assert "options" not in kwargs


def test_the_dsn_or_the_caller_may_choose_other_limits(fake_connect: FakeConnect) -> None:
    postgres.connect(DSN + " connect_timeout=2", keepalives_idle="5")
    _dsn, kwargs = fake_connect.calls[0]
    assert "connect_timeout" not in kwargs  # the DSN's own
    assert kwargs["keepalives_idle"] == "5"


def test_reused_connections_get_them_too(fake_connect: FakeConnect) -> None:
    postgres.ReusedConnection(DSN).get()
    assert fake_connect.calls[0][1]["connect_timeout"] == postgres.CLIENT_LIMITS["connect_timeout"]


def test_libpq_honours_the_connect_timeout() -> None:
    """A server that accepts the TCP connection and never says a word (a hung proxy)."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(psycopg.OperationalError):
            postgres.connect(f"host=127.0.0.1 port={port} dbname=x user=x", connect_timeout="1")
        assert time.monotonic() - started < 4


def test_connect_with_retry_backs_off_until_the_record_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeConnect(failures=3)
    monkeypatch.setattr(psycopg, "connect", fake)
    slept: list[float] = []
    conn = postgres.connect_with_retry(DSN, time.monotonic() + 60, sleep=slept.append)
    assert conn is fake.connected[-1]
    assert fake.calls[-1][1]["connect_timeout"] == "5"
    assert len(fake.calls) == 4
    assert slept == [0.5, 1.0, 2.0]


def test_connect_with_retry_gives_up_at_the_deadline_and_says_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeConnect(failures=1000)
    monkeypatch.setattr(psycopg, "connect", fake)
    deadline = time.monotonic() + 1.5
    with pytest.raises(postgres.RecordUnavailable) as raised:
        postgres.connect_with_retry(DSN, deadline, first_delay=0.2)
    assert time.monotonic() <= deadline + 0.1
    message = str(raised.value)
    assert "the record (127.0.0.1:5432/bourse) accepted no connection" in message
    assert "RDS Proxy's target" in message
    assert "the proxy has no target yet" in message
    # each attempt's connect timeout is cut to the time left
    assert all(int(kwargs["connect_timeout"]) <= 2 for _dsn, kwargs in fake.calls)


def test_connect_with_retry_generates_a_token_for_each_attempt(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeConnect(failures=2)
    monkeypatch.setattr(psycopg, "connect", fake)
    tokens = iter(["token-1", "token-2", "token-3"])
    monkeypatch.setattr(
        postgres, "get_settings", lambda: SimpleNamespace(pg_iam_auth=True, region="us-east-1")
    )
    from bourse.adapters import aws

    monkeypatch.setattr(
        aws, "client",
        lambda _name: SimpleNamespace(generate_db_auth_token=lambda **_kw: next(tokens)),
    )  # fmt: skip
    postgres.connect_with_retry(DSN, time.monotonic() + 60, sleep=lambda _s: None)
    assert [kwargs["password"] for _dsn, kwargs in fake.calls] == ["token-1", "token-2", "token-3"]


def test_migrations_with_a_deadline_fail_clearly_when_the_record_never_answers() -> None:
    started = time.monotonic()
    with pytest.raises(migrations.MigrationError, match="accepted no connection"):
        migrations.apply_migrations(
            "host=127.0.0.1 port=1 dbname=bourse user=bourse", deadline=started + 1.5
        )
    assert time.monotonic() - started < 3


class FakeSession:
    def __init__(self) -> None:
        self.info = SimpleNamespace(dbname="bourse")
        self.statements: list[str] = []

    def execute(self, statement: Any, *args: Any) -> None:
        self.statements.append(
            statement.as_string(None) if isinstance(statement, sql.Composable) else str(statement)
        )


@pytest.fixture()
def session() -> Iterator[FakeSession]:
    yield FakeSession()


def test_the_migration_session_is_bounded_by_the_deadline(session: FakeSession) -> None:
    migrations._session_limits(session, time.monotonic() + 100)  # type: ignore[arg-type]
    timeout, lock = session.statements
    assert timeout.startswith("SET statement_timeout = ")
    assert 99_000 < int(timeout.rsplit(" ", 1)[1]) <= 100_000
    assert lock.startswith("SET lock_timeout = ")


def test_without_a_deadline_the_migration_session_has_no_limit(session: FakeSession) -> None:
    migrations._session_limits(session, None)  # type: ignore[arg-type]
    assert session.statements == ["SET statement_timeout = 0", "SET lock_timeout = 0"]


def test_a_passed_deadline_stops_the_migrations(session: FakeSession) -> None:
    with pytest.raises(migrations.MigrationError, match="deadline passed"):
        migrations._session_limits(session, time.monotonic() - 1)  # type: ignore[arg-type]


def test_the_database_gets_the_session_defaults(session: FakeSession) -> None:
    migrations.set_session_defaults(session)  # type: ignore[arg-type]
    assert session.statements == [
        f"ALTER DATABASE \"bourse\" SET {name} = '{value}'"
        for name, value in postgres.SESSION_DEFAULTS.items()
    ]
    # below the longest function timeout (the recorder's 60 s)
    assert postgres.SESSION_DEFAULTS["statement_timeout"] == "30s"


class FakeGrantSession:
    """A connection as the master user: rds_iam exists (or not), the role is a member (or
    not); records what it runs."""

    def __init__(self, has_role: bool, member: bool) -> None:
        self.info = SimpleNamespace(user="bourse", dbname="bourse")
        self.answers = {"to_regrole": has_role, "pg_has_role": member}
        self.statements: list[str] = []

    def execute(self, statement: Any, *args: Any) -> Any:
        text = statement.as_string(None) if isinstance(statement, sql.Composable) else statement
        self.statements.append(str(text))
        value = next((v for k, v in self.answers.items() if k in str(text)), None)
        return SimpleNamespace(fetchone=lambda: (value,))

    def __enter__(self) -> FakeGrantSession:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


@pytest.mark.parametrize(
    ("has_role", "member", "granted"),
    [(True, False, True), (True, True, False), (False, False, False)],
)
def test_grant_iam_auth_grants_once_with_the_master_password(
    monkeypatch: pytest.MonkeyPatch, has_role: bool, member: bool, granted: bool
) -> None:
    session = FakeGrantSession(has_role, member)
    seen: list[dict[str, Any]] = []

    def fake_connect(_dsn: str, **kwargs: Any) -> Any:
        seen.append(kwargs)
        return session

    monkeypatch.setattr(psycopg, "connect", fake_connect)
    assert migrations.grant_iam_auth(DSN, "master-pw", time.monotonic() + 10) is granted
    assert seen[0]["password"] == "master-pw"
    assert ('GRANT rds_iam TO "bourse"' in session.statements) is granted


def test_grant_iam_auth_stops_when_the_password_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After the grant Aurora refuses the role's password: the grant is done, no retrying."""
    calls: list[str] = []

    def refused(_dsn: str, **_kwargs: Any) -> Any:
        calls.append("connect")
        raise psycopg.OperationalError('FATAL:  password authentication failed for user "bourse"')

    monkeypatch.setattr(psycopg, "connect", refused)
    assert migrations.grant_iam_auth(DSN, "master-pw", time.monotonic() + 10) is False
    assert calls == ["connect"]


def test_an_explicit_password_wins_over_an_iam_token(
    fake_connect: FakeConnect, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        postgres, "get_settings", lambda: SimpleNamespace(pg_iam_auth=True, region="us-east-1")
    )
    postgres.connect(DSN, password="given")
    assert fake_connect.calls[0][1]["password"] == "given"
