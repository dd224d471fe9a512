"""A private exchange for REST API tests: the matching service and the local gateway as real
processes on topics, a Redis database and a port of their own, funded accounts with API keys
in moto's DynamoDB, and a signing client.

Isolation is through settings only (env → bourse.settings): the commands and events topics
(the service derives its transactional id, group and snapshot prefix from them), the Redis
database (flushed here), the gateway port. Nothing the developer's `make run` uses is touched.

Markets, accounts, keys and funds go through the admin API of the stack's own gateway (one
path: as `make run` seeds and an operator bootstraps a deployed stack). The one exception is a
stack started without a matching service: nothing would sequence the admin plane's commands,
so its traders' keys are written with the key store's own function.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import psycopg
import requests
from kafka import TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from bourse.adapters import aws, kafka, redis_conn
from bourse.adapters.api_keys import create_api_key
from bourse.adapters.redis_book import read_balances, read_symbols
from bourse.admin.client import (
    AdminClient,
    AdminError,
    Endpoint,
    local_operator_credentials,
    market_fields,
)
from bourse.domain.amounts import format_units
from bourse.domain.codec import encode_command
from bourse.domain.commands import AddSymbol, Command, CreateAccount, Deposit
from bourse.domain.event_codec import decode_events
from bourse.domain.markets import DEFAULT_MARKETS
from bourse.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Trader:
    account_id: int
    api_key: str
    secret: str


class Client:
    """Signs as Binance clients do: HMAC-SHA256 over the urlencoded parameters (query string
    for GET/DELETE, form body for POST), ``signature`` appended last."""

    def __init__(self, base_url: str, trader: Trader | None = None) -> None:
        self.base_url = base_url
        self.trader = trader
        self.session = requests.Session()

    def public(self, method: str, path: str, **params: Any) -> requests.Response:
        return self.session.request(method, self.base_url + path, params=params, timeout=30)

    def signed(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        *,
        timestamp: int | None = None,
        with_timestamp: bool = True,
        secret: str | None = None,
        api_key: str | None = None,
        sign: bool = True,
        in_body: bool | None = None,
    ) -> requests.Response:
        assert self.trader is not None
        pairs = [(k, v) for k, v in (params or {}).items() if v is not None]
        if with_timestamp:
            pairs.append(("timestamp", timestamp if timestamp is not None else now_ms()))
        payload = urlencode(pairs)
        if sign:
            signature = hmac.new(
                (secret or self.trader.secret).encode(), payload.encode(), hashlib.sha256
            ).hexdigest()
            payload = f"{payload}&signature={signature}" if payload else f"signature={signature}"
        headers = {"X-MBX-APIKEY": api_key if api_key is not None else self.trader.api_key}
        if api_key == "":
            headers = {}
        body_side = method == "POST" if in_body is None else in_body
        if body_side:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            return self.session.request(
                method, self.base_url + path, data=payload, headers=headers, timeout=30
            )
        url = f"{self.base_url}{path}?{payload}" if payload else self.base_url + path
        return self.session.request(method, url, headers=headers, timeout=30)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class ApiStack:
    """Start with ``start()``; ``stop()`` ends exactly the two processes it started."""

    def __init__(
        self, settings: Settings, logs: Path, redis_db: int, pg_dsn: str | None = None
    ) -> None:
        """``pg_dsn``: the record the functions read (and ``spawn_recorder`` writes), a
        scratch database; without it they read the developer's."""
        suffix = uuid.uuid4().hex[:10]
        self.suffix = suffix
        self.pg_dsn = pg_dsn
        self.fills_topic_arn: str | None = None
        self.funding_topic_arn: str | None = None
        self.alerts_topic_arn: str | None = None
        self.settings = settings
        self.commands_topic = f"test.api.{suffix}.commands"
        self.events_topic = f"test.api.{suffix}.events"
        self.redis_url = settings.redis_url.rsplit("/", 1)[0] + f"/{redis_db}"
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.logs = logs
        self.redis = redis_conn.connect(self.redis_url)
        self.env = {
            **os.environ,
            "BOURSE_COMMANDS_TOPIC": self.commands_topic,
            "BOURSE_EVENTS_TOPIC": self.events_topic,
            "BOURSE_REDIS_URL": self.redis_url,
            "BOURSE_GATEWAY_PORT": str(self.port),
            "BOURSE_MATCHING_METRICS_PORT": "0",
            "BOURSE_API_REPLY_TIMEOUT_MS": "5000",
            "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
            "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
        }
        if pg_dsn is not None:
            self.env["BOURSE_PG_DSN"] = pg_dsn
        self.procs: list[subprocess.Popen[bytes]] = []

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = (self.logs / f"{name}.log").open("wb")
        self.procs.append(
            subprocess.Popen(argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        )

    def start(self, *, matching: bool = True, markets: bool = True) -> None:
        """``matching=False``: the gateway alone, nobody consumes the commands (every order
        times out: the "execution status unknown" path). ``markets=False``: an empty exchange
        (no market listed)."""
        self.redis.flushdb()
        admin = KafkaAdminClient(
            bootstrap_servers=self.settings.kafka_bootstrap, request_timeout_ms=10000
        )
        try:
            admin.create_topics(
                [NewTopic(self.commands_topic, 1, 1), NewTopic(self.events_topic, 1, 1)]
            )
        finally:
            admin.close()
        if matching:
            self._spawn("matching", [sys.executable, "-m", "matching_service"])
        self._spawn("gateway", [sys.executable, "-m", "devstack.gateway"])
        # The gateway starts every function's first container (REST, WebSocket and admin)
        # before it opens its port: seconds of imports each, minutes on a loaded machine.
        deadline = time.monotonic() + 180
        while True:
            with contextlib.suppress(requests.RequestException):
                if requests.get(self.base_url + "/api/v3/ping", timeout=30).status_code == 200:
                    break
            self._check_alive()
            assert time.monotonic() < deadline, "the gateway did not answer"
            time.sleep(0.1)
        if not matching or not markets:
            return
        for spec in DEFAULT_MARKETS:
            self.admin.add_market(market_fields(spec))
        while len(read_symbols(self.redis)) < len(DEFAULT_MARKETS):
            self._check_alive()
            assert time.monotonic() < deadline, "the matching service did not list the markets"
            time.sleep(0.1)

    def list_market(self, symbol: str, base_asset: str) -> None:
        """A new market like BTCUSDT (same filters, an empty book of its own), listed through
        the admin API; returns once the matching service has listed it."""
        btc = next(m for m in DEFAULT_MARKETS if m.symbol == "BTCUSDT")
        self.admin.add_market(market_fields(replace(btc, symbol=symbol, base_asset=base_asset)))
        deadline = time.monotonic() + 60
        while symbol not in read_symbols(self.redis):
            self._check_alive()
            assert time.monotonic() < deadline, f"the matching service did not list {symbol}"
            time.sleep(0.05)

    @property
    def admin(self) -> AdminClient:
        """The stack's admin API, signed with the local operator's credentials."""
        return AdminClient(
            Endpoint(self.base_url, self.settings.region),
            local_operator_credentials(self.settings),
        )

    def _check_alive(self) -> None:
        for proc in self.procs:
            if proc.poll() is not None:
                raise AssertionError(
                    f"{proc.args!r} exited with {proc.returncode}; see {self.logs}"
                )

    def send(self, commands: Sequence[Command]) -> None:
        """Commands in order: trading commands straight onto the topic (tests that need exact
        timestamps or thousands of orders), the setup a workload starts with (markets,
        accounts, deposits) through the admin API, as everything that creates them goes."""
        pending: list[Command] = []
        for command in commands:
            if isinstance(command, (AddSymbol, CreateAccount, Deposit)):
                self._produce(pending)
                pending = []
                self._admin_setup(command)
            else:
                pending.append(command)
        self._produce(pending)

    def _produce(self, commands: list[Command]) -> None:
        if not commands:
            return
        producer = kafka.producer()
        try:
            for command in commands:
                producer.send(self.commands_topic, encode_command(command), partition=0)
            producer.flush()
        finally:
            producer.close()

    def _admin_setup(self, command: AddSymbol | CreateAccount | Deposit) -> None:
        admin = self.admin
        if isinstance(command, AddSymbol):
            if command.spec.symbol not in read_symbols(self.redis):
                admin.add_market(market_fields(command.spec))
        elif isinstance(command, CreateAccount):
            with contextlib.suppress(AdminError):  # opened by an earlier workload
                admin.create_account(command.account_id or None)
        else:
            admin.deposit(
                command.account_id,
                command.asset,
                format_units(command.amount),
                command.tx_id or f"test-{uuid.uuid4().hex}",
            )

    def open_account(self, account_id: int, funds: dict[str, str]) -> None:
        """The account (created unless it exists: tests give an account a second key) and
        deposits, through the admin API; returns once the balances show in the live view."""
        admin = self.admin
        try:
            admin.create_account(account_id)
        except AdminError as exc:
            if exc.code != -1130:  # already open
                raise
        for asset, amount in funds.items():
            admin.deposit(account_id, asset, amount, f"test-{uuid.uuid4().hex}")
        deadline = time.monotonic() + 30
        while set(read_balances(self.redis, account_id)) < set(funds):
            assert time.monotonic() < deadline, f"deposits of {account_id} not applied"
            time.sleep(0.05)

    def trader(
        self,
        account_id: int,
        funds: dict[str, str],
        *,
        permissions: tuple[str, ...] = ("TRADE", "USER_DATA"),
        ip_allow_list: tuple[str, ...] = (),
    ) -> Trader:
        """An account (created unless it exists), an HMAC key and deposits, through the admin
        API; ``permissions`` in the key store's names (USER_DATA is the admin API's READ)."""
        if not any(
            isinstance(p.args, list) and p.args[-1] == "matching_service" for p in self.procs
        ):
            key, secret = create_api_key(
                account_id, "HMAC", permissions, ip_allow_list, "test", None, now_ms()
            )
            assert secret is not None
            return Trader(account_id, key.api_key, secret)
        self.open_account(account_id, funds)
        answer = self.admin.create_key(
            account_id,
            key_type="HMAC",
            permissions=["READ" if p == "USER_DATA" else p for p in permissions],
            ip_allow_list=ip_allow_list,
            label="test",
        )
        return Trader(account_id, answer["apiKey"], answer["secret"])

    def spawn_broadcaster(self) -> None:
        """The broadcaster Lambda behind its local MSK poller, on this stack's events topic,
        posting to this stack's gateway (docs/streams.md)."""
        log = (self.logs / "broadcaster.log").open("wb")
        argv = [sys.executable, "-m", "devstack.event_sources", "BroadcasterFunction",
                "--group", f"{self.events_topic}.broadcaster"]  # fmt: skip
        env = {
            **self.env,
            "POWERTOOLS_SERVICE_NAME": "broadcaster",
            "POWERTOOLS_METRICS_NAMESPACE": "Bourse",
            "POWERTOOLS_TRACE_DISABLED": "true",
        }
        self.procs.append(
            subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        )

    def spawn_recorder(self) -> None:
        """The trade recorder Lambda behind its local MSK poller (as devstack runs it), on this
        stack's events topic, into ``pg_dsn`` and this stack's Redis (hot cache). Its fills,
        funding messages and alerts go to SNS topics of its own (``subscribe`` reads them), so
        no shared queue sees them."""
        assert self.pg_dsn is not None, "the recorder needs ApiStack(pg_dsn=...)"
        sns = aws.client("sns")
        self.fills_topic_arn = sns.create_topic(Name=f"test-api-fills-{self.suffix}")["TopicArn"]
        self.funding_topic_arn = sns.create_topic(Name=f"test-api-funding-{self.suffix}")[
            "TopicArn"
        ]
        self.alerts_topic_arn = sns.create_topic(Name=f"test-api-alerts-{self.suffix}")["TopicArn"]
        log = (self.logs / "recorder.log").open("wb")
        argv = [sys.executable, "-m", "devstack.event_sources", "RecorderFunction",
                "--group", f"{self.events_topic}.recorder"]  # fmt: skip
        env = {
            **self.env,
            "TRADE_FILLS_TOPIC_ARN": self.fills_topic_arn,
            "FUNDING_TOPIC_ARN": self.funding_topic_arn,
            "ALERTS_TOPIC_ARN": self.alerts_topic_arn,
            "BOURSE_ARCHIVE_PREFIX": f"test/api-{self.suffix}/",
            "POWERTOOLS_SERVICE_NAME": "recorder",
            "POWERTOOLS_METRICS_NAMESPACE": "Bourse",
            "POWERTOOLS_TRACE_DISABLED": "true",
        }
        self.procs.append(
            subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        )

    def subscribe(self, topic_arn: str) -> str:
        """A new SQS queue (raw delivery) subscribed to ``topic_arn``; its URL."""
        sqs = aws.client("sqs")
        name = f"test-api-sub-{self.suffix}-{uuid.uuid4().hex[:6]}"
        url: str = sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        aws.client("sns").subscribe(
            TopicArn=topic_arn,
            Protocol="sqs",
            Endpoint=arn,
            Attributes={"RawMessageDelivery": "true"},
        )
        return url

    def last_event_seq(self) -> int:
        """The seq of the newest event the matching service has committed to the topic."""
        consumer = kafka.consumer(group_id=None)
        partition = TopicPartition(self.events_topic, 0)
        try:
            consumer.assign([partition])
            consumer.seek_to_beginning(partition)
            end = consumer.end_offsets([partition])[partition]
            last = 0
            deadline = time.monotonic() + 30
            while consumer.position(partition) < end:
                assert time.monotonic() < deadline, "could not read the events topic"
                for records in consumer.poll(timeout_ms=500).values():
                    for record in records:
                        last = max([last, *(e.seq for e in decode_events(record.value))])
            return last
        finally:
            consumer.close(autocommit=False)

    def wait_recorded(self, timeout: float = 60) -> int:
        """Until the record has applied every event published so far; that last seq."""
        assert self.pg_dsn is not None
        last = self.last_event_seq()
        deadline = time.monotonic() + timeout
        with psycopg.connect(self.pg_dsn, autocommit=True) as conn:
            while True:
                row = conn.execute("SELECT max(last_seq) FROM applied_events").fetchone()
                if row is not None and row[0] is not None and int(str(row[0])) >= last:
                    return last
                self._check_alive()
                assert time.monotonic() < deadline, f"record behind seq {last}; see {self.logs}"
                time.sleep(0.1)

    def client(self, trader: Trader | None = None) -> Client:
        return Client(self.base_url, trader)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.redis.flushdb()
        for arn in (self.fills_topic_arn, self.funding_topic_arn, self.alerts_topic_arn):
            if arn is not None:
                aws.client("sns").delete_topic(TopicArn=arn)
