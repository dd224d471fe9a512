"""The live implementations of the API's ports (``bourse.api.ports``): Redis for the view and
the replies, Kafka for commands, DynamoDB + KMS for keys. One set per Lambda container, made on
its first request and reused by every later one.
"""

from __future__ import annotations

import logging
import threading
import time
from functools import cache
from typing import Any, Protocol

from redis.exceptions import RedisError

from bourse.adapters import api_keys, kafka, listen_key_streams, recent_view, redis_conn
from bourse.adapters import redis_book as rb
from bourse.adapters.api_keys import ApiKey
from bourse.adapters.hot_cache import HotCache
from bourse.adapters.idempotency import DynamoIdempotency
from bourse.adapters.listen_keys import ListenKeys
from bourse.adapters.rate_limit_store import RateLimitStore, rate_limit_store
from bourse.adapters.record_reads import RecordHistory
from bourse.adapters.stream_log import StreamLog
from bourse.api.handlers import Deps
from bourse.domain import errors
from bourse.domain.codec import encode_command
from bourse.domain.commands import Command
from bourse.domain.events import OrderResult, Reply
from bourse.domain.symbols import SymbolSpec
from bourse.record.views import AccountTradeRow, OrderRow
from bourse.settings import Settings, get_settings

log = logging.getLogger("bourse.api")


class RedisMarketView:
    def __init__(self, client: Any) -> None:
        self.client = client
        # Markets seen listed: a market is never unlisted (a delisted one stays, in BREAK), so
        # once seen it needs no Redis read on each order (``KnownSymbolsBus``'s check).
        self._listed: set[str] = set()

    def symbols(self) -> dict[str, SymbolSpec]:
        return rb.read_symbols(self.client)

    def symbol(self, name: str) -> SymbolSpec | None:
        return rb.read_symbol(self.client, name)

    def is_listed(self, name: str) -> bool:
        if name in self._listed:
            return True
        if rb.read_symbol(self.client, name) is None:
            return False
        self._listed.add(name)
        return True

    def book(self, symbol: str, limit: int) -> rb.Book | None:
        return rb.read_book(self.client, symbol, limit)

    def bbo(self, symbol: str) -> rb.Bbo | None:
        return rb.read_bbo(self.client, symbol)

    def last_price(self, symbol: str) -> int | None:
        return rb.read_last_price(self.client, symbol)

    def balances(self, account_id: int) -> dict[str, tuple[int, int]]:
        return rb.read_balances(self.client, account_id)

    def fees(self, account_id: int) -> tuple[int, int] | None:
        return rb.read_fees(self.client, account_id)

    def open_orders(self, account_id: int, symbol: str | None) -> list[OrderResult]:
        return rb.read_open_orders(self.client, account_id, symbol)


class RedisRecentView:
    def __init__(self, client: Any) -> None:
        self.client = client

    def closed_order(
        self, account_id: int, symbol: str, order_id: int | None, client_order_id: str | None
    ) -> OrderRow | None:
        return recent_view.read_closed_order(
            self.client, account_id, symbol, order_id, client_order_id
        )

    def closed_orders(self, account_id: int, symbol: str) -> list[OrderRow]:
        return recent_view.read_closed_orders(self.client, account_id, symbol)

    def fills(self, account_id: int, symbol: str) -> list[AccountTradeRow]:
        return recent_view.read_fills(self.client, account_id, symbol)


