"""No fixed global names that make a second attempt fail.

S3 bucket names are global: a named bucket must carry the account, the region and the stage
(``bourse-${Stage}-archive-${AWS::AccountId}-${AWS::Region}``), or have no name at all, on every
stage that deploys to AWS (an ``Fn::If`` on ``Stage=local`` may keep the local stack's names).
A retained resource with a fixed name (``DeletionPolicy: Retain``) outlives a failed first
creation and the second attempt finds its name taken: a named bucket or ECR repository must be
``RetainExceptOnCreate`` (kept on stack deletion, removed when the creation that made it is
rolled back), or have no name.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from infra.deploy_check.checks import Failure, Stack, check, where

NAME_PROPERTIES = {
    "AWS::S3::Bucket": "BucketName",
    "AWS::ECR::Repository": "RepositoryName",
}
BUCKET_NAME_PARTS = ("AWS::AccountId", "AWS::Region", "Stage")


def name_parts(value: Any) -> set[str]:
    """The parameters and pseudo parameters a name is built from."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, arg in value.items():
            if key == "Ref" and isinstance(arg, str):
                found.add(arg)
            elif key == "Fn::Sub":
                text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
                for name in re.findall(r"\$\{([^}!]+)\}", text):
                    found |= name_parts(variables[name]) if name in variables else {name}
            else:
                found |= name_parts(arg)
    elif isinstance(value, list):
        for item in value:
            found |= name_parts(item)
    return found


def _condition(template: dict[str, Any], value: Any, parameters: dict[str, Any]) -> bool | None:
    """A condition's value for these parameters (None when it cannot be told offline)."""
    if isinstance(value, bool):
        return value
    if not isinstance(value, dict) or len(value) != 1:
        return None
    ((key, arg),) = value.items()
    if key == "Condition":
        return _condition(template, (template.get("Conditions") or {}).get(arg), parameters)
    if key == "Fn::Not":
        inner = _condition(template, arg[0], parameters)
        return None if inner is None else not inner
    if key in ("Fn::And", "Fn::Or"):
        values = [_condition(template, item, parameters) for item in arg]
        if None in values:
            return None
        return all(values) if key == "Fn::And" else any(values)
    if key == "Fn::Equals":
        left, right = (_scalar(item, parameters) for item in arg)
        return None if left is None or right is None else left == right
    return None


def _scalar(value: Any, parameters: dict[str, Any]) -> str | None:
    if isinstance(value, (str, int, float)):
        return str(value)
    if isinstance(value, dict) and set(value) == {"Ref"}:
        found = parameters.get(value["Ref"])
        return None if found is None else str(found)
    return None


def resolve_ifs(template: dict[str, Any], value: Any, parameters: dict[str, Any]) -> list[Any]:
    """The values ``value`` can take with these parameters: an Fn::If whose condition is known
    takes its branch, one that is not takes either."""
    if isinstance(value, dict) and isinstance(value.get("Fn::If"), list):
        name, yes, no = value["Fn::If"]
        known = _condition(template, {"Condition": name}, parameters)
        chosen = [yes, no] if known is None else [yes if known else no]
        return [v for branch in chosen for v in resolve_ifs(template, branch, parameters)]
    return [value]


def aws_stages(template: dict[str, Any]) -> list[dict[str, Any]]:
    """Parameter sets of the stages that deploy to AWS: each allowed Stage but ``local`` (the
    local stack, which never meets CloudFormation), the other parameters at their defaults."""
    declared = template.get("Parameters") or {}
    defaults = {name: spec.get("Default") for name, spec in declared.items() if "Default" in spec}
    stages = [s for s in (declared.get("Stage") or {}).get("AllowedValues", []) if s != "local"]
    if not stages:
        return [defaults]
    return [{**defaults, "Stage": stage} for stage in stages]


def _deletion_policy(resource: dict[str, Any]) -> str:
    return str(resource.get("DeletionPolicy", "Delete"))


@check(
    "fixed-names",
    "bucket names carry account, region and stage; no retained bucket or repository has a "
    "fixed name that a failed first creation leaves behind",
)
def fixed_names(stack: Stack) -> Iterator[Failure]:
    for key, template in [("", stack.template), *stack.nested.items()]:
        for logical_id, resource in (template.get("Resources") or {}).items():
            if not isinstance(resource, dict) or resource.get("Type") not in NAME_PROPERTIES:
                continue
            name = (resource.get("Properties") or {}).get(NAME_PROPERTIES[resource["Type"]])
            if name is None:
                continue
            label = where(key, logical_id)
            if resource["Type"] == "AWS::S3::Bucket":
                names = [
                    built
                    for parameters in aws_stages(template)
                    for built in resolve_ifs(template, name, parameters)
                ]
                lacking = [
                    p for p in BUCKET_NAME_PARTS if any(p not in name_parts(n) for n in names)
                ]
                if lacking:
                    yield Failure(
                        label, f"bucket name without {', '.join(lacking)}: it may exist already"
                    )
            if _deletion_policy(resource) == "Retain":
                yield Failure(
                    label,
                    "a fixed name with DeletionPolicy Retain: a failed first creation leaves it "
                    "behind and the next attempt collides (use RetainExceptOnCreate)",
                )
