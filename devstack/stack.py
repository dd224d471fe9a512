"""up / down / status of the backing services, all or nothing.

`up` checks every port and prepares every service before it spawns anything, then waits for
each to answer a real request, then configures them. If any step fails it stops what *this*
call started (services already running before it are left alone) and raises one StackError.
"""

from __future__ import annotations

import fcntl
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from bourse.settings import Settings
from devstack import processes
from devstack.kafka import Kafka
from devstack.moto import Moto
from devstack.paths import StackPaths
from devstack.postgres import Postgres
from devstack.prometheus import Prometheus, Pushgateway
from devstack.redis import Redis
from devstack.service import Service, StackError
from devstack.supervisor import stop_leftovers

Say = Callable[[str], None]


def services(settings: Settings, paths: StackPaths) -> list[Service]:
    # Start order; `down` stops in reverse.
    return [Kafka(settings, paths), Postgres(settings, paths), Redis(settings, paths),
            Moto(settings, paths), Pushgateway(settings, paths),
            Prometheus(settings, paths)]  # fmt: skip


@dataclass
class Status:
    service: Service
    pid: int | None
    answering: bool

    @property
    def state(self) -> str:
        if self.pid is None:
            return "down"
        return "up" if self.answering else "not answering"


class Stack:
    def __init__(self, settings: Settings, say: Say = print) -> None:
        self.settings = settings
        self.paths = StackPaths.from_settings(settings)
        self.services = services(settings, self.paths)
        self.say = say

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """One up/down at a time per stack dir (make test and make run may overlap)."""
        self.paths.create()
        with (self.paths.root / ".lock").open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def running(self, service: Service) -> processes.PidRecord | None:
        record = processes.PidRecord.load(service.pid_path)
        return record if record is not None and processes.is_alive(record) else None

    def up(self) -> None:
        with self._locked():
            started: list[tuple[Service, processes.PidRecord]] = []
            try:
                self._up(started)
            except BaseException:
                for service, record in reversed(started):
                    processes.stop(record, service.stop_signal, service.stop_timeout)
                    service.pid_path.unlink(missing_ok=True)
                raise

    def _up(self, started: list[tuple[Service, processes.PidRecord]]) -> None:
        to_start = [s for s in self.services if self.running(s) is None]
        for service in to_start:
            service.pid_path.unlink(missing_ok=True)  # stale: its process is gone
            for port, setting in service.ports.items():
                if processes.port_in_use(port):
                    raise StackError(
                        f"{service.name}: port {port} on 127.0.0.1 is already in use by a "
                        f"process the stack did not start; stop it or move {service.name} "
                        f"with {setting}"
                    )
        for service in to_start:
            service.prepare()
        children: dict[str, subprocess.Popen[bytes]] = {}
        for service in to_start:
            launch = service.launch()
            self.say(f"starting {service.name} (log: {service.log_path})")
            proc, record = processes.spawn(
                launch.argv, log=service.log_path, pid_file=service.pid_path, env=launch.env,
                cwd=launch.cwd, user=launch.user,
            )  # fmt: skip
            children[service.name] = proc
            started.append((service, record))
        for service in self.services:
            self._wait_ready(service, children.get(service.name))
        for service in self.services:
            try:
                notes = service.configure()
            except StackError:
                raise
            except Exception as exc:
                raise service.fail(f"setting up failed ({type(exc).__name__}: {exc})") from exc
            for note in notes:
                self.say(f"{service.name}: {note}")

    def _wait_ready(self, service: Service, child: subprocess.Popen[bytes] | None) -> None:
        deadline = time.monotonic() + service.ready_timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if child is not None and child.poll() is not None:
                raise service.fail(f"exited with code {child.returncode} while starting")
            if child is None and self.running(service) is None:
                raise service.fail("is no longer running")
            try:
                service.ping()
                return
            except Exception as exc:
                last_error = exc
            time.sleep(0.3)
        detail = f" (last error: {type(last_error).__name__})" if last_error else ""
        raise service.fail(f"did not answer within {service.ready_timeout:.0f}s{detail}")

    def down(self) -> None:
        with self._locked():
            stop_leftovers(self.paths, self.say)
            for service in reversed(self.services):
                record = processes.PidRecord.load(service.pid_path)
                if record is not None and processes.stop(
                    record, service.stop_signal, service.stop_timeout
                ):
                    self.say(f"stopped {service.name} (pid {record.pid})")
                service.pid_path.unlink(missing_ok=True)

    def status(self) -> list[Status]:
        result = []
        for service in self.services:
            record = self.running(service)
            answering = record is not None and all(
                processes.port_answers(port) for port in service.ports
            )
            result.append(Status(service, record.pid if record else None, answering))
        return result
