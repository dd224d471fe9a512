"""docs/openapi.yaml is a valid OpenAPI 3.0 document and describes exactly the routes
template.yaml declares (method + path), so neither can drift from the other."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from openapi_spec_validator import OpenAPIV30SpecValidator

from devstack.gateway.template_api import load_rest_api

pytestmark = pytest.mark.unit

SPEC = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


def _spec() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(SPEC.read_text())
    return loaded


def spec_operations(spec: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method in item
        if method in METHODS
    }


def template_operations() -> set[tuple[str, str]]:
    api = load_rest_api("local", "us-east-1", 4566)
    # The trading API's; the admin API (AWS_IAM) is described in docs/admin-api.md.
    return {(route.method, route.path) for route in api.routes if route.api == "RestApi"}


def test_spec_is_valid_openapi_30() -> None:
    spec = _spec()
    assert str(spec["openapi"]).startswith("3.0.")
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in OpenAPIV30SpecValidator(spec).iter_errors()]  # fmt: skip
    assert not errors, "docs/openapi.yaml is not valid OpenAPI 3.0:\n" + "\n".join(errors)


def test_spec_and_template_declare_the_same_operations() -> None:
    in_spec = spec_operations(_spec())
    in_template = template_operations()
    only_spec = sorted(in_spec - in_template)
    only_template = sorted(in_template - in_spec)
    report = []
    if only_spec:
        report.append("in docs/openapi.yaml, not routed by template.yaml: "
                      + ", ".join(f"{m} {p}" for m, p in only_spec))  # fmt: skip
    if only_template:
        report.append("routed by template.yaml, not in docs/openapi.yaml: "
                      + ", ".join(f"{m} {p}" for m, p in only_template))  # fmt: skip
    assert not report, "\n".join(report)


def test_signed_operations_declare_the_signing_parameters() -> None:
    """Every operation behind the API key that is SIGNED on Binance takes timestamp,
    recvWindow and signature; userDataStream is API key only (USER_STREAM)."""
    spec = _spec()
    missing = []
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method not in METHODS or not operation.get("security"):
                continue
            refs = {p.get("$ref", "").rsplit("/", 1)[-1] for p in operation.get("parameters", [])}
            wanted = set() if path == "/api/v3/userDataStream" else {
                "timestamp", "recvWindow", "signature"
            }  # fmt: skip
            if not wanted <= refs:
                missing.append(f"{method.upper()} {path}: {sorted(wanted - refs)}")
    assert not missing, "\n".join(missing)


def test_every_operation_answers_errors_in_binance_shape() -> None:
    spec = _spec()
    wrong = []
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            responses = operation["responses"]
            for status in ("4XX", "418", "429", "5XX"):
                if status not in responses:
                    wrong.append(f"{method.upper()} {path}: no {status}")
            for status in ("418", "429"):
                ref = responses.get(status, {}).get("$ref", "")
                target = spec["components"]["responses"].get(ref.rsplit("/", 1)[-1], {})
                if "Retry-After" not in target.get("headers", {}):
                    wrong.append(f"{method.upper()} {path}: {status} without Retry-After")
    assert not wrong, "\n".join(wrong)
