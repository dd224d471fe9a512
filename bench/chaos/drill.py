"""The drill from start to end: a private exchange, funded clients, traffic under faults, the
checks, `make reconcile`'s comparison, and exactly one summary line at the end:

    chaos: <N> orders, <F> faults, lost=<a> duplicated=<b> wrong_answers=<c> unresolved=<d>

N counts orders actually sent and F faults actually injected. Exit status 0 only when all four
counts are 0.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import requests

from bench.chaos import checks, faults
from bench.chaos.private_stack import PrivateStack
from bench.chaos.traffic import (
    FUNDS,
    MARKETS,
    Answer,
    ClientRun,
    Counters,
    RestTransport,
    Transport,
    WsTransport,
    run_clients,
)
from bourse.domain.amounts import parse_units
from bourse.settings import Settings
from devstack.paths import REPO_ROOT
from tests.integration.api_support import Client, Trader

FIRST_ACCOUNT = 1001
GAP_SECONDS = (2.0, 4.0)  # between faults: traffic alone, so each fault meets a flowing stream
SETTLE_POLLS = 5  # the topic's end unchanged this many polls (2 s apart)
STALL_POLLS = 30  # a recorder short of the end and still for a minute: the checks say why


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__)
    parser.add_argument("--orders", type=int, default=int(os.environ.get("CHAOS_ORDERS", 5000)))
    parser.add_argument("--faults", type=int, default=int(os.environ.get("CHAOS_FAULTS", 20)))
    parser.add_argument("--clients", type=int, default=8, help="half REST, half WebSocket API")
    parser.add_argument("--seed", type=int, default=int(os.environ.get("CHAOS_SEED", 15)))
    parser.add_argument("--keep", action="store_true", help="keep the private stack's folder")
    parser.add_argument("--answers", type=Path, help="write every answer here (JSON lines)")
    return parser.parse_args(argv)


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _fund_clients(stack: PrivateStack, count: int, seed: int) -> list[ClientRun]:
    from bourse.admin.client import AdminClient
    from bourse.settings import get_settings

    admin = AdminClient.local(get_settings())
    runs = []
    for index in range(count):
        account_id = FIRST_ACCOUNT + index
        admin.create_account(account_id)
        for asset, amount in FUNDS.items():
            admin.deposit(account_id, asset, amount, f"chaos-{uuid.uuid4().hex}")
        key = admin.create_key(account_id, permissions=("READ", "TRADE"), label="chaos")
        trader = Trader(account_id, key["apiKey"], key["secret"])
        _wait_funded(Client(stack.base_url, trader))
        transport: Transport = (
            RestTransport(stack.base_url, trader) if index % 2 == 0
            else WsTransport(stack.base_url, trader)
        )  # fmt: skip
        runs.append(ClientRun(trader, transport, random.Random(seed * 1000 + index)))
    return runs


def _wait_funded(client: Client) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        response = client.signed("GET", "/api/v3/account", {"omitZeroBalances": "true"})
        if response.status_code == 200 and len(response.json()["balances"]) >= len(FUNDS):
            return
        time.sleep(0.2)
    raise RuntimeError("the clients' deposits were not applied")


def _fault_loop(
    stack: PrivateStack, counters: Counters, rng: random.Random, log: list[str], errors: list[str]
) -> None:
    index = 0
    try:
        while not counters.traffic_done():
            time.sleep(rng.uniform(*GAP_SECONDS))
            fault = faults.plan(index, rng)
            index += 1
            injected = faults.inject(stack, fault)
            if injected is None:
                log.append(f"skipped {fault.target}: not running")
                continue
            with counters.lock:
                counters.faults += 1
            log.append(
                f"{injected.started:.1f} {fault.mode} {fault.target} {fault.seconds:.1f}s, "
                f"back after {injected.restored - injected.started:.1f}s"
            )
            _say(f"chaos: fault {counters.faults}: {log[-1]}")
    except Exception as exc:
        errors.append(f"fault injection failed: {type(exc).__name__}: {exc}")
        with counters.lock:  # stop the traffic: the drill cannot go on
            counters.target_orders = counters.orders
            counters.target_faults = 0


def _drop_pending_commands(stack: PrivateStack) -> None:
    """SIGKILL the gateway once the traffic is over, then wait for its restart.

    A request answered -1007 may still have its command in a function's producer, delivered
    up to the producer's delivery timeout later (Binance: "-2013" only means "not sequenced
    yet"). Killing every container that could hold one makes the record final, so that a
    query's "-2013" after this is the truth for good."""
    faults.inject(stack, faults.Fault("gateway", "kill", 1.0))
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{stack.base_url}/api/v3/ping", timeout=30).status_code == 200:
                return
        time.sleep(0.5)
    raise RuntimeError("the gateway did not come back")


def _settle(stack: PrivateStack, settings: Settings) -> None:
    """Until every process is back, the topic's end stopped moving (late commands included)
    and the recorder holds the topic's last event (or has stopped short of it for good)."""
    from kafka import TopicPartition

    from bourse.adapters import kafka
    from matching_service.published import last_published_seq

    topic, consumer, dsn = settings.events_topic, settings.recorder_consumer, settings.pg_dsn

    for target in faults.TARGETS:
        name = target if target in faults.SERVICES else f"app-{target}"
        if stack.pid_record(name) is None:
            raise RuntimeError(f"{target} is not running after the drill")
    partition = TopicPartition(topic, 0)
    seen: list[tuple[int, int]] = []
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        consumer_client = kafka.consumer(group_id=None)
        try:
            end = int(consumer_client.end_offsets([partition])[partition])
        finally:
            consumer_client.close(autocommit=False)
        seen.append((end, checks.recorder_seq(dsn, consumer)))
        if len(seen) >= SETTLE_POLLS and len({e for e, _ in seen[-SETTLE_POLLS:]}) == 1:
            # The topic is still. Settled once the recorder holds its last event. A recorder
            # standing still is not enough: one invocation over a backlog runs for 10-15 s
            # here (hundreds of fills published to SNS through moto), and a drill that took
            # such a pause for the end checked a record one batch short (lost=392). Only a
            # recorder that stays below the end for STALL_POLLS polls is left to the checks,
            # which then say what it lacks.
            published = last_published_seq(settings)  # None: retention emptied it, not here
            if published is None or seen[-1][1] >= published:
                return
            if len(seen) >= STALL_POLLS and len(set(seen[-STALL_POLLS:])) == 1:
                return
        time.sleep(2)


