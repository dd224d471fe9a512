"""kafka-python producers and consumers configured from settings.

One place decides client settings (acks, idempotence, isolation) so every producer of
commands and every consumer of events behaves the same; MSK IAM auth will be added here.
"""

from __future__ import annotations

from typing import Any

from kafka import KafkaConsumer, KafkaProducer

from bourse.settings import get_settings


def producer(*, transactional_id: str | None = None, **overrides: Any) -> KafkaProducer:
    config: dict[str, Any] = {
        "bootstrap_servers": get_settings().kafka_bootstrap,
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 1,
    }
    if transactional_id is not None:
        config["transactional_id"] = transactional_id
    config.update(overrides)
    return KafkaProducer(**config)


def consumer(**overrides: Any) -> KafkaConsumer:
    """A consumer that sees committed transactions only (the engine publishes in batches)."""
    config: dict[str, Any] = {
        "bootstrap_servers": get_settings().kafka_bootstrap,
        "isolation_level": "read_committed",
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
    }
    config.update(overrides)
    return KafkaConsumer(**config)
