"""Lambda functions run locally: warm "containers" (one process each, with the function's
environment from the template and one import of its module, one invocation at a time, as
Lambda runs them) and the Lambda context object."""

from __future__ import annotations

import importlib.util
import itertools
import multiprocessing
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from multiprocessing.connection import Connection
from types import ModuleType
from typing import Any

from devstack.cfn import LOCAL_ACCOUNT_ID
from devstack.gateway.template_api import FunctionSpec

_counter = itertools.count(1)


@dataclass
class LambdaContext:
    """The attributes of Lambda's context object that Powertools and handlers read."""

    function_name: str
    memory_limit_in_mb: int
    invoked_function_arn: str
    aws_request_id: str
    deadline_ms: int
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = "local"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self.deadline_ms - time.time_ns() // 1_000_000)


def function_environment(
    variables: Mapping[str, str], overrides: Mapping[str, str]
) -> dict[str, str]:
    """A function's template environment, except variables the caller's own environment sets
    (they win, like ``sam local --env-vars``: tests move topics and ports that way)."""
    return {name: value for name, value in variables.items() if name not in overrides}


def apply_environment(variables: Mapping[str, str], overrides: Mapping[str, str]) -> None:
    """Put a function's environment (``function_environment``) into this process."""
    os.environ.update(function_environment(variables, overrides))


def load_handler(spec: FunctionSpec) -> Callable[[dict[str, Any], Any], Any]:
    """A fresh import of the function's module (a new cold container)."""
    path = spec.code_dir / f"{spec.module}.py"
    name = f"bourse_fn_{spec.logical_id}_{next(_counter)}"
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise FileNotFoundError(f"{spec.logical_id}: cannot load {path}")
    module: ModuleType = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    module_spec.loader.exec_module(module)
    handler: Callable[[dict[str, Any], Any], Any] = getattr(module, spec.attribute)
    return handler


def context_for(spec: FunctionSpec, region: str) -> LambdaContext:
    return LambdaContext(
        function_name=spec.name,
        memory_limit_in_mb=spec.memory_mb,
        invoked_function_arn=f"arn:aws:lambda:{region}:{LOCAL_ACCOUNT_ID}:function:{spec.name}",
        aws_request_id=str(uuid.uuid4()),
        deadline_ms=time.time_ns() // 1_000_000 + spec.timeout_s * 1000,
    )


