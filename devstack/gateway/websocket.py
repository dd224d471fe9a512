"""The WebSocket side of the local gateway: template.yaml's WebSocket API (API Gateway v2) on
the REST port, and the ``@connections`` management API that boto3's
``apigatewaymanagementapi`` client talks to unchanged.

Why wsproto over the gateway's own ``http.server`` thread: the handshake arrives as an ordinary
HTTP request on the same port as REST, and wsproto is a sans-I/O RFC 6455 state machine that
can take over that socket (one thread per connection, as the HTTP side already runs).

Faithful to API Gateway (WebSocket, Lambda proxy integrations):
* routes are the template's ``AWS::ApiGatewayV2::Route``s; a message is routed by its
  ``RouteSelectionExpression`` (``$request.body.method``), ``$default`` when the body is not
  JSON or names no route; with no route at all the client gets ``{"message": "Forbidden"}``;
* ``$connect`` runs before the handshake is answered: a non-2xx status refuses it with that
  status; ``$disconnect`` runs once the socket is gone, whoever closed it;
* a route with a route response (two-way) sends the function's ``body`` back as one frame; a
  function that fails sends ``{"message": "Internal server error", ...}``;
* limits: a client message over 128 KB closes the connection (1009); a PostToConnection over
  128 KB is refused (413 PayloadTooLargeException); a connection idle for 10 minutes, or open
  for 2 hours, is closed with 1001 "Going away" (both configurable for tests, see
  ``bourse.settings``); an unknown connection id is 410 GoneException;
* every ``@connections`` call must be SigV4-signed by a known identity (the local functions'
  credentials, devstack/gateway/management_auth.py), else 403 as AWS answers it
  (``Missing Authentication Token`` unsigned, the signature mismatch message otherwise);
* the open-connection table holds open connections only: an entry leaves it however its
  connection ends.

Binance's stream paths are mapped onto ``$connect`` query parameters as template.yaml's
CloudFront function maps them: ``/ws/<stream>`` (or ``/ws/<listenKey>``) is ``streams=<name>``,
``/stream?streams=a/b`` adds ``combined=true``, ``/ws`` and ``/ws-api/v3`` pass the query on.
"""

from __future__ import annotations

import base64
import calendar
import contextlib
import hashlib
import hmac
import itertools
import json
import logging
import re
import secrets
import select
import selectors
import socket
import string
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.utilities import RemoteProtocolError

from bourse.adapters.sigv4_signer import canonical_path, signing_key
from devstack.cfn import LOCAL_ACCOUNT_ID, load_template
from devstack.gateway.management_auth import check, is_unsigned
from devstack.gateway.runtime import (
    FunctionError,
    FunctionPool,
    function_environment,
    warm_pools,
)
from devstack.gateway.sigv4 import ALGORITHM, MAX_SKEW, MSG_MISSING, SERVICE, IamUser
from devstack.gateway.template_api import RestApi

log = logging.getLogger("devstack.gateway.websocket")

MAX_MESSAGE_BYTES = 128 * 1024  # API Gateway: client messages and PostToConnection data
INVOKE_PREFIX = "/2015-03-31/functions/"
INVOKE_MAX_BYTES = 6 * 1024 * 1024  # Lambda: a synchronous invocation's payload
MSG_LAMBDA_SIGNATURE = (
    "The request signature we calculated does not match the signature you provided. Check "
    "your AWS Secret Access Key and signing method. Consult the service documentation for "
    "details."
)
IDLE_SECONDS = 10 * 60
MAX_SECONDS = 2 * 60 * 60
GOING_AWAY = 1001
SEND_TIMEOUT_SECONDS = 2.0
MESSAGE_TOO_BIG = 1009
_ID_ALPHABET = string.ascii_letters + string.digits
_AMZ_DATE = re.compile(r"\d{8}T\d{6}Z")
_INTEGRATION_RE = re.compile(r"integrations/\$\{(\w+)\}")
_FUNCTION_ARN_RE = re.compile(r"\$\{(\w+)\.Arn\}")


# -- the template


@dataclass(frozen=True)
class WsRoute:
    key: str
    function: str  # logical id
    two_way: bool  # has a route response: the function's body goes back to the client


