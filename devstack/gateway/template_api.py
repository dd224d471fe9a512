"""What the gateway needs from template.yaml: the REST API (authorizers, gateway responses),
its routes, and each function's code, handler and environment."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack.cfn import LOCAL_ACCOUNT_ID, Resolver, load_template, local_resolver
from devstack.paths import REPO_ROOT

# API Gateway's own answers when the template does not customise them.
DEFAULT_RESPONSES: dict[str, tuple[int, str]] = {
    "UNAUTHORIZED": (401, '{"message":"Unauthorized"}'),
    "ACCESS_DENIED": (
        403, '{"message":"User is not authorized to access this resource with an explicit deny"}'
    ),
    "MISSING_AUTHENTICATION_TOKEN": (403, '{"message":"Missing Authentication Token"}'),
    "AUTHORIZER_FAILURE": (500, '{"message":null}'),
    "AUTHORIZER_CONFIGURATION_ERROR": (500, '{"message":null}'),
    "DEFAULT_5XX": (502, '{"message":"Internal server error"}'),
}  # fmt: skip


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    name: str
    code_dir: Path
    module: str  # "app" of Handler "app.lambda_handler"
    attribute: str
    environment: dict[str, str]
    timeout_s: int
    memory_mb: int


@dataclass(frozen=True)
class Authorizer:
    name: str
    function: str  # logical id
    headers: tuple[str, ...]
    context: tuple[str, ...]  # e.g. "identity.sourceIp"
    ttl_s: int


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    function: str
    authorizer: str | None


@dataclass
class RestApi:
    routes: list[Route]
    authorizers: dict[str, Authorizer]
    responses: dict[str, tuple[int, str]]
    functions: dict[str, FunctionSpec]
    stage: str
    region: str
    api_id: str = "local"
    extra: dict[str, Any] = field(default_factory=dict)
    # The preflight answer API Gateway gives by itself when the API declares Cors.
    cors_headers: list[tuple[str, str]] = field(default_factory=list)

    def find(self, method: str, path: str) -> Route | None:
        for route in self.routes:
            if route.path == path and route.method in (method, "ANY"):
                return route
        return None

    def response(self, kind: str) -> tuple[int, str]:
        return self.responses.get(kind) or DEFAULT_RESPONSES[kind]


def _fill_refs(template: dict[str, Any], resolver: Resolver, moto_port: int) -> None:
    """Ref and GetAtt values of the template's resources as the local stack names them, so that
    environment variables resolve (tables, topics, queues, buckets, aliases, functions)."""
    region = resolver.pseudo["AWS::Region"]
    account = LOCAL_ACCOUNT_ID
    for logical_id, resource in template.get("Resources", {}).items():
        kind = resource["Type"]
        props = resource.get("Properties", {})

        def name(prop: str, props: dict[str, Any] = props, default: str = logical_id) -> str:
            return str(resolver.resolve(props.get(prop, default)))

        refs, attrs = resolver.refs, resolver.attrs
        if kind == "AWS::DynamoDB::Table":
            refs[logical_id] = name("TableName")
            attrs[(logical_id, "Arn")] = (
                f"arn:aws:dynamodb:{region}:{account}:table/{refs[logical_id]}"
            )
        elif kind == "AWS::SNS::Topic":
            attrs[(logical_id, "TopicName")] = name("TopicName")
            refs[logical_id] = f"arn:aws:sns:{region}:{account}:{name('TopicName')}"
            attrs[(logical_id, "TopicArn")] = refs[logical_id]
        elif kind == "AWS::SQS::Queue":
            queue = name("QueueName")
            attrs[(logical_id, "QueueName")] = queue
            attrs[(logical_id, "Arn")] = f"arn:aws:sqs:{region}:{account}:{queue}"
            refs[logical_id] = f"http://127.0.0.1:{moto_port}/{account}/{queue}"
        elif kind == "AWS::S3::Bucket":
            refs[logical_id] = name("BucketName")
            attrs[(logical_id, "Arn")] = f"arn:aws:s3:::{refs[logical_id]}"
        elif kind == "AWS::KMS::Alias":
            refs[logical_id] = name("AliasName")
        elif kind in ("AWS::Serverless::Function", "AWS::Serverless::LayerVersion",
                      "AWS::Serverless::Api", "AWS::KMS::Key"):  # fmt: skip
            refs[logical_id] = f"local-{logical_id}"
            attrs[(logical_id, "Arn")] = f"arn:aws:lambda:{region}:{account}:function:{logical_id}"


def _function(
    logical_id: str, resource: dict[str, Any], globals_: dict[str, Any], resolver: Resolver
) -> FunctionSpec:
    props = resource.get("Properties", {})
    env: dict[str, Any] = dict(globals_.get("Environment", {}).get("Variables", {}))
    env.update(props.get("Environment", {}).get("Variables", {}))
    resolved = {k: resolver.resolve(v) for k, v in env.items()}
    module, attribute = str(props["Handler"]).rsplit(".", 1)
    return FunctionSpec(
        logical_id=logical_id,
        name=str(resolver.resolve(props.get("FunctionName", logical_id))),
        code_dir=REPO_ROOT / str(props["CodeUri"]),
        module=module,
        attribute=attribute,
        environment={k: json.dumps(v) if isinstance(v, (dict, list)) else str(v)
                     for k, v in resolved.items()},
        timeout_s=int(props.get("Timeout", globals_.get("Timeout", 3))),
        memory_mb=int(props.get("MemorySize", globals_.get("MemorySize", 128))),
    )  # fmt: skip


def load_rest_api(stage: str, region: str, moto_port: int, path: Path | None = None) -> RestApi:
    template = load_template(path) if path else load_template()
    resolver = local_resolver(template, stage, region)
    _fill_refs(template, resolver, moto_port)
    resources: dict[str, Any] = template.get("Resources", {})
    globals_ = template.get("Globals", {}).get("Function", {})
    functions = {
        logical_id: _function(logical_id, resource, globals_, resolver)
        for logical_id, resource in resources.items()
        if resource["Type"] == "AWS::Serverless::Function"
    }
    authorizers: dict[str, Authorizer] = {}
    responses: dict[str, tuple[int, str]] = {}
    default_authorizer: dict[str, str | None] = {}
    cors_headers: list[tuple[str, str]] = []
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::Serverless::Api":
            continue
        props = resource.get("Properties", {})
        auth = props.get("Auth", {})
        default_authorizer[logical_id] = auth.get("DefaultAuthorizer")
        for name, spec in auth.get("Authorizers", {}).items():
            target = spec["FunctionArn"]["Fn::GetAtt"][0]
            identity = spec.get("Identity", {})
            authorizers[name] = Authorizer(
                name=name,
                function=target,
                headers=tuple(identity.get("Headers", ())),
                context=tuple(identity.get("Context", ())),
                ttl_s=int(identity.get("ReauthorizeEvery", 300)),
            )
        for kind, spec in props.get("GatewayResponses", {}).items():
            default_status, default_body = DEFAULT_RESPONSES.get(kind, (500, "{}"))
            templates = spec.get("ResponseTemplates", {})
            responses[kind] = (
                int(spec.get("StatusCode", default_status)),
                templates.get("application/json", default_body),
            )
        cors_headers = _cors_headers(props.get("Cors"))
    routes: list[Route] = []
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        for event in resource.get("Properties", {}).get("Events", {}).values():
            if event.get("Type") != "Api":
                continue
            props = event["Properties"]
            api = (
                props.get("RestApiId", {}).get("Ref")
                if isinstance(props.get("RestApiId"), dict)
                else None
            )
            chosen = props.get("Auth", {}).get("Authorizer", default_authorizer.get(api or ""))
            routes.append(
                Route(
                    method=str(props["Method"]).upper(),
                    path=str(props["Path"]),
                    function=logical_id,
                    authorizer=None if chosen in (None, "NONE") else chosen,
                )
            )  # fmt: skip
    return RestApi(
        routes, authorizers, responses, functions, stage, region, cors_headers=cors_headers
    )


def _cors_headers(cors: Any) -> list[tuple[str, str]]:
    """SAM's Cors property as the preflight's headers; its values are quoted literals."""
    if not cors:
        return []
    if isinstance(cors, str):
        cors = {"AllowOrigin": cors}
    names = {
        "AllowOrigin": "Access-Control-Allow-Origin",
        "AllowHeaders": "Access-Control-Allow-Headers",
        "AllowMethods": "Access-Control-Allow-Methods",
        "MaxAge": "Access-Control-Max-Age",
    }
    return [(names[key], str(value).strip("'")) for key, value in cors.items() if key in names]
