"""Prometheus metrics of the service (scraped from ``:<metrics port>/metrics``).

Commands/s is ``rate(bourse_matching_commands_total[1m])``; the rest are read as they are.
A private registry keeps tests that import the module twice from clashing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    push_to_gateway,
    start_http_server,
)

log = logging.getLogger(__name__)

# Fine enough for histogram_quantile(0.99) to mean something (the bench reports it).
BATCH_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4,
                 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0)  # fmt: skip


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.commands = Counter(
            "bourse_matching_commands", "Commands applied and committed", registry=r
        )
        self.events = Counter("bourse_matching_events", "Events committed to Kafka", registry=r)
        self.undecodable = Counter(
            "bourse_matching_undecodable_commands",
            "Command records skipped as malformed",
            registry=r,
        )
        self.batch_seconds = Histogram(
            "bourse_matching_batch_seconds",
            "From poll return to Redis written, per batch",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.batch_commands = Histogram(
            "bourse_matching_batch_commands",
            "Commands per batch",
            buckets=(1, 10, 100, 500, 1000, 2000, 5000, 10000),
            registry=r,
        )
        self.lag = Gauge("bourse_matching_consumer_lag", "Commands waiting in Kafka", registry=r)
        self.last_seq = Gauge(
            "bourse_matching_last_seq", "Seq of the last committed event", registry=r
        )
        self.offset = Gauge(
            "bourse_matching_committed_offset", "Commands offset committed", registry=r
        )
        self.snapshot_age = Gauge(
            "bourse_matching_snapshot_age_seconds", "Seconds since the last snapshot", registry=r
        )
        self.ready = Gauge(
            "bourse_matching_ready", "1 once recovery is done and serving", registry=r
        )

    def track_snapshot_age(self, last_saved_monotonic: Callable[[], float]) -> None:
        self.snapshot_age.set_function(lambda: time.monotonic() - last_saved_monotonic())

    def serve(self, port: int) -> None:
        if port > 0:
            start_http_server(port, addr="0.0.0.0", registry=self.registry)

    def push_every(self, url: str, job: str, seconds: float = 15.0) -> threading.Thread:
        """The registry is also pushed to the Pushgateway (infra/observability.yaml): its series
        keep job="bourse-matching" whatever scrapes them, and its push time tells a dead task
        from a quiet one. A failed push is logged, never fatal."""

        def loop() -> None:
            while True:
                try:
                    push_to_gateway(url, job=job, registry=self.registry, timeout=5)
                except OSError as exc:
                    log.warning("metrics push to %s failed: %s", url, exc)
                time.sleep(seconds)

        thread = threading.Thread(target=loop, name="metrics-push", daemon=True)
        thread.start()
        return thread
