"""The trading page's own modules (amounts, signing, the local book) under Node's test runner:
frontend/tests/*.test.js, the same files the page imports."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from devstack.paths import REPO_ROOT

pytestmark = pytest.mark.unit


def test_frontend_modules() -> None:
    node = shutil.which("node")
    assert node is not None, "node is missing: `make system-packages` installs npm (and node)"
    # Files by name: Node 20 reads a folder argument, Node 22 a glob; both read file names.
    files = sorted(p.name for p in (REPO_ROOT / "frontend" / "tests").glob("*.test.js"))
    assert files
    result = subprocess.run(
        [node, "--test", *(f"tests/{name}" for name in files)],
        cwd=REPO_ROOT / "frontend", capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "# fail 0" in result.stdout
