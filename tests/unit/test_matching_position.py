"""The matching service's committed position (matching_service.published.position): the last
event record's offsets header proves it, the group's offset is a copy that may lag it or, after
an offset-only transaction, pass it; neither alone may be trusted over the other."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from matching_service.published import Published, position

pytestmark = pytest.mark.unit

offsets = st.integers(min_value=0, max_value=10**12)


def test_the_events_header_wins_over_a_lagging_group_copy() -> None:
    assert position(Published(seq=90_000, next_offset=5_000), 1_000) == 5_000


def test_an_offset_only_transaction_can_put_the_group_past_the_last_record() -> None:
    # A batch of undecodable commands publishes no record: only the group's offset moved.
    assert position(Published(seq=90_000, next_offset=5_000), 5_003) == 5_003


def test_without_a_header_only_the_group_says() -> None:
    assert position(Published(seq=12, next_offset=None), 700) == 700
    assert position(None, 700) == 700  # retention emptied the event stream


def test_nothing_known_is_none_never_zero() -> None:
    assert position(None, None) is None
    assert position(Published(seq=0, next_offset=None), None) is None


def test_a_header_alone_is_enough() -> None:
    assert position(Published(seq=3, next_offset=41), None) == 41


@given(offsets, offsets)
def test_the_position_is_the_later_of_two_exact_positions(proved: int, copied: int) -> None:
    found = position(Published(seq=1, next_offset=proved), copied)
    assert found == max(proved, copied)
    assert found is not None and found >= proved and found >= copied
