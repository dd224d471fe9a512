"""Each function reaches PostgreSQL as its own role, and that role's grants cover the SQL its
code runs (no database needed; tests/integration/test_pg_function_roles.py shows the server
refusing the rest).

- a function whose live code opens the record (infra/deploy_check/calls.py's liveness, with
  its NOT_CALLED exemptions) names its role in BOURSE_PG_USER, except the migrations function,
  which runs as the owner; the role is one the migrations create, and the function's
  rds-db:connect names exactly that database user;
- the statements in the live code of such a function (string constants of the functions and
  classes it can call, and the module constants they name) are read for (verb, table): FROM
  and JOIN read, INSERT INTO / COPY append, ON CONFLICT DO UPDATE / UPDATE / FOR UPDATE
  update, DELETE deletes; tables named by a call (``_copy(cur, "trades", ...)``,
  ``_page(..., "orders", ...)``) count for the verb of that helper. Every pair must be granted
  to the function's role by the migrations (GRANT on tables, ON ALL TABLES, ALTER DEFAULT
  PRIVILEGES for tables created later), so a new table a writer needs fails here until its
  migration grants it.

A static reading, so deliberately simple: a statement whose table is a run-time value other
than through those helpers fails the test (``test_no_statement_hides_its_table``) rather than
pass unchecked.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from psycopg.conninfo import conninfo_to_dict

from bourse import settings as settings_module
from bourse.adapters.migrations import MIGRATIONS_DIR
from devstack.cfn import load_template
from infra.deploy_check.calls import NOT_CALLED, app_path, liveness, load_module, module_path

pytestmark = pytest.mark.unit

POSTGRES = "bourse.adapters.postgres"
OWNER_FUNCTIONS = {"MigrationsFunction"}  # applies the migrations: the owner, not a role
OWNER = "bourse"
# Helpers whose table argument is a string literal at the call: the verbs the helper runs on it.
# Its own statement is the only one whose table is a run-time value (``COPY {table}``).
TABLE_HELPERS: dict[str, set[str]] = {
    "_copy": {"INSERT", "SELECT"},  # COPY FROM STDIN; the column types are read first
    "_page": {"SELECT"},
    # record_store reads the column types of _COPIED's tables, each of which _copy writes
    # (and so reads) too: nothing to add, but its statement may name its table at run time.
    "_column_types": set(),
}
_IDENT = r"([a-z_][a-z0-9_]*)"
_SQL_START = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|COPY|CREATE|TRUNCATE)\b")
_HOLE = "\0"  # where an f-string's formatted value was

Access = tuple[str, str]  # (verb, table)


# ------------------------------------------------------------------------- the template


@cache
def _template() -> dict[str, Any]:
    return load_template()


def _functions() -> dict[str, dict[str, Any]]:
    return {
        name: resource
        for name, resource in _template()["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }


def _opens_the_record(name: str, resource: dict[str, Any]) -> bool:
    if POSTGRES in NOT_CALLED.get(name, {}):
        return False
    modules, _live = liveness(app_path(resource))
    return POSTGRES in modules


def _pg_user(resource: dict[str, Any]) -> str | None:
    variables = (resource["Properties"].get("Environment") or {}).get("Variables") or {}
    user = variables.get("BOURSE_PG_USER")
    return None if user is None else str(user)


def _statements(resource: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The function's policy statements as written: inline ones and its managed policies'."""
    for policy in resource["Properties"].get("Policies") or []:
        if isinstance(policy, dict) and "Ref" in policy:
            managed = _template()["Resources"].get(policy["Ref"], {})
            yield from managed.get("Properties", {}).get("PolicyDocument", {}).get("Statement", [])
        elif isinstance(policy, dict) and "Statement" in policy:
            yield from policy["Statement"]


