"""Requests with the same identity that miss the authorizer cache together wait for one
authorizer call instead of each invoking it (and each starting a container of it)."""

from __future__ import annotations

import threading

import pytest

from devstack.gateway.server import Gateway
from tests.unit.test_gateway import _authorizer_calls, _call, gateway

pytestmark = pytest.mark.unit
__all__ = ["gateway"]  # the fixture, shared with test_gateway


def test_concurrent_misses_of_one_identity_call_the_authorizer_once(gateway: Gateway) -> None:
    statuses: list[int] = []

    def request(ip: str) -> None:
        statuses.append(_call(gateway, "POST", "/closed", {"X-Key": "good"}, ip=ip)[0])

    threads = [threading.Thread(target=request, args=("10.0.0.1",)) for _ in range(6)]
    threads += [threading.Thread(target=request, args=("10.0.0.2",)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 8
    assert _authorizer_calls(gateway) == 2  # one per identity (key, source IP)
