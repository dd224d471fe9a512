"""A private exchange for REST API tests: the matching service and the local gateway as real
processes on topics, a Redis database and a port of their own, funded accounts with API keys
in moto's DynamoDB, and a signing client.

Isolation is through settings only (env → bourse.settings): the commands and events topics
(the service derives its transactional id, group and snapshot prefix from them), the Redis
database (flushed here), the gateway port. Nothing the developer's `make run` uses is touched.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import redis
import requests
from kafka.admin import KafkaAdminClient, NewTopic

from bourse.adapters import kafka
from bourse.adapters.api_keys import ApiKey, new_credentials, put_api_key
from bourse.adapters.redis_book import read_balances, read_symbols
from bourse.domain.amounts import parse_units
from bourse.domain.codec import encode_command
from bourse.domain.commands import AddSymbol, Command, Deposit
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

    def __init__(self, settings: Settings, logs: Path, redis_db: int) -> None:
        suffix = uuid.uuid4().hex[:10]
        self.settings = settings
        self.commands_topic = f"test.api.{suffix}.commands"
        self.events_topic = f"test.api.{suffix}.events"
        self.redis_url = settings.redis_url.rsplit("/", 1)[0] + f"/{redis_db}"
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.logs = logs
        self.redis = redis.Redis.from_url(self.redis_url)
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
        self.procs: list[subprocess.Popen[bytes]] = []

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = (self.logs / f"{name}.log").open("wb")
        self.procs.append(
            subprocess.Popen(argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        )

    def start(self, *, matching: bool = True) -> None:
        """``matching=False``: the gateway alone, nobody consumes the commands (every order
        times out: the "execution status unknown" path)."""
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
        self.send([AddSymbol(f"add-{s.symbol}", now_ms(), s) for s in DEFAULT_MARKETS])
        deadline = time.monotonic() + 60
        while matching and len(read_symbols(self.redis)) < len(DEFAULT_MARKETS):
            self._check_alive()
            assert time.monotonic() < deadline, "the matching service did not list the markets"
            time.sleep(0.1)
        while True:
            with contextlib.suppress(requests.RequestException):
                if requests.get(self.base_url + "/api/v3/ping", timeout=30).status_code == 200:
                    break
            self._check_alive()
            assert time.monotonic() < deadline, "the gateway did not answer"
            time.sleep(0.1)

    def _check_alive(self) -> None:
        for proc in self.procs:
            if proc.poll() is not None:
                raise AssertionError(f"{proc.args} exited with {proc.returncode}; see {self.logs}")

    def send(self, commands: list[Command]) -> None:
        producer = kafka.producer()
        try:
            for command in commands:
                producer.send(self.commands_topic, encode_command(command), partition=0)
            producer.flush()
        finally:
            producer.close()

    def trader(
        self,
        account_id: int,
        funds: dict[str, str],
        *,
        permissions: tuple[str, ...] = ("TRADE", "USER_DATA"),
        ip_allow_list: tuple[str, ...] = (),
    ) -> Trader:
        api_key, secret = new_credentials()
        put_api_key(
            ApiKey(api_key, secret, account_id, permissions, ip_allow_list, label="test"),
            created_at_ms=now_ms(),
        )
        if funds and any(p.args[-1] == "matching_service" for p in self.procs):
            self.send(
                [
                    Deposit(f"dep-{account_id}-{a}-{uuid.uuid4().hex[:6]}", now_ms(), account_id,
                            a, parse_units(v))
                    for a, v in funds.items()
                ]
            )  # fmt: skip
            deadline = time.monotonic() + 30
            while set(read_balances(self.redis, account_id)) < set(funds):
                assert time.monotonic() < deadline, f"deposits of {account_id} not applied"
                time.sleep(0.05)
        return Trader(account_id, api_key, secret)

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
