"""Lambda functions run in-process: warm "containers" (one import of the function's module
each, one invocation at a time, as Lambda runs them), a Lambda context, and the function's
environment from the template."""

from __future__ import annotations

import importlib.util
import itertools
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
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


def apply_environment(variables: Mapping[str, str], overrides: Mapping[str, str]) -> None:
    """Put a function's template environment into this process, except variables the caller's
    own environment sets (they win, like ``sam local --env-vars``: tests move topics and ports
    that way)."""
    for name, value in variables.items():
        if name not in overrides:
            os.environ[name] = value


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


@dataclass
class _Container:
    handler: Callable[[dict[str, Any], Any], Any]
    lock: threading.Lock = field(default_factory=threading.Lock)


class FunctionPool:
    """Warm containers per function: an invocation takes an idle one or starts a new one (up
    to ``max_containers``, then it waits), so concurrent requests never share one module's
    state, as they never do on Lambda."""

    def __init__(self, spec: FunctionSpec, region: str, max_containers: int = 8) -> None:
        self.spec = spec
        self.region = region
        self.max_containers = max_containers
        self._containers: list[_Container] = []
        self._lock = threading.Lock()
        self._available = threading.Condition(self._lock)

    def _acquire(self) -> _Container:
        with self._available:
            while True:
                for container in self._containers:
                    if container.lock.acquire(blocking=False):
                        return container
                if len(self._containers) < self.max_containers:
                    container = _Container(load_handler(self.spec))
                    container.lock.acquire()
                    self._containers.append(container)
                    return container
                self._available.wait(timeout=0.05)

    def warm(self) -> None:
        """Start one container now (its cold start: imports, module-level set-up), so the
        first request does not pay seconds of imports and a broken function fails at start."""
        with self._available:
            if not self._containers:
                self._containers.append(_Container(load_handler(self.spec)))

    def invoke(self, event: dict[str, Any]) -> Any:
        container = self._acquire()
        try:
            return container.handler(event, context_for(self.spec, self.region))
        finally:
            container.lock.release()
            with self._available:
                self._available.notify()