def _db_users(resource: dict[str, Any]) -> set[str]:
    """The database users its rds-db:connect statements name (``.../dbuser:<id>/<user>``)."""
    users = set()
    for statement in _statements(resource):
        actions = statement.get("Action")
        if "rds-db:connect" not in (actions if isinstance(actions, list) else [actions]):
            continue
        resources = statement["Resource"]
        for arn in resources if isinstance(resources, list) else [resources]:
            text = arn["Fn::Sub"][0] if isinstance(arn["Fn::Sub"], list) else arn["Fn::Sub"]
            users.add(str(text).rsplit("/", 1)[1])
    return users


# --------------------------------------------------------------------- the migrations


def _sql_without_comments(text: str) -> str:
    return re.sub(r"--[^\n]*", "", text)


@cache
def _grants() -> tuple[frozenset[str], dict[str, frozenset[Access]]]:
    """The roles the migrations create, and what each may do on which table after all of
    them, read from GRANT / REVOKE on tables, ON ALL TABLES IN SCHEMA and ALTER DEFAULT
    PRIVILEGES (which reaches every table created after it)."""
    roles: set[str] = set()
    tables: list[str] = ["schema_migrations"]  # the runner's own, before any file
    granted: dict[str, set[Access]] = {}
    defaults: dict[str, set[str]] = {}  # role -> verbs on tables created from now on
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        sql = _sql_without_comments(path.read_text())
        roles |= set(re.findall(r"CREATE ROLE " + _IDENT, sql))
        for statement in re.split(r";", sql):
            words = " ".join(statement.split())
            created = re.match(r"CREATE TABLE (?:IF NOT EXISTS )?" + _IDENT, words)
            if created:
                tables.append(created.group(1))
                for role, verbs in defaults.items():
                    granted.setdefault(role, set()).update((v, created.group(1)) for v in verbs)
                continue
            default = re.match(
                r"ALTER DEFAULT PRIVILEGES (?:IN SCHEMA public )?GRANT (.+?) ON TABLES TO (.+)$",
                words,
            )
            if default:
                for role in _names(default.group(2)):
                    defaults.setdefault(role, set()).update(_names(default.group(1)))
                continue
            # anywhere in the statement: a GRANT may sit in a DO block's IF
            change = re.search(
                r"\b(GRANT|REVOKE) (.+?) ON (?:TABLE )?(.+?) (?:TO|FROM) (.+)$", words
            )
            if not change or change.group(3).startswith(("SCHEMA", "DATABASE", "SEQUENCE")):
                continue
            on = change.group(3)
            targets = list(tables) if on == "ALL TABLES IN SCHEMA public" else _names(on)
            pairs = {(verb, table) for verb in _names(change.group(2)) for table in targets}
            for role in _names(change.group(4)):
                if change.group(1) == "GRANT":
                    granted.setdefault(role, set()).update(pairs)
                else:
                    granted.setdefault(role, set()).difference_update(pairs)
    return frozenset(roles), {role: frozenset(pairs) for role, pairs in granted.items()}


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


# ----------------------------------------------------------------------- the code's SQL


