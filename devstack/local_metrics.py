"""What the Lambdas and the gateway measure, for the local Prometheus (through its Pushgateway).

Lambdas expose no endpoint to scrape: on AWS their Powertools metrics are EMF blobs in their
logs, which CloudWatch turns into metrics, and API Gateway counts requests by itself. Locally
`devstack run`'s supervisor already reads every line each process prints, so it does the
same: each EMF blob adds to counters here, each gateway request line (method, status,
milliseconds) to the request counters, and the whole is pushed to the Pushgateway every few
seconds, one group per process (job ``bourse-lambda`` / ``bourse-gateway``, instance = the
process), so nothing in the functions changes for it.

Names: an EMF metric ``EventsRecorded`` (unit Count) becomes the counter
``bourse_lambda_events_recorded_total``; one of another unit (``BroadcastSeconds``) the summary
``bourse_lambda_broadcast_seconds`` (``_sum`` and ``_count``). Its only label is ``service``,
the Powertools dimension every function sets: the Pushgateway refuses one family pushed with
different label names, so other dimensions (none today) would be summed away.
"""

from __future__ import annotations

import json
import re
import threading
import urllib.request
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

LAMBDA_JOB = "bourse-lambda"
GATEWAY_JOB = "bourse-gateway"
PUSH_TIMEOUT = 5.0

# devstack/gateway/server.py's request line: 127.0.0.1 "GET /path HTTP/1.1" 200 3.1ms "agent"
ACCESS_LINE = re.compile(
    r'"(?P<method>[A-Z]+) (?P<path>\S+) HTTP/[\d.]+" (?P<status>\d{3})'
    r'(?: (?P<ms>[\d.]+)ms)?(?: "(?P<agent>[^"]*)")?'
)


def emf_blob(line: str) -> dict[str, Any] | None:
    """The line as an EMF document (Powertools Metrics' output), or None."""
    text = line.strip()
    if not text.startswith("{") or '"_aws"' not in text:
        return None
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    if isinstance(doc, dict) and isinstance(doc.get("_aws"), dict):
        return doc
    return None


def _snake(name: str) -> str:
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name)
    return re.sub(r"[^a-z0-9_]", "_", spaced.lower())


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


@dataclass
class _Family:
    kind: str  # "counter" or "summary"
    help: str
    # label value tuple -> [sum, count]
    samples: dict[tuple[tuple[str, str], ...], list[float]]


class LocalMetrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        # (job, instance) -> family name -> family
        self._groups: dict[tuple[str, str], dict[str, _Family]] = defaultdict(dict)

    def _add(
        self, group: tuple[str, str], name: str, kind: str, text: str,
        labels: tuple[tuple[str, str], ...], values: list[float],
    ) -> None:  # fmt: skip
        family = self._groups[group].setdefault(name, _Family(kind, text, {}))
        if family.kind != kind:  # one name, two units: keep the first, as Prometheus would
            return
        total = family.samples.setdefault(labels, [0.0, 0.0])
        total[0] += sum(values)
        total[1] += len(values)

    def observe(self, process: str, line: str) -> bool:
        """Count what the line reports; True when it was a metrics blob (not for a console)."""
        doc = emf_blob(line)
        if doc is not None:
            self._observe_emf(process, doc)
            return True
        if process == "gateway":
            match = ACCESS_LINE.search(line)
            if match is not None:
                self._observe_request(match)
        return False

    def _observe_emf(self, process: str, doc: dict[str, Any]) -> None:
        service = str(doc.get("service") or process)
        labels = (("service", service),)
        with self._lock:
            for directive in doc["_aws"].get("CloudWatchMetrics") or []:
                for metric in directive.get("Metrics") or []:
                    name = str(metric.get("Name", ""))
                    raw = doc.get(name)
                    values = raw if isinstance(raw, list) else [raw]
                    numbers = [float(v) for v in values if isinstance(v, int | float)]
                    if not name or not numbers:
                        continue
                    unit = str(metric.get("Unit") or "None")
                    base = f"bourse_lambda_{_snake(name)}"
                    help_text = f"EMF metric {name} ({unit}), as the supervisor read it"
                    if unit == "Count":
                        self._add((LAMBDA_JOB, process), f"{base}_total", "counter",
                                  help_text, labels, numbers)  # fmt: skip
                    else:
                        self._add((LAMBDA_JOB, process), base, "summary", help_text,
                                  labels, numbers)  # fmt: skip

    def _observe_request(self, match: re.Match[str]) -> None:
        labels = (("method", match["method"]), ("status", match["status"]))
        group = (GATEWAY_JOB, "gateway")
        with self._lock:
            self._add(group, "bourse_gateway_requests_total", "counter",
                      "Requests the local gateway answered", labels, [1.0])  # fmt: skip
            if match["ms"] is not None:
                self._add(group, "bourse_gateway_request_seconds", "summary",
                          "Time to the response's status line", labels,
                          [float(match["ms"]) / 1000])  # fmt: skip

    def exposition(self, job: str, instance: str) -> str:
        """Prometheus's text format of one group."""
        out: list[str] = []
        with self._lock:
            families = dict(self._groups.get((job, instance), {}))
            for name in sorted(families):
                family = families[name]
                out.append(f"# HELP {name} {family.help}")
                out.append(f"# TYPE {name} {family.kind}")
                for labels, (total, count) in sorted(family.samples.items()):
                    text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
                    if family.kind == "counter":
                        out.append(f"{name}{{{text}}} {total!r}")
                    else:
                        out.append(f"{name}_sum{{{text}}} {total!r}")
                        out.append(f"{name}_count{{{text}}} {count!r}")
        return "\n".join(out) + "\n"

    def groups(self) -> list[tuple[str, str]]:
        with self._lock:
            return sorted(self._groups)

    def push(self, pushgateway_url: str) -> None:
        """Replace each group on the Pushgateway with its current totals (PUT)."""
        for job, instance in self.groups():
            request = urllib.request.Request(
                f"{pushgateway_url}/metrics/job/{job}/instance/{instance}",
                data=self.exposition(job, instance).encode(),
                method="PUT",
                headers={"Content-Type": "text/plain; version=0.0.4"},
            )
            with urllib.request.urlopen(request, timeout=PUSH_TIMEOUT):
                pass
