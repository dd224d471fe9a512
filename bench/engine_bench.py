"""`make bench-engine`: the standard workload through the fast engine and the reference.

Runs ``bench/workload.py`` (1,000,000 commands, one symbol, 1,000 funded accounts) through
``bourse.engine.Engine`` with full risk checks and event emission, timing every
``process()`` call with ``perf_counter_ns``; throughput is commands divided by the summed
time inside ``process()`` (generating the commands and tallying the mix is not counted). The
garbage collector runs as in the matching service (``bench/production_gc.py``), pauses
included. Before the last line it prints the mix: the commands by kind, what was rejected and
why, trades, stops triggered, iceberg refills, prevented self-trades, events. The naive reference
engine (tests/reference_engine.py) gets a fixed prefix of the same stream because it is
orders of magnitude slower; the output says how many commands it ran.

The engine runs in the form ``bourse.engine_form`` chose (the mypyc build when ``make
engine-compiled`` made one, docs/engine.md). When that is the compiled form, a child process
first runs the same stream on the pure source (BOURSE_ENGINE=pure) and a line before the last
gives both and their ratio; the last line is the compiled engine's.

The last line is the one the issue asks for:
``engine: <N> commands/s p50=<x>us p99=<y>us max=<z>ms reference=<M> commands/s``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from array import array
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "bourse")]

from bench.production_gc import production_gc  # noqa: E402
from bench.workload import commands, setup_commands  # noqa: E402
from bench.workload_mix import Mix  # noqa: E402
from bourse import engine_form  # noqa: E402
from bourse.engine import Engine  # noqa: E402
from tests.reference_engine import ReferenceEngine  # noqa: E402


def run_engine(count: int, accounts: int, seed: int, mix: Mix) -> tuple[array[int], float, float]:
    engine = Engine()
    for cmd in setup_commands(accounts):
        engine.process(cmd)
    stream = commands(count, accounts, seed)
    latencies = array("q", bytes(8 * count))
    clock = time.perf_counter_ns
    process = engine.process
    tally = mix.add
    with production_gc():
        start = time.perf_counter()
        cpu_start = time.process_time()
        for i, cmd in enumerate(stream):
            t0 = clock()
            out = process(cmd)
            elapsed = latencies[i] = clock() - t0
            tally(cmd, out, elapsed)
        cpu = time.process_time() - cpu_start
        wall = time.perf_counter() - start
    return latencies, wall, cpu


def run_reference(count: int, accounts: int, seed: int) -> float:
    reference = ReferenceEngine()
    for cmd in setup_commands(accounts):
        reference.process(cmd)
    stream = list(commands(count, accounts, seed))
    with production_gc():
        start = time.perf_counter()
        for cmd in stream:
            reference.process(cmd)
        return count / (time.perf_counter() - start)


def percentile(sorted_ns: array[int], fraction: float) -> int:
    return sorted_ns[min(len(sorted_ns) - 1, int(len(sorted_ns) * fraction))]


def pure_form(args: argparse.Namespace) -> dict[str, float]:
    """The same stream on the pure source, in a child (one process holds one form)."""
    argv = [sys.executable, __file__, "--only-figures", "--commands", str(args.commands)]
    argv += ["--accounts", str(args.accounts), "--seed", str(args.seed)]
    env = {**os.environ, "BOURSE_ENGINE": "pure"}
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
    figures: dict[str, float] = json.loads(done.stdout)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=1_000_000)
    parser.add_argument("--accounts", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--reference-commands", type=int, default=5_000)
    # the child of pure_form(): the engine's figures as JSON, nothing else
    parser.add_argument("--only-figures", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    # Run before the compiled form, not beside it: two CPUs, and each run wants one.
    pure = pure_form(args) if engine_form.form == "compiled" and not args.only_figures else None
    load_before = os.getloadavg()[0]
    mix = Mix()
    latencies, wall, cpu = run_engine(args.commands, args.accounts, args.seed, mix)
    total_ns = sum(latencies)
    ordered = array("q", sorted(latencies))
    rate = args.commands / (total_ns / 1e9)
    p50 = percentile(ordered, 0.50) / 1e3
    p99 = percentile(ordered, 0.99) / 1e3
    worst = ordered[-1] / 1e6
    if args.only_figures:
        json.dump({"rate": rate, "p50": p50, "p99": p99, "max": worst}, sys.stdout)
        return
    ref_count = min(args.reference_commands, args.commands)
    ref_rate = run_reference(ref_count, args.accounts, args.seed)
    print(
        f"workload: {args.commands} commands, {args.accounts} accounts, seed {args.seed}; "
        f"wall {wall:.1f}s, process CPU {cpu:.1f}s (both incl. generating and tallying the "
        f"commands); load average {load_before:.2f} before the run, "
        f"{os.getloadavg()[0]:.2f} after, on {os.cpu_count()} CPUs"
    )
    print(f"engine form: {engine_form.form} ({engine_form.reason})")
    for line in mix.lines():
        print(line)
    print(mix.cost_line())
    print(f"reference engine measured on the first {ref_count} commands of the same stream")
    if pure is not None:
        print(
            f"pure: {pure['rate']:.0f} commands/s p50={pure['p50']:.1f}us "
            f"p99={pure['p99']:.1f}us max={pure['max']:.2f}ms; compiled: {rate:.0f} commands/s "
            f"p50={p50:.1f}us p99={p99:.1f}us max={worst:.2f}ms; "
            f"compiled/pure x{rate / pure['rate']:.2f}"
        )
    print(
        f"engine: {rate:.0f} commands/s p50={p50:.1f}us p99={p99:.1f}us max={worst:.2f}ms "
        f"reference={ref_rate:.0f} commands/s"
    )


if __name__ == "__main__":
    main()