@dataclass
class WebSocketApi:
    selection_expression: str
    routes: dict[str, WsRoute]
    stage: str
    region: str
    api_id: str = "local"

    def select(self, body: str) -> WsRoute | None:
        """The route for a message, by the selection expression (``$request.body.a.b``)."""
        path = self.selection_expression.removeprefix("$request.body.").split(".")
        try:
            node: Any = json.loads(body)
        except ValueError:
            node = None
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, (str, int, float)) and not isinstance(node, bool):
            route = self.routes.get(str(node))
            if route is not None and not route.key.startswith("$"):
                return route
        return self.routes.get("$default")


def _sub_text(value: Any) -> str:
    if isinstance(value, dict) and "Fn::Sub" in value:
        sub = value["Fn::Sub"]
        return str(sub if isinstance(sub, str) else sub[0])
    return str(value)


def load_websocket_api(
    stage: str, region: str, template: dict[str, Any] | None = None
) -> WebSocketApi | None:
    """The template's WebSocket API and its routes (None when it declares none)."""
    template = template if template is not None else load_template()
    resources: dict[str, Any] = template.get("Resources", {})
    apis = [r for r in resources.values() if r["Type"] == "AWS::ApiGatewayV2::Api"
            and r["Properties"].get("ProtocolType") == "WEBSOCKET"]  # fmt: skip
    if not apis:
        return None
    functions: dict[str, str] = {}
    for logical_id, resource in resources.items():
        if resource["Type"] == "AWS::ApiGatewayV2::Integration":
            uri = _sub_text(resource["Properties"].get("IntegrationUri", ""))
            match = _FUNCTION_ARN_RE.search(uri)
            if match:
                functions[logical_id] = match.group(1)
    two_way = {
        resource["Properties"]["RouteId"]["Ref"]
        for resource in resources.values()
        if resource["Type"] == "AWS::ApiGatewayV2::RouteResponse"
    }
    routes: dict[str, WsRoute] = {}
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::ApiGatewayV2::Route":
            continue
        props = resource["Properties"]
        match = _INTEGRATION_RE.search(_sub_text(props.get("Target", "")))
        if match is None or match.group(1) not in functions:
            continue
        key = str(props["RouteKey"])
        routes[key] = WsRoute(key, functions[match.group(1)], logical_id in two_way)
    expression = str(apis[0]["Properties"].get("RouteSelectionExpression", "$request.body.action"))
    return WebSocketApi(expression, routes, stage, region)


# -- Binance's paths


# Bourse's own $connect parameters (docs/streams.md, "Resumable streams"), kept on /ws/<name>.
BOURSE_STREAM_PARAMS = ("withSeq", "resumeFrom")


def connect_query(raw_path: str) -> dict[str, str] | None:
    """$connect's query parameters for a handshake path; None for a path that is no socket."""
    url = urlsplit(raw_path)
    query = dict(parse_qsl(url.query, keep_blank_values=True))
    path = url.path
    if path in ("/", "", "/ws", "/ws/", "/ws-api/v3"):
        return query
    if path.startswith("/ws/"):
        # The path names the stream; of the query only Bourse's own parameters pass.
        kept = {k: v for k, v in query.items() if k in BOURSE_STREAM_PARAMS}
        return {"streams": unquote(path[len("/ws/") :]), **kept}
    if path in ("/stream", "/stream/"):
        return {**query, "combined": "true"}
    return None


# -- sockets


def _new_connection_id() -> str:
    # API Gateway's ids: 15 letters and digits and "=" (they go into URL paths unescaped).
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(15)) + "="


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class _Socket:
    connection_id: str
    sock: socket.socket
    ws: WSConnection
    source_ip: str
    user_agent: str
    headers: dict[str, str]
    connected_at_ms: int = field(default_factory=_now_ms)
    last_active_ms: int = field(default_factory=_now_ms)
    lock: threading.Lock = field(default_factory=threading.Lock)
    closed: bool = False

    def send(self, event: Any) -> None:
        with self.lock:
            if self.closed:
                raise OSError("closed")
            data = self.ws.send(event)
            self.sock.sendall(data)

    def send_frame(self, data: bytes) -> None:
        try:
            data.decode()
        except UnicodeDecodeError:
            self.send(BytesMessage(data=data))
            return
        # One unfragmented text frame, written here rather than by wsproto (which decodes,
        # re-encodes and builds it in Python per call; a fan-out sends thousands): a server's
        # frames are unmasked and no extension is ever negotiated (AcceptConnection offers
        # none, as API Gateway supports none), so the frame is its header and the data.
        size = len(data)
        if size < 126:
            header = bytes((0x81, size))
        elif size < 1 << 16:
            header = bytes((0x81, 126)) + size.to_bytes(2, "big")
        else:
            header = bytes((0x81, 127)) + size.to_bytes(8, "big")
        with self.lock:
            if self.closed:
                raise OSError("closed")
            try:
                self.sock.sendall(header + data)
            except OSError:
                # Part of a frame may have gone out (a send timeout): the stream is broken.
                self.closed = True
                with contextlib.suppress(OSError):
                    self.sock.shutdown(socket.SHUT_RDWR)
                raise

    def close(self, code: int, reason: str) -> None:
        with self.lock:
            if self.closed:
                return
            try:
                self.sock.sendall(self.ws.send(CloseConnection(code=code, reason=reason)))
            except Exception:  # the peer may be gone already: closing is all that is left
                log.debug("close frame to %s not sent", self.connection_id)
            self.closed = True
        with contextlib.suppress(OSError):  # the peer may have closed first
            self.sock.shutdown(socket.SHUT_RDWR)


