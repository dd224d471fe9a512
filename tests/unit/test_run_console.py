"""`make run`'s console (devstack/console.py) and the metrics the supervisor derives from what
the processes print (devstack/local_metrics.py), on lines as the processes print them."""

from __future__ import annotations

import io
import json

import pytest
from prometheus_client.parser import text_string_to_metric_families

from devstack.console import DEMO_MARKET_AGENT, Console
from devstack.local_metrics import GATEWAY_JOB, LAMBDA_JOB, LocalMetrics

pytestmark = pytest.mark.unit

EMF = json.dumps({
    "_aws": {"Timestamp": 1796625765801, "CloudWatchMetrics": [{
        "Namespace": "Bourse", "Dimensions": [["service"]],
        "Metrics": [{"Name": "EventsRecorded", "Unit": "Count"},
                    {"Name": "BroadcastSeconds", "Unit": "Seconds"}]}]},
    "service": "recorder", "EventsRecorded": [3.0], "BroadcastSeconds": [0.25, 0.5],
})  # fmt: skip
REQUEST = (
    "2026-12-07 06:42:45,189 devstack.gateway INFO 127.0.0.1 "
    '"GET /api/v3/account?timestamp=1&signature=<redacted> HTTP/1.1" 200 12.6ms "curl/7.88"'
)
DEMO_REQUEST = REQUEST.replace("curl/7.88", f"{DEMO_MARKET_AGENT}/1")


def _shown(lines: list[tuple[str, str]], colour: bool = False) -> list[str]:
    out = io.StringIO()
    console = Console(out, colour=colour)
    for name, line in lines:
        console.line(name, line + "\n")
    return out.getvalue().splitlines()


def test_metrics_blobs_info_and_library_lines_stay_off_the_console() -> None:
    assert _shown([
        ("recorder", EMF),
        ("recorder", '{"level":"INFO","message":"recorded batch","service":"recorder"}'),
        ("recorder", "2026-12-07 06:42:47,815 kafka.net.transport DEBUG Closing transport"),
        ("demo-market", "2026-12-07 06:42:11,052 demo_market INFO funded accounts"),
        ("matching", '{"level": "INFO", "logger": "matching_service", "msg": "serving"}'),
        ("gateway", DEMO_REQUEST),
    ]) == []  # fmt: skip


def test_a_request_is_one_short_line_without_its_query() -> None:
    [line] = _shown([("gateway", REQUEST)])
    assert line.endswith("GET /api/v3/account 200 13 ms")
    assert "signature" not in line


def test_warnings_errors_and_the_end_of_a_traceback_are_shown_in_colour_on_a_terminal() -> None:
    lines = [
        ("matching", '{"ts": "x", "level": "WARNING", "logger": "matching_service.snapshots",'
                     ' "msg": "no valid snapshot"}'),
        ("demo-market", "2026-12-07 06:42:11,052 demo_market ERROR quotes not placed"),
        ("settlement", "Traceback (most recent call last):"),
        ("settlement", '  File "x.py", line 1, in <module>'),
        ("settlement", "ValueError: boom"),
    ]  # fmt: skip
    plain = _shown(lines)
    assert [line.split("|", 1)[1].strip() for line in plain] == [
        "matching_service.snapshots: no valid snapshot",
        "demo_market: quotes not placed",
        "ValueError: boom",
    ]
    coloured = _shown(lines, colour=True)
    assert coloured[0].startswith("\033[33m") and coloured[1].startswith("\033[31m")
    assert not any("\033[" in line for line in plain)


def test_emf_blobs_and_requests_become_pushable_metrics() -> None:
    metrics = LocalMetrics()
    assert metrics.observe("recorder", EMF) is True
    assert metrics.observe("recorder", EMF) is True
    assert metrics.observe("gateway", REQUEST) is False
    assert metrics.groups() == [(GATEWAY_JOB, "gateway"), (LAMBDA_JOB, "recorder")]
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(metrics.exposition(LAMBDA_JOB, "recorder"))
        for s in family.samples
    }
    service = (("service", "recorder"),)
    assert samples[("bourse_lambda_events_recorded_total", service)] == 6.0
    assert samples[("bourse_lambda_broadcast_seconds_sum", service)] == 1.5
    assert samples[("bourse_lambda_broadcast_seconds_count", service)] == 4.0
    gateway = metrics.exposition(GATEWAY_JOB, "gateway")
    assert 'bourse_gateway_requests_total{method="GET",status="200"} 1.0' in gateway
    assert 'bourse_gateway_request_seconds_sum{method="GET",status="200"} 0.0126' in gateway
