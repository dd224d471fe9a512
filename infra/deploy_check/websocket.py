"""A WebSocket API's deployment deploys its routes, and again whenever they change.

An AWS::ApiGatewayV2::Deployment snapshots the routes that exist when it is created: it must
DependsOn every route and route response of its API (else it may be created before them), and
CloudFormation makes a new one only when the resource is replaced. Its Description is updated in
place ("Update requires: No interruption") and takes no new snapshot, so the logical id itself
must change with the routes: it ends with :func:`routes_digest` of its API. A stage with
``AutoDeploy: true`` needs no Deployment resource (API Gateway deploys every change itself); a
stage with neither serves nothing.
``python -m infra.deploy_check.websocket`` prints the id each deployment must have.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterator
from typing import Any

from infra.deploy_check.checks import Failure, Stack, Template, check, where
from infra.deploy_check.policy import targets

DEPLOYMENT = "AWS::ApiGatewayV2::Deployment"
# What a deployment snapshots: the routes, their responses and the integrations they call.
SNAPSHOT_TYPES = (
    "AWS::ApiGatewayV2::Route",
    "AWS::ApiGatewayV2::RouteResponse",
    "AWS::ApiGatewayV2::Integration",
    "AWS::ApiGatewayV2::IntegrationResponse",
)
DIGEST_LENGTH = 10


def _api(resource: dict[str, Any]) -> str | None:
    found = targets((resource.get("Properties") or {}).get("ApiId"))
    return sorted(found)[0] if len(found) == 1 else None


def api_resources(template: Template, api: str, types: tuple[str, ...]) -> dict[str, Any]:
    return {
        logical_id: resource
        for logical_id, resource in (template.get("Resources") or {}).items()
        if isinstance(resource, dict) and resource.get("Type") in types and _api(resource) == api
    }


def routes_digest(template: Template, api: str) -> str:
    """A hash of the API's routes, route responses and integrations as written."""
    snapshot = {
        logical_id: {"Type": r["Type"], "Properties": r.get("Properties")}
        for logical_id, r in sorted(api_resources(template, api, SNAPSHOT_TYPES).items())
    }
    text = json.dumps(snapshot, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:DIGEST_LENGTH]


def _depends_on(resource: dict[str, Any]) -> set[str]:
    value = resource.get("DependsOn") or []
    return {value} if isinstance(value, str) else {str(v) for v in value}


def _stem(logical_id: str) -> str:
    """The deployment's id without a trailing digest (hex of DIGEST_LENGTH)."""
    tail = logical_id[-DIGEST_LENGTH:]
    if len(logical_id) > DIGEST_LENGTH and all(c in "0123456789abcdef" for c in tail):
        return logical_id[:-DIGEST_LENGTH]
    return logical_id


@check(
    "websocket-deployment",
    "each WebSocket deployment DependsOn every route and route response of its API and its "
    "logical id carries a hash of them (a route change makes a new deployment)",
)
def websocket_deployment(stack: Stack) -> Iterator[Failure]:
    for key, template in [("", stack.template), *stack.nested.items()]:
        for logical_id, resource in (template.get("Resources") or {}).items():
            if not isinstance(resource, dict) or resource.get("Type") != DEPLOYMENT:
                continue
            api = _api(resource)
            if api is None:
                yield Failure(where(key, logical_id), "its ApiId names no API of this template")
                continue
            routes = api_resources(
                template, api, ("AWS::ApiGatewayV2::Route", "AWS::ApiGatewayV2::RouteResponse")
            )
            lacking = sorted(set(routes) - _depends_on(resource))
            if lacking:
                yield Failure(
                    where(key, logical_id),
                    f"does not DependsOn {', '.join(lacking)}: it can be created before them",
                )
            digest = routes_digest(template, api)
            if not logical_id.endswith(digest):
                yield Failure(
                    where(key, logical_id),
                    f"its logical id does not carry the hash of {api}'s routes: route changes "
                    f"are never deployed (rename it {_stem(logical_id)}{digest} and point the "
                    "stage's DeploymentId at it)",
                )


@check(
    "websocket-stage",
    "each WebSocket API stage is deployed: AutoDeploy, or a DeploymentId of a deployment",
)
def websocket_stage(stack: Stack) -> Iterator[Failure]:
    for key, template in [("", stack.template), *stack.nested.items()]:
        resources = template.get("Resources") or {}
        for logical_id, resource in resources.items():
            if not isinstance(resource, dict) or resource.get("Type") != "AWS::ApiGatewayV2::Stage":
                continue
            properties = resource.get("Properties") or {}
            api = resources.get(_api(resource) or "") or {}
            if (api.get("Properties") or {}).get("ProtocolType") != "WEBSOCKET":
                continue
            if properties.get("AutoDeploy") is True:
                continue
            deployment = targets(properties.get("DeploymentId"))
            if not any((resources.get(d) or {}).get("Type") == DEPLOYMENT for d in deployment):
                yield Failure(
                    where(key, logical_id),
                    "neither AutoDeploy nor a DeploymentId of a deployment here: its routes are "
                    "never deployed",
                )


def main() -> int:
    """Print the logical id each WebSocket deployment of template.yaml must have."""
    from devstack.cfn import load_template

    template = load_template()
    for logical_id, resource in (template.get("Resources") or {}).items():
        if isinstance(resource, dict) and resource.get("Type") == DEPLOYMENT:
            api = _api(resource)
            if api is not None:
                print(f"{logical_id} -> {_stem(logical_id)}{routes_digest(template, api)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