def _text(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        parts = [v.value if isinstance(v, ast.Constant) else _HOLE for v in node.values]
        return "".join(str(p) for p in parts)
    return None


def _docstrings(root: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(root):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            ids.add(id(body[0].value))
    return ids


def _module_constants(module: str) -> dict[str, ast.AST]:
    path = module_path(module)
    if path is None:
        return {}
    constants: dict[str, ast.AST] = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    constants[target.id] = node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value:
            constants[node.target.id] = node.value
    return constants


def _live_code(resource: dict[str, Any]) -> Iterator[ast.AST]:
    """The bodies of the function's live functions and classes, and of the module constants
    they name (transitively), in every bourse module."""
    _modules, live = liveness(app_path(resource))
    for module_name, symbol in sorted(live):
        path = module_path(module_name)
        if path is None or not module_name.startswith("bourse."):
            continue
        module = load_module(module_name, path)
        body = module.symbols.get(symbol)
        if body is None:
            continue
        yield body
        constants = _module_constants(module_name)
        seen: set[str] = set()
        todo = [body]
        while todo:
            for node in ast.walk(todo.pop()):
                if isinstance(node, ast.Name) and node.id in constants and node.id not in seen:
                    seen.add(node.id)
                    yield constants[node.id]
                    todo.append(constants[node.id])


def _accesses_of(sql: str) -> set[Access]:
    found: set[Access] = set()
    temp = set(re.findall(r"CREATE TEMP(?:ORARY)? TABLE (?:IF NOT EXISTS )?" + _IDENT, sql))
    reads = set(re.findall(r"\b(?:FROM|JOIN) " + _IDENT, sql)) - {"stdin"}
    found |= {("SELECT", t) for t in reads}
    found |= {("SELECT", t) for t in re.findall(r"\bLIKE " + _IDENT + r"\)", sql)}
    for table in re.findall(r"\bINSERT INTO " + _IDENT, sql):
        found.add(("INSERT", table))
        if re.search(r"\bDO UPDATE\b", sql):
            found |= {("UPDATE", table), ("SELECT", table)}
        # a conflict target, or RETURNING a column, reads the table (not RETURNING 1)
        if re.search(r"\bON CONFLICT \(|\bRETURNING (?!\d+\b)", sql):
            found.add(("SELECT", table))
    for table in re.findall(r"\bCOPY " + _IDENT, sql):
        found |= {("INSERT", table), ("SELECT", table)}
    for table in re.findall(r"\bUPDATE " + _IDENT + r" SET\b", sql):
        found |= {("UPDATE", table), ("SELECT", table)}
    if re.search(r"\bFOR (?:NO KEY )?UPDATE\b", sql):
        found |= {("UPDATE", t) for t in reads}
    found |= {("DELETE", t) for t in re.findall(r"\bDELETE FROM " + _IDENT, sql)}
    found |= {("TRUNCATE", t) for t in re.findall(r"\bTRUNCATE (?:TABLE )?" + _IDENT, sql)}
    return {(verb, table) for verb, table in found if table not in temp}


def _sql_strings(resource: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """Each statement of the live code, with the name of the function it is written in."""
    for body in _live_code(resource):
        skip = _docstrings(body)
        for scope in ast.walk(body):
            if isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef)) or scope is body:
                owner = getattr(scope, "name", "")
                for node in _own_nodes(scope):
                    text = _text(node)
                    if text is not None and id(node) not in skip and _SQL_START.search(text):
                        yield " ".join(text.split()), owner


def _own_nodes(scope: ast.AST) -> Iterator[ast.AST]:
    """The nodes of a function (or a constant) outside the functions nested in it."""
    functions = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    todo = list(ast.iter_child_nodes(scope)) if isinstance(scope, functions) else [scope]
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        yield node
        todo.extend(ast.iter_child_nodes(node))


def _helper_accesses(resource: dict[str, Any]) -> set[Access]:
    found: set[Access] = set()
    for body in _live_code(resource):
        for node in ast.walk(body):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else None
            if isinstance(node.func, ast.Name):
                name = node.func.id
            verbs = TABLE_HELPERS.get(name or "")
            if verbs is None:
                continue
            for arg in node.args:
                table = arg.value if isinstance(arg, ast.Constant) else None
                if isinstance(table, str) and re.fullmatch(_IDENT, table):
                    found |= {(verb, table) for verb in verbs}
    return found


def needed_accesses(resource: dict[str, Any]) -> set[Access]:
    """(verb, table) pairs the function's live code can run, temp tables left out."""
    all_sql = " ".join(sql for sql, _owner in _sql_strings(resource))
    temp = set(re.findall(r"CREATE TEMP(?:ORARY)? TABLE (?:IF NOT EXISTS )?" + _IDENT, all_sql))
    found = set(_helper_accesses(resource))
    for sql, _owner in _sql_strings(resource):
        found |= _accesses_of(sql)
    return {(verb, table) for verb, table in found if table not in temp}


def _record_functions() -> dict[str, dict[str, Any]]:
    return {n: r for n, r in _functions().items() if _opens_the_record(n, r)}


# ------------------------------------------------------------------------------- tests


def test_the_functions_that_open_the_record_are_found() -> None:
    """The reading itself: these are the functions with the record's code live."""
    assert set(_record_functions()) >= {
        "MarketDataFunction", "AccountFunction", "AdminFunction", "WsApiFunction",
        "RecorderFunction", "SettlementFunction", "MigrationsFunction",
    }  # fmt: skip


@pytest.mark.parametrize("name", sorted(_record_functions()))
def test_each_function_reaches_the_record_as_its_own_role(name: str) -> None:
    resource = _functions()[name]
    roles, _granted = _grants()
    user = _pg_user(resource)
    if name in OWNER_FUNCTIONS:
        assert user is None, f"{name} applies the migrations: it runs as the owner"
        assert _db_users(resource) == {OWNER}
        return
    assert user is not None, f"{name} opens the record but has no BOURSE_PG_USER"
    assert user in roles, f"{name}: role {user} is created by no migration"
    assert _db_users(resource) == {user}, (
        f"{name} connects as {user}; its rds-db:connect names {_db_users(resource)}"
    )


@pytest.mark.parametrize("name", sorted(set(_record_functions()) - OWNER_FUNCTIONS))
def test_each_role_is_granted_what_its_function_runs(name: str) -> None:
    resource = _functions()[name]
    user = _pg_user(resource)
    assert user is not None
    needed = needed_accesses(resource)
    assert needed, f"{name}: no statement found (the reading is broken)"
    missing = needed - _grants()[1].get(user, frozenset())
    assert not missing, f"{name} runs {sorted(missing)} which {user} is not granted"


@pytest.mark.parametrize("name", sorted(set(_record_functions()) - OWNER_FUNCTIONS))
def test_no_statement_hides_its_table(name: str) -> None:
    """A table the code names at run time (``FROM {table}``) escapes the reading unless a
    TABLE_HELPERS helper carries it."""
    for sql, owner in _sql_strings(_functions()[name]):
        if re.search(r"\b(FROM|JOIN|INTO|COPY|UPDATE|TABLE) " + _HOLE, sql):
            assert owner in TABLE_HELPERS, f"{owner}: {sql.replace(_HOLE, '{}')}"


def test_the_writers_hold_no_more_than_they_write() -> None:
    """Least privilege, the other way round: a writer's grants are what its code runs (the
    reader's SELECT on everything is the one broad grant, read only)."""
    _roles, granted = _grants()
    for name in ("RecorderFunction", "SettlementFunction"):
        resource = _functions()[name]
        user = _pg_user(resource)
        assert user is not None
        extra = granted[user] - needed_accesses(resource)
        assert not extra, f"{user} is granted {sorted(extra)} that {name} never runs"
    reader = granted["bourse_reader"]
    assert {verb for verb, _table in reader} == {"SELECT"}


def test_the_reading_finds_each_kind_of_statement() -> None:
    """The extraction on statements of every shape the adapters use."""
    assert _accesses_of(
        "INSERT INTO balances SELECT * FROM balances_in ON CONFLICT (a) DO UPDATE SET x = 1"
    ) == {("INSERT", "balances"), ("UPDATE", "balances"), ("SELECT", "balances"),
          ("SELECT", "balances_in")}  # fmt: skip
    assert _accesses_of("SELECT last_seq FROM applied_events WHERE c = %s FOR UPDATE") == {
        ("SELECT", "applied_events"), ("UPDATE", "applied_events"),
    }  # fmt: skip
    assert _accesses_of("SELECT a FROM trades t JOIN symbols s USING (symbol)") == {
        ("SELECT", "trades"), ("SELECT", "symbols"),
    }  # fmt: skip
    assert _accesses_of("DELETE FROM funding WHERE x") == {
        ("DELETE", "funding"), ("SELECT", "funding"),
    }  # fmt: skip
    assert _accesses_of(
        "CREATE TEMP TABLE IF NOT EXISTS orders_in (LIKE orders) ON COMMIT DELETE ROWS"
    ) == {("SELECT", "orders")}
    assert _accesses_of("UPDATE agg_trades SET q = 1 WHERE s = 2") == {
        ("UPDATE", "agg_trades"), ("SELECT", "agg_trades"),
    }  # fmt: skip


def test_a_table_no_grant_covers_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A later migration's table reaches the reader by its default privileges, not a writer:
    the recorder writing it would fail here until that migration grants it."""
    for path in MIGRATIONS_DIR.glob("*.sql"):
        (tmp_path / path.name).write_text(path.read_text())
    (tmp_path / "9999_new_table.sql").write_text("CREATE TABLE future_table (id bigint);")
    monkeypatch.setattr(f"{__name__}.MIGRATIONS_DIR", tmp_path)
    _grants.cache_clear()
    try:
        _roles, granted = _grants()
        assert ("SELECT", "future_table") in granted["bourse_reader"]
        assert ("INSERT", "future_table") not in granted["bourse_recorder"]
        assert ("SELECT", "future_table") not in granted["bourse_recorder"]
    finally:
        _grants.cache_clear()


def test_rds_proxy_may_sign_in_as_every_function_role() -> None:
    """Through RDS Proxy the functions' roles go end to end with IAM (infra/data.yaml): the
    proxy's own role needs rds-db:connect as each of them, the master secret for the owner."""
    data = load_template(Path(__file__).resolve().parents[2] / "infra" / "data.yaml")
    proxy = data["Resources"]["DbProxy"]["Properties"]
    assert proxy["DefaultAuthScheme"] == "IAM_AUTH"
    users = set()
    for policy in data["Resources"]["ProxyRole"]["Properties"]["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            if statement["Action"] == "rds-db:connect":
                users |= {str(arn["Fn::Sub"]).rsplit("/", 1)[1] for arn in statement["Resource"]}
    roles = {user for r in _record_functions().values() if (user := _pg_user(r)) is not None}
    assert roles and roles <= users, f"the proxy may not sign in as {sorted(roles - users)}"


@given(
    user=st.from_regex(r"[a-z_][a-z0-9_]{0,30}", fullmatch=True),
    port=st.integers(1, 65535),
    url=st.booleans(),
)
def test_the_settings_put_the_function_role_into_the_dsn(user: str, port: int, url: bool) -> None:
    """BOURSE_PG_USER replaces the DSN's user, whichever form the DSN has (the local URL, the
    template's key=value); host, port, database and TLS settings stay."""
    dsn = (
        f"postgresql://bourse@127.0.0.1:{port}/bourse?sslmode=verify-full"
        if url
        else f"host=proxy.example port={port} dbname=bourse user=bourse sslmode=verify-full"
    )
    params = conninfo_to_dict(settings_module._dsn_as(dsn, user))
    assert params["user"] == user
    assert (params["port"], params["dbname"], params["sslmode"]) == (str(port), "bourse",
                                                                      "verify-full")  # fmt: skip
    assert settings_module._dsn_as(dsn, "") == dsn  # no role: the owner, the DSN untouched


def test_the_settings_read_the_role_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOURSE_PG_DSN", "postgresql://bourse@127.0.0.1:6543/bourse")
    monkeypatch.setenv("BOURSE_PG_USER", "bourse_reader")
    settings_module.get_settings.cache_clear()
    try:
        got = settings_module.get_settings()
        assert (got.pg_user, got.pg_port) == ("bourse_reader", 6543)
        assert conninfo_to_dict(got.pg_dsn)["user"] == "bourse_reader"
    finally:
        settings_module.get_settings.cache_clear()