def signed_by_known_key(
    method: str,
    raw_path: str,
    header_pairs: list[tuple[str, str]],
    body: bytes,
    users: Mapping[str, IamUser],
    region: str,
    service: str = SERVICE,
) -> bool:
    """True when the call carries a valid SigV4 signature of one of ``users`` for ``service``
    (execute-api, or lambda for the local Invoke API); for @connections False sends it
    to ``management_auth.check`` (botocore's ``SigV4Auth``), which accepts or gives AWS's
    refusal. Why a second verifier: ``check`` builds botocore's signer and derives the signing
    key on every call (~125 us here), and a fan-out makes a call per connection and message;
    with the key derived once a day this is ~20 us. It accepts only what ``check`` accepts:
    the same canonical request from exactly the signed headers, a known key without session
    token, a date within 5 minutes matching its scope, this region and ``execute-api``, host
    signed, the body's own hash (tests/unit/test_sigv4_signer.py compares the two)."""
    headers: dict[str, str] = {}
    for name, value in header_pairs:
        key = name.lower()
        headers[key] = f"{headers[key]},{value}" if key in headers else value
    authorization = headers.get("authorization", "")
    if not authorization.startswith(ALGORITHM + " ") or "x-amz-security-token" in headers:
        return False
    fields = dict(
        part.strip().split("=", 1)
        for part in authorization[len(ALGORITHM) + 1 :].split(",")
        if "=" in part
    )
    scope = fields.get("Credential", "").split("/")
    signature = fields.get("Signature", "")
    names = sorted({n for n in fields.get("SignedHeaders", "").lower().split(";") if n})
    date = headers.get("x-amz-date", "")
    path, _, query = raw_path.partition("?")
    if len(scope) != 5 or query or "host" not in names or not signature:
        return False
    access_key, day, scope_region, scope_service, terminator = scope
    user = users.get(access_key)
    if user is None or (scope_region, scope_service, terminator) != (
        region,
        service,
        "aws4_request",
    ):
        return False
    if not _AMZ_DATE.fullmatch(date):
        return False
    try:
        signed_at = calendar.timegm(
            (int(date[:4]), int(date[4:6]), int(date[6:8]),
             int(date[9:11]), int(date[11:13]), int(date[13:15]), 0, 0, 0)
        )  # fmt: skip
    except ValueError:
        return False
    if day != date[:8] or abs(time.time() - signed_at) >= MAX_SKEW.total_seconds():
        return False
    body_hash = hashlib.sha256(body).hexdigest()
    if headers.get("x-amz-content-sha256", body_hash) != body_hash:
        return False
    canonical = "\n".join(
        (
            method.upper(),
            canonical_path(path),
            "",
            "".join(f"{n}:{' '.join(headers.get(n, '').split())}\n" for n in names),
            ";".join(names),
            body_hash,
        )
    )
    credential_scope = f"{day}/{region}/{service}/aws4_request"
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    to_sign = f"{ALGORITHM}\n{date}\n{credential_scope}\n{digest}"
    derived = signing_key(user.secret_access_key, day, region, service)
    expected = hmac.new(derived, to_sign.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


_REQUEST_IDS = itertools.count()
_REQUEST_ID_PREFIX = uuid.uuid4().hex[:20]


def _POSTED() -> bytes:
    """A PostToConnection's 200, written directly: not in the request log (API Gateway's
    access log has no @connections calls either, and a fan-out makes one per connection).
    Its request id is unique per gateway and UUID-shaped, from a counter (uuid4 per post was
    a tenth of the endpoint's CPU)."""
    p, n = _REQUEST_ID_PREFIX, next(_REQUEST_IDS)
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 0\r\n"
        b"x-amzn-RequestId: "
        + f"{p[:8]}-{p[8:12]}-{p[12:16]}-{p[16:20]}-{n:012x}".encode()
        + b"\r\n\r\n"
    )


