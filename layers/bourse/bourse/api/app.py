"""The Powertools REST resolver for a group of routes: API Gateway proxy event (v1.0) in,
Binance JSON out, every error in Binance's ``{"code", "msg"}`` shape with its HTTP status.

The entrypoints in ``functions/*/app.py`` only add Logger, Metrics and Tracer around it.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any
from urllib.parse import urlencode

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, CORSConfig, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError

from bourse.api import limiting, rate_limits
from bourse.api.auth import caller_from_event
from bourse.api.handlers import CancelReplaceFailed, Deps, Request
from bourse.api.known_symbols import KnownSymbolsBus
from bourse.api.routes import Route
from bourse.domain import errors
from bourse.domain.errors import BinanceError

log = logging.getLogger("bourse.api")
JSON = "application/json;charset=UTF-8"
INTERNAL_ERROR = BinanceError(
    errors.DISCONNECTED, "Internal error; unable to process your request. Please try again.", 500
)
NOT_FOUND = BinanceError(errors.UNKNOWN, "Unknown path or method.", 404)
ILLEGAL_BODY = BinanceError(errors.ILLEGAL_CHARS, "Illegal characters found in a parameter.")
# The page on CloudFront calls from another origin (template.yaml's Cors says why any origin);
# the limit headers are exposed so a browser client can pace itself as Binance's clients do.
CORS = CORSConfig(
    allow_origin="*",
    allow_headers=["X-MBX-APIKEY"],
    expose_headers=[
        rate_limits.WEIGHT_HEADER,
        rate_limits.LEGACY_WEIGHT_HEADER,
        rate_limits.ORDER_10S_HEADER,
        rate_limits.ORDER_1D_HEADER,
    ],
    max_age=600,
)


def json_response(status: int, body: Any) -> Response[str]:
    return Response(
        status_code=status,
        content_type=JSON,
        body=json.dumps(body, separators=(",", ":")),
    )


def error_response(error: BinanceError) -> Response[str]:
    return json_response(error.http_status, error.as_dict())


def query_string(event: dict[str, Any]) -> str:
    """The query string as the client signed it, rebuilt from the proxy event.

    API Gateway REST (v1.0) passes decoded parameters only, in the order it met them; they
    are re-encoded the way ``urllib.parse.urlencode`` (and so python-binance and most
    clients) encodes them, which reproduces the signed bytes for every value Binance's
    parameters can take (letters, digits and ``.-_``, where all encodings agree).
    """
    multi = event.get("multiValueQueryStringParameters") or {}
    pairs = [(name, value) for name, values in multi.items() for value in values or ()]
    if not pairs:
        single = event.get("queryStringParameters") or {}
        pairs = list(single.items())
    return urlencode(pairs)


def body_text(resolver: APIGatewayRestResolver) -> str:
    """The body as sent. API Gateway base64-encodes a body that is not UTF-8 text; its stray
    bytes are kept as surrogates (``surrogateescape``) so that the signature is checked over
    the bytes the client signed (``bourse.api.signing.payload_bytes``) and the parameters
    holding them fail their own checks with Binance's codes, never a decoding error."""
    event = resolver.current_event
    if event.body is None:
        return ""
    if not event.is_base64_encoded:
        return event.body
    try:
        raw = base64.b64decode(event.body)
    except (binascii.Error, ValueError):
        raise ILLEGAL_BODY from None
    return raw.decode("utf-8", "surrogateescape")


def build(routes: tuple[Route, ...], deps: Callable[[], Deps]) -> APIGatewayRestResolver:
    """A resolver serving ``routes``; ``deps`` is called on the first request (connections are
    made then, once per container, not at import)."""
    app = APIGatewayRestResolver(cors=CORS)
    # The rate-limit headers of the request being served, for its answer whatever it is (the
    # error handlers below add them too). One per container is enough: a Lambda container
    # serves one request at a time.
    limit_headers: dict[str, str] = {}

    def with_limit_headers(response: Response[str]) -> Response[str]:
        response.headers.update(limit_headers)
        return response

    def bind(route: Route) -> Callable[[], Response[str]]:
        def endpoint() -> Response[str]:
            limit_headers.clear()
            event = app.current_event.raw_event
            request = Request(
                query_string=query_string(event),
                body=body_text(app),
                caller=caller_from_event(event) if route.needs_api_key else None,
            )
            live = deps()
            # An unlisted symbol is answered here, not written to the one command log.
            live = replace(live, bus=KnownSymbolsBus(live.bus, live.view))
            limiting.admit(route, event, request, live, limit_headers)
            return with_limit_headers(json_response(200, route.handler(request, live)))

        endpoint.__name__ = f"{route.method.lower()}_{route.path.strip('/').replace('/', '_')}"
        return endpoint

    for route in routes:
        app.route(route.path, method=route.method)(bind(route))

    def binance_error(exc: BinanceError) -> Response[str]:
        return with_limit_headers(error_response(exc))

    def cancel_replace_failed(exc: CancelReplaceFailed) -> Response[str]:
        return with_limit_headers(json_response(exc.error.http_status, exc.body()))

    @app.not_found
    def not_found(exc: NotFoundError) -> Response[str]:
        return error_response(NOT_FOUND)

    def unexpected(exc: Exception) -> Response[str]:
        log.exception("unexpected error")
        return with_limit_headers(error_response(INTERNAL_ERROR))

    # Registered by call rather than as decorators: Powertools' decorator is untyped.
    app.exception_handler(BinanceError)(binance_error)
    app.exception_handler(CancelReplaceFailed)(cancel_replace_failed)
    app.exception_handler(Exception)(unexpected)
    return app
