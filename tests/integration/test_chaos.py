"""`make chaos` in its short form: the same drill and the same checks (bench/chaos), with 600
orders and 8 faults, on a private stack of its own (it never signals the shared one)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from devstack.paths import REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SUMMARY = re.compile(
    r"chaos: (\d+) orders, (\d+) faults, lost=(\d+) duplicated=(\d+) "
    r"wrong_answers=(\d+) unresolved=(\d+)"
)


def test_chaos_short_form() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.chaos", "--orders", "600", "--faults", "8"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=580,
    )  # fmt: skip
    lines = done.stdout.strip().splitlines()
    shown = f"{done.stdout}\n--- stderr ---\n{done.stderr[-4000:]}"
    assert lines, shown
    summary = SUMMARY.fullmatch(lines[-1])
    assert summary is not None, shown
    orders, faults, lost, duplicated, wrong, unresolved = map(int, summary.groups())
    assert orders >= 600 and faults >= 8, shown
    assert (lost, duplicated, wrong, unresolved) == (0, 0, 0, 0), shown
    assert done.returncode == 0, shown
