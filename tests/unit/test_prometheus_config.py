"""The local Prometheus's generated configuration and the shared alert rules pass promtool
(Debian's prometheus package installs it; make system-packages and CI install that)."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from bourse.settings import get_settings
from devstack.prometheus import ALERT_RULES, MATCHING_JOB, config, write_config

pytestmark = pytest.mark.unit

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed")


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60)


@needs_promtool
def test_the_alert_rules_pass_promtool() -> None:
    checked = _promtool("check", "rules", str(ALERT_RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr


@needs_promtool
def test_the_generated_config_passes_promtool(tmp_path: Path) -> None:
    # check config also loads and checks every rule file the config names.
    path = write_config(get_settings(), tmp_path / "prometheus.yml")
    checked = _promtool("check", "config", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout + checked.stderr


def test_it_scrapes_the_matching_service_under_the_dashboards_job_and_the_pushgateway() -> None:
    settings = dataclasses.replace(
        get_settings(), matching_metrics_port=19108, pushgateway_port=19191, prometheus_port=19190
    )
    generated = yaml.safe_load(yaml.safe_dump(config(settings)))
    jobs = {job["job_name"]: job for job in generated["scrape_configs"]}
    assert jobs[MATCHING_JOB]["static_configs"][0]["targets"] == ["127.0.0.1:19108"]
    assert jobs["pushgateway"]["static_configs"][0]["targets"] == ["127.0.0.1:19191"]
    assert jobs["pushgateway"]["honor_labels"] is True  # pushed series keep their own job
    assert generated["rule_files"] == [str(ALERT_RULES)]
    off = config(dataclasses.replace(settings, matching_metrics_port=0))
    assert MATCHING_JOB not in {job["job_name"] for job in off["scrape_configs"]}
