"""The HTTP side: API Gateway REST semantics over ``http.server``.

Why the standard library's ThreadingHTTPServer: each request's thread only hands the event to
a function container (a process, ``runtime.FunctionPool``) and waits for its answer, so an
async server would gain nothing; it speaks HTTP/1.1 with keep-alive, binds 127.0.0.1 only, and
needs no dependency. One thread per connection is what a local tool needs.

Faithful to API Gateway (REST, Lambda proxy integration, payload v1.0):
* only the routes template.yaml declares exist; any other path or method gets the
  MISSING_AUTHENTICATION_TOKEN gateway response (403 "Missing Authentication Token" by
  default; template.yaml customises it to Binance's shape, 404);
* the REQUEST authorizer runs first: a missing identity source is UNAUTHORIZED without calling
  it; "Unauthorized" raised is UNAUTHORIZED; a Deny (or no matching Allow) is ACCESS_DENIED; a
  crash or malformed answer is AUTHORIZER_FAILURE; answers are cached per identity-source
  values for ReauthorizeEvery seconds; its context reaches the function as
  ``requestContext.authorizer`` (values as strings, plus principalId);
* a function that raises is DEFAULT_5XX (502 "Internal server error");
* routes may have path parameters (``pathParameters``, ``resource`` the declared path);
* headers as sent (names as spelt, last value in ``headers``, all in ``multiValueHeaders``),
  plus those API Gateway adds (X-Forwarded-For/-Proto/-Port, X-Amzn-Trace-Id);
* an AWS_IAM route (the admin API) needs a SigV4 signature of a known IAM user
  (devstack/gateway/sigv4.py, AWS's 403 answers otherwise, before any function runs); the
  signer reaches the function as ``requestContext.identity``. Each API answers with its own
  stage, id and gateway responses, all on this one port.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import logging
import time
import uuid
from collections.abc import Mapping
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from devstack.cfn import LOCAL_ACCOUNT_ID
from devstack.gateway import static
from devstack.gateway.authorizer_cache import DEFAULT_CAPACITY, AnswerCache, SingleFlight
from devstack.gateway.log_redaction import redact
from devstack.gateway.runtime import (
    FunctionError,
    FunctionPool,
    function_environment,
    warm_pools,
)
from devstack.gateway.sigv4 import IamUser, SignatureRefused, verify
from devstack.gateway.template_api import IAM, Authorizer, RestApi, Route
from devstack.gateway.websocket import WebSocketGateway

log = logging.getLogger("devstack.gateway")
MAX_BODY = 10 * 1024 * 1024  # API Gateway's payload limit


class GatewayResponse(Exception):
    """API Gateway answers by itself; ``message`` replaces the default body's (IAM refusals
    say why, as AWS's do) unless the API customises that response."""

    def __init__(self, kind: str, message: str | None = None) -> None:
        super().__init__(kind)
        self.kind = kind
        self.message = message


