"""Where the committed event stream ends, and the commands position it proves.

Every record of ``bourse.events`` carries the commands offsets of the batch that produced it
(``clocks.batch_headers``), committed in the batch's own transaction. So the last committed
record says both the last seq published and the commands offset after it: the service's
position, as exact as the events themselves. The consumer group's committed offset is a copy
of that position, written into a transaction at most every ``matching_offset_commit_ms``
under load and at once when the service goes idle or stops (docs/engine.md, "Exactly once
across crashes"): it may lag the events, never lead them. The position is therefore the
larger of the two; the group's offset alone decides only when the event stream holds no
record with the headers (retention emptied it, or a log older than the headers).
"""

from __future__ import annotations

from dataclasses import dataclass

from kafka import TopicPartition

from bourse.adapters import kafka as kafka_adapter
from bourse.domain.event_codec import EventDecodeError, decode_events
from bourse.settings import Settings
from matching_service.clocks import parse_headers


class Diverged(Exception):
    """The rebuilt engine does not continue the committed event stream."""


@dataclass(frozen=True)
class Published:
    """The end of ``bourse.events``: the last event's seq (0 for a topic never written) and
    the commands offset after its batch (None when its record has no offsets header)."""

    seq: int
    next_offset: int | None


def last_published(settings: Settings) -> Published | None:
    """The end of the committed event stream; None when records were written but retention
    has removed them all."""
    tp = TopicPartition(settings.events_topic, 0)
    consumer = kafka_adapter.consumer(client_id="matching-check", fetch_max_bytes=64 << 20)
    try:
        consumer.assign([tp])
        # read_committed end offset = the last stable offset; the final offsets before it may be
        # transaction markers, so read back a few and keep the last data record.
        end = consumer.end_offsets([tp])[tp]
        if end == 0:
            return Published(0, None)
        begin = consumer.beginning_offsets([tp])[tp]
        if begin >= end:
            return None
        # The last offset is normally the commit marker of the last transaction, its data
        # record just before: start two back. A poll that finds only markers advances the
        # position but returns nothing, after its whole timeout: hence short polls (a poll of
        # 1 s here was most of a restart's continuity check).
        back = 2
        while True:
            start = max(begin, end - back)
            consumer.seek(tp, start)
            last = None
            while consumer.position(tp) < end:
                for record in consumer.poll(timeout_ms=50).get(tp, []):
                    if record.offset < end:
                        last = record
            if last is not None:
                try:
                    seq: int = decode_events(last.value)[-1].seq
                except (EventDecodeError, IndexError) as exc:
                    raise Diverged(f"last record of {settings.events_topic} unreadable") from exc
                offsets = parse_headers(last.headers)
                return Published(seq, None if offsets is None else offsets[1])
            if start == begin:
                # Only transaction markers (aborted batches) left: nothing published, unless
                # retention removed what was.
                return Published(0, None) if begin == 0 else None
            back *= 4
    finally:
        consumer.close(autocommit=False)


def last_published_seq(settings: Settings) -> int | None:
    """Seq of the last event committed to bourse.events: 0 for a topic never written, None
    when records were written but retention has removed them all."""
    published = last_published(settings)
    return None if published is None else published.seq


def position(published: Published | None, group_offset: int | None) -> int | None:
    """The commands offset the committed history ends at: the larger of what the last event
    record proves and the group's copy (which an offset-only transaction, for a batch without
    events or an idle service, may have moved past it); None when neither says."""
    proved = None if published is None else published.next_offset
    if proved is None:
        return group_offset
    return proved if group_offset is None else max(proved, group_offset)
