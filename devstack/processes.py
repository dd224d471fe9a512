"""Starting, recognising and stopping the processes the stack owns.

A pid file alone is not proof: pids are reused. Each pid file also records the process's start
time from /proc (clock ticks since boot), and a process counts as ours only while both match.
That is how `down` stops exactly what `up` started and never anything else.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO


@dataclass(frozen=True)
class PidRecord:
    pid: int
    start_time: int
    argv: list[str]

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self)))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> PidRecord | None:
        try:
            raw = json.loads(path.read_text())
            return cls(int(raw["pid"]), int(raw["start_time"]), list(raw["argv"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, start time) of a live pid, or None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses; fields resume after the last ')'.
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[19])


def is_alive(record: PidRecord) -> bool:
    stat = _stat(record.pid)
    return stat is not None and stat[0] != "Z" and stat[1] == record.start_time


def _reap(pid: int) -> None:
    # Only our own children can be reaped; for the rest init does it.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def spawn(
    argv: Sequence[str],
    *,
    log: Path,
    pid_file: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    user: str | None = None,
    stdout: int | IO[bytes] | None = None,
) -> tuple[subprocess.Popen[bytes], PidRecord]:
    """Start argv in its own session (so a terminal's Ctrl-C reaches only the supervisor, which
    then stops things in order) and record it in pid_file."""
    with log.open("ab") as log_file:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log_file if stdout is None else stdout,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            user=user,
            group=user,
            extra_groups=[] if user else None,
        )
    stat = _stat(proc.pid)
    record = PidRecord(proc.pid, stat[1] if stat else 0, list(argv))
    record.save(pid_file)
    return proc, record


def stop(record: PidRecord, sig: int = signal.SIGTERM, timeout: float = 30.0) -> bool:
    """Stop one recorded process and wait for it; SIGKILL its process group after timeout.

    Returns True when it was running."""
    if not is_alive(record):
        return False
    try:
        os.kill(record.pid, sig)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(record.pid)
        if not is_alive(record):
            return True
        time.sleep(0.1)
    if is_alive(record):
        # The group is the session we created at spawn, so it holds only our processes.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(record.pid, signal.SIGKILL)
        while is_alive(record):
            _reap(record.pid)
            time.sleep(0.05)
    return True


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR so that sockets lingering in TIME_WAIT do not count as "in use".
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def port_answers(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