def _refused_before_body(
    method: str, header_pairs: list[tuple[str, str]], length: int
) -> tuple[int, str, str] | None:
    """Unsigned (403) or too large (413): refused before the body is read."""
    if is_unsigned(header_pairs):
        return 403, "MissingAuthenticationTokenException", MSG_MISSING
    if method == "POST" and length > MAX_MESSAGE_BYTES:
        return 413, "PayloadTooLargeException", "Message too long"
    return None


def _raw_response(status: int, kind: str | None, body: dict[str, Any] | None) -> bytes:
    data = b"" if body is None else json.dumps(body).encode()
    head = f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nContent-Type: application/json\r\n"
    if kind is not None:
        head += f"x-amzn-ErrorType: {kind}\r\n"
    head += f"Content-Length: {len(data)}\r\nx-amzn-RequestId: {uuid.uuid4()}\r\n\r\n"
    return head.encode() + data


ManagementCall = Callable[
    [str, str, list[tuple[str, str]], bytes, str], tuple[int, str | None, dict[str, Any] | None]
]


@dataclass
class _Caller:
    sock: socket.socket
    buffer: bytearray
    done: threading.Event


class _ManagementLoop:
    """Every kept-alive @connections connection after its first call, served by one thread
    over a selector.

    Why not a thread per connection, as http.server runs them: a fan-out keeps dozens of
    connections busy at once (the broadcaster's and every pusher's), and their threads handed
    the GIL to each other at every post, costing more than the posts (~150 us of the gateway's
    CPU per post, measured, against ~60 us here). A call is a request line, ``name: value``
    header lines and a ``Content-Length`` body; any other request on such a connection is
    answered 400 and the connection closed (on AWS the @connections endpoint is the WebSocket
    API's own domain, which serves nothing else).
    """

    def __init__(self, call: ManagementCall) -> None:
        self._call = call
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._pending: list[_Caller] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._run, name="ws-management", daemon=True).start()

    def adopt(self, sock: socket.socket, buffered: bytes) -> threading.Event:
        caller = _Caller(sock, bytearray(buffered), threading.Event())
        with self._lock:
            self._pending.append(caller)
        self._wake_w.send(b"x")
        return caller.done

    def _run(self) -> None:
        while True:
            for key, _ in self._selector.select():
                caller = key.data
                if caller is None:
                    with contextlib.suppress(BlockingIOError):
                        self._wake_r.recv(4096)
                    with self._lock:
                        pending, self._pending = self._pending, []
                    for new in pending:
                        self._selector.register(new.sock, selectors.EVENT_READ, new)
                        if new.buffer and not self._serve(new):
                            self._end(new)
                    continue
                try:
                    data = caller.sock.recv(262144)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                caller.buffer += data
                if not data or not self._serve(caller):
                    self._end(caller)

    def _end(self, caller: _Caller) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(caller.sock)
        caller.done.set()

    def _serve(self, caller: _Caller) -> bool:
        """Answers the complete requests in the buffer; False ends the connection."""
        buffer = caller.buffer
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return len(buffer) < 65536
            lines = bytes(buffer[:end]).decode("latin-1").split("\r\n")
            parts = lines[0].split()
            if len(parts) != 3 or not parts[1].startswith("/@connections/"):
                self._write(caller, _raw_response(400, None, {"message": "Bad Request"}))
                return False
            method, target, version = parts
            pairs = [
                (name.strip(), value.strip())
                for name, _, value in (line.partition(":") for line in lines[1:])
            ]
            length = 0
            close = version != "HTTP/1.1"
            for name, value in pairs:
                lower = name.lower()
                if lower == "content-length":
                    length = int(value)
                elif lower == "connection" and value.lower() == "close":
                    close = True
            refusal = _refused_before_body(method, pairs, length)
            if refusal is not None:
                self._write(caller, _raw_response(refusal[0], refusal[1], {"message": refusal[2]}))
                return False
            if len(buffer) < end + 4 + length:
                return True
            data = bytes(buffer[end + 4 : end + 4 + length])
            del buffer[: end + 4 + length]
            connection_id = unquote(urlsplit(target).path[len("/@connections/") :])
            status, kind, body = self._call(method, target, pairs, data, connection_id)
            if status == 200 and method == "POST":
                answer = _POSTED()
            else:
                answer = _raw_response(status, kind, body)
            if not self._write(caller, answer) or close:
                return False

    @staticmethod
    def _write(caller: _Caller, data: bytes) -> bool:
        try:
            caller.sock.sendall(data)  # a small answer: the socket's buffer has room
        except (BlockingIOError, OSError):
            return False
        return True


