"""`make bench-api`: orders through the local gateway with the whole pipeline live: HTTP ->
gateway -> authorizer (cached) -> OrdersFunction (rate limiter in Redis, signature, Kafka
produce) -> matching service -> Redis reply -> response.

A private exchange (its own topics, Redis database and gateway port; see
tests/integration/api_support.py). Each of ``--clients`` keep-alive connections comes from a
loopback address of its own (127.0.0.10, .11, ...: an IP each, as distinct traders are) and
trades a market of its own (listed for the bench, an empty book like BTCUSDT's) with three
accounts of its own, so that what every answer must be is known from the client's own
requests. A client's requests go one at a time, in a cycle of five at a price that changes
every cycle (many prices):

1. the seller rests SELL 0.002 at p (expected: NEW, no fill);
2. the taker buys 0.001 at p (FILLED, one fill of 0.001 at p);
3. the rester rests BUY 0.001 below p (NEW, no fill);
4. the rester cancels it (CANCELED);
5. the taker buys 0.001 at p (FILLED at p: the book is empty again).

Every answer's status and body are checked (FULL answers: status, executed quantity, fills and
their prices). Open loop: ``--rate`` requests/s in total, each scheduled on its client's
timeline, latency counted from the scheduled time (a client that falls behind counts the wait).
A failed answer (wrong status or body, an error, a dropped connection), a late one (more than
``--late-ms`` after its scheduled time) and an unsent one (its phase overran twice its length)
each count in ``errors``. After a failure the client cancels its open orders and starts a new
cycle. The rate limits are Binance's defaults: 16 clients at 300/s stay within them (per IP
1,125 weight a minute of 6,000; per account at most 75 orders per 10 s of 100), so a refusal
is an error too.

The measured phase follows a warm-up of ``--warmup-seconds`` (30) at the same rate, checked
the same way and reported on its own line (stderr), never in the last one. The local gateway
scales out as Lambda does, up to 16 OrdersFunction containers here, and each new one spends a
second or more of CPU importing and filling its API-key cache from moto's DynamoDB; on AWS
that happens on other machines, here on the two cores the exchange runs on, so the first
seconds at 300/s measure the cold start, not the exchange (docs/benchmarks.md, "REST API").
A Kafka broker started moments before (``make bench-api`` on a fresh stack) also runs its
request paths interpreted until its JIT has compiled them: 10 s of warm-up left that in the
measured phase, 30 s does not.
``--warmup-seconds 0`` measures from cold.

``--compare rate-limiter`` (or ``containers``) also starts a second gateway on the same
matching service with the rate limiter off (or the default 4 containers per function), and
alternates short phases between the two (same machine state); both figures go to stderr, with
their ratio. The clients' markets carry over from one phase to the next, whichever gateway.

Ends with exactly one line: ``api: <N> orders/s p50=<x>ms p99=<y>ms errors=<e>``, where N is
the requests answered as expected per second of the phases (orders and cancels alike).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import http.client
import json
import logging
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests

from bourse.settings import get_settings
from tests.integration.api_support import REPO, ApiStack, Trader, free_port, now_ms

REDIS_DB = 9
BASE_PRICE = Decimal("30000")
TICK = Decimal("0.01")
QTY = Decimal("0.001")
PRICES = 97  # distinct price levels a client cycles through
RESTER_BELOW = 100 * TICK  # the rester's bids stay clear of the seller's asks
FIRST_ACCOUNT = 1000


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Market:
    """One client's market and its three accounts."""

    symbol: str
    seller: Trader
    taker: Trader
    rester: Trader


