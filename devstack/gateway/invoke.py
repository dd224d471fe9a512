"""``python -m devstack invoke <FunctionLogicalId> -e events/<file>.json``: the Docker-free twin
of ``sam local invoke``. The function runs in this process with its environment from
template.yaml (variables already set in the caller's environment win, as with
``--env-vars``); the result is printed as JSON on stdout, logs go to stderr."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from bourse.settings import Settings
from devstack.gateway.runtime import apply_environment, context_for, load_handler
from devstack.gateway.template_api import load_rest_api


def invoke(settings: Settings, logical_id: str, event_path: Path | None) -> Any:
    api = load_rest_api(settings.stage, settings.region, settings.moto_port)
    spec = api.functions.get(logical_id)
    if spec is None:
        known = ", ".join(sorted(api.functions)) or "none"
        raise KeyError(f"{logical_id} is not a function of template.yaml (functions: {known})")
    event = json.loads(event_path.read_text()) if event_path else {}
    apply_environment(spec.environment, dict(os.environ))
    # Powertools Metrics and Logger print to stdout; the result alone goes there.
    with contextlib.redirect_stdout(sys.stderr):
        handler = load_handler(spec)
        return handler(event, context_for(spec, settings.region))
