"""The serving loop's commands consumer: librdkafka (confluent-kafka), in the service's process.

librdkafka fetches on its own threads, in C, outside the GIL, and hands over records already
parsed; the loop only takes what has arrived. (kafka-python parsed every record in Python, so
the consumer lived in a child process that piped each polled batch over: that process and the
pipe cost more CPU per command than the whole fetch now does, docs/benchmarks.md.)

The consumer only reads: it never commits an offset (the service's transactions do, with its
producer), so nothing it does or fails to do can lose or repeat a command. It starts at the
offset recovery ends at. Its ``group.id`` is the service's group, never joined (the partition
is assigned): that is what makes its ``group_metadata`` the one the producer's transactions
commit the group's offsets with. A fatal consumer error makes the service exit
(``FetcherGone``); recovery then starts again from the committed offset.
"""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import KafkaError, TopicPartition

from bourse.adapters import kafka as kafka_adapter
from bourse.settings import Settings

log = logging.getLogger("matching_service.fetcher")

# What one fetch may bring of a backlog, for the serving loop's consumer and recovery's alike.
FETCH_MAX_BYTES = 64 << 20
PARTITION_FETCH_MAX_BYTES = 32 << 20


class FetcherGone(RuntimeError):
    """The consumer failed for good: the loop cannot know what comes next."""


class Fetcher:
    """Created before recovery (its connections come up meanwhile, and recovery's offset
    commit needs ``group_metadata``), told where to start once recovery knows; ``poll``
    returns the next batch as ``(offset, value)``."""

    def __init__(self, settings: Settings) -> None:
        self._topic = settings.commands_topic
        self._consumer = kafka_adapter.librdkafka_consumer(
            **{
                "group.id": settings.matching_group_id,
                "client.id": "matching-fetch",
                # A fetch answers at the first record (latency when caught up), waits at most
                # the poll interval when there is none, and brings up to 32 MiB of a backlog.
                "fetch.min.bytes": 1,
                "fetch.wait.max.ms": settings.matching_poll_ms,
                "fetch.max.bytes": FETCH_MAX_BYTES,
                "max.partition.fetch.bytes": PARTITION_FETCH_MAX_BYTES,
            }
        )
        self.highwater: int | None = None
        self._partition = TopicPartition(self._topic, 0)
        # Taken once: the group is never joined, so it never changes, and asking the consumer
        # while another thread is inside its poll blocks until that poll returns.
        self._group_metadata = self._consumer.consumer_group_metadata()

    def group_metadata(self) -> Any:
        """The service's group as the transactional producer commits offsets for it."""
        return self._group_metadata

    def start_at(self, offset: int) -> None:
        self._consumer.assign([TopicPartition(self._topic, 0, offset)])

    def poll(self, timeout_s: float, max_records: int) -> list[tuple[int, bytes]]:
        """The next batch: every record that has arrived, up to ``max_records``, waiting up to
        ``timeout_s`` for the first. (``consume`` alone would wait for ``max_records`` or the
        whole timeout; batches must instead grow with the load and never wait for it.)"""
        first = self._consumer.poll(timeout_s)
        if first is None:
            return []
        messages = [first]
        if max_records > 1:
            messages.extend(self._consumer.consume(max_records - 1, 0))
        out: list[tuple[int, bytes]] = []
        for message in messages:
            error = message.error()
            if error is not None:
                self._check(error)
                continue
            value = message.value()
            offset = message.offset()
            assert offset is not None
            out.append((offset, b"" if value is None else value))
        if out:
            high = self._consumer.get_watermark_offsets(self._partition, cached=True)[1]
            self.highwater = high if high >= 0 else None  # negative: not known yet
        return out

    @staticmethod
    def _check(error: KafkaError) -> None:
        # librdkafka reports broker and connection trouble as message errors and recovers by
        # itself (no record is skipped); only a fatal error ends the consumer.
        if error.fatal():
            raise FetcherGone(str(error))
        log.warning("commands consumer: %s", error)

    def close(self) -> None:
        self._consumer.close()
