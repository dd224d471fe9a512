"""A whole exchange of its own for the drill: `python -m devstack run` in a fresh stack dir on
free ports, so that killing its services never touches the stack other people use.

It is started exactly as `make run` starts one (the supervisor, the admin-plane seed), so the
processes the drill kills are restarted through the supervisor's own start path.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from devstack import processes
from devstack.paths import REPO_ROOT
from devstack.private import stack_env

# The exchange's own processes have pid files named app-<name> (devstack/supervisor.py).
APP_PREFIX = "app-"
READY_MARK = "Bourse is ready"


class PrivateStack:
    def __init__(self) -> None:
        # Not a private tmp dir: PostgreSQL runs as the `postgres` user and must reach it.
        self.root = Path(tempfile.mkdtemp(prefix="bourse-chaos-"))
        self.root.chmod(self.root.stat().st_mode | stat.S_IXOTH | stat.S_IROTH)
        self.stack_dir = self.root / "stack"
        self.env = {
            **stack_env(self.stack_dir, apps=True),
            "BOURSE_DEMO_MARKET": "0",
            # Every client comes from 127.0.0.1: Binance's per-IP weight would throttle the
            # drill itself, and rate limits are not what it tests.
            "BOURSE_RATE_LIMIT_WEIGHT_PER_MINUTE": "100000000",
            "BOURSE_RATE_LIMIT_ORDERS_PER_10S": "1000000",
            "BOURSE_RATE_LIMIT_ORDERS_PER_DAY": "100000000",
            "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
            "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
        }
        self.run_log = self.root / "run.out"
        self._run: subprocess.Popen[bytes] | None = None

    @property
    def gateway_port(self) -> int:
        return int(self.env["BOURSE_GATEWAY_PORT"])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def start(self, timeout: float = 900.0) -> None:
        with self.run_log.open("wb") as out:
            self._run = subprocess.Popen(
                [sys.executable, "-m", "devstack", "run"], env=self.env, cwd=REPO_ROOT,
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while READY_MARK not in self.run_log.read_text(errors="replace"):
            if self._run.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the private exchange did not start; see {self.run_log}")
            time.sleep(0.5)

    def pid_record(self, name: str) -> processes.PidRecord | None:
        record = processes.PidRecord.load(self.stack_dir / "run" / f"{name}.pid")
        return record if record is not None and processes.is_alive(record) else None

    def up(self) -> None:
        """`devstack up` on this stack: starts the services that are not running."""
        done = subprocess.run(
            [sys.executable, "-m", "devstack", "up"], env=self.env, cwd=REPO_ROOT,
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"devstack up failed: {done.stdout}{done.stderr}")

    def stop(self, keep: bool = False) -> None:
        if self._run is not None and self._run.poll() is None:
            self._run.send_signal(signal.SIGTERM)
            try:
                self._run.wait(timeout=180)
            except subprocess.TimeoutExpired:
                os.killpg(self._run.pid, signal.SIGKILL)
                self._run.wait()
        # Whatever `run` could not stop (a service restarted by the drill's own `up`).
        with contextlib.suppress(subprocess.SubprocessError):
            subprocess.run(
                [sys.executable, "-m", "devstack", "down"], env=self.env, cwd=REPO_ROOT,
                capture_output=True, timeout=300,
            )  # fmt: skip
        if not keep:
            shutil.rmtree(self.root, ignore_errors=True)
