"""The local Kafka's cluster id: StorageTool reads an id that starts with "-" as an option, so
one fresh stack in 64 failed to format (seen in CI as "formatting the storage failed")."""

from __future__ import annotations

import base64
import uuid

import pytest

from devstack import kafka


def test_a_cluster_id_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    # The first draw would start with "-" (0xf8 -> "-" in URL-safe base64); the second not.
    draws = iter([uuid.UUID(bytes=b"\xf8" + b"\x00" * 15), uuid.UUID(int=1)])
    monkeypatch.setattr(uuid, "uuid4", lambda: next(draws))
    assert kafka.new_cluster_id() == base64.urlsafe_b64encode(uuid.UUID(int=1).bytes).decode()[:22]


def test_a_cluster_id_is_sixteen_bytes_in_url_safe_base64() -> None:
    for _ in range(2000):
        cluster_id = kafka.new_cluster_id()
        assert len(cluster_id) == 22 and not cluster_id.startswith("-")
        assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16
