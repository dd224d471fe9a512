"""Replaying a resuming connection, then handing it to the live stream (docs/streams.md,
"Resumable streams"; the hand-over's rules are ``bourse.adapters.stream_log``'s).

``replay`` posts, in position order, every message the connection's logs hold after its
cursor, and repeats until ``go_live`` succeeds: no broadcaster batch pending and nothing left
after the cursor. From then on the broadcaster sends to it. The connection may still be
opening when the first message is ready (its ``$connect`` started this replay): a post that
finds it unknown is tried again for ``open_wait_s`` before the connection counts as gone.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import msgspec

from bourse.adapters.stream_log import LogGap
from bourse.streams.positions import Position, entry_id, positioned_event, positioned_frame

GONE = 410


class Log(Protocol):
    def read_after(
        self, logs: Sequence[str], cursor: Position, count: int
    ) -> list[tuple[Position, str, bytes]]: ...

    def go_live(self, connection_id: str, logs: Sequence[str], cursor: Position) -> bool: ...

    def forget(self, connection_id: str) -> None: ...


@dataclass(frozen=True)
class Outcome:
    status: str  # "live", "gone" (the client left), "gap" (the log lost messages), "timeout"
    sent: int
    cursor: Position


@dataclass
class Replay:
    log: Log
    post: Callable[[str, bytes], int]  # (connection id, frame) -> HTTP status
    close: Callable[[str], None]
    page: int = 500
    open_wait_s: float = 10.0
    deadline_s: float = 50.0  # below the function's timeout
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep

    def run(
        self,
        connection_id: str,
        cursor: Position,
        logs: Sequence[tuple[str, str]],
        *,
        subscription_id: int | None = None,
        first: bytes = b"",
    ) -> Outcome:
        """``logs``: (log, the envelope's stream name); ``subscription_id``: a WebSocket API
        subscription's envelope instead (``session.resume``), whose answer ``first`` is
        posted before anything else."""
        names = dict(logs)
        keys = list(names)
        started = self.clock()
        sent = 0
        if first and self._post(connection_id, first, first=True) == GONE:
            self.log.forget(connection_id)
            return Outcome("gone", sent, cursor)
        while True:
            try:
                entries = self.log.read_after(keys, cursor, self.page)
            except LogGap as gap:
                self._end(connection_id, f"the log of {gap} no longer holds {entry_id(cursor)}")
                return Outcome("gap", sent, cursor)
            for position, log, data in entries:
                frame = (
                    positioned_frame(names[log], data, position)
                    if subscription_id is None
                    else positioned_event(subscription_id, data, position)
                )
                if self._post(connection_id, frame, first=sent == 0 and not first) == GONE:
                    self.log.forget(connection_id)
                    return Outcome("gone", sent, cursor)
                sent += 1
                cursor = position
            if entries:
                continue
            if self.log.go_live(connection_id, keys, cursor):
                return Outcome("live", sent, cursor)
            if self.clock() - started > self.deadline_s:
                # Batches kept coming faster than the hand-over could slip between them.
                self._end(connection_id, "the replay could not catch up with the stream")
                return Outcome("timeout", sent, cursor)
            self.sleep(0.002)

    def _post(self, connection_id: str, frame: bytes, *, first: bool) -> int:
        deadline = self.clock() + (self.open_wait_s if first else 0)
        while True:
            status = self.post(connection_id, frame)
            if status != GONE or self.clock() >= deadline:
                return status
            self.sleep(0.05)

    def _end(self, connection_id: str, why: str) -> None:
        """Tell the client why (Binance's error shape), then close: it must resynchronise."""
        body = {"error": {"code": 2, "msg": f"Invalid request: resume failed: {why}"}}
        self.post(connection_id, msgspec.json.encode(body))
        self.log.forget(connection_id)
        self.close(connection_id)
