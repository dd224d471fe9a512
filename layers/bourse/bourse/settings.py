"""The one place that reads the environment.

Every endpoint and resource name the code uses comes from here. Defaults point at the local
stack (``python -m devstack up``) so that a developer needs no variables at all; on AWS the
template sets each variable for each function. Resource names follow template.yaml, where the
local stack resolves ``${Stage}`` to ``local``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit


def _env(name: str, default: str) -> str:
    value = os.environ.get(name)
    return default if value is None or value == "" else value


def _env_int(name: str, default: int) -> int:
    raw = _env(name, str(default))
    try:
        return int(raw)
    except ValueError as exc:  # a bad setting must stop start-up with its name in the message
        raise ValueError(f"environment variable {name} must be an integer, got {raw!r}") from exc


def _env_list(name: str, default: str) -> tuple[str, ...]:
    """A comma-separated setting, blanks dropped."""
    return tuple(item.strip() for item in _env(name, default).split(",") if item.strip())


@dataclass(frozen=True)
class Settings:
    stage: str
    region: str
    # Kafka (MSK on AWS)
    kafka_bootstrap: str
    # MSK: SASL/OAUTHBEARER over TLS signed with the role's credentials; locally PLAINTEXT
    kafka_iam_auth: bool
    commands_topic: str
    events_topic: str
    marketdata_topic: str
    # PostgreSQL (Aurora on AWS) and Redis (ElastiCache on AWS). pg_dsn connects as the
    # function's own role when BOURSE_PG_USER names one (template.yaml sets it per function;
    # 0006_function_roles.sql grants each its least privilege); without it, as the DSN's user
    # (the owner: the migrations, the local stack's tools).
    pg_dsn: str
    pg_user: str
    # On AWS the record is reached through RDS Proxy with an IAM token as the password
    pg_iam_auth: bool
    redis_url: str
    # The Secrets Manager secret whose "token" is Redis's AUTH token (ElastiCache's on AWS, the
    # local Redis's in moto). Locally its name, which Secrets Manager takes as the SecretId
    # like an ARN: moto's ARNs end in a random suffix that only a lookup would tell.
    redis_auth_secret_arn: str
    # AWS APIs; empty endpoint means the real AWS endpoints
    aws_endpoint_url: str | None
    # Explicit credentials only for the local stack (moto accepts any); None on AWS, where
    # boto3's own chain (the function's or task's role) applies.
    aws_credentials: tuple[str, str] | None
    api_keys_table: str
    rate_limits_table: str
    listen_keys_table: str  # userDataStream listenKeys (bourse.adapters.listen_keys)
    idempotency_table: str
    connections_table: str
    subscriptions_table: str  # WebSocket stream subscriptions (bourse.adapters.connections)
    snapshots_bucket: str
    archive_bucket: str
    trade_fills_topic_name: str
    alerts_topic_name: str
    settlement_queue_name: str
    api_key_kms_alias: str
    # Admin API (functions/admin): the KMS key that signs admin commands (its ARN on AWS)
    admin_signing_key_id: str
    # Local stack only: where it keeps data, logs and pid files, and its ports
    stack_dir: str
    kafka_controller_port: int
    moto_port: int
    gateway_port: int
    # Prometheus and its Pushgateway (devstack/prometheus.py): not Debian's default ports 9090
    # and 9091, where the packages' own services may listen once installed
    prometheus_port: int
    pushgateway_port: int
    # Warm containers per function in the local gateway (Lambda's concurrency, scaled down)
    gateway_max_containers: int
    # The demo market (devstack/demo_market.py) that `make run` starts: on/off, its random
    # walk's seed, and how often it quotes and trades
    demo_market: bool
    demo_market_seed: int
    demo_market_interval_ms: int
    # Matching service (matching-service/): identity, batching, snapshots, replies, metrics
    matching_transactional_id: str  # one per deployment: a second instance fences the first
    matching_group_id: str  # the consumer group whose committed offset is the engine's input
    matching_batch_max: int  # commands per Kafka transaction, at most
    matching_poll_ms: int
    # "overlapped": commands fetched in a process of their own, batch N's live view written
    # while batch N+1's Kafka transaction runs; "sequential": the previous pipeline (fetched
    # in-process, each view written after its commit on the same thread), kept for measuring
    matching_pipeline: str
    # An idle matching service commits its offset again this often, so that Kafka never
    # expires it (offsets.retention.minutes after the last commit; 7 days by default).
    matching_offset_refresh_seconds: int
    # Under load the group's offset is copied into a batch's transaction at most this often;
    # the position itself travels with every batch's events (docs/engine.md, "Exactly once").
    matching_offset_commit_ms: int
    matching_metrics_port: int  # 0 disables the Prometheus endpoint
    pushgateway_url: str  # where the service also pushes its metrics on AWS; empty: no push
    snapshot_every_commands: int
    snapshot_every_seconds: int
    snapshot_prefix: str  # S3 key prefix in snapshots_bucket
    reply_ttl_seconds: int
    matching_log_level: str  # DEBUG adds one line per command (requestId, seq, code)
    # REST API (functions/*): how long an order waits for the engine's reply before -1007,
    # and how long a function keeps a decrypted API key (KMS is a network call per key)
    api_reply_timeout_ms: int
    api_key_cache_seconds: int
    # The functions' key caches, which ask Redis on every request whether the key was revoked
    # (bourse.adapters.api_keys.KeyRevocations): only a revocation changes a key, so an entry
    # may live far longer than the authorizer's, which nothing checks
    api_key_checked_cache_seconds: int
    api_idempotency_seconds: int  # how long a newClientOrderId retry replays the first answer
    # Rate limits (bourse.api.rate_limits), enforced and published in exchangeInfo: request
    # weight per IP and minute, orders per account and 10 s / UTC day; off: no limiting at all
    rate_limits_enabled: bool
    rate_limit_weight_per_minute: int
    rate_limit_orders_per_10s: int
    rate_limit_orders_per_day: int
    # Trade recorder and settlement (functions/recorder, functions/settlement): the name of the
    # recorder's high-water mark in applied_events, the S3 archive's key prefix, and the
    # topics they publish to (ARNs: SNS publishes by ARN; locally, moto's account's ARN)
    recorder_consumer: str
    archive_prefix: str
    trade_fills_topic_arn: str
    alerts_topic_arn: str
    # Funding lifecycle messages (deposits, withdrawals) for downstream systems (the recorder)
    funding_topic_arn: str
    # WebSocket API: the @connections management endpoint (boto3 apigatewaymanagementapi's
    # endpoint_url); locally the gateway serves it on its own port
    websocket_management_url: str
    # Local gateway only: API Gateway's WebSocket idle timeout and connection lifetime (10 min,
    # 2 h), shorter in tests
    gateway_ws_idle_seconds: int
    gateway_ws_max_seconds: int
    # Broadcaster (functions/broadcaster): parallel PostToConnection calls per invocation, and
    # how old a stream's subscriber list may get before it is refreshed (in the background)
    broadcaster_threads: int
    broadcaster_subscribers_ttl_ms: int
    # The pusher function (its name) that a fan-out to more than pusher_shard_size connections
    # hands shards of them to, invoked in parallel (docs/streams.md, "Fan-out"); empty: the
    # broadcaster posts to all of them itself
    pusher_function: str
    pusher_shard_size: int
    # Resumable streams (docs/streams.md): entries kept per stream's and account's message
    # log in Redis; how long a broadcaster batch may hold resumers back (its function's
    # timeout); the function (its name) that replays a resuming connection
    stream_log_maxlen: int
    stream_log_pending_ttl_s: int
    stream_resume_function: str
    # KMS keys (ids, ARNs or aliases) whose signatures the matching service accepts on admin
    # commands (bourse.domain.admin_auth); only ever extended, so old commands still verify
    admin_signing_key_ids: tuple[str, ...]
    # Retired admin signing keys' public halves (JSON: key ARN -> base64 DER), trusted beside
    # admin_signing_key_ids so that commands they signed still verify on replay. The local
    # stack keeps every key it has made here: moto forgets its KMS keys, the command log does
    # not. Empty: none.
    admin_trusted_keys_file: str
    # Push without a socket (docs/webhooks.md): the registrations table, the FIFO queue the
    # dispatcher fills and the sender drains, the name prefix of the accounts' own FIFO
    # queues, the sender's HTTP timeout and retry backoff (ChangeMessageVisibility: whole
    # seconds, doubling from base to cap). webhook_allow_local_http lets a webhook URL be
    # http://127.0.0.1 (the local stack's tests); everywhere else webhooks are HTTPS only.
    webhooks_table: str = "bourse-local-webhooks"
    webhook_queue_name: str = "bourse-local-webhooks.fifo"
    account_queue_prefix: str = "bourse-local-account-"
    webhook_timeout_seconds: int = 10
    webhook_retry_base_seconds: int = 2
    webhook_retry_max_seconds: int = 900
    webhook_allow_local_http: bool = False

    @property
    def kafka_port(self) -> int:
        return int(self.kafka_bootstrap.rsplit(":", 1)[1])

    @property
    def pg_port(self) -> int:
        if "://" not in self.pg_dsn:  # key=value form (a function's, BOURSE_PG_USER)
            from psycopg.conninfo import conninfo_to_dict

            return int(str(conninfo_to_dict(self.pg_dsn).get("port") or 5432))
        return urlsplit(self.pg_dsn).port or 5432

    @property
    def redis_port(self) -> int:
        return urlsplit(self.redis_url).port or 6379

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"


def _local_aws_credentials(stage: str) -> tuple[str, str] | None:
    if stage != "local":
        return None  # boto3's chain: role credentials come with a session token
    return (_env("AWS_ACCESS_KEY_ID", "testing"), _env("AWS_SECRET_ACCESS_KEY", "testing"))


def _local_topic_arn(stage: str, region: str, name: str) -> str:
    # moto's fixed account id; on AWS the template sets the ARN, so no default is guessed there.
    return f"arn:aws:sns:{region}:123456789012:{name}" if stage == "local" else ""


def _dsn_as(dsn: str, user: str) -> str:
    """``dsn`` with ``user`` as its user (any DSN form libpq takes); unchanged without one."""
    if not user:
        return dsn
    from psycopg.conninfo import make_conninfo  # only functions that reach the record pay it

    return make_conninfo(dsn, user=user)


def engine_form_setting() -> str:
    """BOURSE_ENGINE: auto, compiled or pure (bourse.engine_form). Read apart from Settings
    because the engine package chooses its form when it is imported, before anything else."""
    return _env("BOURSE_ENGINE", "auto").lower()


def engine_build_dir() -> str:
    """BOURSE_ENGINE_BUILD: where `make engine-compiled` put the compiled engine; by default
    build/engine at the repository's root (the matching image sets its own)."""
    return _env(
        "BOURSE_ENGINE_BUILD", str(Path(__file__).resolve().parents[3] / "build" / "engine")
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    stage = _env("BOURSE_STAGE", "local")
    region = _env("AWS_REGION", _env("AWS_DEFAULT_REGION", "us-east-1"))
    moto_port = _env_int("BOURSE_MOTO_PORT", 4566)
    endpoint_default = f"http://127.0.0.1:{moto_port}" if stage == "local" else ""
    endpoint = _env("AWS_ENDPOINT_URL", endpoint_default)
    prefix = f"bourse-{stage}"
    commands = _env("BOURSE_COMMANDS_TOPIC", "bourse.commands")
    stack_dir = _env("BOURSE_STACK_DIR", ".devstack")
    return Settings(
        stage=stage,
        region=region,
        kafka_bootstrap=_env("BOURSE_KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
        kafka_iam_auth=_env("BOURSE_KAFKA_IAM_AUTH", "false").lower() == "true",
        commands_topic=commands,
        events_topic=_env("BOURSE_EVENTS_TOPIC", "bourse.events"),
        marketdata_topic=_env("BOURSE_MARKETDATA_TOPIC", "bourse.marketdata"),
        pg_dsn=_dsn_as(
            _env("BOURSE_PG_DSN", "postgresql://bourse@127.0.0.1:5433/bourse"),
            _env("BOURSE_PG_USER", ""),
        ),
        pg_user=_env("BOURSE_PG_USER", ""),
        pg_iam_auth=_env("BOURSE_PG_IAM_AUTH", "false").lower() == "true",
        redis_url=_env("BOURSE_REDIS_URL", "redis://127.0.0.1:6380/0"),
        redis_auth_secret_arn=_env(
            "BOURSE_REDIS_AUTH_SECRET_ARN", f"{prefix}/redis-auth" if stage == "local" else ""
        ),
        aws_endpoint_url=endpoint or None,
        aws_credentials=_local_aws_credentials(stage),
        api_keys_table=_env("API_KEYS_TABLE", f"{prefix}-api-keys"),
        rate_limits_table=_env("RATE_LIMITS_TABLE", f"{prefix}-rate-limits"),
        listen_keys_table=_env("LISTEN_KEYS_TABLE", f"{prefix}-listen-keys"),
        idempotency_table=_env("IDEMPOTENCY_TABLE", f"{prefix}-idempotency"),
        connections_table=_env("CONNECTIONS_TABLE", f"{prefix}-connections"),
        subscriptions_table=_env("SUBSCRIPTIONS_TABLE", f"{prefix}-subscriptions"),
        snapshots_bucket=_env("SNAPSHOTS_BUCKET", f"{prefix}-snapshots"),
        archive_bucket=_env("ARCHIVE_BUCKET", f"{prefix}-archive"),
        trade_fills_topic_name=_env("TRADE_FILLS_TOPIC_NAME", f"{prefix}-trade-fills"),
        alerts_topic_name=_env("ALERTS_TOPIC_NAME", f"{prefix}-alerts"),
        settlement_queue_name=_env("SETTLEMENT_QUEUE_NAME", f"{prefix}-settlement"),
        api_key_kms_alias=_env("API_KEY_KMS_ALIAS", f"alias/{prefix}-api-keys"),
        admin_signing_key_id=_env("ADMIN_SIGNING_KEY_ID", f"alias/{prefix}-admin-signing"),
        stack_dir=stack_dir,
        kafka_controller_port=_env_int("BOURSE_KAFKA_CONTROLLER_PORT", 9093),
        moto_port=moto_port,
        gateway_port=_env_int("BOURSE_GATEWAY_PORT", 3000),
        prometheus_port=_env_int("BOURSE_PROMETHEUS_PORT", 9190),
        pushgateway_port=_env_int("BOURSE_PUSHGATEWAY_PORT", 9191),
        gateway_max_containers=_env_int("BOURSE_GATEWAY_MAX_CONTAINERS", 4),
        demo_market=_env("BOURSE_DEMO_MARKET", "1").lower() not in ("0", "false", "off", "no"),
        demo_market_seed=_env_int("BOURSE_DEMO_MARKET_SEED", 7),
        demo_market_interval_ms=_env_int("BOURSE_DEMO_MARKET_INTERVAL_MS", 1000),
        # Defaults derive from the commands topic, so a test that renames the topics also gets
        # its own transactional id, group and snapshot prefix.
        matching_transactional_id=_env("BOURSE_MATCHING_TRANSACTIONAL_ID", f"matching-{commands}"),
        matching_group_id=_env("BOURSE_MATCHING_GROUP_ID", f"matching-{commands}"),
        matching_batch_max=_env_int("BOURSE_MATCHING_BATCH_MAX", 2000),
        matching_poll_ms=_env_int("BOURSE_MATCHING_POLL_MS", 20),
        matching_pipeline=_env("BOURSE_MATCHING_PIPELINE", "overlapped"),
        matching_offset_refresh_seconds=_env_int("BOURSE_MATCHING_OFFSET_REFRESH_SECONDS", 3600),
        matching_offset_commit_ms=_env_int("BOURSE_MATCHING_OFFSET_COMMIT_MS", 1000),
        matching_metrics_port=_env_int("BOURSE_MATCHING_METRICS_PORT", 9108),
        pushgateway_url=_env("BOURSE_PUSHGATEWAY_URL", ""),
        snapshot_every_commands=_env_int("BOURSE_SNAPSHOT_EVERY_COMMANDS", 25_000),
        snapshot_every_seconds=_env_int("BOURSE_SNAPSHOT_EVERY_SECONDS", 300),
        snapshot_prefix=_env("BOURSE_SNAPSHOT_PREFIX", f"engine/{commands}/"),
        reply_ttl_seconds=_env_int("BOURSE_REPLY_TTL_SECONDS", 60),
        matching_log_level=_env("BOURSE_MATCHING_LOG_LEVEL", "INFO"),
        api_reply_timeout_ms=_env_int("BOURSE_API_REPLY_TIMEOUT_MS", 5000),
        api_key_cache_seconds=_env_int("BOURSE_API_KEY_CACHE_SECONDS", 60),
        api_key_checked_cache_seconds=_env_int("BOURSE_API_KEY_CHECKED_CACHE_SECONDS", 3600),
        api_idempotency_seconds=_env_int("BOURSE_API_IDEMPOTENCY_SECONDS", 600),
        rate_limits_enabled=_env("BOURSE_RATE_LIMITS_ENABLED", "true").lower() == "true",
        rate_limit_weight_per_minute=_env_int("BOURSE_RATE_LIMIT_WEIGHT_PER_MINUTE", 6000),
        rate_limit_orders_per_10s=_env_int("BOURSE_RATE_LIMIT_ORDERS_PER_10S", 100),
        rate_limit_orders_per_day=_env_int("BOURSE_RATE_LIMIT_ORDERS_PER_DAY", 200_000),
        recorder_consumer=_env("BOURSE_RECORDER_CONSUMER", f"{prefix}-recorder"),
        archive_prefix=_env("BOURSE_ARCHIVE_PREFIX", "events/"),
        trade_fills_topic_arn=_env(
            "TRADE_FILLS_TOPIC_ARN", _local_topic_arn(stage, region, f"{prefix}-trade-fills")
        ),
        alerts_topic_arn=_env(
            "ALERTS_TOPIC_ARN", _local_topic_arn(stage, region, f"{prefix}-alerts")
        ),
        funding_topic_arn=_env(
            "FUNDING_TOPIC_ARN", _local_topic_arn(stage, region, f"{prefix}-funding")
        ),
        websocket_management_url=_env(
            "WEBSOCKET_MANAGEMENT_URL",
            f"http://127.0.0.1:{_env_int('BOURSE_GATEWAY_PORT', 3000)}" if stage == "local" else "",
        ),
        gateway_ws_idle_seconds=_env_int("BOURSE_GATEWAY_WS_IDLE_SECONDS", 600),
        gateway_ws_max_seconds=_env_int("BOURSE_GATEWAY_WS_MAX_SECONDS", 7200),
        broadcaster_threads=_env_int("BOURSE_BROADCASTER_THREADS", 64),
        broadcaster_subscribers_ttl_ms=_env_int("BOURSE_BROADCASTER_SUBSCRIBERS_TTL_MS", 1000),
        pusher_function=_env("BOURSE_PUSHER_FUNCTION", ""),
        pusher_shard_size=_env_int("BOURSE_PUSHER_SHARD_SIZE", 250),
        stream_log_maxlen=_env_int("BOURSE_STREAM_LOG_MAXLEN", 10_000),
        stream_log_pending_ttl_s=_env_int("BOURSE_STREAM_LOG_PENDING_TTL_S", 35),
        stream_resume_function=_env("BOURSE_STREAM_RESUME_FUNCTION", ""),
        admin_signing_key_ids=_env_list(
            "BOURSE_ADMIN_SIGNING_KEY_IDS", f"alias/{prefix}-admin-signing"
        ),
        admin_trusted_keys_file=_env(
            "BOURSE_ADMIN_TRUSTED_KEYS_FILE",
            str(Path(stack_dir) / "admin-trusted-keys.json") if stage == "local" else "",
        ),
        webhooks_table=_env("WEBHOOKS_TABLE", f"{prefix}-webhooks"),
        webhook_queue_name=_env("WEBHOOK_QUEUE_NAME", f"{prefix}-webhooks.fifo"),
        account_queue_prefix=_env("BOURSE_ACCOUNT_QUEUE_PREFIX", f"{prefix}-account-"),
        webhook_timeout_seconds=_env_int("BOURSE_WEBHOOK_TIMEOUT_SECONDS", 10),
        webhook_retry_base_seconds=_env_int("BOURSE_WEBHOOK_RETRY_BASE_SECONDS", 2),
        webhook_retry_max_seconds=_env_int("BOURSE_WEBHOOK_RETRY_MAX_SECONDS", 900),
        # Only the local stack may say yes: a deployed stack posts to HTTPS URLs only.
        webhook_allow_local_http=stage == "local"
        and _env("BOURSE_WEBHOOK_ALLOW_LOCAL_HTTP", "false").lower() == "true",
    )
