"""Engine snapshots in S3: what makes a restart take seconds instead of a replay of the log.

An object is ``<prefix><offset, 20 digits>.snap``: the key sorts by the commands offset the
snapshot reflects (the offset of the first command *not* in it), so the newest is the last
key, and a second snapshot at the same offset becomes a new version of the same object (the
bucket is versioned). Its content is one JSON header line and the engine's bytes:

    {"format": 1, "offset": ..., "last_seq": ..., "state_hash": ..., "sha256": ..., ...}\\n<engine>

A snapshot is valid when the payload's SHA-256 matches the header and the restored engine's
``state_hash()`` equals the recorded one. An invalid or unreadable snapshot is logged and the
next older one is tried; when none is left the caller replays the log from offset 0.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bourse.engine import Engine

log = logging.getLogger("matching_service.snapshots")

FORMAT = 1


@dataclass(frozen=True)
class SnapshotMeta:
    key: str
    offset: int
    last_seq: int
    state_hash: str
    created_ms: int


@dataclass(frozen=True)
class Restored:
    engine: Engine
    meta: SnapshotMeta | None  # None: nothing usable, start empty at offset 0


def snapshot_key(prefix: str, offset: int) -> str:
    return f"{prefix}{offset:020d}.snap"


def encode_snapshot(engine: Engine, offset: int, last_seq: int) -> tuple[bytes, str]:
    payload = engine.snapshot()
    state_hash = engine.state_hash()
    header = {
        "format": FORMAT,
        "offset": offset,
        "last_seq": last_seq,
        "state_hash": state_hash,
        "sha256": hashlib.sha256(payload).hexdigest(),
        "length": len(payload),
        "created_ms": int(time.time() * 1000),
    }
    return json.dumps(header, separators=(",", ":")).encode() + b"\n" + payload, state_hash


def decode_snapshot(key: str, data: bytes) -> tuple[Engine, SnapshotMeta]:
    """Raise ValueError with the reason when the object is not a valid snapshot."""
    newline = data.find(b"\n")
    if newline < 0:
        raise ValueError("no header line")
    try:
        header = json.loads(data[:newline])
    except ValueError as exc:
        raise ValueError(f"header is not JSON: {exc}") from exc
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ValueError(f"unknown format {header!r:.80}")
    payload = data[newline + 1 :]
    if len(payload) != header["length"] or hashlib.sha256(payload).hexdigest() != header["sha256"]:
        raise ValueError("payload checksum mismatch")
    try:
        engine = Engine.restore(payload)
    except Exception as exc:  # any failure to restore means "not usable", whatever its type
        raise ValueError(f"engine cannot restore it: {exc!r}") from exc
    if engine.state_hash() != header["state_hash"]:
        raise ValueError("restored state hash differs from the recorded one")
    meta = SnapshotMeta(
        key, int(header["offset"]), int(header["last_seq"]), header["state_hash"],
        int(header["created_ms"]),
    )  # fmt: skip
    return engine, meta


class SnapshotStore:
    def __init__(self, s3: Any, bucket: str, prefix: str) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.prefix = prefix
        self._upload: threading.Thread | None = None
        self.last_saved_monotonic = time.monotonic()
        self.last_saved_offset: int | None = None
        self.failures = 0
        self._prefetch: threading.Thread | None = None
        # key -> what fetching and decoding it gave (the engine, or why it is unusable)
        self._prefetched: dict[str, tuple[Engine, SnapshotMeta] | Exception] = {}

    def prefetch_newest(self) -> None:
        """Start fetching and decoding the newest snapshot in the background. Recovery needs
        the committed offset to choose one, which it has only after fencing; the newest is
        almost always the one chosen, and fetching it meanwhile overlaps a restart's slowest
        step with the waits before it (KMS, Kafka). ``load_newest`` uses it if it qualifies."""

        def fetch() -> None:
            keys = self.keys()
            if keys:
                self._prefetched[keys[-1]] = self._fetch(keys[-1])

        self._prefetch = threading.Thread(target=fetch, name="snapshot-prefetch", daemon=True)
        self._prefetch.start()

    def _fetch(self, key: str) -> tuple[Engine, SnapshotMeta] | Exception:
        try:
            data = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            return decode_snapshot(key, data)
        except Exception as exc:  # a bad snapshot must never stop recovery: try older
            return exc

    def keys(self) -> list[str]:
        keys: list[str] = []
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
            keys.extend(obj["Key"] for obj in page.get("Contents", ()))
        return sorted(k for k in keys if k.endswith(".snap"))

    def put(self, key: str, data: bytes) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=data)

    def load_newest(self, max_offset: int) -> Restored:
        """The newest valid snapshot at or below ``max_offset`` (the committed position: a
        snapshot beyond it would hold commands whose events were never published)."""
        if self._prefetch is not None:
            self._prefetch.join()
            self._prefetch = None
        prefetched, self._prefetched = self._prefetched, {}
        for key in reversed(self.keys()):
            offset = int(key[len(self.prefix) : -len(".snap")])
            if offset > max_offset:
                log.warning(
                    "snapshot beyond the committed offset ignored",
                    extra={"key": key, "offset": offset, "committed": max_offset},
                )
                continue
            found = prefetched.pop(key, None) or self._fetch(key)
            if isinstance(found, Exception):
                log.error(
                    "snapshot unusable, falling back to an older one",
                    extra={"key": key, "error": str(found)},
                )
                continue
            engine, meta = found
            self.last_saved_offset = meta.offset
            return Restored(engine, meta)
        log.warning(
            "no valid snapshot: full replay from offset 0",
            extra={"bucket": self.bucket, "prefix": self.prefix},
        )
        return Restored(Engine(), None)

    def save(
        self,
        engine: Engine,
        offset: int,
        last_seq: int,
        *,
        wait: bool = False,
        committed: Callable[[], object] | None = None,
    ) -> bool:
        """Serialise now (the engine is only consistent between batches), upload in the
        background so a slow S3 does not stall matching. Skipped (False) while the previous
        upload is still running, unless ``wait``.

        ``committed`` waits until the commands up to ``offset`` are committed, raising if they
        never will be: the snapshot may be taken while its last batch's transaction is still in
        flight (matching goes on meanwhile), but it is uploaded only after that transaction
        has committed, since a snapshot is trusted up to its offset."""
        if self._upload is not None and self._upload.is_alive():
            if not wait:
                return False
            self._upload.join()
        data, state_hash = encode_snapshot(engine, offset, last_seq)
        key = snapshot_key(self.prefix, offset)
        self.last_saved_monotonic = time.monotonic()

        def upload() -> None:
            if committed is not None:
                try:
                    committed()
                except BaseException as exc:  # the loop sees the failure itself and exits
                    log.warning(
                        "snapshot not uploaded: its last batch did not commit",
                        extra={"key": key, "error": repr(exc)},
                    )
                    return
            started = time.monotonic()
            try:
                self.put(key, data)
            except Exception as exc:  # the next snapshot retries; recovery just replays more
                self.failures += 1
                log.error("snapshot upload failed", extra={"key": key, "error": str(exc)})
                return
            self.last_saved_offset = offset
            log.info(
                "snapshot saved",
                extra={"key": key, "offset": offset, "seq": last_seq, "bytes": len(data),
                       "state_hash": state_hash,
                       "upload_ms": round((time.monotonic() - started) * 1000, 1)},
            )  # fmt: skip

        self._upload = threading.Thread(target=upload, name="snapshot-upload", daemon=True)
        self._upload.start()
        if wait:
            self._upload.join()
        return True

    def wait(self) -> None:
        if self._upload is not None:
            self._upload.join()
