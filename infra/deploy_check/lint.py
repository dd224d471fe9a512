"""cfn-lint on what is deployed: SAM's output for template.yaml, and every nested stack.

`make validate` lints template.yaml as written (cfn-lint knows SAM's resources, but not the
roles, mappings and permissions SAM generates); this lints the CloudFormation SAM produces.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

from infra.deploy_check.checks import Failure, Stack, check

REPO_ROOT = Path(__file__).resolve().parents[2]
CFN_LINT = REPO_ROOT / ".tools" / "sam" / "bin" / "cfn-lint"
# Rules that SAM's output breaks by construction, and why they do not apply.
TRANSFORMED_IGNORES = {
    # Nested stacks' TemplateURL are local paths until `sam deploy` uploads them.
    "W3002",
    # The translator resolves Stage in the layer's name to its default (a literal Fn::Sub);
    # CloudFormation runs the transform with the real parameters.
    "W1020",
}


def cfn_lint(paths: list[Path], ignore: set[str] | None = None) -> list[str]:
    """cfn-lint's findings (``file:line:col:...:rule:message``) for these templates."""
    if not CFN_LINT.exists():
        return [f"{CFN_LINT} is missing: run `make tools`"]
    command = [str(CFN_LINT), "--format", "parseable"]
    if ignore:
        command += ["--ignore-checks", *sorted(ignore)]
    result = subprocess.run(
        [*command, "--", *map(str, paths)],
        capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "AWS_DEFAULT_REGION": "us-east-1"},
    )  # fmt: skip
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    # A template cfn-lint could not read, a nested file it did not find: logged, not printed.
    lines += [line for line in result.stderr.splitlines() if " - ERROR - " in line]
    if result.returncode != 0 and not lines:
        lines.append(f"cfn-lint exited {result.returncode}: {result.stderr.strip()}")
    return lines


def _failures(labels: dict[str, str], lines: list[str]) -> Iterator[Failure]:
    for line in lines:
        path, _, rest = line.partition(":")
        if rest and path in labels:
            yield Failure(f"{labels[path]}:{rest.split(':', 1)[0]}", rest.split(":", 4)[-1])
        else:
            yield Failure("cfn-lint", line)


@check(
    "cfn-lint",
    "cfn-lint finds nothing in SAM's output for template.yaml nor in any nested stack",
    needs_transformed=True,
)
def lint(stack: Stack) -> Iterator[Failure]:
    transformed = stack.files.get("transformed")
    if transformed is None:
        yield Failure("template.yaml", "SAM's output was not written to a file")
    else:
        labels = {transformed: "template.yaml (transformed)"}
        yield from _failures(labels, cfn_lint([Path(transformed)], TRANSFORMED_IGNORES))
    nested: dict[str, str] = {}
    for key in sorted(stack.nested):
        path = stack.files.get(key)
        if path is None:
            yield Failure(key, "its template's file is not known")
        else:
            nested[path] = f"{key} ({os.path.relpath(path, REPO_ROOT)})"
    if nested:
        yield from _failures(nested, cfn_lint([Path(p) for p in nested]))
