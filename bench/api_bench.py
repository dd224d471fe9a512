"""`make bench-api`: POST /api/v3/order (RESULT) through the local gateway with the whole
pipeline live: HTTP -> gateway -> authorizer (cached) -> OrdersFunction (rate limiter in
DynamoDB, signature, Kafka produce) -> matching service -> Redis reply -> response.

A private exchange (its own topics, Redis database and gateway port; see
tests/integration/api_support.py) with two funded accounts; ``--clients`` threads, each with
its own keep-alive connection, send orders open-loop at ``--rate`` orders/s in total for
``--seconds``: LIMIT SELL and BUY at the same price from the two accounts, so every other order
fills. Latency is measured per request from its scheduled send time (a client that falls behind
counts the wait), so it shows the queueing a slow pipeline causes. The rate limits are raised
so that no order is refused: the limiter still runs (its DynamoDB calls are part of the
pipeline) but the bench measures the pipeline, not the limits.

The gateway may run as many OrdersFunction containers as there are clients (Lambda scales
out; the local default is 4 per function). ``--compare rate-limiter`` (or ``containers``)
also starts a second gateway on the same matching service with the rate limiter off (or the
default 4 containers per function), and alternates short phases between the two (same
machine state, the load of other processes shared fairly); both figures go to stderr, with
their ratio.

Ends with exactly one line: ``api: <N> orders/s p50=<x>ms p99=<y>ms`` (the whole pipeline).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import http.client
import logging
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import requests

from bourse.settings import get_settings
from tests.integration.api_support import REPO, ApiStack, Trader, free_port, now_ms

REDIS_DB = 9
# High enough that no order of the bench is refused (429), so that every order runs the whole
# pipeline; the limiter's counting is still done.
UNLIMITED = {
    "BOURSE_RATE_LIMIT_WEIGHT_PER_MINUTE": "1000000000",
    "BOURSE_RATE_LIMIT_ORDERS_PER_10S": "1000000000",
    "BOURSE_RATE_LIMIT_ORDERS_PER_DAY": "1000000000",
}
ORDER = {"symbol": "BTCUSDT", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.001",
         "price": "30000", "newOrderRespType": "RESULT"}  # fmt: skip


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Client:
    """A keep-alive connection that signs as Binance clients do (HMAC-SHA256 of the form body,
    ``signature`` last). http.client rather than requests: requests costs ~3 ms of CPU per
    call on this machine (the gateway answers a ping in ~1 ms), which would count in every
    latency and take CPU from the pipeline on the same two cores."""

    def __init__(self, base_url: str, trader: Trader) -> None:
        url = urlsplit(base_url)
        self.conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=30)
        self.trader = trader

    def signed(self, method: str, path: str, params: dict[str, str]) -> tuple[int, str]:
        payload = urlencode([*params.items(), ("timestamp", now_ms())])
        key = self.trader.secret.encode()
        signature = hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()
        body = f"{payload}&signature={signature}".encode()
        headers = {"X-MBX-APIKEY": self.trader.api_key,
                   "Content-Type": "application/x-www-form-urlencoded"}  # fmt: skip
        try:
            self.conn.request(method, path, body=body, headers=headers)
            response = self.conn.getresponse()
            return response.status, response.read().decode()
        except (http.client.HTTPException, OSError):
            self.conn.close()  # the next request reconnects
            raise


@dataclass
class Target:
    """One gateway and what was measured through it."""

    name: str
    clients: list[Client]
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    busy_s: float = 0.0  # the phases' wall time
    unsent: int = 0  # scheduled orders dropped when a phase overran

    def summary(self) -> tuple[float, float, float]:
        done = len(self.latencies) - len(self.errors)
        return (
            done / self.busy_s if self.busy_s else 0.0,
            percentile(self.latencies, 0.50) * 1000,
            percentile(self.latencies, 0.99) * 1000,
        )


def _worker(
    client: Client,
    side: str,
    start: float,
    interval: float,
    count: int,
    give_up: float,
    target: Target,
) -> None:
    params = {**ORDER, "side": side}
    for i in range(count):
        if time.perf_counter() > give_up:
            # A saturated pipeline would take count / throughput to drain the schedule: the
            # orders still unsent are dropped, so a phase lasts at most twice its length.
            target.unsent += count - i
            return
        due = start + i * interval
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        try:
            status, text = client.signed("POST", "/api/v3/order", params)
            failed = None if status == 200 else text
        except (http.client.HTTPException, OSError) as exc:
            failed = repr(exc)
        target.latencies.append(time.perf_counter() - due)
        if failed is not None:
            target.errors.append(failed)


def _phase(target: Target, rate: float, seconds: float) -> None:
    """Open-loop orders at ``rate`` for ``seconds`` through ``target``'s clients."""
    n = len(target.clients)
    per_client = max(1, int(rate * seconds / n))
    interval = n / rate
    start = time.perf_counter() + 0.2
    give_up = start + 2 * seconds
    threads = []
    for i, client in enumerate(target.clients):
        side = "SELL" if i % 2 == 0 else "BUY"
        first = start + i * interval / n
        threads.append(
            threading.Thread(
                target=_worker, args=(client, side, first, interval, per_client, give_up, target)
            )
        )
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    target.busy_s += time.perf_counter() - start


