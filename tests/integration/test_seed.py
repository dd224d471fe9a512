"""Seeding a fresh exchange (`make run`) through the admin plane: the markets, the demo account,
its deposits and its API key, all by the admin API of a private exchange that lists nothing
yet; a second run changes nothing (no market twice, no second credit, the same key)."""

from __future__ import annotations

import dataclasses
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from bourse.adapters import aws
from bourse.adapters.api_keys import get_api_key
from bourse.adapters.redis_book import read_balances
from bourse.domain.amounts import parse_units
from bourse.domain.markets import DEFAULT_MARKETS, DEMO_FUNDS
from bourse.settings import Settings
from devstack import seed as seeding
from tests.integration.api_support import ApiStack

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REDIS_DB = int(os.environ.get("BOURSE_TEST_SEED_REDIS_DB", "41"))


@pytest.fixture(scope="module")
def stack(local_stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiStack]:
    s = ApiStack(local_stack, tmp_path_factory.mktemp("seed"), REDIS_DB)
    try:
        s.start(markets=False)
        yield s
    finally:
        s.stop()


def test_seed_once_then_never_again(stack: ApiStack, tmp_path: Path) -> None:
    settings = dataclasses.replace(stack.settings, stack_dir=str(tmp_path))
    first = seeding.seed(settings, stack.admin)
    second = seeding.seed(settings, stack.admin)

    assert first.markets_added == tuple(s.symbol for s in DEFAULT_MARKETS)
    assert second.markets_added == ()
    assert first.credited == ("BTC", "ETH", "USDT") and second.credited == ()
    assert first.secret_shown is not None and second.secret_shown is None
    assert first.api_key == second.api_key

    listed = stack.admin.markets()
    assert sorted(m["symbol"] for m in listed) == sorted(s.symbol for s in DEFAULT_MARKETS)
    balances = read_balances(stack.redis, seeding.DEMO_ACCOUNT_ID)
    assert {a: balances[a][0] for a in balances} == {a: parse_units(v) for a, v in DEMO_FUNDS}

    stored = get_api_key(first.api_key)
    assert stored is not None
    assert (stored.secret, stored.account_id) == (first.secret_shown, seeding.DEMO_ACCOUNT_ID)
    assert set(stored.permissions) == {"TRADE", "USER_DATA"}
    raw = aws.client("dynamodb").get_item(
        TableName=stack.settings.api_keys_table, Key={"apiKey": {"S": first.api_key}}
    )["Item"]
    assert first.secret_shown not in str(raw)  # only the KMS ciphertext is stored

    mode = stat.S_IMODE(first.credentials_file.stat().st_mode)
    assert mode == 0o600
    assert any("shown once" in line for line in first.lines())


def test_a_lost_key_is_issued_again(stack: ApiStack, tmp_path: Path) -> None:
    """moto keeps DynamoDB in memory: after a new `up` the saved key is gone, and seeding
    issues a new one through the admin plane (shown once) instead of failing."""
    settings = dataclasses.replace(stack.settings, stack_dir=str(tmp_path))
    first = seeding.seed(settings, stack.admin)
    stack.admin.revoke_key(first.api_key)
    again = seeding.seed(settings, stack.admin)
    assert again.api_key != first.api_key and again.secret_shown is not None
    assert again.credited == ()
