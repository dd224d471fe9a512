"""What every backing service of the stack (Kafka, PostgreSQL, Redis, moto) provides."""

from __future__ import annotations

import os
import shutil
import signal
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bourse.settings import Settings
from devstack.paths import StackPaths


class StackError(Exception):
    """One clear line for the user: which service, what went wrong, where to look."""


@dataclass(frozen=True)
class Launch:
    argv: list[str]
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    user: str | None = None  # run as this OS user (PostgreSQL refuses to run as root)


class Service(ABC):
    name: str
    stop_signal: int = signal.SIGTERM
    stop_timeout: float = 30.0
    ready_timeout: float = 60.0

    def __init__(self, settings: Settings, paths: StackPaths) -> None:
        self.settings = settings
        self.paths = paths

    @property
    def log_path(self) -> Path:
        return self.paths.log(self.name)

    @property
    def pid_path(self) -> Path:
        return self.paths.pid(self.name)

    @property
    @abstractmethod
    def ports(self) -> dict[int, str]:
        """Each port it listens on -> the setting (environment variable) that moves it."""

    @property
    @abstractmethod
    def endpoint(self) -> str:
        """What clients connect to, for status and the ready line."""

    def prepare(self) -> None:  # noqa: B027 - most services need no preparation
        """Check binaries and create data on first start; runs before anything is spawned."""

    @abstractmethod
    def launch(self) -> Launch: ...

    @abstractmethod
    def ping(self) -> None:
        """One real request; raises while the service does not answer."""

    def configure(self) -> list[str]:
        """Idempotently create what the exchange expects (topics, databases, resources).

        Returns short notes on what it changed, for the user."""
        return []

    def fail(self, what: str) -> StackError:
        one_line = " ".join(what.split())  # botocore and psycopg errors span lines
        return StackError(f"{self.name}: {one_line}; see {self.log_path}")


def require_binary(service: str, binary: str, package: str) -> str:
    path = shutil.which(binary)
    if path is None:
        raise StackError(
            f"{service}: `{binary}` not found; run `make system-packages` "
            f"(as root) or `apt-get install {package}`"
        )
    return path


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    # Children inherit our environment, so they see the same bourse settings we do.
    env = dict(os.environ)
    env.update(extra or {})
    return env
