"""infra/grafana/bourse.json charts the matching service's metrics, and only metrics it has."""

from __future__ import annotations

import json
import re

import pytest
from prometheus_client.metrics import Counter, Histogram

from devstack.paths import REPO_ROOT
from matching_service.metrics import Metrics

pytestmark = pytest.mark.unit


def _series() -> dict[str, set[str]]:
    """metric family -> the series names Prometheus exposes for it."""
    found: dict[str, set[str]] = {}
    for value in vars(Metrics()).values():
        if isinstance(value, Counter):
            found[value._name] = {f"{value._name}_total"}
        elif isinstance(value, Histogram):
            found[value._name] = {f"{value._name}_{s}" for s in ("bucket", "sum", "count")}
        elif hasattr(value, "_name"):
            found[value._name] = {value._name}
    return found


def test_the_dashboard_charts_every_metric_and_nothing_else() -> None:
    dashboard = json.loads((REPO_ROOT / "infra" / "grafana" / "bourse.json").read_text())
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    used = set(re.findall(r"\bbourse_[a-z_]+", exprs))
    series = _series()
    known = set().union(*series.values())
    assert used <= known, f"not exposed by matching_service.metrics: {sorted(used - known)}"
    uncharted = [name for name, names in series.items() if not names & used]
    assert not uncharted, f"metrics with no panel: {uncharted}"
