"""python -m devstack.gateway: serve template.yaml's REST API on 127.0.0.1:$BOURSE_GATEWAY_PORT."""

from __future__ import annotations

import logging
import os
import signal
import sys
from types import FrameType

from bourse.settings import get_settings
from devstack.gateway.runtime import apply_environment
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
    gateway = Gateway(api)
    # One process serves every API function: their template environments are applied
    # together (they share the template's Globals); variables set for the gateway win.
    overrides = dict(os.environ)
    for name in gateway.pools:
        apply_environment(api.functions[name].environment, overrides)
    # Every function's first container starts before the port opens: `run` and the tests take
    # the open port as "ready", and an import error shows here, not on a trader's request.
    for pool in gateway.pools.values():
        pool.warm()
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
