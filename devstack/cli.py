"""python -m devstack up | down | status | run | logs | seed | invoke"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from bourse.settings import Settings, get_settings
from devstack.exchange_processes import PROCESSES
from devstack.paths import StackPaths
from devstack.service import StackError
from devstack.stack import Stack
from devstack.supervisor import Supervisor


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr, flush=True)
    return 1


def _say(message: str) -> None:
    print(message, flush=True)


def cmd_up(settings: Settings) -> int:
    started = time.monotonic()
    Stack(settings, _say).up()
    _say(f"stack up in {time.monotonic() - started:.1f}s")
    return 0


def cmd_down(settings: Settings) -> int:
    Stack(settings, _say).down()
    return 0


def cmd_status(settings: Settings) -> int:
    for status in Stack(settings).status():
        service = status.service
        ports = ",".join(str(p) for p in service.ports)
        pid = f"pid {status.pid}" if status.pid else "-"
        _say(
            f"{service.name:<11} {status.state:<14} 127.0.0.1:{ports:<11} {pid:<11} "
            f"log {service.log_path}"
        )
    return 0


def run_seed_hook(settings: Settings) -> object | None:
    """Call devstack.seed.seed() when that module exists (it seeds markets and a demo account),
    print what it reports (the demo API key and, the first time only, its secret) and return
    the report; None when there is no seed module."""
    if importlib.util.find_spec("devstack.seed") is None:
        return None
    report: object = importlib.import_module("devstack.seed").seed()
    for line in report.lines() if hasattr(report, "lines") else []:
        _say(line)
    return report


def banner(settings: Settings, api_key: str | None, credentials: Path | None) -> list[str]:
    """What `make run` prints once everything answers: every endpoint, the demo credentials,
    three commands to try. The first line is the one scripts wait for ("Bourse is ready")."""
    web = settings.gateway_url
    ws = web.replace("http://", "ws://", 1)
    prom = f"http://127.0.0.1:{settings.prometheus_port}"
    paths = StackPaths.from_settings(settings)
    rows = [
        ("trading page", f"{web}/"),
        ("REST API", f"{web}/api/v3/  (docs/api.md)"),
        (
            "WebSocket streams",
            f"{ws}/ws/btcusdt@trade, {ws}/stream?streams=...  (docs/websocket.md)",
        ),
        ("WebSocket API", f"{ws}/ws-api/v3"),
        ("admin API", f"{web}/admin/  (SigV4: .venv/bin/bourse-admin --local ...)"),
        ("Prometheus", f"{prom}/  (alerts: {prom}/alerts)"),
        ("Pushgateway", f"http://127.0.0.1:{settings.pushgateway_port}/"),
        ("Kafka", settings.kafka_bootstrap),
        ("PostgreSQL", settings.pg_dsn),
        ("Redis", f"{settings.redis_url}  (AUTH required)"),
        ("AWS endpoint (moto)", f"http://127.0.0.1:{settings.moto_port}"),
    ]
    lines = ["", "Bourse is ready", ""]
    lines += [f"  {name:<19} {value}" for name, value in rows]
    if api_key is not None:
        lines += ["", f"  demo API key        {api_key}"]
        if credentials is not None:
            lines.append(f"  its secret          in {credentials}")
    lines += [
        "",
        "  try:",
        f"    curl -s '{web}/api/v3/depth?symbol=BTCUSDT&limit=5'",
        f"    curl -s '{web}/api/v3/ticker/24hr?symbol=BTCUSDT'",
        f"    curl -s '{prom}/api/v1/query?query=bourse_matching_commands_total'",
        "",
        f"  below: your requests, warnings and errors; the rest in {paths.logs}/<process>.log",
        "  (`make logs [process]`; the demo market's own requests are in gateway.log only)",
        "  Ctrl-C stops everything",
        "",
    ]
    return lines


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def cmd_run(settings: Settings) -> int:
    """up, seed, start the exchange's processes, follow them until Ctrl-C/SIGTERM, stop all."""
    # SIGTERM behaves like Ctrl-C, so either one reaches the cleanup below. SIGINT is set
    # explicitly too: a shell starts background jobs with it ignored, and Python keeps that.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    stack = Stack(settings, _say)
    supervisor = Supervisor(PROCESSES, settings, stack.paths)
    status = 0
    try:
        stack.up()
        # Seeding goes through the admin plane (the gateway's admin API, sequenced by the
        # matching service), so it runs once both answer: as on a deployed stack.
        supervisor.start_all()
        report = run_seed_hook(settings)
        api_key = getattr(report, "api_key", None)
        credentials = getattr(report, "credentials_file", None)
        for line in banner(settings, api_key, credentials):
            _say(line)
        while True:
            time.sleep(0.5)
            supervisor.poll()
    except KeyboardInterrupt:
        _say("stopping")
    except StackError as exc:
        status = _error(str(exc))
    except Exception as exc:
        status = _error(f"run: {type(exc).__name__}: {exc}")
    finally:
        # A second Ctrl-C must not cut the cleanup short and leave processes behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        supervisor.stop_all()
        stack.down()
    return status


