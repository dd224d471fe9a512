"""The CloudFormation custom-resource protocol: run an action, PUT the outcome to ResponseURL.

Hand-written because it is one HTTP PUT (the cfn-response module exists only for inline
ZipFile code, and crhelper would add a dependency to every function for it). Create and Update
run the action; Delete does nothing, because nothing Bourse creates at deploy (the commands
journal, the record's schema) may be destroyed with a stack update.

Every path answers exactly once, before the function's own timeout: the action runs under a
deadline taken from ``context.get_remaining_time_in_millis()`` less a reserve for the answer
(the action is given the deadline so that it can stop its own retries in time); an action
still running at the deadline, or one that raises, is answered FAILED with the reason, so a
hang costs the deploy the function's timeout, never CloudFormation's hour. The physical id is
the one CloudFormation sent on Update and Delete (stable), the resource's own on Create.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any, Protocol

# (ResourceProperties, deadline on time.monotonic()) -> Data (strings)
Action = Callable[[Mapping[str, Any], float], dict[str, str]]

# Kept back from the function's remaining time for answering CloudFormation.
RESERVE_SECONDS = 10.0
PUT_TIMEOUT_SECONDS = 5.0
PUT_ATTEMPTS = 3
# CloudFormation refuses a response body over 4,096 bytes; the reason is the part that grows.
MAX_REASON = 1000


class LambdaContext(Protocol):
    """What the handler needs of Lambda's context object."""

    @property
    def log_stream_name(self) -> str: ...

    def get_remaining_time_in_millis(self) -> int: ...


class DeadlineExceeded(TimeoutError):
    """The action did not finish before the deadline."""


def deadline_for(context: LambdaContext, reserve: float = RESERVE_SECONDS) -> float:
    """The time.monotonic() by which the action must be done: the function's remaining time
    less ``reserve`` (half the remaining time when that is shorter than twice the reserve)."""
    remaining = max(context.get_remaining_time_in_millis(), 0) / 1000
    budget = remaining - reserve if remaining > 2 * reserve else remaining / 2
    return time.monotonic() + budget


def remaining(deadline: float) -> float:
    """Seconds left before ``deadline`` (never negative)."""
    return max(deadline - time.monotonic(), 0.0)


def _run_until(action: Action, properties: Mapping[str, Any], deadline: float) -> dict[str, str]:
    """``action`` in a daemon thread; its result, its exception, or DeadlineExceeded. A thread
    left running at the deadline is abandoned (Lambda freezes it with the environment); it
    never answers CloudFormation itself."""
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["data"] = action(properties, deadline)
        except BaseException as exc:  # handed to the answering thread
            outcome["error"] = exc

    started = time.monotonic()
    worker = threading.Thread(target=work, name="custom-resource-action", daemon=True)
    worker.start()
    worker.join(remaining(deadline))
    if worker.is_alive():
        raise DeadlineExceeded(
            f"not done after {time.monotonic() - started:.0f} s, the function's timeout is near;"
            " answering FAILED instead of leaving the stack waiting"
        )
    if "error" in outcome:
        raise outcome["error"]
    return dict(outcome.get("data") or {})


def _put(url: str, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    # The pre-signed S3 URL is signed for an empty content type.
    request = urllib.request.Request(
        url, data=data, method="PUT", headers={"Content-Type": "", "Content-Length": str(len(data))}
    )
    for attempt in range(1, PUT_ATTEMPTS + 1):
        try:
            with urllib.request.urlopen(request, timeout=PUT_TIMEOUT_SECONDS) as response:
                response.read()
            return
        except OSError:  # URLError, HTTPError, timeouts: S3 answers again a moment later
            if attempt == PUT_ATTEMPTS:
                # Raising fails the invocation: Lambda retries an asynchronous one, which
                # runs the (idempotent) action again and answers again.
                raise
            time.sleep(attempt)


def run(
    event: Mapping[str, Any],
    context: LambdaContext,
    physical_id: str,
    action: Action,
    *,
    reserve: float = RESERVE_SECONDS,
) -> dict[str, Any]:
    """Answer CloudFormation (and return the answer): SUCCESS with the action's data, or
    FAILED with the error as the reason, so a failed deploy says why instead of timing out."""
    request_type = str(event.get("RequestType", ""))
    if request_type in ("Update", "Delete") and event.get("PhysicalResourceId"):
        physical_id = str(event["PhysicalResourceId"])
    status, reason, data = "SUCCESS", "", {}
    try:
        if request_type in ("Create", "Update"):
            deadline = deadline_for(context, reserve)
            data = {k: str(v) for k, v in _run_until(action, event.get("ResourceProperties") or {},
                                                     deadline).items()}  # fmt: skip
        elif request_type != "Delete":
            raise ValueError(f"unknown RequestType {request_type!r}")
    except Exception as exc:  # any failure must reach CloudFormation, or it waits an hour
        status, reason, data = "FAILED", f"{type(exc).__name__}: {exc}", {}
    log_hint = f"see CloudWatch log stream {context.log_stream_name}"
    if reason:
        reason = f"{reason[: MAX_REASON - len(log_hint) - 3]} ({log_hint})"
    body = {
        "Status": status,
        "Reason": reason or log_hint,
        "PhysicalResourceId": physical_id,
        "StackId": event.get("StackId", ""),
        "RequestId": event.get("RequestId", ""),
        "LogicalResourceId": event.get("LogicalResourceId", ""),
        "Data": data,
    }
    _put(str(event["ResponseURL"]), body)
    return body
