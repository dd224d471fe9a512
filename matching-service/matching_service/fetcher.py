"""The serving loop's commands consumer, in a process of its own.

kafka-python parses fetched records in Python (~20 µs per command record here), and in the
service's process that parsing competed with matching for the one GIL: a fifth of the loop's
time (docs/benchmarks.md). A child process fetches and parses instead, on the other core, and
hands each polled batch over a pipe as one MessagePack message, which the service decodes in
C. The child only reads: it never commits an offset (the service's transactions do, with its
producer), so nothing it does or fails to do can lose or repeat a command. It starts at the
offset recovery ends at, exits when the service does (pipe closed, or its parent gone), and a
child that dies makes the service exit (``FetcherGone``); recovery then starts both again.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
from multiprocessing.connection import Connection
from typing import Any

import msgspec
from kafka import TopicPartition

from bourse.adapters import kafka as kafka_adapter
from bourse.settings import Settings

log = logging.getLogger("matching_service.fetcher")

# (offsets, values, the partition's high watermark or None): one message per polled batch.
_Batch = tuple[list[int], list[bytes], int | None]
_decoder = msgspec.msgpack.Decoder(_Batch)


class FetcherGone(RuntimeError):
    """The fetching process exited: the loop cannot know what comes next."""


def consumer_config(settings: Settings) -> dict[str, Any]:
    """The commands consumer's settings, in-process (recovery) and in the fetcher alike."""
    return {
        "max_poll_records": settings.matching_batch_max,
        # A fetch answers as soon as one command is there (latency when caught up); with a
        # backlog it brings up to 32 MiB, which poll hands out batch_max records at a time
        # while the next fetch is already in flight.
        "fetch_min_bytes": 1,
        "fetch_max_bytes": 64 << 20,
        "max_partition_fetch_bytes": 32 << 20,
        "fetch_max_wait_ms": settings.matching_poll_ms,
        # kafka-python verifies CRCs in Python code unless the crc32c package is present;
        # the broker has verified them on produce and TCP on the way.
        "check_crcs": False,
    }


def _fetch(conn: Connection, settings: Settings, parent: int) -> None:
    """The child: wait for the offset to start at, then poll and send every batch, until the
    parent goes away."""
    # A SIGTERM or Ctrl-C sent to the whole process group is the service's to handle: it
    # finishes its batch, snapshots, and closes the pipe, which ends this process.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        start = int(conn.recv())
    except (EOFError, OSError):
        return  # the service stopped during its recovery
    tp = TopicPartition(settings.commands_topic, 0)
    # Group id for nothing but the record: offsets are committed by the service's
    # transactions, never by this consumer.
    consumer = kafka_adapter.consumer(client_id="matching-fetch", **consumer_config(settings))
    consumer.assign([tp])
    consumer.seek(tp, start)
    encode = msgspec.msgpack.Encoder().encode
    try:
        # The parent sends nothing after the start offset: its end readable means closed.
        while os.getppid() == parent and not conn.poll():
            polled = consumer.poll(
                timeout_ms=settings.matching_poll_ms, max_records=settings.matching_batch_max
            )
            records = polled.get(tp)
            if records:
                batch = ([r.offset for r in records], [r.value for r in records])
                conn.send_bytes(encode((*batch, consumer.highwater(tp))))
    except (BrokenPipeError, EOFError, OSError):
        pass  # the service closed its end: it is stopping or gone
    finally:
        consumer.close(autocommit=False)


class Fetcher:
    """The parent's end: started before recovery (the child's imports overlap it), told where
    to start once recovery knows; ``poll`` returns the next batch as ``(offset, value)``."""

    def __init__(self, settings: Settings) -> None:
        # spawn, not fork: the service already runs threads (Kafka's, the executors), and a
        # forked child would inherit their locks in whatever state they were.
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe(duplex=True)
        self._process = context.Process(
            target=_fetch,
            args=(child, settings, os.getpid()),
            name="matching-fetch",
            daemon=True,
        )
        self._process.start()
        child.close()
        self.highwater: int | None = None

    def start_at(self, offset: int) -> None:
        self._conn.send(offset)

    def poll(self, timeout_s: float, max_records: int) -> list[tuple[int, bytes]]:
        """The next batch: what the child has sent so far, up to about ``max_records``.

        Every message waiting in the pipe is taken, not only the first. The child sends what
        each of its polls found, a handful of records at a modest rate; one transaction per
        message (~4 ms with kafka-python) capped the service at ~250 of them a second, and
        beyond that the pipe queued while every batch stayed one command long (a reply took
        ~430 ms at 200 commands/s). Taking the backlog makes batches grow with the load."""
        out: list[tuple[int, bytes]] = []
        try:
            if not self._conn.poll(timeout_s):
                if not self._process.is_alive():
                    raise FetcherGone(f"the fetcher exited ({self._process.exitcode})")
                return out
            while True:
                offsets, values, self.highwater = _decoder.decode(self._conn.recv_bytes())
                out.extend(zip(offsets, values, strict=True))
                if len(out) >= max_records or not self._conn.poll(0):
                    return out
        except (EOFError, OSError) as exc:
            raise FetcherGone(f"the fetcher exited ({self._process.exitcode})") from exc

    def close(self) -> None:
        self._conn.close()
        self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
