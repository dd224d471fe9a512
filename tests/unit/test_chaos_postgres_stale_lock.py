"""PostgreSQL killed under `make run` stays a zombie of `run` until `run` spawns again, and
PostgreSQL refuses to start while the pid of its lock file exists: `up` (what `make chaos`
runs to bring it back) must drop a lock whose pid is gone or a zombie, and only such a lock."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from devstack.postgres import remove_stale_lock

pytestmark = pytest.mark.unit


def _lock(data_dir: Path, pid: int) -> Path:
    lock = data_dir / "postmaster.pid"
    lock.write_text(f"{pid}\n{data_dir}\n1700000000\n5433\n")
    return lock


def _state(pid: int) -> str:
    raw = Path(f"/proc/{pid}/stat").read_text()
    return raw[raw.rindex(")") + 2]


def test_a_zombie_postmasters_lock_is_removed(tmp_path: Path) -> None:
    child = subprocess.Popen(["true"])  # exits at once; not waited for, so a zombie
    try:
        while _state(child.pid) != "Z":
            time.sleep(0.01)
        lock = _lock(tmp_path, child.pid)
        assert remove_stale_lock(lock)
        assert not lock.exists()
    finally:
        child.wait()


def test_a_gone_pids_lock_is_removed(tmp_path: Path) -> None:
    child = subprocess.Popen(["true"])
    child.wait()
    lock = _lock(tmp_path, child.pid)
    assert remove_stale_lock(lock)
    assert not lock.exists()


def test_a_running_pids_lock_stays(tmp_path: Path) -> None:
    lock = _lock(tmp_path, os.getpid())
    assert not remove_stale_lock(lock)
    assert lock.exists()


def test_no_lock_is_nothing_to_do(tmp_path: Path) -> None:
    assert not remove_stale_lock(tmp_path / "postmaster.pid")
