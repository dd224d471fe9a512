"""The sequencer's clock: the time each batch reached the engine, kept in the event stream.

A trader's command carries its request's deadline (``timestamp + recvWindow``); the engine
refuses one that reaches it later (-1021), so that commands queued through an outage of this
service do not execute minutes later at other prices (docs/engine.md, "Late commands"). The
engine never reads a clock: the service reads the wall clock once per batch and hands it in.

To replay a batch exactly (recovery after a crash, reconcile) that time must be the one the
first run used. So it travels with the batch's events: every event record of a batch carries
the headers ``bourse-clock`` (ms since the epoch) and ``bourse-offsets`` (the batch's commands
offsets, ``first-next``), committed in the same transaction as the events and the consumed
offset. A replay reads them back (``read_clocks``) for the offsets it replays. A command with a
deadline whose batch left no clock (its events are gone by retention, which snapshots make
moot) cannot be replayed faithfully: ``MissingClock``.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

from kafka import TopicPartition

from bourse.adapters import kafka as kafka_adapter
from bourse.settings import Settings

CLOCK_HEADER = "bourse-clock"
OFFSETS_HEADER = "bourse-offsets"


def batch_headers(first_offset: int, next_offset: int, now_ms: int) -> list[tuple[str, bytes]]:
    return [
        (CLOCK_HEADER, str(now_ms).encode()),
        (OFFSETS_HEADER, f"{first_offset}-{next_offset}".encode()),
    ]


def parse_headers(headers: list[tuple[str, bytes]] | None) -> tuple[int, int, int] | None:
    """(first offset, next offset, clock) of an event record, None for one without them."""
    found = dict(headers or ())
    clock, offsets = found.get(CLOCK_HEADER), found.get(OFFSETS_HEADER)
    if clock is None or offsets is None:
        return None
    first, _, next_offset = offsets.decode().partition("-")
    return int(first), int(next_offset), int(clock)


class MissingClock(LookupError):
    """No recorded clock for a command offset that needs one."""


@dataclass
class ClockMap:
    """Recorded batch clocks by commands offset range, ascending and disjoint."""

    ranges: list[tuple[int, int, int]] = field(default_factory=list)

    def add(self, first: int, next_offset: int, clock: int) -> None:
        item = (first, next_offset, clock)
        i = bisect.bisect_left(self.ranges, item)
        if i < len(self.ranges) and self.ranges[i] == item:
            return  # the batch's other records carry the same headers
        self.ranges.insert(i, item)

    def at(self, offset: int) -> int:
        # The last range starting at or before ``offset`` (ranges are disjoint).
        i = bisect.bisect_right(self.ranges, offset, key=lambda r: r[0]) - 1
        if i >= 0:
            first, next_offset, clock = self.ranges[i]
            if first <= offset < next_offset:
                return clock
        raise MissingClock(f"no recorded sequencer clock for commands offset {offset}")


def read_clocks(settings: Settings, since_offset: int) -> ClockMap:
    """The clocks of the batches from ``since_offset`` on, read backwards from the end of the
    event stream until a batch starting at or before it (or the stream's start)."""
    clocks = ClockMap()
    tp = TopicPartition(settings.events_topic, 0)
    consumer: Any = kafka_adapter.consumer(client_id="matching-clocks", fetch_max_bytes=64 << 20)
    try:
        consumer.assign([tp])
        end = consumer.end_offsets([tp])[tp]
        begin = consumer.beginning_offsets([tp])[tp]
        stop = end
        step = 256
        while stop > begin:
            start = max(begin, stop - step)
            consumer.seek(tp, start)
            reached = False
            while consumer.position(tp) < stop:
                # Short polls: one that meets only transaction markers returns nothing after
                # its whole timeout (the position still advances past them).
                for record in consumer.poll(timeout_ms=50).get(tp, []):
                    if record.offset >= stop:
                        continue
                    parsed = parse_headers(record.headers)
                    if parsed is None:
                        # Written before clocks were recorded: nothing older has one.
                        reached = True
                        continue
                    clocks.add(*parsed)
                    if parsed[0] <= since_offset:
                        reached = True
            if reached:
                break
            stop = start
            step *= 2
    finally:
        consumer.close(autocommit=False)
    return clocks


class RecordedClocks:
    """``read_clocks`` on first need: a replay whose commands carry no deadline never reads
    the event stream."""

    def __init__(self, settings: Settings, since_offset: int) -> None:
        self._settings = settings
        self._since = since_offset
        self._map: ClockMap | None = None

    def at(self, offset: int) -> int:
        if self._map is None:
            self._map = read_clocks(self._settings, self._since)
        return self._map.at(offset)
