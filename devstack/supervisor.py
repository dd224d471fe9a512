"""Runs the exchange's own processes (exchange_processes.PROCESSES) in the foreground.

Each process's output goes to its log file whole; the console (devstack/console.py) shows
only request lines, warnings and errors. What the processes measure (their EMF blobs, the
gateway's request lines) is counted and pushed to the stack's Pushgateway
(devstack/local_metrics.py). A process that exits is restarted with a growing delay, so a
crash loop is visible but does not spin. Every child has a pid file like the stack's services,
so `down` can stop leftovers of a `run` that was killed outright.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

from bourse.settings import Settings
from devstack import processes
from devstack.console import Console
from devstack.exchange_processes import ProcessSpec
from devstack.local_metrics import LocalMetrics
from devstack.paths import REPO_ROOT, StackPaths
from devstack.service import StackError, child_env

STOP_TIMEOUT = 10.0
MAX_RESTART_DELAY = 30.0
PID_PREFIX = "app-"
PUSH_EVERY = 5.0  # seconds; Prometheus scrapes the Pushgateway as often (devstack/prometheus.py)


@dataclass
class _Running:
    spec: ProcessSpec
    proc: subprocess.Popen[bytes] | None = None
    record: processes.PidRecord | None = None
    restart_at: float = 0.0
    delay: float = 1.0


class Supervisor:
    def __init__(
        self,
        specs: tuple[ProcessSpec, ...],
        settings: Settings,
        paths: StackPaths,
        console: Console | None = None,
    ) -> None:
        self.settings = settings
        self.paths = paths
        self.console = console if console is not None else Console(sys.stdout)
        self.metrics = LocalMetrics()
        self.running = [_Running(spec) for spec in specs if spec.enabled(settings)]
        self._stopping = threading.Event()
        self._pusher: threading.Thread | None = None

    def _follow(self, name: str, stream: IO[bytes]) -> None:
        with self.paths.log(name).open("ab") as log:
            for raw in iter(stream.readline, b""):
                log.write(raw)
                log.flush()
                line = raw.decode(errors="replace")
                if not self.metrics.observe(name, line):
                    self.console.line(name, line)

    def _push_loop(self) -> None:
        url = f"http://127.0.0.1:{self.settings.pushgateway_port}"
        failing = False
        while not self._stopping.wait(PUSH_EVERY):
            try:
                self.metrics.push(url)
                failing = False
            except OSError as exc:
                if not failing:  # once per outage, not every few seconds
                    self.console.warn("metrics", f"push to the Pushgateway {url} failed: {exc}")
                failing = True

    def _start(self, item: _Running) -> None:
        spec = item.spec
        env = child_env(spec.env(self.settings))
        proc, record = processes.spawn(
            spec.argv(self.settings), log=self.paths.log(spec.name),
            pid_file=self.paths.pid(PID_PREFIX + spec.name), env=env, cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
        )  # fmt: skip
        assert proc.stdout is not None
        threading.Thread(
            target=self._follow, args=(spec.name, proc.stdout), daemon=True, name=spec.name
        ).start()
        item.proc, item.record = proc, record

    def start_all(self, ready_timeout: float = 60.0) -> None:
        for item in self.running:
            self._start(item)
        self._stopping.clear()
        self._pusher = threading.Thread(target=self._push_loop, name="metrics-push", daemon=True)
        self._pusher.start()
        for item in self.running:
            port = item.spec.ready_port(self.settings)
            if port is None:
                continue
            deadline = time.monotonic() + ready_timeout
            while not processes.port_answers(port):
                if time.monotonic() > deadline or (item.proc and item.proc.poll() is not None):
                    raise StackError(
                        f"{item.spec.name}: not listening on port {port}; "
                        f"see {self.paths.log(item.spec.name)}"
                    )
                time.sleep(0.2)

    def poll(self) -> None:
        """Notice exits and restart after a delay that doubles on each quick crash."""
        now = time.monotonic()
        for item in self.running:
            if item.proc is not None and item.proc.poll() is not None:
                code = item.proc.returncode
                item.proc = None
                item.restart_at = now + item.delay
                self.console.error(
                    item.spec.name,
                    f"exited with code {code}; restart in {item.delay:.0f}s "
                    f"(see {self.paths.log(item.spec.name)})",
                )
                item.delay = min(item.delay * 2, MAX_RESTART_DELAY)
            elif item.proc is None and now >= item.restart_at:
                self._start(item)

    def stop_all(self) -> None:
        self._stopping.set()
        for item in reversed(self.running):
            if item.record is not None:
                processes.stop(item.record, timeout=STOP_TIMEOUT)
            self.paths.pid(PID_PREFIX + item.spec.name).unlink(missing_ok=True)
            item.proc = None


def stop_leftovers(paths: StackPaths, say: Callable[[str], None] = print) -> None:
    """Stop exchange processes recorded by a `run` that did not get to clean up."""
    for pid_file in sorted(paths.pids.glob(f"{PID_PREFIX}*.pid")):
        record = processes.PidRecord.load(pid_file)
        if record is not None and processes.stop(record, timeout=STOP_TIMEOUT):
            say(f"stopped {pid_file.stem.removeprefix(PID_PREFIX)} (pid {record.pid})")
        pid_file.unlink(missing_ok=True)
