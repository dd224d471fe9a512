"""infra/checkov/skips.yaml: every check make checkov skips is an id with a written reason."""

from __future__ import annotations

import re

import pytest
import yaml

from devstack.paths import REPO_ROOT

pytestmark = pytest.mark.unit


def test_every_skipped_check_has_a_reason() -> None:
    skips = yaml.safe_load((REPO_ROOT / "infra" / "checkov" / "skips.yaml").read_text())
    assert isinstance(skips, dict) and skips
    for check, reason in skips.items():
        assert re.fullmatch(r"CKV2?_AWS_\d+", check), f"{check} is not a checkov AWS check id"
        assert isinstance(reason, str) and len(reason.split()) >= 15, f"{check}: say why"
