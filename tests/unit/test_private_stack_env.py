"""devstack.private: a stack of its own gets distinct free ports and names all of them."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack.private import free_ports, stack_env

pytestmark = pytest.mark.unit


def test_ports_are_distinct_and_free_to_bind(tmp_path: Path) -> None:
    ports = free_ports(7)
    assert len(set(ports)) == 7 and all(1024 < p < 65536 for p in ports)


def test_the_env_names_every_service_and_the_apps_on_request(tmp_path: Path) -> None:
    base = stack_env(tmp_path / "stack")
    assert base["BOURSE_STACK_DIR"] == str(tmp_path / "stack")
    for name in ("BOURSE_KAFKA_BOOTSTRAP", "BOURSE_PG_DSN", "BOURSE_REDIS_URL", "BOURSE_MOTO_PORT"):
        assert "127.0.0.1" in base[name] or base[name].isdigit()
    assert "BOURSE_GATEWAY_PORT" not in base
    apps = stack_env(tmp_path / "stack", apps=True)
    assert apps["BOURSE_GATEWAY_PORT"].isdigit() and apps["BOURSE_MATCHING_METRICS_PORT"].isdigit()
