"""`python -m devstack run` (what `make run` runs) on a stack of its own: its Prometheus scrapes
the matching service and sees its command counter rise while the demo market trades, answers
every query of the Grafana dashboard, holds what the supervisor pushed for the Lambdas and the
gateway, loads the shared alert rules; and the console after "Bourse is ready" shows short
request lines, never a metrics blob.

One private exchange for the whole module: its cold start (Kafka's above all) is the cost.
"""

from __future__ import annotations

import json
import math
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from devstack.paths import REPO_ROOT
from devstack.private import stack_env

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("prometheus") is None or shutil.which("prometheus-pushgateway") is None,
        reason="prometheus / prometheus-pushgateway not installed (make system-packages)",
    ),
]

READY_MARK = "Bourse is ready"
START_TIMEOUT = 600.0
DASHBOARD = REPO_ROOT / "infra" / "grafana" / "bourse.json"


@dataclass
class Run:
    env: dict[str, str]
    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    @property
    def gateway(self) -> str:
        return f"http://127.0.0.1:{self.env['BOURSE_GATEWAY_PORT']}"

    @property
    def prometheus(self) -> str:
        return f"http://127.0.0.1:{self.env['BOURSE_PROMETHEUS_PORT']}"

    def after_ready(self) -> list[str]:
        lines = list(self.lines)
        start = next(i for i, line in enumerate(lines) if READY_MARK in line)
        return lines[start + 1 :]

    def query(self, promql: str) -> list[dict[str, Any]]:
        url = f"{self.prometheus}/api/v1/query?{urlencode({'query': promql})}"
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.loads(response.read())
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    def wait_for(self, promql: str, accept: Any, timeout: float = 90.0) -> list[dict[str, Any]]:
        """The query's result once ``accept(result)``; the last result in the failure."""
        deadline = time.monotonic() + timeout
        result = self.query(promql)
        while not accept(result):
            assert time.monotonic() < deadline, f"{promql}: {result}"
            time.sleep(1.0)
            result = self.query(promql)
        return result


@pytest.fixture(scope="module")
def run() -> Iterator[Run]:
    # Not pytest's tmp_path: that is private to root, and PostgreSQL runs as `postgres`.
    root = Path(tempfile.mkdtemp(prefix="bourse-prom-"))
    root.chmod(root.stat().st_mode | stat.S_IXOTH | stat.S_IROTH)
    env = {
        **stack_env(root / "stack", apps=True),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "BOURSE_DEMO_MARKET": "1",  # the trading whose commands the counter counts
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "devstack", "run"], env=env, cwd=REPO_ROOT, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    handle = Run(env, proc)
    assert proc.stdout is not None
    stdout = proc.stdout

    def read() -> None:
        for line in iter(stdout.readline, ""):
            handle.lines.append(line.rstrip("\n"))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not any(READY_MARK in line for line in handle.lines):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("devstack run did not get ready:\n" + "\n".join(handle.lines[-40:]))
            time.sleep(0.5)
        yield handle
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # as Ctrl-C: it stops its processes and the stack
            try:
                proc.wait(timeout=180)
            except subprocess.TimeoutExpired:
                proc.kill()
        subprocess.run(
            [sys.executable, "-m", "devstack", "down"], env=env, cwd=REPO_ROOT,
            capture_output=True, timeout=300,
        )  # fmt: skip
        reader.join(timeout=10)
        subprocess.run(["rm", "-rf", str(root)], check=False)


def _get(url: str) -> int:
    request = urllib.request.Request(url, headers={"User-Agent": "curl/8.0"})
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()
        return int(response.status)


def _is_emf(line: str) -> bool:
    if "_aws" in line:
        return True
    start = line.find("{")
    if start < 0:
        return False
    try:
        doc = json.loads(line[start:])
    except ValueError:
        return False
    return isinstance(doc, dict) and ("_aws" in doc or "CloudWatchMetrics" in json.dumps(doc))


def test_the_console_after_ready_is_short_request_lines_and_never_a_metrics_blob(run: Run) -> None:
    banner = "\n".join(run.after_ready()[:40])
    for endpoint in (run.gateway, run.prometheus, run.env["BOURSE_PUSHGATEWAY_PORT"], "ws://"):
        assert endpoint in banner, banner
    # Forty requests of our own, so that forty lines follow the banner however quiet the rest.
    for _ in range(40):
        assert _get(f"{run.gateway}/api/v3/depth?symbol=BTCUSDT&limit=5") == 200
    deadline = time.monotonic() + 60
    while sum("GET /api/v3/depth 200" in line for line in run.after_ready()) < 40:
        assert time.monotonic() < deadline, "\n".join(run.after_ready())
        time.sleep(0.2)
    first = run.after_ready()[:40]
    assert len(first) == 40
    blobs = [line for line in first if _is_emf(line)]
    assert not blobs, "\n".join(first)
    # The request line is short: no query string (signatures, timestamps) and no log prefix.
    request = next(line for line in run.after_ready() if "GET /api/v3/depth 200" in line)
    assert "symbol=" not in request and "devstack.gateway" not in request, request


def test_prometheus_sees_the_matching_command_counter_rise(run: Run) -> None:
    counter = 'bourse_matching_commands_total{job="bourse-matching"}'
    first = run.wait_for(counter, lambda result: bool(result))
    before = float(first[0]["value"][1])
    run.wait_for(counter, lambda result: bool(result) and float(result[0]["value"][1]) > before)


def _dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every target whose datasource is Prometheus. Others (a
    CloudWatch panel, were one added) need AWS and are not the local Prometheus's to answer."""
    dashboard = json.loads(DASHBOARD.read_text())
    found = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            source = target.get("datasource") or panel.get("datasource") or {}
            if source.get("type", "prometheus") == "prometheus" and target.get("expr"):
                found.append((str(panel["title"]), str(target["expr"])))
    return found


def test_every_dashboard_query_has_data(run: Run) -> None:
    queries = _dashboard_queries()
    assert queries

    def answered(result: list[dict[str, Any]]) -> bool:
        return bool(result) and all(not math.isnan(float(r["value"][1])) for r in result)

    for _title, expr in queries:
        run.wait_for(expr, answered)


def test_what_the_lambdas_and_the_gateway_measure_reaches_prometheus(run: Run) -> None:
    run.wait_for('bourse_gateway_requests_total{job="bourse-gateway"}', bool)
    run.wait_for('bourse_lambda_events_recorded_total{job="bourse-lambda"}', bool)
    run.wait_for('bourse_lambda_messages_posted_total{job="bourse-lambda"}', bool)


def test_the_shared_alert_rules_are_loaded(run: Run) -> None:
    with urllib.request.urlopen(f"{run.prometheus}/api/v1/rules", timeout=10) as response:
        groups = json.loads(response.read())["data"]["groups"]
    assert "bourse-matching" in {group["name"] for group in groups}
