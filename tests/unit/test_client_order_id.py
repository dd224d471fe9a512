"""The client order id Bourse makes up when a client sends none: Binance's shape (22
characters of [A-Za-z0-9]), every character uniform, no repeats."""

from __future__ import annotations

import collections
import re

import pytest

from bourse.api.orders import generate_client_order_id

pytestmark = pytest.mark.unit


def test_shape_and_uniqueness() -> None:
    ids = [generate_client_order_id() for _ in range(20_000)]
    assert all(re.fullmatch(r"[A-Za-z0-9]{22}", i) for i in ids)
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize("position", [0, 11, 21])
def test_every_position_uses_the_whole_alphabet_evenly(position: int) -> None:
    counts = collections.Counter(generate_client_order_id()[position] for _ in range(31_000))
    assert len(counts) == 62
    # 500 expected per character; a character outside 380..620 is a 5+ sigma event.
    assert min(counts.values()) >= 380 and max(counts.values()) <= 620
