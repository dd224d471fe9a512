"""The whole stack from nothing, in a fresh stack dir on its own ports: up, status, a second
up that reuses it, down, and no process of ours left. Slow: Kafka's cold start dominates."""

from __future__ import annotations

import re
import socket
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

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SERVICES = ("kafka", "postgres", "redis", "moto")


@pytest.fixture()
def fresh_env() -> Iterator[dict[str, str]]:
    # Not pytest's tmp_path: that is private to root, and PostgreSQL runs as `postgres`.
    root = Path(tempfile.mkdtemp(prefix="bourse-stack-"))
    root.chmod(root.stat().st_mode | stat.S_IXOTH | stat.S_IROTH)
    env = stack_env(root / "stack")
    yield env
    _devstack(env, "down")  # whatever happened above
    subprocess.run(["rm", "-rf", str(root)], check=False)


def _devstack(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "devstack", *args],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def _records(env: dict[str, str]) -> dict[str, processes.PidRecord]:
    pids = Path(env["BOURSE_STACK_DIR"]) / "run"
    found = {}
    for name in SERVICES:
        record = processes.PidRecord.load(pids / f"{name}.pid")
        if record is not None:
            found[name] = record
    return found


def test_stack_from_nothing(fresh_env: dict[str, str]) -> None:
    up = _devstack(fresh_env, "up")
    assert up.returncode == 0, up.stdout + up.stderr
    records = _records(fresh_env)
    assert set(records) == set(SERVICES)
    assert all(processes.is_alive(r) for r in records.values())

    status = _devstack(fresh_env, "status")
    assert status.returncode == 0
    for name in SERVICES:
        line = next(ln for ln in status.stdout.splitlines() if ln.startswith(name))
        assert re.search(r"\bup\b", line), status.stdout
        assert "log " in line

    again = _devstack(fresh_env, "up")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "starting" not in again.stdout
    assert _records(fresh_env) == records  # the same processes, reused

    down = _devstack(fresh_env, "down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert not any(processes.is_alive(r) for r in records.values())
    assert _records(fresh_env) == {}
    kafka_port = int(fresh_env["BOURSE_KAFKA_BOOTSTRAP"].rsplit(":", 1)[1])
    assert not processes.port_answers(kafka_port)


def test_a_port_taken_by_someone_else_fails_clearly(fresh_env: dict[str, str]) -> None:
    redis_port = int(fresh_env["BOURSE_REDIS_URL"].rsplit(":", 1)[1].split("/")[0])
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", redis_port))
        squatter.listen()
        up = _devstack(fresh_env, "up")
    assert up.returncode != 0
    lines = up.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: redis: port"), up.stderr
    assert "BOURSE_REDIS_URL" in lines[0]
    assert _records(fresh_env) == {}  # nothing was started