def _query(stack: PrivateStack, runs: list[ClientRun]) -> checks.Query:
    """GET /api/v3/order by client order id, over REST, as each order's own account."""
    rest = {run.account_id: RestTransport(stack.base_url, run.trader) for run in runs}

    def query(account_id: int, symbol: str, client_id: str) -> tuple[int, dict[str, Any]] | None:
        status, body, _ = rest[account_id].call(
            "order.status", {"symbol": symbol, "origClientOrderId": client_id}
        )
        if status is None or not isinstance(body, dict) or checks.unknown(status, body):
            return None
        return status, body

    return query


def _account_query(stack: PrivateStack, runs: list[ClientRun]) -> checks.AccountQuery:
    rest = {run.account_id: RestTransport(stack.base_url, run.trader) for run in runs}

    def query(account_id: int) -> dict[str, tuple[int, int]] | None:
        for _ in range(30):
            status, body, _ = rest[account_id].call("account.status", {"omitZeroBalances": "true"})
            if status == 200 and isinstance(body, dict):
                return {
                    str(b["asset"]): (parse_units(b["free"]), parse_units(b["locked"]))
                    for b in body["balances"]
                }
            time.sleep(1)
        return None

    return query


def _reconcile(stack: PrivateStack, found: checks.Findings) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "matching_service.reconcile"], env=stack.env, cwd=REPO_ROOT,
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    lines = done.stdout.strip().splitlines()
    summary = lines[-1] if lines else ""
    if summary == "reconcile: 0 differences":
        return
    differences = lines[:-1] if summary.startswith("reconcile: ") else []
    for line in differences:
        found.note("wrong_answers", f"reconcile: {line}")
    if not differences:
        found.note("wrong_answers", f"reconcile did not compare: {done.stdout}{done.stderr}")


def _tally(answers: list[Answer]) -> str:
    counts = Counter(
        f"{a.transport} {a.kind} {a.status if a.status is not None else a.failure}"
        + (f"/{a.code}" if a.code is not None else "")
        for a in answers
    )
    return ", ".join(f"{what}: {n}" for what, n in sorted(counts.items()))


def run_drill(args: argparse.Namespace) -> tuple[int, int, checks.Findings]:
    stack = PrivateStack()
    os.environ.update(stack.env)
    from bourse.settings import get_settings

    get_settings.cache_clear()
    settings = get_settings()
    found = checks.Findings()
    counters = Counters(args.orders, args.faults)
    failed = True
    try:
        _say(f"chaos: starting a private exchange in {stack.root}")
        stack.start()
        runs = _fund_clients(stack, args.clients, args.seed)
        _say(f"chaos: {len(runs)} clients funded; traffic and faults begin")
        fault_log: list[str] = []
        errors: list[str] = []
        fault_thread = threading.Thread(
            target=_fault_loop,
            args=(stack, counters, random.Random(args.seed), fault_log, errors),
            name="faults",
        )
        fault_thread.start()
        run_clients(runs, counters, tuple(MARKETS))
        fault_thread.join()
        if errors:
            raise RuntimeError("; ".join(errors))
        _say("chaos: traffic over; waiting for the exchange to settle")
        _drop_pending_commands(stack)
        _settle(stack, settings)
        scan = checks.scan_topic(settings.events_topic)
        checks.check_sequence(scan, found)
        checks.check_record(settings.pg_dsn, settings.recorder_consumer, scan, found)
        answers = [answer for run in runs for answer in run.answers]
        _say(f"chaos: answers {_tally(answers)}")
        if args.answers is not None:
            with args.answers.open("w") as out:
                out.writelines(json.dumps(dataclasses.asdict(a)) + "\n" for a in answers)
        orders = checks.recorded_orders(settings.pg_dsn)
        checks.check_answers(answers, orders, _query(stack, runs), set(MARKETS), found)
        checks.check_balances(
            settings.pg_dsn, [r.account_id for r in runs], _account_query(stack, runs), found
        )
        _reconcile(stack, found)
        failed = bool(found.lost or found.duplicated or found.wrong_answers or found.unresolved)
        return counters.orders, counters.faults, found
    finally:
        if failed:
            kept = Path(tempfile.mkdtemp(prefix="bourse-chaos-logs-"))
            shutil.copytree(stack.stack_dir / "logs", kept / "logs", dirs_exist_ok=True)
            _say(f"chaos: the private stack's logs are kept in {kept}")
        stack.stop(keep=args.keep)


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    orders, injected, found = run_drill(args)
    for note in found.notes[:200]:
        print(note, flush=True)
    print(
        f"chaos: {orders} orders, {injected} faults, lost={found.lost} "
        f"duplicated={found.duplicated} wrong_answers={found.wrong_answers} "
        f"unresolved={found.unresolved}",
        flush=True,
    )
    clean = not (found.lost or found.duplicated or found.wrong_answers or found.unresolved)
    return 0 if clean and orders >= args.orders and injected >= args.faults else 1
