"""python -m devstack.gateway: serve template.yaml's REST APIs (trading and admin) and its
WebSocket API on 127.0.0.1:$BOURSE_GATEWAY_PORT."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from types import FrameType

from bourse.settings import get_settings
from devstack.gateway.management_auth import function_users
from devstack.gateway.server import Gateway, make_server
from devstack.gateway.template_api import load_rest_api
from devstack.gateway.websocket import WebSocketGateway, load_websocket_api
from devstack.operators import operator_user


def main() -> int:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    settings = get_settings()
    api = load_rest_api(settings.stage, settings.region, settings.moto_port)
    # Variables set for the gateway itself win over the template's (tests move topics, Redis
    # and ports that way).
    # The admin API (AWS_IAM) accepts the local operator's signatures only.
    operator = operator_user(settings)
    gateway = Gateway(
        api, overrides=dict(os.environ), max_containers=settings.gateway_max_containers,
        iam_users={operator.access_key_id: operator},
    )  # fmt: skip
    # Every function's first container starts before the port opens: `run` and the tests take
    # the open port as "ready", and a function that cannot import fails here, not on a request.
    ws_api = load_websocket_api(settings.stage, settings.region)
    websocket = None
    if ws_api is not None:
        websocket = WebSocketGateway(
            api, ws_api, overrides=dict(os.environ),
            idle_seconds=settings.gateway_ws_idle_seconds,
            max_seconds=settings.gateway_ws_max_seconds,
            # @connections takes the signatures of the functions' own credentials only.
            iam_users=function_users(settings),
        )  # fmt: skip
    # The WebSocket functions' cold starts run alongside the REST ones'.
    warming = threading.Thread(target=websocket.warm) if websocket is not None else None
    if warming is not None:
        warming.start()
    gateway.warm()
    if warming is not None:
        warming.join()
    server = make_server(gateway, "127.0.0.1", settings.gateway_port, websocket)

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    routes = ", ".join(f"{r.method} {r.path}" for r in api.routes)
    logging.getLogger("devstack.gateway").info(
        "gateway listening on %s (%d routes: %s)", settings.gateway_url, len(api.routes), routes
    )
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        gateway.close()
        if websocket is not None:
            websocket.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
