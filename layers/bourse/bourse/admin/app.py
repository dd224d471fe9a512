"""The admin API's Powertools REST resolver: API Gateway proxy event (v1.0, AWS_IAM) in, JSON
out, every refusal ``{"code", "msg"}`` with its HTTP status. ``functions/admin/app.py`` only
adds the Logger around it."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError

from bourse.admin.handlers import ROUTES, AdminRequest, AdminRoute
from bourse.admin.ports import AdminDeps
from bourse.domain import errors
from bourse.domain.errors import BinanceError

log = logging.getLogger("bourse.admin")
JSON = "application/json;charset=UTF-8"
INTERNAL_ERROR = BinanceError(
    errors.DISCONNECTED, "Internal error; unable to process your request. Please try again.", 500
)
NOT_FOUND = BinanceError(errors.UNKNOWN, "Unknown path or method.", 404)


def powertools_path(path: str) -> str:
    """``/admin/markets/{symbol}`` (API Gateway) -> ``/admin/markets/<symbol>`` (Powertools)."""
    return re.sub(r"\{(\w+)\}", r"<\1>", path)


def json_response(status: int, body: Any) -> Response[str]:
    return Response(
        status_code=status, content_type=JSON, body=json.dumps(body, separators=(",", ":"))
    )


def request_of(event: dict[str, Any], body: str | None) -> AdminRequest:
    identity = (event.get("requestContext") or {}).get("identity") or {}
    return AdminRequest(
        principal=str(identity.get("userArn") or ""),
        # API Gateway's own values (decoded), not the resolver's matches of the raw path.
        path=dict(event.get("pathParameters") or {}),
        query=dict(event.get("queryStringParameters") or {}),
        body=body,
    )


def build(deps: Callable[[], AdminDeps]) -> APIGatewayRestResolver:
    """A resolver for every admin route; ``deps`` is called on the first request (clients
    are made then, once per container)."""
    app = APIGatewayRestResolver()

    def bind(route: AdminRoute) -> Callable[..., Response[str]]:
        def endpoint(**_: str) -> Response[str]:
            event = app.current_event
            body = event.decoded_body if event.is_base64_encoded else event.body
            request = request_of(event.raw_event, body)
            log.info("admin request", extra={"route": f"{route.method} {route.path}",
                                             "principal": request.principal})  # fmt: skip
            return json_response(200, route.handler(request, deps()))

        endpoint.__name__ = route.handler.__name__
        return endpoint

    for route in ROUTES:
        app.route(powertools_path(route.path), method=route.method)(bind(route))

    def binance_error(exc: BinanceError) -> Response[str]:
        return json_response(exc.http_status, exc.as_dict())

    @app.not_found
    def not_found(exc: NotFoundError) -> Response[str]:
        return json_response(NOT_FOUND.http_status, NOT_FOUND.as_dict())

    def unexpected(exc: Exception) -> Response[str]:
        log.exception("unexpected error")
        return json_response(INTERNAL_ERROR.http_status, INTERNAL_ERROR.as_dict())

    # Registered by call rather than as decorators: Powertools' decorator is untyped.
    app.exception_handler(BinanceError)(binance_error)
    app.exception_handler(Exception)(unexpected)
    return app