class WebSocketGateway:
    """The WebSocket API's routes, its open connections and the @connections endpoint."""

    def __init__(
        self,
        rest: RestApi,
        api: WebSocketApi,
        overrides: Mapping[str, str] | None = None,
        *,
        idle_seconds: float = IDLE_SECONDS,
        max_seconds: float = MAX_SECONDS,
        max_containers: int = 4,
        iam_users: Mapping[str, IamUser] | None = None,
    ) -> None:
        """``iam_users``: whose SigV4 signatures the @connections API accepts, by access key
        id (devstack/gateway/management_auth.py); none: every call is refused, as unsigned."""
        self.api = api
        self.iam_users = dict(iam_users or {})
        self.idle_seconds = idle_seconds
        self.max_seconds = max_seconds
        overrides = {} if overrides is None else overrides
        used = {route.function for route in api.routes.values()}
        self.pools = {
            name: FunctionPool(spec, api.region,
                               function_environment(spec.environment, overrides), max_containers)
            for name, spec in rest.functions.items()
            if name in used
        }  # fmt: skip
        self._sockets: dict[str, _Socket] = {}
        self._lock = threading.Lock()
        # Lambda's Invoke API (the broadcaster's pushers): any function of the template, its
        # containers started on first use.
        self._functions = rest.functions
        self._management_loop: _ManagementLoop | None = None
        self._overrides = dict(overrides)
        self._max_containers = max_containers

    def warm(self) -> None:
        warm_pools(self.pools)

    def close(self) -> None:
        with self._lock:
            sockets = list(self._sockets.values())
        for sock in sockets:
            sock.close(GOING_AWAY, "Going away")
        for pool in self.pools.values():
            pool.close()

    # -- the HTTP server's entry

    def handle(self, handler: BaseHTTPRequestHandler) -> bool:
        """Serves the request when it is a WebSocket handshake or an @connections call;
        False leaves it to the REST side."""
        path = urlsplit(handler.path).path
        if path.startswith(INVOKE_PREFIX) and path.endswith("/invocations"):
            self._lambda_invoke(handler, unquote(path[len(INVOKE_PREFIX) : -len("/invocations")]))
            return True
        if path.startswith("/@connections/"):
            pairs = list(handler.headers.items())
            self._management(handler, pairs, unquote(path[len("/@connections/") :]))
            self._serve_management(handler)
            return True
        if handler.headers.get("Upgrade", "").lower() != "websocket":
            return False
        handler.close_connection = True
        query = connect_query(handler.path)
        if query is None:
            self._plain(handler, 404, {"message": "Not Found"})
            return True
        self._serve_socket(handler, query)
        return True

    # -- events

    def _context(self, route_key: str, event_type: str, sock: _Socket) -> dict[str, Any]:
        now = time.time()
        return {
            "routeKey": route_key,
            "eventType": event_type,
            "extendedRequestId": uuid.uuid4().hex[:16],
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "messageDirection": "IN",
            "stage": self.api.stage,
            "connectedAt": sock.connected_at_ms,
            "requestTimeEpoch": int(now * 1000),
            "identity": {"sourceIp": sock.source_ip, "userAgent": sock.user_agent},
            "requestId": str(uuid.uuid4()),
            "domainName": "127.0.0.1",
            "connectionId": sock.connection_id,
            "apiId": self.api.api_id,
            "accountId": LOCAL_ACCOUNT_ID,
        }

    def connect_event(self, sock: _Socket, query: dict[str, str]) -> dict[str, Any]:
        event: dict[str, Any] = {
            "headers": dict(sock.headers),
            "multiValueHeaders": {k: [v] for k, v in sock.headers.items()},
            "requestContext": self._context("$connect", "CONNECT", sock),
            "isBase64Encoded": False,
        }
        if query:
            event["queryStringParameters"] = dict(query)
            event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()}
        return event

    def message_event(self, sock: _Socket, route: str, body: str) -> dict[str, Any]:
        context = self._context(route, "MESSAGE", sock)
        context["messageId"] = uuid.uuid4().hex[:16]
        return {"requestContext": context, "body": body, "isBase64Encoded": False}

    def disconnect_event(self, sock: _Socket, code: int, reason: str) -> dict[str, Any]:
        context = self._context("$disconnect", "DISCONNECT", sock)
        context["disconnectStatusCode"] = code
        context["disconnectReason"] = reason
        return {
            "headers": dict(sock.headers),
            "multiValueHeaders": {k: [v] for k, v in sock.headers.items()},
            "requestContext": context,
            "isBase64Encoded": False,
        }

    def _invoke(self, route_key: str, event: dict[str, Any]) -> Any:
        route = self.api.routes[route_key]
        return self.pools[route.function].invoke(event)

    # -- one connection

    def _serve_socket(self, handler: BaseHTTPRequestHandler, query: dict[str, str]) -> None:
        ws = WSConnection(ConnectionType.SERVER)
        request_line = f"{handler.command} {handler.path} HTTP/1.1\r\n"
        head = request_line + "".join(f"{k}: {v}\r\n" for k, v in handler.headers.items())
        try:
            ws.receive_data((head + "\r\n").encode("latin-1"))
            events = list(ws.events())
        except RemoteProtocolError:
            self._plain(handler, 400, {"message": "Bad Request"})
            return
        if not events or not isinstance(events[0], Request):
            self._plain(handler, 400, {"message": "Bad Request"})
            return
        headers = {k: v for k, v in handler.headers.items()}
        sock = _Socket(
            connection_id=_new_connection_id(),
            sock=handler.connection,
            ws=ws,
            source_ip=handler.client_address[0],
            user_agent=handler.headers.get("User-Agent", ""),
            headers=headers,
        )
        status, body = 200, b""
        if "$connect" in self.api.routes:
            try:
                result = self._invoke("$connect", self.connect_event(sock, query))
                status = int(result.get("statusCode", 200)) if isinstance(result, dict) else 200
                body = str((result or {}).get("body") or "").encode()
            except FunctionError as exc:
                log.error("$connect failed: %s: %s", exc.kind, exc)
                status, body = 500, b'{"message":"Internal server error"}'
        if not 200 <= status < 300:
            reject = RejectConnection(
                status_code=status,
                headers=[(b"content-type", b"application/json")],
                has_body=bool(body),
            )
            data = ws.send(reject)
            if body:
                data += ws.send(RejectData(data=body))
            handler.connection.sendall(data)
            return
        handler.connection.sendall(ws.send(AcceptConnection()))
        # Frames are sent from the @connections loop, which serves every poster: a client that
        # stops reading may hold it for this long at most (then it is gone, 410).
        handler.connection.settimeout(SEND_TIMEOUT_SECONDS)
        with self._lock:
            self._sockets[sock.connection_id] = sock
        code, reason = 1011, "Internal server error"
        try:
            code, reason = self._read_loop(sock)
        finally:
            # Whatever ended the loop (a function's reply to a socket gone mid-send raises),
            # the connection leaves the table: it holds open connections only.
            with self._lock:
                self._sockets.pop(sock.connection_id, None)
            sock.close(code, reason)
        if "$disconnect" in self.api.routes:
            try:
                self._invoke("$disconnect", self.disconnect_event(sock, code, reason))
            except FunctionError as exc:
                log.error("$disconnect failed: %s: %s", exc.kind, exc)

    def _read_loop(self, sock: _Socket) -> tuple[int, str]:
        """Frames until the connection ends; the close code and reason."""
        started = time.monotonic()
        last_active = started
        # poll, not select: select() refuses descriptors from 1,024 on, and a gateway with a
        # thousand connections open has them.
        poller = select.poll()
        poller.register(sock.sock, select.POLLIN)
        parts: list[str] = []
        size = 0
        while True:
            now = time.monotonic()
            left = min(last_active + self.idle_seconds, started + self.max_seconds) - now
            if left <= 0:
                return GOING_AWAY, "Going away"
            if not poller.poll(left * 1000):
                continue
            try:
                data = sock.sock.recv(65536)
            except OSError:
                return 1006, "Connection reset"
            with sock.lock:
                if sock.closed:
                    return 1000, "Connection closed by the server"
                sock.ws.receive_data(data or None)
                try:
                    events = list(sock.ws.events())
                except RemoteProtocolError:
                    return 1002, "Protocol error"
            if not data and not events:
                return 1006, "Connection lost"
            last_active = time.monotonic()
            sock.last_active_ms = _now_ms()
            for event in events:
                if isinstance(event, CloseConnection):
                    if not data:  # the peer vanished without a close frame: nothing to answer
                        return 1006, "Connection lost"
                    sock.send(event.response())
                    return event.code, f"Client-side close frame status code '{event.code}'"
                if isinstance(event, Ping):
                    sock.send(event.response())
                elif isinstance(event, (TextMessage, BytesMessage)):
                    chunk = (
                        event.data
                        if isinstance(event.data, str)
                        else event.data.decode("utf-8", "replace")
                    )
                    size += len(chunk.encode())
                    if size > MAX_MESSAGE_BYTES:
                        return MESSAGE_TOO_BIG, "Message too big"
                    parts.append(chunk)
                    if event.message_finished:
                        self._on_message(sock, "".join(parts))
                        parts, size = [], 0
            if not data:
                return 1006, "Connection lost"

    def _on_message(self, sock: _Socket, body: str) -> None:
        route = self.api.select(body)
        request_id = str(uuid.uuid4())
        if route is None:
            reply = {"message": "Forbidden", "connectionId": sock.connection_id,
                     "requestId": request_id}  # fmt: skip
            sock.send(TextMessage(data=json.dumps(reply)))
            return
        try:
            result = self._invoke(route.key, self.message_event(sock, route.key, body))
        except FunctionError as exc:
            log.error("%s failed: %s: %s", route.key, exc.kind, exc)
            reply = {"message": "Internal server error", "connectionId": sock.connection_id,
                     "requestId": request_id}  # fmt: skip
            sock.send(TextMessage(data=json.dumps(reply)))
            return
        if route.two_way and isinstance(result, dict) and result.get("body") is not None:
            payload = result["body"]
            if result.get("isBase64Encoded"):
                sock.send_frame(base64.b64decode(payload))
            else:
                sock.send(TextMessage(data=str(payload)))

    # -- Lambda's Invoke API

    def _invoke_pool(self, function: str) -> FunctionPool | None:
        """The pool of a function named as Invoke takes it: name, ARN or partial ARN."""
        name = function.rsplit(":function:", 1)[-1].split(":", 1)[0]
        for logical_id, spec in self._functions.items():
            # The local template resolver answers a function's Ref with local-<LogicalId>
            # (devstack/gateway/template_api.py), AWS with its FunctionName: either names it.
            if name in (spec.name, f"local-{logical_id}"):
                with self._lock:
                    pool = self.pools.get(logical_id)
                    if pool is None:
                        environment = function_environment(spec.environment, self._overrides)
                        pool = FunctionPool(spec, self.api.region, environment,
                                            self._max_containers)  # fmt: skip
                        self.pools[logical_id] = pool
                return pool
        return None

    def _lambda_invoke(self, handler: BaseHTTPRequestHandler, function: str) -> None:
        """``POST /2015-03-31/functions/<name>/invocations`` as Lambda answers it: SigV4 (the
        lambda service) of a known identity, RequestResponse (the result, or the error with
        ``X-Amz-Function-Error``), Event (202, run in the background) or DryRun (204);
        payloads up to 6 MB."""
        pairs = list(handler.headers.items())
        length = int(handler.headers.get("Content-Length") or 0)
        if length > INVOKE_MAX_BYTES:
            handler.close_connection = True
            self._error(handler, 413, "RequestEntityTooLargeException",
                        f"Request must be smaller than {INVOKE_MAX_BYTES} bytes for the "
                        "InvokeFunction operation")  # fmt: skip
            return
        body = handler.rfile.read(length) if length else b""
        if not signed_by_known_key(
            "POST", handler.path, pairs, body, self.iam_users, self.api.region, "lambda"
        ):
            unsigned = is_unsigned(pairs)
            kind = (
                "MissingAuthenticationTokenException" if unsigned else "InvalidSignatureException"
            )
            self._error(handler, 403, kind, MSG_MISSING if unsigned else MSG_LAMBDA_SIGNATURE)
            return
        pool = self._invoke_pool(function)
        if pool is None:
            arn = f"arn:aws:lambda:{self.api.region}:{LOCAL_ACCOUNT_ID}:function:{function}"
            self._error(handler, 404, "ResourceNotFoundException", f"Function not found: {arn}")
            return
        try:
            event = json.loads(body or b"{}")
        except ValueError:
            self._error(handler, 400, "InvalidRequestContentException",
                        "Could not parse request body into json")  # fmt: skip
            return
        kind = handler.headers.get("X-Amz-Invocation-Type") or "RequestResponse"
        if kind == "DryRun":
            self._plain(handler, 204, None)
            return
        if kind == "Event":
            threading.Thread(target=self._invoke_logged, args=(pool, event), daemon=True).start()
            self._plain(handler, 202, None)
            return
        try:
            result = pool.invoke(event)
        except FunctionError as exc:
            error = {"errorMessage": str(exc), "errorType": exc.kind}
            self._plain(handler, 200, error, [("X-Amz-Function-Error", "Unhandled")])
            return
        self._plain(handler, 200, result, [("X-Amz-Executed-Version", "$LATEST")])

    @staticmethod
    def _invoke_logged(pool: FunctionPool, event: Any) -> None:
        try:
            pool.invoke(event)
        except FunctionError as exc:
            log.error("%s failed: %s: %s", pool.spec.logical_id, exc.kind, exc)

    # -- @connections

    def _serve_management(self, handler: BaseHTTPRequestHandler) -> None:
        """The connection's next requests go to the @connections loop (``_ManagementLoop``);
        this thread waits until the connection ends there (http.server closes it after)."""
        if handler.close_connection:
            return
        sock = handler.connection
        sock.setblocking(False)
        try:
            # What the handler's reader already holds beyond the first request (none unless
            # the client pipelines), without waiting for more.
            buffered = handler.rfile.read1(65536) or b""
        except BlockingIOError:
            buffered = b""
        done = self._loop().adopt(sock, buffered)
        done.wait()
        handler.close_connection = True

    def _loop(self) -> _ManagementLoop:
        with self._lock:
            if self._management_loop is None:
                self._management_loop = _ManagementLoop(self._management_call)
            return self._management_loop

    def _management(
        self,
        handler: BaseHTTPRequestHandler,
        header_pairs: list[tuple[str, str]],
        connection_id: str,
    ) -> None:
        """One @connections call read by http.server (a connection's first)."""
        length = int(next((v for n, v in header_pairs if n.lower() == "content-length"), None) or 0)
        refusal = _refused_before_body(handler.command, header_pairs, length)
        if refusal is not None:
            # Refused without reading the body: the connection cannot carry another request.
            handler.close_connection = True
            self._error(handler, *refusal)
            return
        data = handler.rfile.read(length) if length else b""
        status, kind, body = self._management_call(
            handler.command, handler.path, header_pairs, data, connection_id
        )
        if status == 200 and handler.command == "POST":
            handler.wfile.write(_POSTED())
        elif kind is not None:
            self._error(handler, status, kind, body.get("message") if body else None)
        else:
            self._plain(handler, status, body)

    def _management_call(
        self,
        method: str,
        raw_path: str,
        header_pairs: list[tuple[str, str]],
        data: bytes,
        connection_id: str,
    ) -> tuple[int, str | None, dict[str, Any] | None]:
        """An @connections call whose body was read: status, x-amzn-ErrorType (errors) and
        JSON body (None: empty)."""
        if not signed_by_known_key(
            method, raw_path, header_pairs, data, self.iam_users, self.api.region
        ):
            refusal = check(method, raw_path, header_pairs, data, self.iam_users, self.api.region)
            if refusal is not None:
                return refusal.status, refusal.error_type, {"message": refusal.message}
        with self._lock:
            sock = self._sockets.get(connection_id)
        if method not in ("POST", "GET", "DELETE"):
            return 404, None, {"message": "Not Found"}
        if sock is None or sock.closed:
            return 410, "GoneException", {"message": None}
        if method == "GET":
            # API Gateway's wire names (boto3 maps them to ConnectedAt, Identity, ...)
            return 200, None, {
                "connectedAt": _iso(sock.connected_at_ms),
                "identity": {"sourceIp": sock.source_ip, "userAgent": sock.user_agent},
                "lastActiveAt": _iso(sock.last_active_ms),
            }  # fmt: skip
        try:
            if method == "POST":
                sock.send_frame(data)
            else:
                sock.close(1000, "Connection closed by the server")
        except OSError:
            return 410, "GoneException", {"message": None}
        return (200, None, None) if method == "POST" else (204, None, None)

    def _error(
        self, handler: BaseHTTPRequestHandler, status: int, kind: str, message: str | None
    ) -> None:
        self._plain(handler, status, {"message": message}, [("x-amzn-ErrorType", kind)])

    def _plain(
        self,
        handler: BaseHTTPRequestHandler,
        status: int,
        body: Any,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        handler.send_response(status)
        for name, value in headers or []:
            handler.send_header(name, value)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        handler.end_headers()
        handler.wfile.write(data)