class Gateway:
    """Routing, authorization (with its cache) and invocation, independent of the socket."""

    def __init__(
        self,
        api: RestApi,
        overrides: Mapping[str, str] | None = None,
        max_containers: int = 4,
        iam_users: Mapping[str, IamUser] | None = None,
        authorizer_cache_capacity: int = DEFAULT_CAPACITY,
    ) -> None:
        """``overrides``: the gateway's own environment, whose variables win over the
        template's (``sam local --env-vars``); ``iam_users``: the IAM users (by access key id)
        whose signatures AWS_IAM routes accept (devstack/operators.py);
        ``authorizer_cache_capacity``: how many authorizer answers are kept at most."""
        self.api = api
        self.iam_users = dict(iam_users or {})
        overrides = {} if overrides is None else overrides
        # Only the functions this API invokes: routes' targets and authorizers (others, e.g.
        # event consumers, are not the gateway's to load).
        used = {r.function for r in api.routes} | {a.function for a in api.authorizers.values()}
        self.pools = {
            name: FunctionPool(
                spec, api.region, function_environment(spec.environment, overrides),
                max_containers,
            )
            for name, spec in api.functions.items()
            if name in used
        }  # fmt: skip
        self._cache = AnswerCache(authorizer_cache_capacity)
        # One authorizer call per identity at a time: requests that miss the cache together
        # (a client's first burst) wait for the first call's answer instead of each starting
        # an authorizer container.
        self._flights = SingleFlight()

    # -- events

    def _request_context(
        self, route: Route | None, method: str, path: str, source_ip: str, headers: dict[str, str]
    ) -> dict[str, Any]:
        now = time.time()
        api = self.api.api_of(route, path)
        return {
            "resourceId": "local",
            "resourcePath": route.path if route else path,
            "httpMethod": method,
            "extendedRequestId": uuid.uuid4().hex[:16],
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "path": f"/{api.stage}{path}",
            "accountId": LOCAL_ACCOUNT_ID,
            "protocol": "HTTP/1.1",
            "stage": api.stage,
            "domainPrefix": "127",
            "requestTimeEpoch": int(now * 1000),
            "requestId": str(uuid.uuid4()),
            "identity": {
                "cognitoIdentityPoolId": None,
                "accountId": None,
                "cognitoIdentityId": None,
                "caller": None,
                "sourceIp": source_ip,
                "principalOrgId": None,
                "accessKey": None,
                "cognitoAuthenticationType": None,
                "cognitoAuthenticationProvider": None,
                "userArn": None,
                # Whatever its spelling (HTTP/2 clients send lower case).
                "userAgent": next(
                    (v for k, v in reversed(headers.items()) if k.lower() == "user-agent"), None
                ),
                "user": None,
            },
            "domainName": "127.0.0.1",
            "apiId": api.api_id,
        }

    def build_event(
        self,
        route: Route,
        method: str,
        raw_path: str,
        header_pairs: list[tuple[str, str]],
        body: bytes,
        source_ip: str,
        path_params: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        url = urlsplit(raw_path)
        path = url.path
        # As API Gateway REST passes them: names as sent (two spellings are two names), each
        # with its last value in ``headers`` and every value in ``multiValueHeaders``.
        # ``headers`` is ordered by each name's last line, so that the authorizer's identity
        # (``_identity``) is the last line sent, whatever its spelling.
        multi_headers: dict[str, list[str]] = {}
        headers: dict[str, str] = {}
        for name, value in with_gateway_headers(header_pairs, source_ip):
            multi_headers.setdefault(name, []).append(value)
            headers.pop(name, None)
            headers[name] = value
        multi_query: dict[str, list[str]] = {}
        for name, value in parse_qsl(url.query, keep_blank_values=True):
            multi_query.setdefault(name, []).append(value)
        query = {name: values[-1] for name, values in multi_query.items()}
        try:
            text: str | None = body.decode() if body else None
            encoded = False
        except UnicodeDecodeError:
            text, encoded = base64.b64encode(body).decode(), True
        return {
            "resource": route.path,
            "path": path,
            "httpMethod": method,
            "headers": headers or None,
            "multiValueHeaders": multi_headers or None,
            "queryStringParameters": query or None,
            "multiValueQueryStringParameters": multi_query or None,
            # Decoded, as API Gateway passes them.
            "pathParameters": {k: unquote(v) for k, v in path_params.items()}
            if path_params
            else None,
            "stageVariables": None,
            "requestContext": self._request_context(route, method, path, source_ip, headers),
            "body": text,
            "isBase64Encoded": encoded,
        }

    # -- authorizer

    def _identity(self, authorizer: Authorizer, event: dict[str, Any]) -> tuple[str, ...] | None:
        """The identity-source values (the cache key). A header sent more than once, or in
        several spellings, counts with its last line (``headers`` is in last-line order);
        deciding whether that is acceptable is the authorizer's and the function's job."""
        values: list[str] = []
        headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
        for name in authorizer.headers:
            value = headers.get(name.lower())
            if not value:
                return None
            values.append(value)
        for dotted in authorizer.context:
            node: Any = event["requestContext"]
            for part in dotted.split("."):
                node = node.get(part) if isinstance(node, dict) else None
            if not node:
                return None
            values.append(str(node))
        return tuple(values)

    def _method_arn(self, event: dict[str, Any]) -> str:
        context = event["requestContext"]
        return (
            f"arn:aws:execute-api:{self.api.region}:{LOCAL_ACCOUNT_ID}:{context['apiId']}/"
            f"{context['stage']}/{event['httpMethod']}{event['resource']}"
        )

    def sign_in(
        self, method: str, raw_path: str, header_pairs: list[tuple[str, str]], body: bytes
    ) -> dict[str, str]:
        """AWS_IAM: the identity that signed the request, or the refusal as a GatewayResponse."""
        try:
            user = verify(method, raw_path, header_pairs, body, self.iam_users, self.api.region)
        except SignatureRefused as exc:
            raise GatewayResponse(exc.kind, exc.message) from None
        return user.identity()

    def authorize(self, route: Route, event: dict[str, Any]) -> dict[str, Any]:
        """The authorizer's answer for this request (cached), or a GatewayResponse."""
        authorizer = self.api.authorizers[route.authorizer or ""]
        identity = self._identity(authorizer, event)
        if identity is None:
            raise GatewayResponse("UNAUTHORIZED")
        key = (authorizer.name, identity)
        ttl = authorizer.ttl_s
        answer = self._cache.get(key, ttl) if ttl > 0 else None
        if answer is None and ttl <= 0:
            answer = self._call_authorizer(authorizer, event)
        elif answer is None:
            with self._flights.hold(key):
                # Another request for this identity may have fetched it while we waited.
                answer = self._cache.get(key, ttl)
                if answer is None:
                    answer = self._call_authorizer(authorizer, event)
                    self._cache.put(key, answer)
        if not _allows(answer["policyDocument"], self._method_arn(event)):
            raise GatewayResponse("ACCESS_DENIED")
        context: dict[str, Any] = {
            k: _context_value(v) for k, v in (answer.get("context") or {}).items()
        }
        context["principalId"] = str(answer.get("principalId", ""))
        context["integrationLatency"] = 0
        return context

    def _call_authorizer(self, authorizer: Authorizer, event: dict[str, Any]) -> dict[str, Any]:
        """The authorizer function's answer, or a GatewayResponse."""
        auth_event = {
            "type": "REQUEST",
            "methodArn": self._method_arn(event),
            **{k: event[k] for k in ("resource", "path", "httpMethod", "headers",
                                     "multiValueHeaders", "queryStringParameters",
                                     "multiValueQueryStringParameters")},
            "pathParameters": {},
            "stageVariables": {},
            "requestContext": event["requestContext"],
        }  # fmt: skip
        try:
            answer = self.pools[authorizer.function].invoke(auth_event)
        except FunctionError as exc:
            if str(exc) == "Unauthorized":
                raise GatewayResponse("UNAUTHORIZED") from None
            log.error("authorizer failed: %s: %s", exc.kind, exc)
            raise GatewayResponse("AUTHORIZER_FAILURE") from None
        if not isinstance(answer, dict) or "policyDocument" not in answer:
            raise GatewayResponse("AUTHORIZER_FAILURE")
        return answer

    # -- one request

    def warm(self) -> None:
        warm_pools(self.pools)

    def close(self) -> None:
        for pool in self.pools.values():
            pool.close()

    def handle(
        self,
        method: str,
        raw_path: str,
        header_pairs: list[tuple[str, str]],
        body: bytes,
        source_ip: str,
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        path = urlsplit(raw_path).path
        matched = self.api.match(method, path)
        route, params = matched if matched is not None else (None, {})
        api = self.api.api_of(route, path)
        preflight = method == "OPTIONS" and route is None and api.cors_headers
        if preflight and self.api.has_path(path):
            return 200, [("Content-Type", "application/json"), *api.cors_headers], b"{}"
        try:
            if route is None:
                # Not an API route: the trading page's files (devstack/gateway/static.py).
                page = static.response(method, raw_path)
                if page is not None:
                    return page
                raise GatewayResponse("MISSING_AUTHENTICATION_TOKEN")
            identity = None
            if route.authorizer == IAM:  # before anything else: nothing unsigned goes further
                identity = self.sign_in(method, raw_path, header_pairs, body)
            event = self.build_event(route, method, raw_path, header_pairs, body, source_ip, params)
            if identity is not None:
                event["requestContext"]["identity"].update(identity)
            elif route.authorizer:
                event["requestContext"]["authorizer"] = self.authorize(route, event)
            try:
                result = self.pools[route.function].invoke(event)
            except FunctionError as exc:
                log.error("%s failed: %s: %s", route.function, exc.kind, exc)
                raise GatewayResponse("DEFAULT_5XX") from None
            return _proxy_response(result)
        except GatewayResponse as exc:
            status, text = api.response(exc.kind)
            if exc.message is not None and exc.kind not in api.responses:
                text = dumps({"message": exc.message})
            return status, [("Content-Type", "application/json")], text.encode()


def _context_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _allows(policy: dict[str, Any], method_arn: str) -> bool:
    """IAM evaluation, enough for authorizer policies: an explicit Deny wins, else an Allow
    whose Resource matches (``*`` and ``?`` wildcards) is needed."""
    allowed = False
    statements = policy.get("Statement", [])
    for statement in statements if isinstance(statements, list) else [statements]:
        actions = statement.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        if not any(fnmatch.fnmatchcase("execute-api:Invoke", a) for a in actions):
            continue
        resources = statement.get("Resource", [])
        resources = [resources] if isinstance(resources, str) else resources
        if not any(fnmatch.fnmatchcase(method_arn, r) for r in resources):
            continue
        if statement.get("Effect") == "Deny":
            return False
        if statement.get("Effect") == "Allow":
            allowed = True
    return allowed


def _proxy_response(result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """A Lambda proxy integration result -> HTTP; a malformed one is a 502 as on AWS."""
    if not isinstance(result, dict) or not isinstance(result.get("statusCode"), int):
        log.error("malformed Lambda proxy response: %r", result)
        raise GatewayResponse("DEFAULT_5XX")
    headers: list[tuple[str, str]] = []
    for name, value in (result.get("headers") or {}).items():
        headers.append((name, str(value)))
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers.extend((name, str(v)) for v in values if (name, str(v)) not in headers)
    body = result.get("body") or ""
    data = base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode()
    return result["statusCode"], headers, data


# Set by API Gateway itself: whatever a client sent under these names (any spelling) is
# replaced, except X-Forwarded-For, which API Gateway extends with the client's address.
_FORWARDED = ("x-forwarded-for", "x-forwarded-proto", "x-forwarded-port")


def with_gateway_headers(
    header_pairs: list[tuple[str, str]], source_ip: str
) -> list[tuple[str, str]]:
    """The request's headers as API Gateway hands them on: the client's, plus the ones it adds
    (X-Forwarded-For/-Proto/-Port, X-Amzn-Trace-Id). Code that reads them (rate limits by
    address, logs by trace) then sees locally what it sees on AWS."""
    sent_for = [v.strip() for k, v in header_pairs if k.lower() == "x-forwarded-for"]
    kept = [(k, v) for k, v in header_pairs if k.lower() not in _FORWARDED]
    host = next((v for k, v in reversed(header_pairs) if k.lower() == "host"), "")
    # AWS: https on 443. Locally the gateway speaks plain HTTP on the port the Host names.
    named = host.rsplit(":", 1)[-1]
    port = named if ":" in host and named.isdigit() else "80"
    added = [
        ("X-Forwarded-For", ", ".join([*sent_for, source_ip])),
        ("X-Forwarded-Proto", "http"),
        ("X-Forwarded-Port", port),
    ]
    if not any(k.lower() == "x-amzn-trace-id" for k, _ in header_pairs):
        # X-Ray's format: version, the epoch second in hex, 96 random bits.
        added.append(("X-Amzn-Trace-Id", f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}"))
    return kept + added


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: clients reuse connections, as with AWS
    # Headers and body go out in two writes; with Nagle on, the second waits for the client's
    # delayed ACK (~40 ms on Linux) on every keep-alive request.
    disable_nagle_algorithm = True
    server_version = "bourse-gateway"
    gateway: Gateway
    websocket: WebSocketGateway | None = None

    def _serve(self) -> None:
        self._started = time.monotonic()
        # WebSocket handshakes and @connections calls (devstack/gateway/websocket.py)
        if self.websocket is not None and self.websocket.handle(self):
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.send_error(413)
            return
        body = self.rfile.read(length) if length else b""
        status, headers, data = self.gateway.handle(
            self.command, self.path, list(self.headers.items()), body, self.client_address[0]
        )
        self.send_response(status)
        names = {name.lower() for name, _ in headers}
        for name, value in headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        if "content-type" not in names:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _serve

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # The combined log format's user agent, and the milliseconds to the status line, as
        # `sam local start-api` shows them: `make run`'s console (devstack/console.py) prints
        # this line short and tells the demo market's own requests apart by their agent.
        started = getattr(self, "_started", None)
        took = f" {(time.monotonic() - started) * 1000:.1f}ms" if started is not None else ""
        headers = getattr(self, "headers", None)  # absent when the request line was unreadable
        agent = (headers.get("User-Agent") or "-") if headers is not None else "-"
        agent = agent.replace('"', "'")
        status = code.value if isinstance(code, HTTPStatus) else code
        self.log_message('"%s" %s%s "%s"', self.requestline, status, took, agent)

    def log_message(self, format: str, *args: Any) -> None:
        # Request lines carry signatures and listen keys (devstack/gateway/log_redaction.py).
        log.info("%s %s", self.address_string(), redact(format % args))

    def date_time_string(self, timestamp: float | None = None) -> str:
        return formatdate(timestamp, usegmt=True)


def make_server(
    gateway: Gateway, host: str, port: int, websocket: WebSocketGateway | None = None
) -> ThreadingHTTPServer:
    handler = type("Handler", (_Handler,), {"gateway": gateway, "websocket": websocket})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
