"""python -m devstack.gateway: serve template.yaml's REST API on 127.0.0.1:$BOURSE_GATEWAY_PORT."""

from __future__ import annotations

import logging
import os
import signal
import sys
from types import FrameType

from bourse.settings import get_settings
from devstack.gateway.server import Gateway, make_server
from devstack.gateway.template_api import load_rest_api


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
    gateway = Gateway(api, overrides=dict(os.environ))
    # Every function's first container starts before the port opens: `run` and the tests take
    # the open port as "ready", and a function that cannot import fails here, not on a request.
    gateway.warm()
    server = make_server(gateway, "127.0.0.1", settings.gateway_port)

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
    return 0


if __name__ == "__main__":
    sys.exit(main())
