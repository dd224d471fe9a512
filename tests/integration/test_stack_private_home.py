"""A clone under a private home (a parent of mode 0700, owned by root): `up` must still start
PostgreSQL, which runs as the `postgres` OS user and cannot traverse that parent, and `down`
must leave no process. Slow: Kafka's cold start dominates."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack import processes
from devstack.paths import REPO_ROOT
from devstack.private import stack_env

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="only root runs PostgreSQL as another user"),
]
SERVICES = ("kafka", "postgres", "redis", "moto")


def _devstack(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "devstack", *args],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


@pytest.fixture()
def private_home_env() -> Iterator[dict[str, str]]:
    home = Path(tempfile.mkdtemp(prefix="bourse-private-home-"))
    home.chmod(0o700)  # as /root is: nobody but root may traverse it
    stack = home / "bourse" / ".devstack"
    env = stack_env(stack)
    yield env
    _devstack(env, "down")  # whatever happened above
    _remove_pg_home(stack)
    shutil.rmtree(home, ignore_errors=True)


def _remove_pg_home(stack: Path) -> None:
    """The cluster kept outside the stack dir, as `make clean` removes it."""
    record = stack / "pg-home"
    if record.is_file():
        shutil.rmtree(record.read_text().strip(), ignore_errors=True)


def _records(env: dict[str, str]) -> dict[str, processes.PidRecord]:
    pids = Path(env["BOURSE_STACK_DIR"]) / "run"
    found = {}
    for name in SERVICES:
        record = processes.PidRecord.load(pids / f"{name}.pid")
        if record is not None:
            found[name] = record
    return found


def test_stack_starts_under_a_private_home(private_home_env: dict[str, str]) -> None:
    up = _devstack(private_home_env, "up")
    assert up.returncode == 0, up.stdout + up.stderr
    records = _records(private_home_env)
    assert set(records) == set(SERVICES)
    assert all(processes.is_alive(r) for r in records.values())

    # The cluster went where the `postgres` user reaches it, private to that user.
    pg_home = Path((Path(private_home_env["BOURSE_STACK_DIR"]) / "pg-home").read_text().strip())
    assert pg_home.parent == Path("/var/lib/bourse-devstack")
    assert (pg_home.stat().st_uid, stat.S_IMODE(pg_home.stat().st_mode)) == (
        pwd.getpwnam("postgres").pw_uid,
        0o700,
    )

    status = _devstack(private_home_env, "status")
    postgres_line = next(ln for ln in status.stdout.splitlines() if ln.startswith("postgres"))
    assert re.search(r"\bup\b", postgres_line), status.stdout

    down = _devstack(private_home_env, "down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert not any(processes.is_alive(r) for r in records.values())
    assert _records(private_home_env) == {}
    pg_port = int(private_home_env["BOURSE_PG_DSN"].rsplit(":", 1)[1].split("/")[0])
    assert not processes.port_answers(pg_port)
