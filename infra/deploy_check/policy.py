"""IAM as CloudFormation will create it: what a role is allowed, on what.

A *target* names what a policy statement's Resource (or a property) refers to: a logical id
(``ApiKeysTable``), a nested stack's output (``Data.Outputs.RedisAuthSecretArn``), a literal
string, or ``*``. A *grant* is an (action pattern, target) pair.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Iterator
from typing import Any

from infra.deploy_check.checks import Template

Grant = tuple[str, str]
_SUB_VAR = re.compile(r"\$\{([^}!]+)\}")

# What the AWS managed policies a Lambda or ECS role uses allow (their documents as AWS
# publishes them; all on "*"). A managed policy not listed allows nothing as far as the checks
# know, so a check that needs it fails rather than guessing.
_LOGS = ("logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents")
_XRAY = (
    "xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules",
    "xray:GetSamplingTargets", "xray:GetSamplingStatisticSummaries",
)  # fmt: skip
AWS_MANAGED_POLICIES: dict[str, tuple[str, ...]] = {
    "service-role/AWSLambdaBasicExecutionRole": _LOGS,
    "service-role/AWSLambdaVPCAccessExecutionRole": (
        *_LOGS, "ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces",
        "ec2:DescribeSubnets", "ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses",
        "ec2:UnassignPrivateIpAddresses",
    ),
    "service-role/AWSLambdaMSKExecutionRole": (
        *_LOGS, "kafka:DescribeCluster", "kafka:DescribeClusterV2", "kafka:GetBootstrapBrokers",
        "ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DescribeVpcs",
        "ec2:DeleteNetworkInterface", "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups",
    ),
    "service-role/AWSLambdaSQSQueueExecutionRole": (
        *_LOGS, "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes",
    ),
    "service-role/AmazonECSTaskExecutionRolePolicy": (
        "ecr:GetAuthorizationToken", "ecr:BatchCheckLayerAvailability",
        "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage", "logs:CreateLogStream",
        "logs:PutLogEvents",
    ),
    "AWSXrayWriteOnlyAccess": _XRAY,
    "AWSXRayDaemonWriteAccess": _XRAY,
}  # fmt: skip


def targets(value: Any) -> set[str]:
    """What a Resource (or any property) refers to (see the module docstring)."""
    found: set[str] = set()
    if isinstance(value, str):
        if value == "*":
            found.add("*")
        elif not _SUB_VAR.search(value):
            found.add(value)
    elif isinstance(value, list):
        for item in value:
            found |= targets(item)
    elif isinstance(value, dict):
        for key, arg in value.items():
            if key == "Ref" and isinstance(arg, str):
                found.add(arg)
            elif key == "Fn::GetAtt":
                parts = arg if isinstance(arg, list) else str(arg).split(".", 1)
                attribute = str(parts[1]) if len(parts) > 1 else ""
                found.add(
                    f"{parts[0]}.{attribute}" if attribute.startswith("Outputs.") else parts[0]
                )
            elif key == "Fn::Sub":
                text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
                for name in _SUB_VAR.findall(text):
                    if name in variables:
                        found |= targets(variables[name])
                    elif name.split(".")[0].startswith("AWS::"):
                        continue
                    elif ".Outputs." in name:
                        found.add(name)
                    else:
                        found.add(name.split(".")[0])
            elif key == "Fn::If" and isinstance(arg, list) and len(arg) == 3:
                found |= targets(arg[1]) | targets(arg[2])
            else:
                found |= targets(arg)
    return {name for name in found if not name.startswith("AWS::")}


def _actions(statement: dict[str, Any]) -> list[str]:
    actions = statement.get("Action", [])
    return [actions] if isinstance(actions, str) else [str(a) for a in actions]


def statement_grants(statement: dict[str, Any], resource: Any = None) -> set[Grant]:
    """What one Allow statement grants (nothing for Deny or NotAction)."""
    if statement.get("Effect") != "Allow" or "NotAction" in statement:
        return set()
    where = targets(statement.get("Resource", "*") if resource is None else resource)
    return {(action, target) for action in _actions(statement) for target in where}


def document_grants(document: Any) -> set[Grant]:
    if not isinstance(document, dict):
        return set()
    statements = document.get("Statement", [])
    statements = [statements] if isinstance(statements, dict) else statements
    found: set[Grant] = set()
    for statement in statements:
        if isinstance(statement, dict):
            found |= statement_grants(statement)
    return found


def managed_policy_name(arn: Any) -> str | None:
    """``service-role/AWSLambdaMSKExecutionRole`` for an AWS managed policy ARN (a string, or
    an Fn::Sub/Fn::Join over the partition), else None."""
    text: str | None = None
    if isinstance(arn, str):
        text = arn
    elif isinstance(arn, dict) and "Fn::Sub" in arn and isinstance(arn["Fn::Sub"], str):
        text = arn["Fn::Sub"]
    elif isinstance(arn, dict) and "Fn::Join" in arn:
        separator, parts = arn["Fn::Join"]
        if all(isinstance(p, str) or p == {"Ref": "AWS::Partition"} for p in parts):
            text = str(separator).join(p if isinstance(p, str) else "aws" for p in parts)
    if text is None:
        return None
    match = re.fullmatch(r"arn:(?:aws[\w-]*|\$\{AWS::Partition\}):iam::aws:policy/(.+)", text)
    return match.group(1) if match else None


def managed_policy_key(arn: Any) -> str:
    """One spelling per managed policy, however the template writes its ARN."""
    name = managed_policy_name(arn)
    if name is not None:
        return f"aws-managed:{name}"
    if isinstance(arn, dict) and set(arn) == {"Ref"}:
        return f"ref:{arn['Ref']}"
    return repr(arn)


def role_of(function: dict[str, Any]) -> str | None:
    """The logical id of an AWS::Lambda::Function's role in the same template, if it is one."""
    role = (function.get("Properties") or {}).get("Role")
    if isinstance(role, dict) and "Fn::GetAtt" in role:
        arg = role["Fn::GetAtt"]
        parts = arg if isinstance(arg, list) else str(arg).split(".", 1)
        return str(parts[0])
    return None


