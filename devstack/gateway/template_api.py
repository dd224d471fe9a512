"""What the gateway needs from template.yaml: the REST APIs (authorizers, gateway responses,
CORS), their routes, and each function's code, handler and environment.

Several ``AWS::Serverless::Api`` are served on one port (the trading API and the admin API):
each route knows its API, and each API keeps its own stage, gateway responses and CORS. Paths
may have parameters (``/admin/markets/{symbol}``, greedy ``{proxy+}``); as on API Gateway a
literal segment wins over a parameter."""

from __future__ import annotations

import json
import re
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
    "INVALID_SIGNATURE": (403, '{"message":null}'),  # with the reason, devstack/gateway/sigv4
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


IAM = "AWS_IAM"  # Route.authorizer of a route behind SigV4 (devstack/gateway/sigv4.py)
_PARAM = re.compile(r"\{([A-Za-z0-9_.-]+?)(\+?)\}")


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # as declared: /admin/markets/{symbol}
    function: str
    authorizer: str | None  # an authorizer's name, IAM, or None
    api: str = "RestApi"  # the AWS::Serverless::Api's logical id

    def match(self, path: str) -> dict[str, str] | None:
        """The path parameters (still percent-encoded) when ``path`` is this route's."""
        if "{" not in self.path:
            return {} if path == self.path else None
        names: list[str] = []
        parts: list[str] = []
        for segment in self.path.split("/"):
            param = _PARAM.fullmatch(segment)
            if param is None:
                parts.append(re.escape(segment))
            else:
                names.append(param.group(1))
                parts.append("(.+)" if param.group(2) else "([^/]+)")
        matched = re.fullmatch("/".join(parts), path)
        return None if matched is None else dict(zip(names, matched.groups(), strict=True))

    @property
    def specificity(self) -> tuple[int, int]:
        """Literal segments first (API Gateway prefers /a/b to /a/{x}), then fewer params."""
        segments = self.path.strip("/").split("/")
        return (-sum("{" not in s for s in segments), sum("{" in s for s in segments))


@dataclass(frozen=True)
class ApiSpec:
    """One REST API of the template: its stage, id and own gateway responses and CORS."""

    logical_id: str
    stage: str
    api_id: str
    responses: dict[str, tuple[int, str]] = field(default_factory=dict)
    cors_headers: list[tuple[str, str]] = field(default_factory=list)

    def response(self, kind: str) -> tuple[int, str]:
        return self.responses.get(kind) or DEFAULT_RESPONSES[kind]


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
    # Every API by logical id; ``responses``, ``cors_headers``, ``stage`` and ``api_id`` above
    # are the main one's (RestApi), which answers paths no API routes.
    apis: dict[str, ApiSpec] = field(default_factory=dict)

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        """The route serving ``method path`` and its path parameters."""
        found = [
            (route, params)
            for route in self.routes
            if route.method in (method, "ANY") and (params := route.match(path)) is not None
        ]
        return min(found, key=lambda f: f[0].specificity) if found else None

    def find(self, method: str, path: str) -> Route | None:
        matched = self.match(method, path)
        return None if matched is None else matched[0]

    def has_path(self, path: str) -> bool:
        return any(route.match(path) is not None for route in self.routes)

    def api_of(self, route: Route | None, path: str = "") -> ApiSpec:
        """The API a route belongs to; for no route, the API whose routes share the path's
        first segment (its gateway responses answer), else the main one."""
        if route is None:
            head = path.strip("/").split("/", 1)[0]
            for candidate in self.routes:
                if candidate.path.strip("/").split("/", 1)[0] == head:
                    route = candidate
                    break
        if route is not None and route.api in self.apis:
            return self.apis[route.api]
        return ApiSpec("RestApi", self.stage, self.api_id, self.responses, self.cors_headers)

    def response(self, kind: str) -> tuple[int, str]:
        return self.responses.get(kind) or DEFAULT_RESPONSES[kind]


def _fill_refs(template: dict[str, Any], resolver: Resolver, moto_port: int) -> None:
    """Ref and GetAtt values of the template's resources as the local stack names them, so that
    environment variables resolve (tables, topics, queues, buckets, aliases, functions)."""
    region = resolver.pseudo["AWS::Region"]
    account = LOCAL_ACCOUNT_ID
    # A KMS key's id is moto's random one, unknown here: a key with an alias is named by its
    # alias, which every KMS call accepts where it takes a key id.
    aliases = {
        resource.get("Properties", {}).get("TargetKeyId", {}).get("Ref"): resource
        for resource in template.get("Resources", {}).values()
        if resource["Type"] == "AWS::KMS::Alias"
        and isinstance(resource.get("Properties", {}).get("TargetKeyId"), dict)
    }
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
        elif kind == "AWS::KMS::Key" and logical_id in aliases:
            alias = str(resolver.resolve(aliases[logical_id]["Properties"]["AliasName"]))
            refs[logical_id] = attrs[(logical_id, "Arn")] = attrs[(logical_id, "KeyId")] = alias
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
    default_authorizer: dict[str, str | None] = {}
    apis: dict[str, ApiSpec] = {}
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::Serverless::Api":
            continue
        props = resource.get("Properties", {})
        auth = props.get("Auth", {})
        default_authorizer[logical_id] = auth.get("DefaultAuthorizer")
        responses: dict[str, tuple[int, str]] = {}
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
        # The main API keeps the id "local" its callers and tests know; others are named.
        api_id = "local" if logical_id == "RestApi" else f"local-{logical_id.lower()}"
        stage_name = resolver.resolve(props.get("StageName", stage))
        apis[logical_id] = ApiSpec(
            logical_id, str(stage_name), api_id, responses, _cors_headers(props.get("Cors"))
        )
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
                    api=api or "RestApi",
                )
            )  # fmt: skip
    main = apis.get("RestApi") or ApiSpec("RestApi", stage, "local")
    return RestApi(
        routes, authorizers, main.responses, functions, stage, region,
        cors_headers=main.cors_headers, apis=apis,
    )  # fmt: skip


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
