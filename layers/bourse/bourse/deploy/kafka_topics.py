"""Create Bourse's topics (bourse.adapters.kafka_topics) on MSK at deploy time.

Existing topics are kept as they are (the commands topic is the journal recovery replays);
a topic with another partition count than the design's fails the deploy rather than run with
broken ordering.
"""

from __future__ import annotations

import contextlib
from typing import Any

from kafka.errors import TopicAlreadyExistsError

from bourse.adapters import kafka
from bourse.adapters.kafka_topics import TopicSpec, topic_specs
from bourse.settings import Settings


def ensure_topics(settings: Settings) -> list[TopicSpec]:
    """Create the missing topics; return them. The replication factor is the cluster's default
    (-1): three on MSK Serverless, two on a two-zone provisioned cluster, one locally."""
    specs = topic_specs(settings)
    admin = kafka.admin(request_timeout_ms=15000)
    try:
        existing = set(admin.list_topics())
        missing = [spec for spec in specs if spec.name not in existing]
        for spec in missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # a concurrent deploy made it
                admin.create_topics(
                    {spec.name: {"num_partitions": spec.partitions, "replication_factor": -1,
                                 "configs": dict(spec.configs)}},
                    timeout_ms=15000, wait_for_metadata=True,
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
