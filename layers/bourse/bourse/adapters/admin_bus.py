"""The live implementations of the admin API's ports (``bourse.admin.ports``): admin commands
signed with KMS and produced to ``bourse.commands`` (their replies read from Redis, as the
trading API reads its own), the Redis live view, the API key table and the record's funding
history. One set per Lambda container, made on its first request.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import cache, partial
from typing import Any

from bourse.adapters import api_keys, aws, kafka, key_revocation, record_reads, redis_conn
from bourse.adapters import redis_book as rb
from bourse.adapters.admin_signer import KmsAdminSigner
from bourse.admin.ports import AdminDeps, KeyRecord
from bourse.domain.commands import Command
from bourse.domain.events import Reply
from bourse.domain.symbols import SymbolSpec
from bourse.settings import Settings, get_settings


class SignedCommandBus:
    """Signs each admin command (``KmsAdminSigner``: the only way the engine accepts one),
    produces it to the commands topic and waits on ``reply:{requestId}``. The produce is
    acknowledged by every in-sync replica before the wait starts."""

    def __init__(
        self, signer: Any, producer: Any, client: Any, topic: str, timeout_ms: int
    ) -> None:
        self.signer = signer
        self.producer = producer
        self.client = client
        self.topic = topic
        self.timeout_s = timeout_ms / 1000

    def execute(self, command: Command) -> Reply | None:
        started = time.monotonic()
        record = self.signer.signed_record(command)
        self.producer.send(self.topic, record, partition=0).get(timeout=self.timeout_s)
        left = max(0.01, self.timeout_s - (time.monotonic() - started))
        event = rb.read_reply(self.client, command.request_id, left)
        return event if isinstance(event, Reply) else None


class RedisAdminView:
    def __init__(self, client: Any) -> None:
        self.client = client

    def symbols(self) -> dict[str, SymbolSpec]:
        return rb.read_symbols(self.client)

    def symbol(self, name: str) -> SymbolSpec | None:
        return rb.read_symbol(self.client, name)

    def accounts(self) -> dict[int, str]:
        return rb.read_accounts(self.client)

    def account_status(self, account_id: int) -> str | None:
        return rb.read_account_status(self.client, account_id)

    def balances(self, account_id: int) -> dict[str, tuple[int, int]]:
        return rb.read_balances(self.client, account_id)

    def fees(self, account_id: int) -> tuple[int, int] | None:
        return rb.read_fees(self.client, account_id)


class DynamoKeyAdmin:
    """The API key table (bourse.adapters.api_keys) and revocation, which also closes what a
    key opened (bourse.adapters.key_revocation)."""

    def create(
        self,
        account_id: int,
        key_type: str,
        permissions: tuple[str, ...],
        ip_allow_list: tuple[str, ...],
        label: str,
        public_key_pem: str | None,
        created_at_ms: int,
    ) -> tuple[KeyRecord, str | None]:
        return api_keys.create_api_key(
            account_id, key_type, permissions, ip_allow_list, label, public_key_pem, created_at_ms
        )

    def list(self, account_id: int) -> Sequence[KeyRecord]:
        return api_keys.list_api_keys(account_id)

    def describe(self, api_key: str) -> KeyRecord | None:
        return api_keys.describe_api_key(api_key)

    def revoke(self, api_key: str) -> KeyRecord | None:
        return key_revocation.revoke_api_key(api_key)

    def close_sessions(self, api_key: str, account_id: int) -> int:
        return key_revocation.close_key_sessions(api_key, account_id=account_id)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@cache
def _redis(url: str) -> Any:
    return redis_conn.connect(url, socket_timeout=10, socket_connect_timeout=2)


@cache
def _producer(bootstrap: str) -> Any:
    return kafka.producer(client_id="admin", linger_ms=0)


def admin_deps(settings: Settings | None = None) -> AdminDeps:
    """The live dependencies (cached: one producer, Redis pool and signer per container)."""
    s = settings or get_settings()
    return _admin_deps(s)


@cache
def _admin_deps(s: Settings) -> AdminDeps:
    client = _redis(s.redis_url)
    signer = KmsAdminSigner(aws.client("kms"), s.admin_signing_key_id)
    bus = SignedCommandBus(
        signer, _producer(s.kafka_bootstrap), client, s.commands_topic, s.api_reply_timeout_ms
    )
    return AdminDeps(
        bus=bus,
        view=RedisAdminView(client),
        keys=DynamoKeyAdmin(),
        funding=partial(record_reads.funding_history, s.pg_dsn),
        clock=_now_ms,
    )
