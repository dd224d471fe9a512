"""Shared fixtures. Integration tests run against the local stack that `make test` starts
(`python -m devstack up`); they fail at once, with that hint, when it is not up."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bourse.settings import Settings, get_settings


@pytest.fixture(scope="session")
def settings() -> Settings:
    return get_settings()


@pytest.fixture(scope="session")
def local_stack(settings: Settings) -> Settings:
    """The running local stack's settings; fails with a clear message when it is down."""
    from devstack.stack import Stack

    down = [s.service.name for s in Stack(settings).status() if s.state != "up"]
    if down:
        pytest.fail(
            f"the local stack is not up ({', '.join(down)}); run `python -m devstack up` "
            "or `make test`",
            pytrace=False,
        )
    return settings


@pytest.fixture(scope="session")
def aws_client(local_stack: Settings) -> Callable[[str], Any]:
    """boto3 clients for moto server, e.g. aws_client("dynamodb")."""
    from devstack.moto import Moto
    from devstack.paths import StackPaths

    return Moto(local_stack, StackPaths.from_settings(local_stack)).client
