"""The service's end of the fetcher pipe takes every batch waiting, not one per call: batches
then grow with the load instead of staying one command long behind a ~4 ms transaction each
(``Fetcher.poll``)."""

from __future__ import annotations

import multiprocessing
from typing import Any

import msgspec

from matching_service.fetcher import Fetcher

_encode = msgspec.msgpack.Encoder().encode


class _Alive:
    exitcode = None

    def is_alive(self) -> bool:
        return True


def _fetcher() -> tuple[Fetcher, Any]:
    ours, child = multiprocessing.Pipe(duplex=True)
    fetcher = Fetcher.__new__(Fetcher)  # the pipe only: no child process, no Kafka
    fetcher._conn = ours
    fetcher._process = _Alive()  # type: ignore[assignment]
    fetcher.highwater = None
    return fetcher, child


def test_every_waiting_message_makes_one_batch() -> None:
    fetcher, child = _fetcher()
    for offsets in ([0, 1, 2], [3], [4, 5]):
        child.send_bytes(_encode((offsets, [b"v%d" % o for o in offsets], 10 + offsets[0])))
    batch = fetcher.poll(0.1, max_records=2000)
    assert [offset for offset, _ in batch] == [0, 1, 2, 3, 4, 5]
    assert batch[5] == (5, b"v5")
    assert fetcher.highwater == 14  # the newest message's
    assert fetcher.poll(0.01, max_records=2000) == []


def test_a_batch_stops_taking_messages_at_max_records() -> None:
    fetcher, child = _fetcher()
    for start in range(0, 30, 10):
        offsets = list(range(start, start + 10))
        child.send_bytes(_encode((offsets, [b"x"] * 10, None)))
    assert len(fetcher.poll(0.1, max_records=15)) == 20  # whole messages: 10 + 10
    assert [offset for offset, _ in fetcher.poll(0.1, max_records=15)] == list(range(20, 30))
