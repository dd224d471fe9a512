"""API Gateway WebSocket proxy events in, integration responses out.

API Gateway v2 (WebSocket, Lambda proxy) sends ``requestContext.routeKey``, ``eventType``
(CONNECT, MESSAGE, DISCONNECT), ``connectionId``, ``connectedAt``, ``domainName``, ``stage``
and ``apiId``; ``$connect`` adds the handshake's headers and query parameters, messages their
text ``body``. A route with a route response sends the function's ``body`` back as one frame;
a non-2xx ``statusCode`` on ``$connect`` refuses the handshake with that status.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from typing import Any

CONNECT = "CONNECT"
MESSAGE = "MESSAGE"
DISCONNECT = "DISCONNECT"


@dataclass(frozen=True)
class WsEvent:
    route_key: str
    event_type: str
    connection_id: str
    connected_at_ms: int
    source_ip: str
    body: str | None = None
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


def read_event(event: dict[str, Any]) -> WsEvent:
    context = event.get("requestContext") or {}
    identity = context.get("identity") or {}
    body = event.get("body")
    if body is not None and event.get("isBase64Encoded"):
        body = base64.b64decode(body).decode("utf-8", "replace")
    return WsEvent(
        route_key=str(context.get("routeKey", "")),
        event_type=str(context.get("eventType", "")),
        connection_id=str(context.get("connectionId", "")),
        connected_at_ms=int(context.get("connectedAt") or time.time_ns() // 1_000_000),
        source_ip=str(identity.get("sourceIp", "")),
        body=body,
        query={str(k): str(v) for k, v in (event.get("queryStringParameters") or {}).items()},
        headers={str(k): str(v) for k, v in (event.get("headers") or {}).items()},
    )


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def reply(body: Any, status: int = 200) -> dict[str, Any]:
    """An integration response: ``body`` is the frame the client receives."""
    return {"statusCode": status, "body": dumps(body)}


def empty(status: int = 200) -> dict[str, Any]:
    """$connect and $disconnect: nothing is sent to the client."""
    return {"statusCode": status}
