"""Create Bourse's topics (bourse.adapters.kafka_topics) on MSK at deploy time.

Existing topics are kept as they are (the commands topic is the journal recovery replays);
a topic with another partition count than the design's fails the deploy rather than run with
broken ordering.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from kafka.errors import TopicAlreadyExistsError

from bourse.adapters import kafka
from bourse.adapters.kafka_topics import TopicSpec, topic_specs
from bourse.settings import Settings

# Each request to the brokers waits at most this long (less when the deadline is nearer).
REQUEST_TIMEOUT_MS = 15000


def _timeout_ms(deadline: float | None) -> int:
    if deadline is None:
        return REQUEST_TIMEOUT_MS
    left = int((deadline - time.monotonic()) * 1000)
    if left <= 0:
        raise TimeoutError("no time left to reach the brokers before the deadline")
    return max(min(REQUEST_TIMEOUT_MS, left), 1000)


def ensure_topics(settings: Settings, deadline: float | None = None) -> list[TopicSpec]:
    """Create the missing topics; return them. The replication factor is the cluster's default
    (-1): three on MSK Serverless, two on a two-zone provisioned cluster, one locally.
    ``deadline`` (time.monotonic()) bounds every request to the brokers."""
    specs = topic_specs(settings)
    timeout_ms = _timeout_ms(deadline)
    admin = kafka.admin(request_timeout_ms=timeout_ms, bootstrap_timeout_ms=timeout_ms)
    try:
        existing = set(admin.list_topics())
        missing = [spec for spec in specs if spec.name not in existing]
        for spec in missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # a concurrent deploy made it
                admin.create_topics(
                    {spec.name: {"num_partitions": spec.partitions, "replication_factor": -1,
                                 "configs": dict(spec.configs)}},
                    timeout_ms=_timeout_ms(deadline), wait_for_metadata=True,
                )  # fmt: skip
        described: list[dict[str, Any]] = admin.describe_topics([spec.name for spec in specs])
    finally:
        admin.close()
    partitions = {t["name"]: len(t["partitions"]) for t in described}
    wrong = [
        f"{spec.name} has {partitions.get(spec.name)} partitions, expected {spec.partitions}"
        for spec in specs
        if partitions.get(spec.name) != spec.partitions
    ]
    if wrong:
        raise RuntimeError("; ".join(wrong))
    return missing
