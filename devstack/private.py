"""A stack of its own: its own stack dir and free ports, so that a test or a drill can start,
kill and stop a whole stack without touching the developer's (``.devstack`` on the default
ports). ``stack_env`` is the environment every ``python -m devstack`` command of it runs with."""

from __future__ import annotations

import os
import socket
from pathlib import Path


def free_ports(count: int) -> list[int]:
    """Ports nothing listens on now (the kernel's choice, all held until all are chosen)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def stack_env(stack_dir: Path, *, apps: bool = False) -> dict[str, str]:
    """The environment of a stack in ``stack_dir`` on free ports: Kafka, PostgreSQL, Redis and
    moto, Prometheus and its Pushgateway, and the matching service's metrics port that this
    Prometheus scrapes; with ``apps``, the gateway too (``devstack run``)."""
    kafka, controller, pg, redis, moto, gateway, metrics, prom, push = free_ports(9)
    env = {
        **os.environ,
        "BOURSE_STACK_DIR": str(stack_dir),
        "BOURSE_KAFKA_BOOTSTRAP": f"127.0.0.1:{kafka}",
        "BOURSE_KAFKA_CONTROLLER_PORT": str(controller),
        "BOURSE_PG_DSN": f"postgresql://bourse@127.0.0.1:{pg}/bourse",
        "BOURSE_REDIS_URL": f"redis://127.0.0.1:{redis}/0",
        "BOURSE_MOTO_PORT": str(moto),
        "BOURSE_PROMETHEUS_PORT": str(prom),
        "BOURSE_PUSHGATEWAY_PORT": str(push),
        # Always: else this stack's Prometheus would scrape the default stack's service.
        "BOURSE_MATCHING_METRICS_PORT": str(metrics),
    }
    if apps:
        env["BOURSE_GATEWAY_PORT"] = str(gateway)
    return env
