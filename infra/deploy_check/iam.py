"""The IAM contract over SAM's output: each role as CloudFormation will create it.

The roles of AWS::Serverless::Function exist only after SAM's transform (``<Function>Role``,
with the policies SAM adds for tracing, VPC access and event sources), so these checks read
``stack.transformed``; the functions of the nested stacks are read as written.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from infra.deploy_check import calls
from infra.deploy_check.checks import Failure, Stack, Template, check, where
from infra.deploy_check.policy import (
    Grant,
    allows,
    functions,
    managed_policy_key,
    missing,
    role_grants,
    role_of,
    targets,
)

XRAY_ACTIONS = ("xray:PutTraceSegments", "xray:PutTelemetryRecords")
# IAM's default quota of managed policies attached to one role.
MANAGED_POLICIES_PER_ROLE = 10
REDIS_SECRET_VARIABLE = "BOURSE_REDIS_AUTH_SECRET_ARN"
# Metadata: {DeployCheck: {<check name>: <why this resource may do what the check refuses>}}
JUSTIFICATION = "DeployCheck"


def _grants(template: Template, function: dict[str, Any]) -> set[Grant] | None:
    role = role_of(function)
    if role is None or role not in (template.get("Resources") or {}):
        return None
    return role_grants(template, role)


def _code_functions(stack: Stack) -> Iterator[tuple[str, dict[str, Any], Path]]:
    """Root functions whose code is in the repository: (name, as written, handler file)."""
    for name, resource in (stack.template.get("Resources") or {}).items():
        if not isinstance(resource, dict) or resource.get("Type") != "AWS::Serverless::Function":
            continue
        properties = resource.get("Properties") or {}
        if isinstance(properties.get("CodeUri"), str) and isinstance(
            properties.get("Handler"), str
        ):
            app = calls.app_path(resource, Path(stack.files.get("template", "")).parent)
            if app.exists():
                yield name, resource, app


def _deployed_function(stack: Stack, name: str) -> dict[str, Any] | None:
    resource = (stack.deployed.get("Resources") or {}).get(name)
    if isinstance(resource, dict) and resource.get("Type") == "AWS::Lambda::Function":
        return resource
    return None


@check(
    "iam-code-calls",
    "every AWS call in each function's code is allowed by its role as SAM generates it",
    needs_transformed=True,
)
def code_calls(stack: Stack) -> Iterator[Failure]:
    for name, written, _ in _code_functions(stack):
        deployed = _deployed_function(stack, name)
        if deployed is None:
            yield Failure(name, "SAM's output has no AWS::Lambda::Function of this name")
            continue
        grants = _grants(stack.deployed, deployed)
        if grants is None:
            yield Failure(name, "its role is not a role of this template")
            continue
        lacking = missing(grants, calls.needed_actions(name, written))
        if lacking:
            yield Failure(f"{name} ({role_of(deployed)})", "not allowed: " + ", ".join(lacking))


def _traced(function: dict[str, Any]) -> bool:
    mode = ((function.get("Properties") or {}).get("TracingConfig") or {}).get("Mode")
    return "Active" in _branches(mode)


def _branches(value: Any) -> list[Any]:
    """The values an Fn::If can take (the value itself otherwise)."""
    if isinstance(value, dict) and isinstance(value.get("Fn::If"), list):
        _, yes, no = value["Fn::If"]
        return _branches(yes) + _branches(no)
    return [value]


@check(
    "iam-xray",
    "every function with active tracing may write X-Ray segments (Lambda refuses it otherwise)",
    needs_transformed=True,
)
def xray(stack: Stack) -> Iterator[Failure]:
    for key, template in stack.templates():
        for name, function in functions(template):
            if not _traced(function):
                continue
            grants = _grants(template, function)
            if grants is None:
                yield Failure(where(key, name), "traced, and its role is not in this template")
                continue
            lacking = [a for a in XRAY_ACTIONS if not allows(grants, a, "*")]
            if lacking:
                yield Failure(
                    where(key, name),
                    f"Tracing Active but its role {role_of(function)} lacks {', '.join(lacking)}",
                )


# --- KMS ---------------------------------------------------------------------------------------


def _customer_keys(value: Any, aws_managed: str) -> set[str]:
    """The customer managed keys a KmsMasterKeyId/KmsKeyId can be (none for AWS's own key)."""
    found: set[str] = set()
    for branch in _branches(value):
        if branch is None or (isinstance(branch, dict) and branch == {"Ref": "AWS::NoValue"}):
            continue
        if isinstance(branch, str) and (branch == aws_managed or branch.startswith("alias/aws/")):
            continue
        found |= targets(branch)
    return found


def _nested_value(stack: Stack, target: str) -> tuple[str, set[str]] | None:
    """For ``Nested.Outputs.Name``: the nested stack and what that output's value refers to."""
    nested, _, output = target.partition(".Outputs.")
    if not output or nested not in stack.nested:
        return None
    value = ((stack.nested[nested].get("Outputs") or {}).get(output) or {}).get("Value")
    return nested, targets(value)


def _nested_parameter(stack: Stack, nested: str, parameter: str) -> set[str]:
    """What the root passes to a nested stack's parameter (targets in the root)."""
    resource = (stack.deployed.get("Resources") or {}).get(nested) or {}
    return targets(((resource.get("Properties") or {}).get("Parameters") or {}).get(parameter))


def secret_keys(stack: Stack, secret: str) -> tuple[set[str], str | None]:
    """The customer managed keys (root targets) that encrypt the secret a root target names,
    and a problem if they cannot be named from the root."""
    resolved: list[tuple[str, str]] = []  # (stack key, logical id of the secret)
    root_resources = stack.deployed.get("Resources") or {}
    if secret in root_resources:
        resolved.append(("", secret))
    elif (found := _nested_value(stack, secret)) is not None:
        nested, refs = found
        resolved += [
            (nested, ref) for ref in refs if ref in (stack.nested[nested].get("Resources") or {})
        ]
    keys: set[str] = set()
    for key, logical_id in resolved:
        template = stack.deployed if not key else stack.nested[key]
        resource = (template.get("Resources") or {})[logical_id]
        if resource.get("Type") != "AWS::SecretsManager::Secret":
            continue
        for kms in _customer_keys((resource.get("Properties") or {}).get("KmsKeyId"), ""):
            if not key:
                keys.add(kms)
                continue
            if kms in (stack.nested[key].get("Parameters") or {}):
                keys |= _nested_parameter(stack, key, kms)
                continue
            outputs = stack.nested[key].get("Outputs") or {}
            exposed = [n for n, o in outputs.items() if kms in targets((o or {}).get("Value"))]
            if not exposed:
                return keys, f"the key {kms} of {key}/{logical_id} is no output of {key}"
            keys.add(f"{key}.Outputs.{sorted(exposed)[0]}")
    return keys, None


def _topic_keys(stack: Stack, topic: str) -> set[str]:
    resource = (stack.deployed.get("Resources") or {}).get(topic) or {}
    if resource.get("Type") != "AWS::SNS::Topic":
        return set()
    return _customer_keys((resource.get("Properties") or {}).get("KmsMasterKeyId"), "alias/aws/sns")


def _queues_read(stack: Stack, function: str) -> set[str]:
    found: set[str] = set()
    for mapping in (stack.deployed.get("Resources") or {}).values():
        if (
            not isinstance(mapping, dict)
            or mapping.get("Type") != "AWS::Lambda::EventSourceMapping"
        ):
            continue
        properties = mapping.get("Properties") or {}
        if function in targets(properties.get("FunctionName")):
            found |= targets(properties.get("EventSourceArn"))
    return found


def _queue_keys(stack: Stack, queue: str) -> set[str]:
    resource = (stack.deployed.get("Resources") or {}).get(queue) or {}
    if resource.get("Type") != "AWS::SQS::Queue":
        return set()
    return _customer_keys((resource.get("Properties") or {}).get("KmsMasterKeyId"), "alias/aws/sqs")


@check(
    "iam-kms",
    "KMS for every customer-key topic a function publishes to, queue it reads, secret it reads",
    needs_transformed=True,
)
def kms(stack: Stack) -> Iterator[Failure]:
    for name, written, _ in _code_functions(stack):
        deployed = _deployed_function(stack, name)
        grants = _grants(stack.deployed, deployed) if deployed is not None else None
        if deployed is None or grants is None:
            continue  # iam-code-calls says so
        needed: set[tuple[str, str]] = set()
        why: dict[tuple[str, str], str] = {}
        published = {t for a, t in calls.needed_actions(name, written) if a == "sns:Publish"}
        for topic in published:
            for key in _topic_keys(stack, topic):
                for action in ("kms:GenerateDataKey", "kms:Decrypt"):
                    needed.add((action, key))
                    why[(action, key)] = f"publishes to {topic}"
        for queue in _queues_read(stack, name):
            for key in _queue_keys(stack, queue):
                needed.add(("kms:Decrypt", key))
                why[("kms:Decrypt", key)] = f"reads {queue}"
        secrets = {t for a, t in grants if a.lower() == "secretsmanager:getsecretvalue"} - {"*"}
        for secret in secrets:
            keys, problem = secret_keys(stack, secret)
            if problem:
                yield Failure(name, f"reads {secret}: {problem}")
            for key in keys:
                needed.add(("kms:Decrypt", key))
                why[("kms:Decrypt", key)] = f"reads the secret {secret}"
        for action, key in sorted(needed):
            if not allows(grants, action, key):
                yield Failure(
                    f"{name} ({role_of(deployed)})",
                    f"{why[(action, key)]} (customer key {key}) but lacks {action}",
                )


@check(
    "iam-redis-secret",
    "every function that opens Redis does so through the AUTH-token factory and may read the "
    "token (the secret and its key)",
    needs_transformed=True,
)
def redis_secret(stack: Stack) -> Iterator[Failure]:
    for name, _, app in _code_functions(stack):
        if not calls.may_open_redis(name, app):
            continue
        for module in sorted(calls.direct_redis_clients(app)):
            yield Failure(
                name,
                f"{module} builds a Redis client itself (no AUTH token): use "
                f"{calls.REDIS_FACTORY}.connect",
            )
        deployed = _deployed_function(stack, name)
        grants = _grants(stack.deployed, deployed) if deployed is not None else None
        if deployed is None or grants is None:
            continue
        variables = ((deployed.get("Properties") or {}).get("Environment") or {}).get(
            "Variables"
        ) or {}
        if REDIS_SECRET_VARIABLE not in variables:
            yield Failure(name, f"opens Redis but its environment has no {REDIS_SECRET_VARIABLE}")
            continue
        for secret in sorted(targets(variables[REDIS_SECRET_VARIABLE]) - {""}):
            needed = {("secretsmanager:GetSecretValue", secret)}
            keys, problem = secret_keys(stack, secret)
            if problem:
                yield Failure(name, f"the Redis secret {secret}: {problem}")
            needed |= {("kms:Decrypt", key) for key in keys}
            lacking = missing(grants, needed)
            if lacking:
                yield Failure(
                    f"{name} ({role_of(deployed)})",
                    "opens Redis but may not read its AUTH token: " + ", ".join(lacking),
                )


@check(
    "iam-managed-policies",
    f"no role carries the same managed policy twice after SAM's transform, nor more than "
    f"{MANAGED_POLICIES_PER_ROLE} (IAM's default quota)",
    needs_transformed=True,
)
def managed_policies(stack: Stack) -> Iterator[Failure]:
    for key, logical_id, role in stack.resources("AWS::IAM::Role"):
        arns = (role.get("Properties") or {}).get("ManagedPolicyArns") or []
        if not isinstance(arns, list):
            continue
        counts = Counter(managed_policy_key(arn) for arn in arns)
        twice = sorted(k.removeprefix("aws-managed:") for k, n in counts.items() if n > 1)
        if twice:
            yield Failure(where(key, logical_id), "carries twice: " + ", ".join(twice))
        if len(counts) > MANAGED_POLICIES_PER_ROLE:
            yield Failure(
                where(key, logical_id),
                f"{len(counts)} managed policies (IAM allows {MANAGED_POLICIES_PER_ROLE} by "
                f"default)",
            )


def justification(resource: dict[str, Any], check_name: str) -> str | None:
    metadata = resource.get("Metadata") or {}
    reasons = metadata.get(JUSTIFICATION) if isinstance(metadata, dict) else None
    reason = reasons.get(check_name) if isinstance(reasons, dict) else None
    return str(reason) if reason else None


@check(
    "reserved-concurrency",
    "no ReservedConcurrentExecutions (it fails on accounts with the default concurrency quota) "
    f"unless Metadata.{JUSTIFICATION}.reserved-concurrency says why",
)
def reserved_concurrency(stack: Stack) -> Iterator[Failure]:
    written = [("", stack.template), *stack.nested.items()]
    for key, template in written:
        for logical_id, resource in (template.get("Resources") or {}).items():
            if not isinstance(resource, dict) or resource.get("Type") not in (
                "AWS::Serverless::Function", "AWS::Lambda::Function",
            ):  # fmt: skip
                continue
            properties = resource.get("Properties") or {}
            if "ReservedConcurrentExecutions" not in properties:
                continue
            if justification(resource, "reserved-concurrency"):
                continue
            yield Failure(
                where(key, logical_id),
                f"ReservedConcurrentExecutions {properties['ReservedConcurrentExecutions']!r}: "
                "an account at the default quota (10 unreserved at least) refuses it",
            )
