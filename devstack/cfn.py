"""Reading template.yaml the way CloudFormation does, enough for the local stack.

A YAML loader that turns the short tags (!Ref, !Sub, !GetAtt, !If, ...) into their long JSON
forms, and a resolver that evaluates intrinsic functions for one stage, given the physical
names and attributes of resources already created. The local gateway reads the same template
with the same code.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from devstack.paths import REPO_ROOT

TEMPLATE = REPO_ROOT / "template.yaml"
# moto's default account; any 12 digits would do locally.
LOCAL_ACCOUNT_ID = "123456789012"


class _Loader(yaml.SafeLoader):
    pass


def _construct_tag(loader: _Loader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if tag_suffix in ("Ref", "Condition"):
        return {tag_suffix: value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{tag_suffix}": value}


_Loader.add_multi_constructor("!", _construct_tag)


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    with path.open() as handle:
        template = yaml.load(handle, Loader=_Loader)
    if not isinstance(template, dict):
        raise ValueError(f"{path} is not a CloudFormation template")
    return template


class _NoValue:
    """AWS::NoValue: the property disappears."""


NO_VALUE = _NoValue()
_SUB_VAR = re.compile(r"\$\{([^}!]+)\}")


@dataclass
class Resolver:
    """Evaluates intrinsic functions for one stage.

    ``refs`` and ``attrs`` hold what created resources return for Ref and Fn::GetAtt; a
    reference to a resource not created yet is an error (create in dependency order)."""

    template: Mapping[str, Any]
    parameters: Mapping[str, str]
    pseudo: Mapping[str, str]
    refs: dict[str, Any] = field(default_factory=dict)
    attrs: dict[tuple[str, str], Any] = field(default_factory=dict)

    def parameter(self, name: str) -> Any:
        if name in self.parameters:
            return self.parameters[name]
        spec = self.template.get("Parameters", {}).get(name)
        if spec is None or "Default" not in spec:
            raise KeyError(f"parameter {name} has no value")
        return spec["Default"]

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.template["Conditions"][name]))

    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.template.get("Parameters", {}) or name in self.parameters:
            return self.parameter(name)
        if name in self.refs:
            return self.refs[name]
        raise KeyError(f"Ref {name}: not a parameter or a created resource")

    def get_att(self, logical_id: str, attribute: str) -> Any:
        try:
            return self.attrs[(logical_id, attribute)]
        except KeyError:
            raise KeyError(f"GetAtt {logical_id}.{attribute}: not known") from None

    def sub(self, text: str, variables: Mapping[str, Any]) -> str:
        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return str(self.resolve(variables[name]))
            if "." in name:
                return str(self.get_att(*name.split(".", 1)))
            return str(self.ref(name))

        return _SUB_VAR.sub(replace, text)

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            items = [self.resolve(item) for item in value]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            function = self._functions().get(key)
            if function is not None:
                return function(arg)
        resolved = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}

    def _functions(self) -> dict[str, Callable[[Any], Any]]:
        return {
            "Ref": lambda a: self.ref(a),
            "Condition": lambda a: self.condition(a),
            "Fn::GetAtt": lambda a: self.get_att(*self.resolve(a)),
            "Fn::Sub": lambda a: self.sub(a, {}) if isinstance(a, str) else self.sub(a[0], a[1]),
            "Fn::If": lambda a: self.resolve(a[1] if self.condition(a[0]) else a[2]),
            "Fn::Equals": lambda a: self.resolve(a[0]) == self.resolve(a[1]),
            "Fn::Not": lambda a: not self.resolve(a[0]),
            "Fn::And": lambda a: all(self.resolve(x) for x in a),
            "Fn::Or": lambda a: any(self.resolve(x) for x in a),
            "Fn::Join": lambda a: str(a[0]).join(str(x) for x in self.resolve(a[1])),
            "Fn::Select": lambda a: self.resolve(a[1])[int(self.resolve(a[0]))],
            "Fn::Split": lambda a: str(self.resolve(a[1])).split(a[0]),
            "Fn::Base64": lambda a: base64.b64encode(str(self.resolve(a)).encode()).decode(),
            "Fn::GetAZs": lambda a: [f"{self.pseudo['AWS::Region']}{z}" for z in "abc"],
            "Fn::FindInMap": lambda a: self.template["Mappings"][self.resolve(a[0])][
                self.resolve(a[1])
            ][self.resolve(a[2])],
        }


def local_resolver(template: Mapping[str, Any], stage: str, region: str) -> Resolver:
    return Resolver(
        template=template,
        parameters={"Stage": stage},
        pseudo={
            "AWS::StackName": f"bourse-{stage}",
            "AWS::Region": region,
            "AWS::AccountId": LOCAL_ACCOUNT_ID,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        },
    )


def references(value: Any) -> set[str]:
    """Logical ids and parameter names (not pseudo parameters) a piece of the template uses."""
    found: set[str] = set()
    if isinstance(value, list):
        for item in value:
            found |= references(item)
    elif isinstance(value, dict):
        for key, arg in value.items():
            if key == "Ref" and isinstance(arg, str):
                found.add(arg)
            elif key == "Fn::GetAtt":
                found.add(arg[0] if isinstance(arg, list) else str(arg).split(".")[0])
            elif key == "Fn::Sub":
                text = arg if isinstance(arg, str) else arg[0]
                found |= {name.split(".")[0] for name in _SUB_VAR.findall(text)}
                if isinstance(arg, list):
                    found |= references(arg[1])
            else:
                found |= references(arg)
    return {name for name in found if not name.startswith("AWS::")}