class FunctionError(Exception):
    """The function raised (``kind`` is the exception's class name, ``str()`` its message, as
    Lambda reports ``errorType`` and ``errorMessage``), timed out, or its container died."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _serve_container(
    spec: FunctionSpec, region: str, environment: dict[str, str], conn: Connection
) -> None:
    """A container's process: this function's environment, one import, then invocations one
    at a time until the gateway closes the pipe."""
    os.environ.update(environment)
    try:
        handler = load_handler(spec)
    except BaseException as exc:
        conn.send(("error", type(exc).__name__, str(exc)))
        return
    conn.send(("ready", "", ""))
    while True:
        try:
            event = conn.recv()
        except EOFError:
            return
        try:
            conn.send(("ok", handler(event, context_for(spec, region)), ""))
        except BaseException as exc:
            conn.send(("error", type(exc).__name__, str(exc)))


# Containers fork from a forkserver that has imported the functions' third-party libraries
# once. A container started from scratch (spawn) spends seconds importing them (kafka-python,
# boto3, Powertools and the X-Ray SDK: ~3 s of CPU on an idle 2-core box, tens of seconds when
# other suites share it), which Lambda scale-out pays on every new container and every
# gateway pays at start. The forkserver is a clean process (the gateway's threads are not
# forked), and only libraries are preloaded: none reads the environment at import, so each
# container still applies its own environment before it imports the function's module and
# the bourse layer, as a new Lambda execution environment does.
PRELOAD = (
    "aws_lambda_powertools",
    "aws_lambda_powertools.event_handler",
    "aws_lambda_powertools.metrics",
    "aws_lambda_powertools.utilities.typing",
    "aws_xray_sdk.core",
    "boto3",
    "confluent_kafka",
    "kafka",
    "msgspec",
    "psycopg",
    "redis",
)
_SPAWN = multiprocessing.get_context("forkserver")
_SPAWN.set_forkserver_preload(list(PRELOAD))


class _Container:
    """A Lambda execution environment: its own process, as on Lambda. Powertools' resolver
    keeps the current event in class attributes, so two invocations may never share a
    process; a separate process also gives each function exactly its own environment."""

    def __init__(self, spec: FunctionSpec, region: str, environment: dict[str, str]) -> None:
        self.lock = threading.Lock()
        self.conn, child = _SPAWN.Pipe()
        self.process = _SPAWN.Process(
            target=_serve_container,
            args=(spec, region, environment, child),
            name=f"lambda-{spec.logical_id}",
            daemon=True,
        )
        self.process.start()
        child.close()
        self.timeout_s = spec.timeout_s

    def _receive(self, timeout_s: float) -> tuple[str, Any, str]:
        if not self.conn.poll(timeout_s):
            self.kill()
            raise FunctionError("Timeout", f"Task timed out after {timeout_s:.2f} seconds")
        try:
            message: tuple[str, Any, str] = self.conn.recv()
        except EOFError:
            self.kill()
            raise FunctionError("Runtime.ExitError", "the container exited") from None
        return message

    def start(self, timeout_s: float = 120.0) -> None:
        kind, name, message = self._receive(timeout_s)
        if kind != "ready":
            self.kill()
            raise FunctionError(name, f"init failed: {message}")

    def invoke(self, event: dict[str, Any]) -> Any:
        try:
            self.conn.send(event)
        except (BrokenPipeError, OSError):
            self.kill()
            raise FunctionError("Runtime.ExitError", "the container exited") from None
        kind, value, message = self._receive(self.timeout_s)
        if kind == "error":
            raise FunctionError(str(value), message)
        return value

    @property
    def alive(self) -> bool:
        return self.process.is_alive()

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5)
        self.conn.close()


class FunctionPool:
    """Warm containers per function: an invocation takes an idle one or starts a new one (up
    to ``max_containers``, then it waits for one to be free), as Lambda scales out."""

    def __init__(
        self,
        spec: FunctionSpec,
        region: str,
        environment: dict[str, str],
        max_containers: int = 4,
    ) -> None:
        self.spec = spec
        self.region = region
        self.environment = environment
        self.max_containers = max_containers
        self._containers: list[_Container] = []
        self._starting = 0
        self._lock = threading.Lock()
        self._available = threading.Condition(self._lock)

    def _new_container(self) -> _Container:
        container = _Container(self.spec, self.region, self.environment)
        container.start()
        return container

    def _acquire(self) -> _Container:
        with self._available:
            while True:
                self._containers = [c for c in self._containers if c.alive]
                for container in self._containers:
                    if container.lock.acquire(blocking=False):
                        return container
                if len(self._containers) + self._starting < self.max_containers:
                    self._starting += 1
                    break
                self._available.wait(timeout=0.05)
        # A cold start (seconds of imports) happens outside the lock: other requests keep
        # taking containers that become free meanwhile.
        try:
            container = self._new_container()
        finally:
            with self._available:
                self._starting -= 1
        container.lock.acquire()
        with self._available:
            self._containers.append(container)
        return container

    def warm(self) -> None:
        """Start one container now (its cold start), so the first request does not pay it and a
        function that cannot even import fails at start."""
        with self._available:
            if self._containers:
                return
        container = self._new_container()
        with self._available:
            self._containers.append(container)

    def invoke(self, event: dict[str, Any]) -> Any:
        container = self._acquire()
        try:
            return container.invoke(event)
        finally:
            container.lock.release()
            with self._available:
                self._available.notify()

    def close(self) -> None:
        with self._available:
            containers, self._containers = self._containers, []
        for container in containers:
            container.kill()


def warm_pools(pools: Mapping[str, FunctionPool]) -> None:
    """One container per function, started in parallel (each is seconds of imports); a
    function whose container did not start is an error naming it."""
    threads = [threading.Thread(target=pool.warm) for pool in pools.values()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for name, pool in pools.items():
        if not pool._containers:
            raise RuntimeError(f"{name}: its container did not start; see the log above")
