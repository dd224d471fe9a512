"""A crashed matching service leaves at once, even with a worker thread blocked on a
dependency that is down: otherwise it lingers "crashed" but alive and its supervisor never
restarts it (the chaos drill found the matching service down for minutes after a Redis kill)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.unit

# A worker blocked for good, as a Kafka commit or a view write waits on a broker or a Redis
# that is gone; a normal interpreter exit joins it (concurrent.futures' atexit hook).
BLOCKED_WORKER = textwrap.dedent(
    """
    import threading
    from concurrent.futures import ThreadPoolExecutor

    never = threading.Event()
    ThreadPoolExecutor(max_workers=1).submit(never.wait)
    {leave}
    """
)


def _run(leave: str, wait_s: float) -> subprocess.CompletedProcess[str] | None:
    code = BLOCKED_WORKER.format(leave=leave)
    try:
        return subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=wait_s
        )
    except subprocess.TimeoutExpired:
        return None  # still alive: it never left


def test_exit_now_leaves_with_a_blocked_worker() -> None:
    done = _run("from matching_service.__main__ import exit_now\nexit_now(1)", wait_s=120)
    assert done is not None, "exit_now did not leave"
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr


def test_a_plain_exit_would_hang_there() -> None:
    """The reason for exit_now: sys.exit joins the blocked worker (still there 10 s on)."""
    assert _run("import sys\nsys.exit(1)", wait_s=10) is None