@dataclass
class Step:
    """One request of the cycle and what its answer must be."""

    trader: Trader
    method: str
    params: dict[str, str]
    kind: str  # rest, fill, cancel

    def check(self, status: int, body: Any) -> str | None:
        """None when the answer is the expected one; else what is wrong."""
        if status != 200:
            return f"HTTP {status}: {json.dumps(body)[:200]}"
        if self.kind == "cancel":
            return None if body.get("status") == "CANCELED" else f"not canceled: {body}"
        fills = body.get("fills")
        if fills is None:
            return f"no fills in a FULL answer: {body}"
        if self.kind == "rest":
            ok = body.get("status") == "NEW" and not fills and Decimal(body["executedQty"]) == 0
            return None if ok else f"expected to rest: {body}"
        price = Decimal(self.params["price"])
        filled = sum((Decimal(f["qty"]) for f in fills), Decimal(0))
        ok = (
            body.get("status") == "FILLED"
            and Decimal(body["executedQty"]) == QTY
            and filled == QTY
            and all(Decimal(f["price"]) == price for f in fills)
        )
        return None if ok else f"expected one fill of {QTY} at {price}: {body}"


class Workload:
    """A client's cycle on its market; ``next_step`` and ``answered`` alternate."""

    def __init__(self, market: Market, index: int) -> None:
        self.market = market
        self.cycle = index * 13  # clients start at different prices
        self.position = 0
        self.resting_id: int | None = None
        self.counts = {"rest": 0, "fill": 0, "cancel": 0}

    def _order(self, trader: Trader, side: str, price: Decimal, kind: str) -> Step:
        params = {"symbol": self.market.symbol, "side": side, "type": "LIMIT",
                  "timeInForce": "GTC", "quantity": str(QTY * (2 if kind == "rest" and
                                                                side == "SELL" else 1)),
                  "price": str(price), "newOrderRespType": "FULL"}  # fmt: skip
        return Step(trader, "POST", params, kind)

    def next_step(self) -> Step:
        m = self.market
        price = BASE_PRICE + (self.cycle * 37 % PRICES) * TICK
        if self.position == 0:
            return self._order(m.seller, "SELL", price, "rest")
        if self.position in (1, 4):
            return self._order(m.taker, "BUY", price, "fill")
        if self.position == 2:
            return self._order(m.rester, "BUY", price - RESTER_BELOW, "rest")
        params = {"symbol": m.symbol, "orderId": str(self.resting_id)}
        return Step(m.rester, "DELETE", params, "cancel")

    def answered(self, step: Step, body: Any) -> None:
        self.counts[step.kind] += 1
        if self.position == 2:
            self.resting_id = int(body["orderId"])
        self.position = (self.position + 1) % 5
        if self.position == 0:
            self.cycle += 1

    def restart(self) -> None:
        """After a failure: a new cycle (the caller cancels what was left open)."""
        self.position, self.resting_id = 0, None
        self.cycle += 1


class Connection:
    """A keep-alive connection from one source address that signs as Binance clients do
    (HMAC-SHA256 of the form body or query, ``signature`` last). http.client rather than
    requests: requests costs ~3 ms of CPU per call on this machine, which would count in every
    latency and take CPU from the pipeline on the same two cores."""

    def __init__(self, base_url: str, source_ip: str) -> None:
        url = urlsplit(base_url)
        self.host, self.port = url.hostname or "127.0.0.1", url.port
        self.source_ip = source_ip
        self.conn = self._connect()

    def _connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(
            self.host, self.port, timeout=30, source_address=(self.source_ip, 0)
        )

    def signed(
        self, trader: Trader, method: str, path: str, params: dict[str, str]
    ) -> tuple[int, Any]:
        payload = urlencode([*params.items(), ("timestamp", now_ms())])
        key = trader.secret.encode()
        signature = hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()
        signed = f"{payload}&signature={signature}"
        headers = {"X-MBX-APIKEY": trader.api_key}
        body: bytes | None = None
        if method == "POST":
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            body = signed.encode()
        else:
            path = f"{path}?{signed}"
        try:
            self.conn.request(method, path, body=body, headers=headers)
            response = self.conn.getresponse()
            text = response.read().decode()
        except (http.client.HTTPException, OSError):
            self.conn.close()
            self.conn = self._connect()  # the next request reconnects
            raise
        try:
            return response.status, json.loads(text)
        except ValueError:
            return response.status, text


