"""Custom resources answer CloudFormation on every path: the handlers the tests drive.

A custom resource whose function never answers holds the stack until CloudFormation gives up
(an hour by default). tests/unit/test_custom_resources.py drives every handler listed in
``COVERED_HANDLERS`` (and every inline ``ZipFile`` handler of the templates, found by
``inline_handlers``) through Create, Update, Delete, an exception and a hang, against a stand-in
for the pre-signed response URL, and requires exactly one well-formed answer on each path,
before the function's timeout.

The checks here make sure nothing escapes those tests:

- ``custom-resources``: every custom resource's ServiceToken is a function of the same stack
  whose handler is covered: a file-based one listed in ``COVERED_HANDLERS``, or inline code
  (which the tests extract from the template and run) that takes its deadline from the
  context;
- ``custom-resource-timeouts``: every custom resource sets ``ServiceTimeout`` (seconds
  CloudFormation waits for the answer, instead of an hour) longer than its function's
  timeout, so the handler always has the time to answer before CloudFormation gives up.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from infra.deploy_check.checks import Failure, Stack, check, where

# Entry point (CodeUri + Handler, as template.yaml names them) -> the module attribute the
# tests replace by a fake that succeeds, raises or hangs (the work the handler does).
COVERED_HANDLERS: dict[str, str] = {
    "functions/kafka_topics/app.lambda_handler": "ensure_topics",
    "functions/migrations/app.lambda_handler": "apply_migrations",
}

# Inline handlers must answer before their timeout: they read it from the context.
DEADLINE_CALL = "get_remaining_time_in_millis"
CUSTOM_TYPES = ("AWS::CloudFormation::CustomResource",)
FUNCTION_TYPES = ("AWS::Serverless::Function", "AWS::Lambda::Function")
DEFAULT_LAMBDA_TIMEOUT = 3


@dataclass(frozen=True)
class Handler:
    """The function behind one custom resource."""

    stack: str  # "" for the root
    resource: str  # the custom resource's logical id
    function: str  # the function's logical id
    entry: str  # "functions/x/app.lambda_handler", or "inline:<stack>/<function>"
    inline_code: str | None
    timeout: int | None


def _is_custom(resource: Mapping[str, Any]) -> bool:
    kind = str(resource.get("Type", ""))
    return kind in CUSTOM_TYPES or kind.startswith("Custom::")


def _token_function(token: Any) -> str | None:
    """The logical id a ServiceToken names (``!GetAtt Fn.Arn`` or ``!Ref Fn``)."""
    if isinstance(token, dict):
        if "Fn::GetAtt" in token:
            value = token["Fn::GetAtt"]
            parts = value.split(".", 1) if isinstance(value, str) else list(value)
            if len(parts) == 2 and parts[1] == "Arn":
                return str(parts[0])
        if "Ref" in token:
            return str(token["Ref"])
    return None


def _written(stack: Stack, key: str) -> dict[str, Any]:
    """The template as written (SAM functions keep their CodeUri there)."""
    return stack.template if key == "" else stack.nested.get(key, {})


def handlers(stack: Stack) -> Iterator[Handler | Failure]:
    """Each custom resource's handler, or a Failure when its token names no function here."""
    keys = ["", *stack.nested]
    for key in keys:
        written = _written(stack, key).get("Resources") or {}
        deployed = (stack.deployed if key == "" else stack.nested[key]).get("Resources") or {}
        globals_timeout = (((stack.template.get("Globals") or {}).get("Function") or {})
                           .get("Timeout"))  # fmt: skip
        for logical_id, resource in sorted({**written, **deployed}.items()):
            if not isinstance(resource, dict) or not _is_custom(resource):
                continue
            token = (resource.get("Properties") or {}).get("ServiceToken")
            function_id = _token_function(token)
            function = (
                written.get(function_id) or deployed.get(function_id) if function_id else None
            )
            if not isinstance(function, dict) or function.get("Type") not in FUNCTION_TYPES:
                yield Failure(
                    where(key, logical_id),
                    f"ServiceToken {token!r} is not a Lambda function of this stack: no test "
                    "drives its handler",
                )
                continue
            props = function.get("Properties") or {}
            timeout = props.get("Timeout")
            if function.get("Type") == "AWS::Serverless::Function":
                timeout = timeout if timeout is not None else globals_timeout
                code_uri = str(props.get("CodeUri", "")).rstrip("/")
                entry = f"{code_uri}/{props.get('Handler', '')}"
                inline = None
            else:
                zipfile = (props.get("Code") or {}).get("ZipFile")
                inline = zipfile if isinstance(zipfile, str) else None
                entry = f"inline:{where(key, function_id or '')}" if inline else (
                    f"code:{where(key, function_id or '')}"
                )  # fmt: skip
            yield Handler(
                key, logical_id, function_id or "", entry, inline,
                int(timeout) if isinstance(timeout, int | str) and str(timeout).isdigit()
                else None,
            )  # fmt: skip


def inline_handlers(stack: Stack) -> list[Handler]:
    """The inline (ZipFile) custom-resource handlers, which the tests extract and run."""
    return [h for h in handlers(stack) if isinstance(h, Handler) and h.inline_code is not None]


def check_covered(stack: Stack) -> Iterator[Failure]:
    for found in handlers(stack):
        if isinstance(found, Failure):
            yield found
        elif found.inline_code is not None and DEADLINE_CALL not in found.inline_code:
            yield Failure(
                where(found.stack, found.function),
                "inline custom-resource handler without a deadline (it never calls "
                f"context.{DEADLINE_CALL}()): a hung AWS call leaves CloudFormation without an "
                "answer until its ServiceTimeout",
            )
        elif found.inline_code is None and found.entry not in COVERED_HANDLERS:
            yield Failure(
                where(found.stack, found.resource),
                f"its handler {found.entry} is not driven by tests/unit/test_custom_resources.py "
                "(add it to COVERED_HANDLERS in infra/deploy_check/custom_resources.py)",
            )


def check_service_timeouts(stack: Stack) -> Iterator[Failure]:
    for found in handlers(stack):
        if isinstance(found, Failure):
            continue
        template = stack.deployed if found.stack == "" else stack.nested[found.stack]
        resource = (template.get("Resources") or {}).get(found.resource) or {}
        value = (resource.get("Properties") or {}).get("ServiceTimeout")
        name = where(found.stack, found.resource)
        function_timeout = found.timeout or DEFAULT_LAMBDA_TIMEOUT
        if value is None:
            yield Failure(
                name,
                "no ServiceTimeout: a handler that never answers holds the stack for an hour "
                f"(set it above its function's timeout, {function_timeout} s)",
            )
            continue
        try:
            seconds = int(str(value))
        except ValueError:
            yield Failure(name, f"ServiceTimeout {value!r} is not a number of seconds")
            continue
        if not 1 <= seconds <= 3600:
            yield Failure(name, f"ServiceTimeout {seconds} is outside 1..3600 seconds")
        elif seconds <= function_timeout:
            yield Failure(
                name,
                f"ServiceTimeout {seconds} s is not above its function's timeout "
                f"({function_timeout} s): CloudFormation may give up before the handler answers",
            )


check(
    "custom-resources",
    "every custom resource's ServiceToken is a function whose handler the tests drive through "
    "create, update, delete, an exception and a timeout",
)(check_covered)
check(
    "custom-resource-timeouts",
    "every custom resource has a ServiceTimeout above its function's timeout",
)(check_service_timeouts)
