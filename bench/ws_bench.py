"""`make bench-ws`: fan-out latency of a market stream to many WebSocket connections, with the
whole pipeline live: REST order -> gateway -> OrdersFunction -> Kafka -> matching service ->
bourse.events -> broadcaster (local MSK poller) -> @connections -> gateway -> client.

A private exchange (its own topics, Redis database, gateway port and DynamoDB tables; see
tests/integration/api_support.py and ws_support.py) plus the broadcaster; ``--connections``
clients (one asyncio loop, ``websockets``) subscribe to ``btcusdt@trade``; two funded accounts
then place ``--trades`` crossing pairs of LIMIT orders at ``--rate`` pairs/s, one trade each.
Latency is the client's receipt time minus the trade message's ``E``: the engine event's time,
which is the command's timestamp, taken by the orders function when it accepted the taker
order. So it covers Kafka, matching, the broadcaster and the whole fan-out, everything but the
client's REST request to the orders function. Same host, same clock.

Ends with exactly one line: ``ws: connections=<C> p50=<x>ms p99=<y>ms``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import tempfile
import threading
import time
from pathlib import Path

import websockets

from bourse.adapters import aws
from bourse.settings import get_settings
from tests.integration.api_support import ApiStack, Trader
from tests.integration.ws_support import private_tables

REDIS_DB = 29


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Clients:
    """Every connection in one event loop (a thread of its own), recording latencies."""

    def __init__(self, url: str, count: int) -> None:
        self.url = url
        self.count = count
        self.latencies: list[float] = []
        self.received = 0
        self.connected = 0
        self.loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    async def _one(self, opened: asyncio.Semaphore) -> None:
        async with opened:
            ws = await websockets.connect(self.url, max_size=None, open_timeout=120)
        self.connected += 1
        async with ws:
            async for raw in ws:
                now_ms = time.time_ns() / 1e6
                self.latencies.append(now_ms - json.loads(raw)["E"])
                self.received += 1

    async def _start(self) -> None:
        # A few handshakes at a time: each one runs the $connect function and a subscribe.
        opened = asyncio.Semaphore(16)
        self._tasks = [asyncio.ensure_future(self._one(opened)) for _ in range(self.count)]

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result()

    async def _close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self.loop).result(timeout=120)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=1000)
    # One trade every 5 s: a message's fan-out to 1,000 connections takes seconds here (one
    # PostToConnection each), so a faster rate measures the queue behind it, not the fan-out.
    parser.add_argument("--trades", type=int, default=10)
    parser.add_argument("--rate", type=float, default=0.2, help="trades/s")
    parser.add_argument("--redis-db", type=int, default=REDIS_DB)
    parser.add_argument("--logs", help="keep the processes' logs in this folder")
    parser.add_argument("--subscribers-ttl-ms", type=int, default=10_000)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    settings = get_settings()
    with (
        tempfile.TemporaryDirectory(prefix="bench-ws-") as scratch,
        private_tables(aws.client("dynamodb"), settings) as tables,
    ):
        logs = args.logs or scratch
        stack = ApiStack(settings, Path(logs), args.redis_db)
        # Tables of its own (connections of earlier runs would answer 410), no rate limits.
        stack.env.update(tables)
        stack.env["BOURSE_RATE_LIMITS_ENABLED"] = "false"
        # Subscriber lists may be served up to two TTLs old (docs/streams.md): trades come
        # seconds apart here, and a refetch of 1,000 subscribers from moto takes seconds.
        stack.env["BOURSE_BROADCASTER_SUBSCRIBERS_TTL_MS"] = str(args.subscribers_ttl_ms)
        clients: Clients | None = None
        try:
            _log(f"starting a private exchange and broadcaster (logs in {logs})")
            stack.start()
            stack.spawn_broadcaster()
            sellers: Trader = stack.trader(1, {"BTC": "100000"})
            buyers: Trader = stack.trader(2, {"USDT": "10000000000"})
            sell, buy = stack.client(sellers), stack.client(buyers)
            url = f"ws://127.0.0.1:{stack.port}/ws/btcusdt@trade"
            clients = Clients(url, args.connections)
            started = time.monotonic()
            clients.start()
            while clients.connected < args.connections:
                assert time.monotonic() - started < 600, f"{clients.connected} connected"
                time.sleep(0.2)
            _log(f"{clients.connected} connections in {time.monotonic() - started:.1f}s")
            order = {"symbol": "BTCUSDT", "type": "LIMIT", "timeInForce": "GTC",
                     "quantity": "0.001", "price": "30000", "newOrderRespType": "ACK"}  # fmt: skip
            # One warm-up trade (containers, the broadcaster's first batch), not measured.
            sell.signed("POST", "/api/v3/order", {**order, "side": "SELL"})
            buy.signed("POST", "/api/v3/order", {**order, "side": "BUY"})
            deadline = time.monotonic() + 120
            last, quiet_since = -1, time.monotonic()
            while clients.received < args.connections and time.monotonic() < deadline:
                if clients.received != last:
                    last, quiet_since = clients.received, time.monotonic()
                elif last > 0 and time.monotonic() - quiet_since > 5:
                    break
                time.sleep(0.1)
            # Every connection that got the warm-up trade is subscribed; count on those.
            subscribed = clients.received
            if subscribed < args.connections:
                _log(f"only {subscribed} of {args.connections} connections are subscribed")
            clients.latencies.clear()
            expected = clients.received + args.trades * subscribed
            start = time.perf_counter()
            for i in range(args.trades):
                pause = start + i / args.rate - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                sell.signed("POST", "/api/v3/order", {**order, "side": "SELL"})
                buy.signed("POST", "/api/v3/order", {**order, "side": "BUY"})
            deadline = time.monotonic() + 300
            while clients.received < expected and time.monotonic() < deadline:
                time.sleep(0.1)
            missing = expected - clients.received
            if missing:
                _log(f"{missing} of {args.trades * subscribed} messages not received")
            latencies = list(clients.latencies)
        finally:
            if clients is not None:
                clients.stop()
            stack.stop()
    print(
        f"ws: connections={args.connections} p50={percentile(latencies, 0.50):.1f}ms "
        f"p99={percentile(latencies, 0.99):.1f}ms",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
