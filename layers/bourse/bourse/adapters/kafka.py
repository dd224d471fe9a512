"""Kafka producers, consumers and admin clients configured from settings.

kafka-python serves every client but the matching service's serving path, which uses
librdkafka (confluent-kafka: ``librdkafka_producer``, ``librdkafka_consumer``): there one
transaction per batch and a fetch per few commands are the whole per-batch overhead, and
kafka-python builds and parses every request in Python (~4x the CPU per transaction,
docs/benchmarks.md).

One place decides client settings (acks, idempotence, isolation, security) so every producer
of commands and every consumer of events behaves the same. Locally Kafka is PLAINTEXT; on MSK
(``BOURSE_KAFKA_IAM_AUTH``) clients speak SASL/OAUTHBEARER over TLS on port 9098, with a token
that aws-msk-iam-sasl-signer-python signs with the function's or task's role.
"""

from __future__ import annotations

import time
from typing import Any

import confluent_kafka
from aws_msk_iam_sasl_signer import MSKAuthTokenProvider
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.net.sasl.oauth import AbstractTokenProvider

from bourse.settings import get_settings

# Tokens live 15 minutes; one is reused until a minute before it expires, so reconnecting
# brokers do not each sign a new one.
_REFRESH_MARGIN_MS = 60_000


class MskIamTokenProvider(AbstractTokenProvider):  # type: ignore[misc]
    def __init__(self, region: str) -> None:
        super().__init__()
        self._region = region
        self._token = ""
        self._expires_ms = 0

    def token(self) -> str:
        if time.time() * 1000 >= self._expires_ms - _REFRESH_MARGIN_MS:
            self._token, self._expires_ms = MSKAuthTokenProvider.generate_auth_token(self._region)
        return self._token


def security_config() -> dict[str, Any]:
    """The connection settings every client shares: bootstrap servers and, on MSK, IAM auth."""
    settings = get_settings()
    config: dict[str, Any] = {"bootstrap_servers": settings.kafka_bootstrap}
    if settings.kafka_iam_auth:
        config.update(
            security_protocol="SASL_SSL",
            sasl_mechanism="OAUTHBEARER",
            sasl_oauth_token_provider=MskIamTokenProvider(settings.region),
        )
    return config


def producer(*, transactional_id: str | None = None, **overrides: Any) -> KafkaProducer:
    config: dict[str, Any] = {
        **security_config(),
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
        **security_config(),
        "isolation_level": "read_committed",
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
    }
    config.update(overrides)
    return KafkaConsumer(**config)


def admin(**overrides: Any) -> KafkaAdminClient:
    config: dict[str, Any] = {**security_config(), "client_id": "bourse-admin"}
    config.update(overrides)
    return KafkaAdminClient(**config)


def librdkafka_security_config() -> dict[str, Any]:
    """``security_config`` in librdkafka's terms. Nagle off: a transaction is five small
    requests in a row, each waiting on the one before, and on the loopback Nagle's delay
    would hold each of them back."""
    settings = get_settings()
    config: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_bootstrap,
        "socket.nagle.disable": True,
    }
    if settings.kafka_iam_auth:
        region = settings.region

        def oauth_cb(_config: str | None) -> tuple[str, float]:
            token, expires_ms = MSKAuthTokenProvider.generate_auth_token(region)
            return token, expires_ms / 1000

        config.update(
            {
                "security.protocol": "SASL_SSL",
                "sasl.mechanisms": "OAUTHBEARER",
                "oauth_cb": oauth_cb,
            }
        )
    return config


def librdkafka_producer(
    *, transactional_id: str | None = None, **overrides: Any
) -> confluent_kafka.Producer:
    """``producer`` in librdkafka. Retries back off 5 ms, not 100: after a commit the broker
    answers the next transaction's first request with CONCURRENT_TRANSACTIONS until it has
    written the last one's markers (a millisecond or two), and the back-off is that wait."""
    config: dict[str, Any] = {
        **librdkafka_security_config(),
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 1,
        "retry.backoff.ms": 5,
        "retry.backoff.max.ms": 50,
    }
    if transactional_id is not None:
        config["transactional.id"] = transactional_id
    config.update(overrides)
    return confluent_kafka.Producer(config)


def librdkafka_consumer(**overrides: Any) -> confluent_kafka.Consumer:
    """``consumer`` in librdkafka: committed transactions only, no automatic commits. A
    ``group.id`` is required by librdkafka even for a consumer that only assigns."""
    config: dict[str, Any] = {
        **librdkafka_security_config(),
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
    }
    config.update(overrides)
    return confluent_kafka.Consumer(config)