@dataclass
class Target:
    """One gateway, its connections (one per client) and what was measured through it."""

    name: str
    connections: list[Connection]
    latencies: list[float] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    late: int = 0
    unsent: int = 0
    done: int = 0  # answered as expected
    busy_s: float = 0.0  # the phases' wall time
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def errors(self) -> int:
        return len(self.failed) + self.late + self.unsent

    def summary(self) -> tuple[float, float, float]:
        return (
            self.done / self.busy_s if self.busy_s else 0.0,
            percentile(self.latencies, 0.50) * 1000,
            percentile(self.latencies, 0.99) * 1000,
        )


def _resync(connection: Connection, workload: Workload) -> None:
    """Cancel whatever the client left open on its market (answers not checked)."""
    m = workload.market
    for trader in (m.seller, m.rester):
        with contextlib.suppress(http.client.HTTPException, OSError):
            connection.signed(trader, "DELETE", "/api/v3/openOrders", {"symbol": m.symbol})
    workload.restart()


def _worker(
    connection: Connection,
    workload: Workload,
    schedule: tuple[float, float, int, float],
    late_s: float,
    target: Target,
) -> None:
    start, interval, count, give_up = schedule
    for i in range(count):
        if time.perf_counter() > give_up:
            # A saturated pipeline would take count / throughput to drain the schedule: the
            # requests still unsent are dropped, so a phase lasts at most twice its length.
            with target.lock:
                target.unsent += count - i
            return
        due = start + i * interval
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        step = workload.next_step()
        path = "/api/v3/order"
        try:
            status, body = connection.signed(step.trader, step.method, path, step.params)
            wrong = step.check(status, body)
        except (http.client.HTTPException, OSError) as exc:
            wrong = repr(exc)
        latency = time.perf_counter() - due
        with target.lock:
            target.latencies.append(latency)
            if wrong is not None:
                target.failed.append(f"{step.kind}: {wrong}")
            elif latency > late_s:
                target.late += 1
            else:
                target.done += 1
        if wrong is None:
            workload.answered(step, body)
        else:
            _resync(connection, workload)


def _phase(
    target: Target, workloads: list[Workload], rate: float, seconds: float, late_s: float
) -> None:
    """Open-loop requests at ``rate`` for ``seconds`` through ``target``'s connections."""
    n = len(workloads)
    per_client = max(1, int(rate * seconds / n))
    interval = n / rate
    start = time.perf_counter() + 0.2
    give_up = start + 2 * seconds
    threads = []
    for i, (conn, work) in enumerate(zip(target.connections, workloads, strict=True)):
        schedule = (start + i * interval / n, interval, per_client, give_up)
        args = (conn, work, schedule, late_s, target)
        threads.append(threading.Thread(target=_worker, args=args))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    target.busy_s += time.perf_counter() - start


def _warm(target: Target, workloads: list[Workload]) -> None:
    """order/test from every account, twice over all connections at once, so that the gateway
    starts the OrdersFunction containers it will use (Lambda's scale-out) and the
    authorizer's answers are cached before the clock starts."""

    def one(connection: Connection, workload: Workload) -> None:
        m = workload.market
        for trader in (m.seller, m.taker, m.rester):
            params = {"symbol": m.symbol, "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                      "quantity": str(QTY), "price": str(BASE_PRICE)}  # fmt: skip
            with contextlib.suppress(http.client.HTTPException, OSError):
                connection.signed(trader, "POST", "/api/v3/order/test", params)

    for _ in range(2):
        warmers = [
            threading.Thread(target=one, args=pair)
            for pair in zip(target.connections, workloads, strict=True)
        ]
        for t in warmers:
            t.start()
        for t in warmers:
            t.join()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _base_asset(i: int) -> str:
    return f"BN{chr(65 + i // 26)}{chr(65 + i % 26)}"


def _open_markets(stack: ApiStack, clients: int) -> list[Market]:
    """A market and three funded accounts per client, through the admin API (in parallel:
    each account waits for its deposits to reach the live view)."""

    def one(i: int) -> Market:
        base = _base_asset(i)
        symbol = f"{base}USDT"
        stack.list_market(symbol, base)
        first = FIRST_ACCOUNT + 3 * i
        seller = stack.trader(first, {base: "1000"})
        taker = stack.trader(first + 1, {"USDT": "100000000"})
        rester = stack.trader(first + 2, {"USDT": "100000000"})
        return Market(symbol, seller, taker, rester)

    assert clients <= 26 * 26
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(one, range(clients)))


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