def cmd_seed(settings: Settings) -> int:
    if run_seed_hook(settings) is None:
        return _error("seed: devstack/seed.py does not exist yet")
    return 0


def cmd_logs(settings: Settings, names: Sequence[str], lines: int, follow: bool) -> int:
    paths = StackPaths.from_settings(settings)
    files = [paths.log(n) for n in names] if names else sorted(paths.logs.glob("*.log"))
    files = [f for f in files if f.exists()]
    if not files:
        return _error(f"logs: no log files under {paths.logs}")
    offsets: dict[Path, int] = {}
    for path in files:
        text = path.read_bytes()
        tail = text.decode(errors="replace").splitlines()[-lines:] if lines else []
        for line in tail:
            _say(f"{path.stem:>10} | {line}")
        offsets[path] = len(text)
    try:
        while follow:
            time.sleep(0.5)
            for path in files:
                with path.open("rb") as handle:
                    handle.seek(offsets[path] if path.stat().st_size >= offsets[path] else 0)
                    chunk = handle.read()
                    offsets[path] = handle.tell()
                for line in chunk.decode(errors="replace").splitlines():
                    _say(f"{path.stem:>10} | {line}")
    except KeyboardInterrupt:
        pass
    return 0


def cmd_invoke(settings: Settings, function: str, event: str | None) -> int:
    import json

    from devstack.gateway.invoke import invoke

    try:
        result = invoke(settings, function, Path(event) if event else None)
    except (KeyError, FileNotFoundError, ValueError) as exc:
        return _error(f"invoke: {exc}")
    _say(json.dumps(result, indent=2, default=str))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="start Kafka, PostgreSQL, Redis and moto (idempotent)")
    sub.add_parser("down", help="stop everything the stack started")
    sub.add_parser("status", help="each service: up/down, port, pid, log")
    sub.add_parser("run", help="up, seed, run the exchange in the foreground until Ctrl-C")
    sub.add_parser(
        "seed", help="seed markets and the demo account through the admin API (needs `run`)"
    )
    inv = sub.add_parser("invoke", help="run one function of template.yaml on an event")
    inv.add_argument("function", help="the function's logical id, e.g. MarketDataFunction")
    inv.add_argument("-e", "--event", help="the event JSON file, e.g. events/market_data-ping.json")
    logs = sub.add_parser("logs", help="show (and follow) the logs")
    logs.add_argument(
        "names", nargs="*",
        help="kafka, postgres, redis, moto, prometheus, pushgateway, matching, gateway, ...",
    )  # fmt: skip
    logs.add_argument("-n", "--lines", type=int, default=20)
    logs.add_argument("-f", "--follow", action="store_true")
    args = parser.parse_args(argv)
    settings = get_settings()
    try:
        if args.command == "up":
            return cmd_up(settings)
        if args.command == "down":
            return cmd_down(settings)
        if args.command == "status":
            return cmd_status(settings)
        if args.command == "run":
            return cmd_run(settings)
        if args.command == "seed":
            return cmd_seed(settings)
        if args.command == "invoke":
            return cmd_invoke(settings, args.function, args.event)
        return cmd_logs(settings, args.names, args.lines, args.follow)
    except StackError as exc:
        return _error(str(exc))
    except KeyboardInterrupt:
        return 130
