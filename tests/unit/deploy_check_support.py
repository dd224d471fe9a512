"""Small stacks for the deploy checks' unit tests: templates written as YAML (short tags, as the
real ones are), loaded as the runner loads them."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import yaml

from devstack.cfn import load_template
from devstack.paths import REPO_ROOT
from infra.deploy_check.checks import REGISTRY, Failure, Stack, run_check
from infra.deploy_check.runner import load_checks


def parse(text: str, tmp_path: Path, name: str = "t.yaml") -> dict[str, Any]:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return load_template(path)


def stack(
    template: str = "Resources: {}",
    *,
    transformed: str | None = None,
    nested: dict[str, str] | None = None,
    tmp_path: Path,
    code_root: Path = REPO_ROOT,
) -> Stack:
    """A Stack of YAML texts; ``code_root`` is where CodeUri paths are read (the repository's
    functions unless a test writes its own)."""
    built = Stack(
        template=parse(template, tmp_path, "template.yaml"),
        transformed=parse(transformed, tmp_path, "transformed.yaml") if transformed else None,
        files={"template": str(code_root / "template.yaml")},
    )
    for key, text in (nested or {}).items():
        built.nested[key] = parse(text, tmp_path, f"{key}.yaml")
        built.files[key] = str(tmp_path / f"{key}.yaml")
    return built


def failures(name: str, of: Stack) -> list[Failure]:
    load_checks()
    return run_check(REGISTRY[name], of)


def dump(value: Any) -> str:
    return yaml.safe_dump(value, sort_keys=False)
