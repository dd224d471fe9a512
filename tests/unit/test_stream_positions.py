"""Positions of stream messages and the replay of a resuming connection (issue 20, item 1;
bourse.streams.positions, bourse.ws.resume, the broadcaster's frames): pure, no I/O."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bourse.adapters.connections import Connection
from bourse.adapters.stream_log import LogGap
from bourse.consumers.broadcaster import frames_for
from bourse.streams.market import Batch, Message
from bourse.streams.positions import (
    END_OF_BATCH,
    InvalidPosition,
    Position,
    entry_id,
    from_entry_id,
    numbered,
    parse_position,
    positioned_frame,
)
from bourse.ws.resume import GONE, Replay

pytestmark = pytest.mark.unit

KEY = "k" * 60


def test_positions_parse_as_documented() -> None:
    assert parse_position("9071-3") == (9071, 3)
    assert parse_position("9071") == (9071, END_OF_BATCH)
    assert parse_position("0") == (0, END_OF_BATCH)
    for bad in ("", "-1", "1-", "01", "1-01", "a-1", "1-2-3", "1 ", "1-99999999999"):
        with pytest.raises(InvalidPosition):
            parse_position(bad)


@given(st.integers(0, 2**62), st.integers(0, END_OF_BATCH))
def test_entry_ids_round_trip(seq: int, n: int) -> None:
    assert from_entry_id(entry_id((seq, n)).encode()) == (seq, n)
    assert parse_position(entry_id((seq, n))) == (seq, n)


def _batch() -> Batch:
    return Batch(
        market=[
            Message("btcusdt@trade", b'{"e":"trade","t":1}'),
            Message("btcusdt@depth", b'{"e":"depthUpdate","u":5}'),
            Message("btcusdt@trade", b'{"e":"trade","t":2}'),
        ],
        user={7: [b'{"e":"executionReport","i":1}'], 8: [b'{"e":"balanceUpdate"}']},
    )


def test_the_broadcaster_numbers_messages_as_the_log_does() -> None:
    batch = _batch()
    logged = list(numbered([(m.stream, m.data) for m in batch.market], batch.user))
    assert [(n, log) for n, log, _ in logged] == [
        (0, "s:btcusdt@trade"), (1, "s:btcusdt@depth"), (2, "s:btcusdt@trade"),
        (3, "a:7"), (4, "a:8"),
    ]  # fmt: skip
    live = Connection("live", combined=False, positions=True)
    plain = Connection("plain", combined=False)
    user = Connection("user", combined=False, listen_key=KEY, positions=True)
    frames = frames_for(
        batch, {"btcusdt@trade": [live, plain]}, {7: [user]}, seq=42, replaying=frozenset()
    )
    assert [json.loads(f) for f in frames["live"]] == [
        {"stream": "btcusdt@trade", "data": {"e": "trade", "t": 1}, "seq": 42, "n": 0},
        {"stream": "btcusdt@trade", "data": {"e": "trade", "t": 2}, "seq": 42, "n": 2},
    ]
    # The log's entries, wrapped as a replay wraps them, are the live frames byte for byte.
    replayed = [positioned_frame("btcusdt@trade", data, (42, n)) for n, log, data in logged
                if log == "s:btcusdt@trade"]  # fmt: skip
    assert frames["live"] == replayed
    assert frames["plain"] == [b'{"e":"trade","t":1}', b'{"e":"trade","t":2}']
    assert json.loads(frames["user"][0])["stream"] == KEY
    assert json.loads(frames["user"][0])["n"] == 3
    skipped = frames_for(batch, {"btcusdt@trade": [live]}, {7: [user]}, 42, {"live", "user"})
    assert skipped == {}


class FakeLog:
    """A log of (position, log, payload) with pages, a gap, and a hand-over that fails
    ``busy`` times before it succeeds."""

    def __init__(self, entries: list[tuple[Position, str, bytes]], busy: int = 0) -> None:
        self.entries = sorted(entries)
        self.busy = busy
        self.gap_after: Position | None = None
        self.forgotten: list[str] = []
        self.live: list[Position] = []

    def read_after(
        self, logs: Sequence[str], cursor: Position, count: int
    ) -> list[tuple[Position, str, bytes]]:
        if self.gap_after is not None and cursor < self.gap_after:
            raise LogGap(logs[0])
        return [e for e in self.entries if e[0] > cursor and e[1] in logs][:count]

    def go_live(self, connection_id: str, logs: Sequence[str], cursor: Position) -> bool:
        if self.busy:
            self.busy -= 1
            # A batch lands while the hand-over waits: the replay must post it too.
            self.entries.append(((cursor[0] + 1, 0), logs[0], b'{"late":1}'))
            return False
        self.live.append(cursor)
        return True

    def forget(self, connection_id: str) -> None:
        self.forgotten.append(connection_id)


def _replay(log: FakeLog, statuses: list[int] | None = None) -> tuple[Replay, list[bytes]]:
    posted: list[bytes] = []
    answers = iter(statuses or [])

    def post(connection_id: str, frame: bytes) -> int:
        posted.append(frame)
        return next(answers, 200)

    clock = iter(range(0, 10**6))
    replay = Replay(log, post, lambda cid: posted.append(b"closed"), page=2, open_wait_s=3,
                    clock=lambda: float(next(clock)), sleep=lambda s: None)  # fmt: skip
    return replay, posted


def test_a_replay_posts_in_position_order_then_hands_over() -> None:
    entries = [((10, 0), "s:a", b"1"), ((10, 2), "a:7", b"2"), ((11, 0), "s:a", b"3"),
               ((9, 0), "s:a", b"old"), ((12, 1), "s:other", b"not mine")]  # fmt: skip
    log = FakeLog(entries, busy=1)
    replay, posted = _replay(log)
    outcome = replay.run("c", (9, 0), [("s:a", "a"), ("a:7", KEY)])
    assert outcome.status == "live"
    assert [json.loads(f)["data"] for f in posted] == [1, 2, 3, {"late": 1}]
    assert [json.loads(f)["stream"] for f in posted] == ["a", KEY, "a", "a"]
    assert log.live == [(12, 0)] and outcome.sent == 4


def test_a_replay_waits_for_the_connection_to_open_then_gives_up() -> None:
    log = FakeLog([((5, 0), "s:a", b"1"), ((6, 0), "s:a", b"2")])
    replay, posted = _replay(log, [GONE, GONE, 200, 200])
    assert replay.run("c", (0, 0), [("s:a", "a")]).status == "live"
    assert len(posted) == 4  # the first frame three times, then the second
    log = FakeLog([((5, 0), "s:a", b"1")])
    replay, posted = _replay(log, [GONE] * 10)
    assert replay.run("c", (0, 0), [("s:a", "a")]).status == "gone"
    assert log.forgotten == ["c"]


def test_a_replay_past_the_log_tells_the_client_and_closes() -> None:
    log = FakeLog([((5, 0), "s:a", b"1")])
    log.gap_after = (4, 0)
    replay, posted = _replay(log)
    outcome = replay.run("c", (3, 0), [("s:a", "a")])
    assert outcome.status == "gap" and outcome.sent == 0
    assert json.loads(posted[0])["error"]["code"] == 2 and posted[1] == b"closed"
    assert log.forgotten == ["c"]


def test_replay_pages_start_at_the_position_asked_for() -> None:
    from bourse.api.event_replay import DEFAULT_LIMIT, _page
    from bourse.api.params import Params

    assert _page(Params({"fromSeq": "10"})) == ((9, END_OF_BATCH), DEFAULT_LIMIT)
    assert _page(Params({"fromSeq": "10", "fromN": "3", "limit": "7"})) == ((10, 2), 7)
    assert _page(Params({"fromSeq": "0"})) == ((0, 0), DEFAULT_LIMIT)
    assert (9, END_OF_BATCH) < (10, 0)


def test_a_session_resume_posts_its_answer_first_then_positioned_events() -> None:
    log = FakeLog([((5, 1), "a:7", b'{"e":"x"}')])
    replay, posted = _replay(log)
    outcome = replay.run("c", (5, 0), [("a:7", "")], subscription_id=0, first=b'{"id":"r1"}')
    assert outcome.status == "live" and outcome.sent == 1
    assert posted[0] == b'{"id":"r1"}'
    assert json.loads(posted[1]) == {"subscriptionId": 0, "event": {"e": "x"}, "seq": 5, "n": 1}
