"""SAM's translator on a template, as `sam validate` runs it, offline.

Run with the SAM CLI's own interpreter (.tools/sam/bin/python: samtranslator and samcli pin
their own boto3, so they are not in the app's venv)::

    .tools/sam/bin/python infra/deploy_check/translate.py template.yaml out.json

Writes the transformed CloudFormation template as JSON; on an invalid template prints SAM's
message on stderr and exits 2. Managed policy names resolve from samtranslator's bundled map
(no IAM call): the loader given to the validator has nothing to add.

This file imports nothing from the repository: it runs outside the app's venv.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any


class _NoManagedPolicies:
    """`sam validate` asks IAM for managed policies the bundled map lacks; offline, none."""

    def load(self) -> dict[str, str]:
        return {}


def translate(source: Path) -> dict[str, Any]:
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("SAM_CLI_TELEMETRY", "0")
    # The SAM CLI's venv has them; mypy runs in the app's, which does not.
    from samcli.lib.translate.sam_template_validator import (  # type: ignore[import-not-found]
        SamTemplateValidator,
    )
    from samcli.yamlhelper import yaml_parse  # type: ignore[import-not-found]

    template = yaml_parse(source.read_text())
    validator = SamTemplateValidator(
        template, _NoManagedPolicies(), region=os.environ["AWS_DEFAULT_REGION"]
    )
    result: dict[str, Any] = yaml_parse(validator.get_translated_template_if_valid())
    return result


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: translate.py TEMPLATE OUT.json", file=sys.stderr)
        return 64
    try:
        transformed = translate(Path(argv[1]))
    except Exception as error:  # InvalidSamDocumentException and whatever SAM raises
        print(f"{type(error).__name__}: {error}", file=sys.stderr)
        return 2
    Path(argv[2]).write_text(json.dumps(transformed, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