def _report(target: Target) -> None:
    if target.failed:
        _log(f"{target.name}: {len(target.failed)} of {len(target.latencies)} answers wrong, "
             f"e.g. {target.failed[0]}")  # fmt: skip
    if target.late:
        _log(f"{target.name}: {target.late} answers late")
    if target.unsent:
        _log(f"{target.name}: {target.unsent} scheduled requests not sent (saturated)")
    rate, p50, p99 = target.summary()
    answered = len(target.latencies) / target.busy_s if target.busy_s else 0.0
    _log(f"{target.name}: {rate:.0f} orders/s p50={p50:.1f}ms p99={p99:.1f}ms "
         f"errors={target.errors} ({target.done} as expected and in time; "
         f"{answered:.0f} answers/s, late or not)")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=300.0, help="requests/s, all clients")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--late-ms", type=float, default=1000.0,
                        help="an answer later than this after its scheduled time is an "
                             "error")  # fmt: skip
    parser.add_argument(
        "--warmup-seconds",
        type=float,
        default=30.0,
        help="the same load first, checked but not counted in the last line",
    )
    parser.add_argument("--redis-db", type=int, default=REDIS_DB)
    parser.add_argument("--compare", choices=sorted(VARIANTS),
                        help="alternate with a second gateway: rate limiter off, or 4 "
                             "containers per function")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=4, help="alternations with --compare")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    second: subprocess.Popen[bytes] | None = None
    late_s = args.late_ms / 1000
    warmups: list[Target] = []
    with tempfile.TemporaryDirectory(prefix="bench-api-") as logs:
        stack = ApiStack(get_settings(), Path(logs), args.redis_db)
        stack.env["BOURSE_GATEWAY_MAX_CONTAINERS"] = str(max(4, args.clients))
        try:
            _log(f"starting a private exchange (logs in {logs})")
            stack.start()
            markets = _open_markets(stack, args.clients)
            workloads = [Workload(m, i) for i, m in enumerate(markets)]
            bases = [("pipeline", stack.base_url)]
            if args.compare:
                name, overrides = VARIANTS[args.compare]
                second, url = _second_gateway(stack, Path(logs), overrides)
                bases.append((name, url))
            targets = [
                Target(name, [Connection(base, f"127.0.0.{10 + i}")
                              for i in range(args.clients)])
                for name, base in bases
            ]  # fmt: skip
            for target in targets:
                _warm(target, workloads)
                if args.warmup_seconds > 0:
                    warm = Target(f"{target.name} warm-up", target.connections)
                    _phase(warm, workloads, args.rate, args.warmup_seconds, late_s)
                    warmups.append(warm)
            rounds = args.rounds if args.compare else 1
            for _ in range(rounds):
                for target in targets:
                    _phase(target, workloads, args.rate, args.seconds / rounds, late_s)
        finally:
            if second is not None:
                second.terminate()
                second.wait(timeout=30)
            stack.stop()
    kinds = {k: sum(w.counts[k] for w in workloads) for k in ("rest", "fill", "cancel")}
    _log(f"answered as expected: {kinds['rest']} rested, {kinds['fill']} filled, "
         f"{kinds['cancel']} cancelled, over {len(workloads)} markets and "
         f"{3 * len(workloads)} accounts")  # fmt: skip
    for target in [*warmups, *targets]:
        _report(target)
    if len(targets) == 2:
        (r1, a1, b1), (r2, a2, b2) = (t.summary() for t in targets)
        _log(f"ratio pipeline / {targets[1].name}: throughput x{r1 / max(r2, 1e-9):.2f}, "
             f"p50 x{a1 / max(a2, 1e-9):.2f}, p99 x{b1 / max(b2, 1e-9):.2f}")  # fmt: skip
    rate, p50, p99 = targets[0].summary()
    print(f"api: {rate:.0f} orders/s p50={p50:.1f}ms p99={p99:.1f}ms errors={targets[0].errors}",
          flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