class KafkaCommandBus:
    """Produces to ``bourse.commands`` and waits on ``reply:{requestId}``.

    The produce is acknowledged by every in-sync replica (acks=all, idempotent producer), but
    the wait for the reply starts at once rather than after the acknowledgement: the matching
    service only sees a command once it is in the log, so a reply implies the ack, and waiting
    for the ack first only put its round trip (p50 8 ms, p99 240 ms on the loaded development
    machine) in front of every order. What can fail is split by whether the command may be in
    the log: ``produce`` refusing the record (its queue full, a record too large) is before
    anything left, an ordinary error (-1001, "try again"); once ``produce`` has taken the
    record, the producer may deliver it even after its delivery failed as far as this process
    knows, so no reply within the timeout (the delivery's error, if one is known by then, is
    logged) or Redis failing during the wait is -1007, "execution status unknown": the client
    must look the order up, not send it again blindly (docs/api.md, "Retries").

    The producer is librdkafka's (confluent-kafka): it builds and sends the record on its own
    threads, where kafka-python spent about a third of an order's CPU in the container.
    """

    def __init__(self, producer: Any, client: Any, topic: str, timeout_ms: int) -> None:
        self.producer = producer
        self.client = client
        self.topic = topic
        self.timeout_s = timeout_ms / 1000

    def execute(self, command: Command) -> Reply | None:
        delivery: list[Any] = []  # the delivery report's error (None: delivered), once served

        def delivered(error: Any, _message: Any) -> None:
            delivery.append(error)

        self.producer.produce(
            self.topic, encode_command(command), partition=0, on_delivery=delivered
        )
        reply = self.wait(command.request_id)
        # Serves the delivery reports that have come in (this one's among them, normally), so
        # that they never pile up in the producer between requests.
        self.producer.poll(0)
        if reply is None and (not delivery or delivery[0] is not None):
            # Unconfirmed or failed: either way the record may still be on its way.
            log.warning(
                "send unconfirmed: status unknown (%r)", delivery[0] if delivery else "no ack yet",
                extra={"requestId": command.request_id},
            )  # fmt: skip
        return reply

    def wait(self, request_id: str, timeout_s: float | None = None) -> Reply | None:
        try:
            event = rb.read_reply(self.client, request_id, timeout_s or self.timeout_s)
        except RedisError:
            log.warning("reply wait failed: status unknown", extra={"requestId": request_id})
            raise errors.EXECUTION_UNKNOWN_ERROR from None
        return event if isinstance(event, Reply) else None


class Revocations(Protocol):
    """``api_keys.KeyRevocations``: (current key epoch, revoked?); raises Redis's errors."""

    def check(self, api_key: str) -> tuple[str, bool]: ...


class KeyTable(Protocol):
    """``api_keys.ApiKeyTable``, the reads the store makes."""

    def get(self, api_key: str, *, consistent: bool = False) -> ApiKey | None: ...

    def is_active(self, api_key: str) -> bool: ...


class CachedKeyStore:
    """API keys with their decrypted secrets, kept ``ttl_s`` seconds (KMS is a network call);
    an unknown key is cached too, so a flood of bad keys does not reach DynamoDB each time.

    With ``revocations`` (the functions' stores) every ``get`` also asks Redis, in one MGET,
    whether the key was revoked and which key epoch is current (``api_keys.KeyRevocations``):
    a revoked key is None at once, and an entry read in another epoch (Redis lost its data,
    markers included) is read again from DynamoDB. When Redis does not answer, a cached key is
    confirmed by a strongly consistent read of its status (no KMS) rather than trusted.
    Without ``revocations`` (the authorizer, which has no Redis) a revoked key is None once its
    entry expires; the functions behind it refuse it meanwhile.
    """

    def __init__(
        self,
        ttl_s: int,
        revocations: Revocations | None = None,
        table: KeyTable | None = None,
    ) -> None:
        self.ttl_s = ttl_s
        self.revocations = revocations
        self._table = table
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, str | None, ApiKey | None]] = {}

    @property
    def table(self) -> KeyTable:
        return self._table if self._table is not None else api_keys.table()

    def get(self, api_key: str) -> ApiKey | None:
        now = time.monotonic()
        epoch: str | None = None
        if self.revocations is not None:
            try:
                epoch, revoked = self.revocations.check(api_key)
            except RedisError:
                log.warning("revocation check failed: reading the key's status instead")
                return self._without_redis(api_key, now)
            if revoked:
                self._forget(api_key)
                return None
        with self._lock:
            hit = self._cache.get(api_key)
        if hit is not None and now - hit[0] < self.ttl_s and hit[1] == epoch:
            return hit[2]
        return self._load(api_key, now, epoch)

    def _load(self, api_key: str, now: float, epoch: str | None) -> ApiKey | None:
        # Consistent: a key revoked a moment ago must not be read back ACTIVE from a replica.
        key = self.table.get(api_key, consistent=True)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[api_key] = (now, epoch, key)
        return key

    def _without_redis(self, api_key: str, now: float) -> ApiKey | None:
        with self._lock:
            hit = self._cache.get(api_key)
        if hit is None or now - hit[0] >= self.ttl_s:
            return self._load(api_key, now, None)
        if hit[2] is None or self.table.is_active(api_key):
            return hit[2]
        self._forget(api_key)
        return None

    def _forget(self, api_key: str) -> None:
        with self._lock:
            self._cache.pop(api_key, None)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@cache
def redis_client(url: str) -> Any:
    return redis_conn.connect(url, socket_timeout=10, socket_connect_timeout=2)


@cache
def limiter_redis(url: str) -> Any:
    """The rate limiter's own client: a limiter that does not answer within a second lets the
    request through (fails open), where the reply waits need long timeouts."""
    return redis_conn.connect(url, socket_timeout=1, socket_connect_timeout=1)


