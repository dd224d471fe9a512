"""Faults, in turn over the services: SIGKILL (then brought back) or SIGSTOP (then SIGCONT).

Signals go to the whole process group: each process was started in a session of its own
(devstack/processes.py), so its group is exactly that service with its children (PostgreSQL's
backends, the gateway's containers), as a crashed or frozen container would be.
"""

from __future__ import annotations

import os
import random
import signal
import time
from dataclasses import dataclass

from bench.chaos.private_stack import APP_PREFIX, PrivateStack
from devstack import processes

# The backing services are restarted by `devstack up`; the exchange's processes by `run`'s
# supervisor, which notices the exit and starts them again.
SERVICES = ("kafka", "redis", "postgres", "moto")
APP_PROCESSES = ("matching", "recorder", "broadcaster")
TARGETS = ("kafka", "matching", "redis", "recorder", "postgres", "broadcaster", "moto")
# moto keeps AWS's state in memory only: killing it would lose every API key, table item and
# snapshot, which AWS itself never does. The AWS endpoint is therefore frozen (unreachable,
# hanging calls), never killed.
FREEZE_ONLY = frozenset({"moto"})
# The supervisor doubles its restart delay on every exit (up to 30 s).
APP_RESTART_WAIT = 120.0


@dataclass(frozen=True)
class Fault:
    target: str
    mode: str  # "kill" or "freeze"
    seconds: float


@dataclass(frozen=True)
class Injected:
    fault: Fault
    started: float  # time.time()
    restored: float


def plan(index: int, rng: random.Random) -> Fault:
    target = TARGETS[index % len(TARGETS)]
    # kill and freeze alternate per round over the targets
    mode = "kill" if (index // len(TARGETS)) % 2 == 0 else "freeze"
    if target in FREEZE_ONLY:
        mode = "freeze"
    return Fault(target, mode, round(rng.uniform(1.0, 5.0), 2))


def _pid_name(target: str) -> str:
    return target if target in SERVICES else APP_PREFIX + target


def inject(stack: PrivateStack, fault: Fault) -> Injected | None:
    """The fault, then the target back; None when the target was not running (not counted)."""
    record = stack.pid_record(_pid_name(fault.target))
    if record is None:
        return None
    started = time.time()
    if fault.mode == "freeze":
        os.killpg(record.pid, signal.SIGSTOP)
        try:
            time.sleep(fault.seconds)
        finally:
            os.killpg(record.pid, signal.SIGCONT)
        return Injected(fault, started, time.time())
    os.killpg(record.pid, signal.SIGKILL)
    while processes.is_alive(record):
        time.sleep(0.05)
    time.sleep(fault.seconds)
    if fault.target in SERVICES:
        stack.up()
    else:
        _wait_restarted(stack, fault.target, record)
    return Injected(fault, started, time.time())


def _wait_restarted(stack: PrivateStack, target: str, old: processes.PidRecord) -> None:
    deadline = time.monotonic() + APP_RESTART_WAIT
    while True:
        record = stack.pid_record(_pid_name(target))
        if record is not None and record != old:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{target} was not restarted by the supervisor")
        time.sleep(0.2)
