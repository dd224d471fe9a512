"""Where a batch's time goes, phase by phase, on whichever thread runs the phase.

The loop's threads overlap (matching on the main thread, the Kafka transaction on one, the
live-view write on another), so a batch's wall time is not the sum of its phases; each phase's
total and its per-batch histogram are what docs/benchmarks.md's breakdown is read from. The
totals are logged when the service stops (the bench SIGTERMs it), the histograms are scraped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Histogram

from matching_service.metrics import BATCH_BUCKETS

# main thread: poll (consumer fetch and record parsing), match (decode, engine, encode and the
# fold of the view's changes: pipeline.run_batch), book (the changed books, read before the
# next batch changes them), wait_kafka (the previous batch's transaction still running);
# Kafka thread: kafka (begin .. commit_transaction), wait_view (the view write before it still
# running); view thread: view_ops (the account and order view's changes), redis (the Lua write).
PHASES = ("poll", "match", "book", "wait_kafka", "kafka", "wait_view", "view_ops", "redis")


class PhaseClock:
    def __init__(self, registry: CollectorRegistry) -> None:
        self._histogram = Histogram(
            "bourse_matching_phase_seconds",
            "Seconds per batch in each phase of the loop (threads overlap)",
            ["phase"],
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self._children = {name: self._histogram.labels(phase=name) for name in PHASES}
        self._totals = dict.fromkeys(PHASES, 0.0)
        self._lock = threading.Lock()

    def add(self, phase: str, seconds: float) -> None:
        self._children[phase].observe(seconds)
        with self._lock:
            self._totals[phase] += seconds

    @contextmanager
    def timing(self, phase: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(phase, time.perf_counter() - started)

    def totals(self) -> dict[str, float]:
        with self._lock:
            return {name: round(seconds, 3) for name, seconds in self._totals.items()}