def role_grants(template: Template, role_id: str) -> set[Grant]:
    """What a role in ``template`` is allowed: its inline policies, its managed policies (the
    template's own AWS::IAM::ManagedPolicy, or AWS's listed above), AWS::IAM::Policy resources
    attached to it, and KMS key policies that name it."""
    resources = template.get("Resources") or {}
    role = resources.get(role_id) or {}
    properties = role.get("Properties") or {}
    found: set[Grant] = set()
    for policy in properties.get("Policies") or []:
        if isinstance(policy, dict):
            found |= document_grants(policy.get("PolicyDocument"))
    for arn in properties.get("ManagedPolicyArns") or []:
        name = managed_policy_name(arn)
        if name is not None:
            found |= {(action, "*") for action in AWS_MANAGED_POLICIES.get(name, ())}
        elif isinstance(arn, dict) and set(arn) == {"Ref"}:
            managed = resources.get(arn["Ref"]) or {}
            if managed.get("Type") == "AWS::IAM::ManagedPolicy":
                found |= document_grants((managed.get("Properties") or {}).get("PolicyDocument"))
    for resource in resources.values():
        if not isinstance(resource, dict):
            continue
        rprops = resource.get("Properties") or {}
        if resource.get("Type") == "AWS::IAM::Policy" and role_id in targets(rprops.get("Roles")):
            found |= document_grants(rprops.get("PolicyDocument"))
        if resource.get("Type") == "AWS::IAM::ManagedPolicy" and role_id in targets(
            rprops.get("Roles")
        ):
            found |= document_grants(rprops.get("PolicyDocument"))
    found |= key_policy_grants(template, role_id)
    return found


def key_policy_grants(template: Template, role_id: str) -> set[Grant]:
    """What KMS key policies in ``template`` allow ``role_id`` by name (on that key)."""
    found: set[Grant] = set()
    for key_id, key in (template.get("Resources") or {}).items():
        if not isinstance(key, dict) or key.get("Type") != "AWS::KMS::Key":
            continue
        policy = (key.get("Properties") or {}).get("KeyPolicy") or {}
        for statement in policy.get("Statement", []):
            principal = statement.get("Principal", {})
            if isinstance(principal, dict) and role_id in targets(principal.get("AWS")):
                found |= statement_grants(statement, {"Ref": key_id})
    return found


def _target_matches(granted: str, needed: str) -> bool:
    if granted in ("*", needed):
        return True
    # A need on a nested stack as a whole ("Data") is met by a grant on one of its outputs,
    # and the other way round: the checks cannot see inside an output's ARN.
    return granted.startswith(f"{needed}.Outputs.") or needed.startswith(f"{granted}.Outputs.")


def allows(grants: Iterable[Grant], action: str, target: str) -> bool:
    """Whether ``grants`` allow ``action`` (IAM action names ignore case) on ``target``."""
    wanted = action.lower()
    return any(
        fnmatch.fnmatchcase(wanted, pattern.lower()) and _target_matches(name, target)
        for pattern, name in grants
    )


def missing(grants: set[Grant], needed: Iterable[tuple[str, str]]) -> list[str]:
    """``action on target`` for each need that ``grants`` do not allow, sorted."""
    return sorted({f"{a} on {t}" for a, t in needed if not allows(grants, a, t)})


def functions(template: Template) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, resource in (template.get("Resources") or {}).items():
        if isinstance(resource, dict) and resource.get("Type") == "AWS::Lambda::Function":
            yield name, resource
