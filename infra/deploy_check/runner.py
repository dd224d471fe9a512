"""Loads the templates, runs SAM's translator and every registered check, prints the verdict.

    python -m infra.deploy_check [--root DIR] [--list]

Ends with ``deploy-check: <N> checks, <F> failures`` (N checks run, F failures found among
them) and exits 1 when F > 0.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from devstack.cfn import load_template
from infra.deploy_check.checks import REGISTRY, Check, Failure, Stack, Template, run_check

REPO_ROOT = Path(__file__).resolve().parents[2]
SAM_PYTHON = Path(".tools") / "sam" / "bin" / "python"
TRANSLATE = Path(__file__).resolve().with_name("translate.py")
# The package's own modules that hold no checks (importing them all is harmless anyway).
_NOT_CHECKS = {"__main__", "runner", "translate"}
# sam validate is offline, but botocore wants a region and credentials to exist.
OFFLINE_ENV = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "SAM_CLI_TELEMETRY": "0",
}


def load_checks() -> dict[str, Check]:
    """Import every module of this package, which registers its checks."""
    package = __name__.rsplit(".", 1)[0]
    for info in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if info.name not in _NOT_CHECKS:
            importlib.import_module(f"{package}.{info.name}")
    return REGISTRY


class TranslateError(Exception):
    pass


def translate(template: Path, out: Path) -> Template:
    """SAM's translator on ``template`` (with the SAM CLI's interpreter of this repository,
    whichever tree the template is in), written to ``out``."""
    python = REPO_ROOT / SAM_PYTHON
    if not python.exists():
        raise TranslateError(f"{python} is missing: run `make tools`")
    result = subprocess.run(
        [str(python), str(TRANSLATE), str(template), str(out)],
        cwd=template.parent, env={**os.environ, **OFFLINE_ENV}, capture_output=True, text=True,
        timeout=300, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise TranslateError(result.stderr.strip().splitlines()[-1] if result.stderr else "?")
    transformed: Template = json.loads(out.read_text())
    return transformed


def nested_locations(template: Template) -> dict[str, str]:
    """Nested stacks by logical id -> their template's path as written (local files only)."""
    found: dict[str, str] = {}
    for logical_id, resource in (template.get("Resources") or {}).items():
        if not isinstance(resource, dict):
            continue
        properties: dict[str, Any] = resource.get("Properties") or {}
        if resource.get("Type") == "AWS::Serverless::Application":
            location = properties.get("Location")
        elif resource.get("Type") == "AWS::CloudFormation::Stack":
            location = properties.get("TemplateURL")
        else:
            continue
        if isinstance(location, str) and "://" not in location:
            found[logical_id] = location
    return found


@contextmanager
def load_stack(root: Path = REPO_ROOT, *, with_sam: bool = True) -> Iterator[Stack]:
    """The Stack of ``root``/template.yaml; the transformed template lives in a temporary
    directory for as long as the context (checks may run tools on ``files``)."""
    template_path = root / "template.yaml"
    template = load_template(template_path)
    stack = Stack(template=template, files={"template": str(template_path)})
    for logical_id, location in nested_locations(template).items():
        path = (template_path.parent / location).resolve()
        stack.nested[logical_id] = load_template(path)
        stack.files[logical_id] = str(path)
    with tempfile.TemporaryDirectory(prefix="deploy-check-") as tmp:
        if with_sam:
            # Beside the template's folders, so that tools find the nested stacks' files
            # relative to it as they do relative to template.yaml.
            for location in nested_locations(template).values():
                first = Path(location).parts[0]
                link = Path(tmp) / first
                if first not in (".", "..") and not link.exists():
                    link.symlink_to(template_path.parent / first)
            out = Path(tmp) / "template.transformed.json"
            try:
                stack.transformed = translate(template_path, out)
                stack.files["transformed"] = str(out)
            except (TranslateError, subprocess.TimeoutExpired) as error:
                stack.extra["translate_error"] = str(error)
        yield stack


def run(stack: Stack, checks: dict[str, Check]) -> list[tuple[Check, list[Failure]]]:
    results: list[tuple[Check, list[Failure]]] = []
    for name in sorted(checks):
        entry = checks[name]
        failures = run_check(entry, stack)
        if entry.needs_transformed and stack.transformed is None:
            reason = stack.extra.get("translate_error", "not run")
            failures = [Failure("template.yaml", f"SAM's translator failed: {reason}")]
        results.append((entry, failures))
    return results


def report(results: list[tuple[Check, list[Failure]]]) -> tuple[str, int]:
    lines: list[str] = []
    total = 0
    for entry, failures in results:
        total += len(failures)
        mark = "ok  " if not failures else "FAIL"
        lines.append(f"{mark} {entry.name}: {entry.description}")
        lines.extend(f"       {failure.where}: {failure.message}" for failure in failures)
    lines.append(f"deploy-check: {len(results)} checks, {total} failures")
    return "\n".join(lines), total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.deploy_check", description=__doc__)
    parser.add_argument("--root", type=Path, default=REPO_ROOT, help="the repository")
    parser.add_argument("--list", action="store_true", help="list the checks and exit")
    parser.add_argument("checks", nargs="*", help="run only these checks")
    args = parser.parse_args(argv)
    checks = load_checks()
    if args.list:
        for name in sorted(checks):
            print(f"{name}: {checks[name].description}")
        return 0
    unknown = sorted(set(args.checks) - set(checks))
    if unknown:
        parser.error(f"unknown checks: {', '.join(unknown)}")
    selected = {n: c for n, c in checks.items() if not args.checks or n in args.checks}
    with load_stack(args.root.resolve()) as stack:
        text, failures = report(run(stack, selected))
    print(text)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
