"""`up` is all or nothing and `down` stops exactly what the stack started (no stack needed:
these run throwaway processes in a temporary stack dir)."""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from bourse.settings import Settings, get_settings
from devstack import processes
from devstack.paths import StackPaths
from devstack.service import Launch, Service, StackError
from devstack.stack import Stack

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Fake(Service):
    code = "import time; time.sleep(120)"
    answers = True
    ready_timeout = 5.0

    def __init__(self, settings: Settings, paths: StackPaths) -> None:
        super().__init__(settings, paths)
        self.port = free_port()

    @property
    def ports(self) -> dict[int, str]:
        return {self.port: "FAKE_PORT"}

    @property
    def endpoint(self) -> str:
        return f"fake:{self.port}"

    def launch(self) -> Launch:
        return Launch([sys.executable, "-c", self.code])

    def ping(self) -> None:
        if not self.answers:
            raise ConnectionRefusedError


class Sleeper(_Fake):
    name = "sleeper"


class Crasher(_Fake):
    name = "crasher"
    code = "import sys; print('boom'); sys.exit(3)"
    answers = False


class Mute(_Fake):
    name = "mute"
    answers = False
    ready_timeout = 1.0


@pytest.fixture()
def stack(tmp_path: Path) -> Stack:
    settings = dataclasses.replace(get_settings(), stack_dir=str(tmp_path / "stack"))
    return Stack(settings, say=lambda _: None)


def _use(stack: Stack, *kinds: type[_Fake]) -> list[_Fake]:
    fakes = [kind(stack.settings, stack.paths) for kind in kinds]
    stack.services = list(fakes)
    return fakes


def _recorded(stack: Stack, service: Service) -> processes.PidRecord:
    record = processes.PidRecord.load(service.pid_path)
    assert record is not None
    return record


@pytest.mark.parametrize("failing", [Crasher, Mute])
def test_a_failing_service_stops_what_this_up_started(stack: Stack, failing: type[_Fake]) -> None:
    sleeper, bad = _use(stack, Sleeper, failing)
    started: list[processes.PidRecord] = []
    original_spawn = processes.spawn

    def spying_spawn(
        argv: Sequence[str], **kwargs: Any
    ) -> tuple[subprocess.Popen[bytes], processes.PidRecord]:
        proc, record = original_spawn(argv, **kwargs)
        started.append(record)
        return proc, record

    processes.spawn = spying_spawn
    try:
        with pytest.raises(StackError) as error:
            stack.up()
    finally:
        processes.spawn = original_spawn
    message = str(error.value)
    assert message.startswith(f"{bad.name}: ") and str(bad.log_path) in message
    assert "\n" not in message
    assert len(started) == 2
    assert not any(processes.is_alive(r) for r in started)
    assert not sleeper.pid_path.exists() and not bad.pid_path.exists()


def test_a_taken_port_is_reported_before_anything_starts(stack: Stack) -> None:
    (sleeper,) = _use(stack, Sleeper)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", sleeper.port))
        squatter.listen()
        with pytest.raises(StackError, match=f"port {sleeper.port} .* already in use"):
            stack.up()
    assert not sleeper.pid_path.exists()


def test_up_is_idempotent_and_down_stops_it(stack: Stack) -> None:
    (sleeper,) = _use(stack, Sleeper)
    stack.up()
    first = _recorded(stack, sleeper)
    stack.up()
    assert _recorded(stack, sleeper) == first  # reused, not restarted
    assert [s.state for s in stack.status()] == ["not answering"]  # fake listens on nothing
    stack.down()
    assert not processes.is_alive(first)
    assert not sleeper.pid_path.exists()


def test_down_never_signals_a_process_that_reused_a_recorded_pid(stack: Stack) -> None:
    (sleeper,) = _use(stack, Sleeper)
    stack.paths.create()
    # This very test process, with the wrong start time: a pid reused by someone else.
    processes.PidRecord(os.getpid(), 1, ["python"]).save(sleeper.pid_path)
    stack.down()
    assert not sleeper.pid_path.exists()  # forgotten, and we are still alive to check it
