"""`make bench-api`: POST /api/v3/order (RESULT) through the local gateway with the whole
pipeline live: HTTP -> gateway -> authorizer (cached) -> OrdersFunction -> Kafka -> matching
service -> Redis reply -> response.

A private exchange (its own topics, Redis database and gateway port; see
tests/integration/api_support.py) with two funded accounts; ``--clients`` threads, each with
its own keep-alive connection, send orders open-loop at ``--rate`` orders/s in total for
``--seconds``: LIMIT SELL and BUY at the same price from the two accounts, so every other order
fills. Latency is measured per request from its scheduled send time (a client that falls behind
counts the wait), so it shows the queueing a slow pipeline causes.

Ends with exactly one line: ``api: <N> orders/s p50=<x>ms p99=<y>ms``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import threading
import time
from pathlib import Path

from bourse.settings import get_settings
from tests.integration.api_support import ApiStack, Client, Trader

REDIS_DB = 9


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _worker(
    client: Client,
    side: str,
    start: float,
    interval: float,
    count: int,
    latencies: list[float],
    errors: list[str],
) -> None:
    params = {"symbol": "BTCUSDT", "side": side, "type": "LIMIT", "timeInForce": "GTC",
              "quantity": "0.001", "price": "30000", "newOrderRespType": "RESULT"}  # fmt: skip
    for i in range(count):
        due = start + i * interval
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        response = client.signed("POST", "/api/v3/order", params)
        latencies.append(time.perf_counter() - due)
        if response.status_code != 200:
            errors.append(response.text)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1000.0, help="orders/s, all clients")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bench-api-") as logs:
        stack = ApiStack(get_settings(), Path(logs), REDIS_DB)
        try:
            _log(f"starting a private exchange (logs in {logs})")
            stack.start()
            sellers: Trader = stack.trader(1, {"BTC": "100000"})
            buyers: Trader = stack.trader(2, {"USDT": "10000000000"})
            # Warm every connection and container before the clock starts.
            clients = [stack.client(sellers if i % 2 == 0 else buyers) for i in range(args.clients)]
            # Concurrently, so that the gateway starts as many OrdersFunction containers as
            # there are clients (Lambda's scale-out) before the clock starts.
            test = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                    "quantity": "0.001", "price": "30000"}  # fmt: skip
            for _ in range(2):
                warmers = [
                    threading.Thread(target=c.signed, args=("POST", "/api/v3/order/test", test))
                    for c in clients
                ]
                for t in warmers:
                    t.start()
                for t in warmers:
                    t.join()
            per_client = int(args.rate * args.seconds / args.clients)
            interval = args.clients / args.rate
            latencies: list[float] = []
            errors: list[str] = []
            start = time.perf_counter() + 0.5
            threads = [
                threading.Thread(
                    target=_worker,
                    args=(
                        c,
                        "SELL" if i % 2 == 0 else "BUY",
                        start + i * interval / args.clients,
                        interval,
                        per_client,
                        latencies,
                        errors,
                    ),
                )
                for i, c in enumerate(clients)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.perf_counter() - start
        finally:
            stack.stop()
    # Failures (e.g. -1021 when a request queued past its recvWindow under overload) are
    # reported, and not counted as orders done.
    if errors:
        _log(f"{len(errors)} of {len(latencies)} orders failed, e.g. {errors[0]}")
    done = len(latencies) - len(errors)
    print(
        f"api: {done / elapsed:.0f} orders/s p50={percentile(latencies, 0.50) * 1000:.1f}ms "
        f"p99={percentile(latencies, 0.99) * 1000:.1f}ms",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