def _warm(clients: list[Client]) -> None:
    """Concurrent test orders, twice, so that the gateway starts as many OrdersFunction
    containers as it will use (Lambda's scale-out) and the authorizer's answers are cached
    before the clock starts."""
    test = {**ORDER, "side": "BUY"}
    del test["newOrderRespType"]

    def one(client: Client) -> None:
        with contextlib.suppress(http.client.HTTPException, OSError):
            client.signed("POST", "/api/v3/order/test", test)

    for _ in range(2):
        warmers = [threading.Thread(target=one, args=(c,)) for c in clients]
        for t in warmers:
            t.start()
        for t in warmers:
            t.join()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --compare: the second gateway's name and environment.
VARIANTS = {
    "rate-limiter": ("no rate limiter", {"BOURSE_RATE_LIMITS_ENABLED": "false"}),
    "containers": ("4 containers", {"BOURSE_GATEWAY_MAX_CONTAINERS": "4"}),
}


def _second_gateway(
    stack: ApiStack, logs: Path, overrides: dict[str, str]
) -> tuple[subprocess.Popen[bytes], str]:
    """The same exchange behind another gateway, with ``overrides`` in its environment."""
    port = free_port()
    env = {**stack.env, **overrides, "BOURSE_GATEWAY_PORT": str(port)}
    log = (logs / "gateway-b.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "devstack.gateway"],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while True:
        with contextlib.suppress(requests.RequestException):
            if requests.get(url + "/api/v3/ping", timeout=30).status_code == 200:
                return proc, url
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the second gateway did not start; see {logs}")
        time.sleep(0.2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1000.0, help="orders/s, all clients")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--redis-db", type=int, default=REDIS_DB)
    parser.add_argument("--compare", choices=sorted(VARIANTS),
                        help="alternate with a second gateway: rate limiter off, or 4 "
                             "containers per function")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=4, help="alternations with --compare")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    second: subprocess.Popen[bytes] | None = None
    with tempfile.TemporaryDirectory(prefix="bench-api-") as logs:
        stack = ApiStack(get_settings(), Path(logs), args.redis_db)
        stack.env.update(UNLIMITED)
        stack.env["BOURSE_GATEWAY_MAX_CONTAINERS"] = str(max(4, args.clients))
        try:
            _log(f"starting a private exchange (logs in {logs})")
            stack.start()
            sellers: Trader = stack.trader(1, {"BTC": "100000"})
            buyers: Trader = stack.trader(2, {"USDT": "10000000000"})
            bases = [("pipeline", stack.base_url)]
            if args.compare:
                name, overrides = VARIANTS[args.compare]
                second, url = _second_gateway(stack, Path(logs), overrides)
                bases.append((name, url))
            targets = [
                Target(name, [Client(base, sellers if i % 2 == 0 else buyers)
                              for i in range(args.clients)])
                for name, base in bases
            ]  # fmt: skip
            for target in targets:
                _warm(target.clients)
            rounds = args.rounds if args.compare else 1
            for _ in range(rounds):
                for target in targets:
                    _phase(target, args.rate, args.seconds / rounds)
        finally:
            if second is not None:
                second.terminate()
                second.wait(timeout=30)
            stack.stop()
    for target in targets:
        # Failures (e.g. -1021 when a request queued past its recvWindow under overload) are
        # reported, and not counted as orders done.
        if target.errors:
            _log(f"{target.name}: {len(target.errors)} of {len(target.latencies)} orders "
                 f"failed, e.g. {target.errors[0]}")  # fmt: skip
        if target.unsent:
            _log(f"{target.name}: {target.unsent} scheduled orders not sent (saturated)")
        rate, p50, p99 = target.summary()
        _log(f"{target.name}: {rate:.0f} orders/s p50={p50:.1f}ms p99={p99:.1f}ms")
    if len(targets) == 2:
        (r1, a1, b1), (r2, a2, b2) = (t.summary() for t in targets)
        _log(f"ratio pipeline / {targets[1].name}: throughput x{r1 / max(r2, 1e-9):.2f}, "
             f"p50 x{a1 / max(a2, 1e-9):.2f}, p99 x{b1 / max(b2, 1e-9):.2f}")  # fmt: skip
    rate, p50, p99 = targets[0].summary()
    print(f"api: {rate:.0f} orders/s p50={p50:.1f}ms p99={p99:.1f}ms", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
