"""What the rate limiter adds to a request: two local gateways (no matching service), one with
the limiter and one without (BOURSE_RATE_LIMITS_ENABLED=false), called in alternation so that
the machine's load weighs on both alike. Prints the median and p90 of each endpoint, side by
side: ``python -m bench.rate_limit_latency [--calls N]``.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path

from bourse.settings import get_settings
from tests.integration.api_support import ApiStack, Client

# Redis databases of their own (flushed): any two the tests do not use at the same time.
REDIS_DBS = (22, 23)


def _time(client: Client, method: str, path: str, signed: bool) -> float:
    started = time.perf_counter()
    response = (
        client.signed(method, path) if signed else client.public(method, path)
    )  # fmt: skip
    elapsed = (time.perf_counter() - started) * 1000
    assert response.status_code == 200, response.text
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    endpoints = [("GET", "/api/v3/ping", False), ("GET", "/api/v3/account", True)]
    with tempfile.TemporaryDirectory(prefix="bench-limits-") as logs:
        stacks = []
        try:
            for db, enabled in zip(REDIS_DBS, ("true", "false"), strict=True):
                (Path(logs) / enabled).mkdir()
                stack = ApiStack(get_settings(), Path(logs) / enabled, db)
                stack.env["BOURSE_RATE_LIMITS_ENABLED"] = enabled
                # High enough that the measurement never meets the limit itself.
                stack.env["BOURSE_RATE_LIMIT_WEIGHT_PER_MINUTE"] = "100000000"
                stack.start(matching=False)
                stacks.append(stack)
            clients = [s.client(s.trader(1, {})) for s in stacks]
            for client in clients:  # warm: connections, key cache, boto3 clients
                for method, path, signed in endpoints * 5:
                    _time(client, method, path, signed)
            print(f"{'endpoint':<24}{'with limiter':>22}{'without':>22}{'added (median)':>16}")
            for method, path, signed in endpoints:
                samples: list[list[float]] = [[], []]
                for _ in range(args.calls):
                    for i, client in enumerate(clients):
                        samples[i].append(_time(client, method, path, signed))
                med = [statistics.median(s) for s in samples]
                p90 = [statistics.quantiles(s, n=10)[-1] for s in samples]
                cells = [f"p50 {m:5.1f} p90 {p:5.1f} ms" for m, p in zip(med, p90, strict=True)]
                print(f"{method} {path:<20}{cells[0]:>22}{cells[1]:>22}{med[0] - med[1]:>13.1f} ms")
        finally:
            for stack in stacks:
                stack.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