def _rate_limits(s: Settings) -> RateLimitStore | None:
    return rate_limit_store(s, limiter_redis(s.redis_url)) if s.rate_limits_enabled else None


@cache
def record_history(dsn: str, client: Any) -> RecordHistory:
    """The record for the history endpoints: one connection per container, opened by the
    first history read (ping and the live reads never touch PostgreSQL)."""
    return RecordHistory(dsn, HotCache(client))


@cache
def key_store(ttl_s: int, client: Any) -> CachedKeyStore:
    """The functions' key store: revocations checked in this exchange's Redis."""
    return CachedKeyStore(ttl_s, api_keys.KeyRevocations(client))


@cache
def _authorizer_store(ttl_s: int) -> CachedKeyStore:
    return CachedKeyStore(ttl_s)


@cache
def _producer(bootstrap: str) -> Any:
    # A record not delivered within two minutes fails (kafka-python's delivery timeout, which
    # this replaced), not after librdkafka's default five: a command that late is refused by
    # the matching service's deadline anyway.
    config: dict[str, Any] = {"client.id": "api", "linger.ms": 0, "message.timeout.ms": 120_000}
    return kafka.librdkafka_producer(**config)


def deps(settings: Settings | None = None) -> Deps:
    """The live dependencies (cached: one Kafka producer and Redis pool per container)."""
    s = settings or get_settings()
    client = redis_client(s.redis_url)
    return _deps(s, client)


@cache
def _deps(s: Settings, client: Any) -> Deps:
    return Deps(
        view=RedisMarketView(client),
        bus=KafkaCommandBus(
            _producer(s.kafka_bootstrap), client, s.commands_topic, s.api_reply_timeout_ms
        ),
        keys=key_store(s.api_key_checked_cache_seconds, client),
        clock=_now_ms,
        idempotency=DynamoIdempotency(
            s.idempotency_table, s.api_idempotency_seconds, s.commands_topic
        ),
        history=record_history(s.pg_dsn, client),
        rate_limits=_rate_limits(s),
        listen_keys=_listen_keys(s),
        recent=RedisRecentView(client),
    )


def _stream_log(s: Settings, client: Any) -> StreamLog:
    """The streams' message log, for replay by seq (bourse.api.event_replay)."""
    return StreamLog(client, s.stream_log_maxlen, s.stream_log_pending_ttl_s)


def _listen_keys(s: Settings) -> ListenKeys:
    """A closed listen key's streams are ended (``listenKeyExpired``, then closed)."""
    return ListenKeys(
        s.listen_keys_table, s.commands_topic, on_close=listen_key_streams.end_streams
    )


def market_deps(settings: Settings | None = None) -> Deps:
    """Market data needs no Kafka producer: a bus that is never used."""
    s = settings or get_settings()
    return _market_deps(s, redis_client(s.redis_url))


class _NoBus:
    def execute(self, command: Command) -> Reply | None:
        raise RuntimeError("this function sends no commands")

    def wait(self, request_id: str) -> Reply | None:
        raise RuntimeError("this function sends no commands")


@cache
def _market_deps(s: Settings, client: Any) -> Deps:
    return Deps(
        view=RedisMarketView(client),
        bus=_NoBus(),
        keys=key_store(s.api_key_checked_cache_seconds, client),
        clock=_now_ms,
        history=record_history(s.pg_dsn, client),
        rate_limits=_rate_limits(s),
        events=_stream_log(s, client),
    )


def account_deps(settings: Settings | None = None) -> Deps:
    """The account routes (reads, listen keys) send no command: no Kafka producer (so the
    function needs no Kafka permission) and no idempotency store."""
    s = settings or get_settings()
    return _account_deps(s, redis_client(s.redis_url))


@cache
def _account_deps(s: Settings, client: Any) -> Deps:
    return Deps(
        view=RedisMarketView(client),
        bus=_NoBus(),
        keys=key_store(s.api_key_checked_cache_seconds, client),
        clock=_now_ms,
        history=record_history(s.pg_dsn, client),
        rate_limits=_rate_limits(s),
        listen_keys=_listen_keys(s),
        recent=RedisRecentView(client),
        events=_stream_log(s, client),
    )


def authorizer_keys(settings: Settings | None = None) -> CachedKeyStore:
    """The authorizer's store: no Redis there (its role may not read the Redis AUTH secret, and
    API Gateway caches its answers for minutes anyway): revocation is the functions' check."""
    return _authorizer_store((settings or get_settings()).api_key_cache_seconds)
