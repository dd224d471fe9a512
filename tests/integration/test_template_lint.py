"""template.yaml and its nested stacks (infra/*.yaml) pass `sam validate --lint` and `cfn-lint`
with no errors and no warnings, and `make deploy-check` (infra/deploy_check) finds nothing."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from devstack.paths import REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]
TOOLS = REPO_ROOT / ".tools" / "sam" / "bin"
# sam validate runs offline, but botocore still wants a region and credentials to exist.
OFFLINE_ENV = {
    **os.environ,
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "SAM_CLI_TELEMETRY": "0",
}


def _tool(name: str) -> Path:
    path = TOOLS / name
    if not path.exists():
        pytest.fail(f"{path} is missing; run `make tools`", pytrace=False)
    return path


def test_sam_validate_lint() -> None:
    result = subprocess.run(
        [_tool("sam"), "validate", "--lint", "--template", REPO_ROOT / "template.yaml"],
        cwd=REPO_ROOT, env=OFFLINE_ENV, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout


def test_cfn_lint_zero_errors_zero_warnings() -> None:
    nested = sorted((REPO_ROOT / "infra").glob("*.yaml"))
    assert {p.name for p in nested} >= {"network.yaml", "msk.yaml", "data.yaml", "matching.yaml",
                                        "observability.yaml", "edge.yaml"}  # fmt: skip
    result = subprocess.run(
        [_tool("cfn-lint"), REPO_ROOT / "template.yaml", *nested],
        cwd=REPO_ROOT, env=OFFLINE_ENV, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    # cfn-lint exits 0 only when it has nothing to say at warning level or above.
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_deploy_check_finds_nothing() -> None:
    """What `make deploy-check` runs, on the real templates: every check passes."""
    _tool("python")
    result = subprocess.run(
        [sys.executable, "-m", "infra.deploy_check"],
        cwd=REPO_ROOT, env=OFFLINE_ENV, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    verdict = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert re.fullmatch(r"deploy-check: \d+ checks, \d+ failures", verdict), result.stderr
    assert verdict.endswith(", 0 failures") and result.returncode == 0, result.stdout
