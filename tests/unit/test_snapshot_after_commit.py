"""A snapshot is taken between batches while its last batch's transaction may still be in
flight (matching does not stall for it), and uploaded only once that transaction has
committed; never when it fails (``SnapshotStore.save(committed=...)``)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from bourse.domain.commands import CreateAccount
from bourse.engine import Engine
from matching_service.snapshots import SnapshotStore, snapshot_key

pytestmark = pytest.mark.unit

PREFIX = "engine/test/"


class RecordingS3:
    def __init__(self) -> None:
        self.puts: list[str] = []

    def put_object(self, Bucket: str, Key: str, Body: bytes) -> dict[str, Any]:
        self.puts.append(Key)
        return {}


def _engine() -> Engine:
    engine = Engine()
    engine.process(CreateAccount("acct", 0, 7))
    return engine


def test_the_upload_waits_for_the_commit() -> None:
    s3 = RecordingS3()
    store = SnapshotStore(s3, "bucket", PREFIX)
    commit = threading.Event()
    assert store.save(_engine(), 40, 3, committed=lambda: commit.wait(30))
    assert not commit.is_set() and s3.puts == []  # returned at once; nothing uploaded yet
    commit.set()
    store.wait()
    assert s3.puts == [snapshot_key(PREFIX, 40)]
    assert store.last_saved_offset == 40


def test_a_batch_that_never_commits_is_never_snapshotted() -> None:
    s3 = RecordingS3()
    store = SnapshotStore(s3, "bucket", PREFIX)

    def failed() -> None:
        raise RuntimeError("fenced")

    assert store.save(_engine(), 40, 3, committed=failed)
    store.wait()
    assert s3.puts == []
    assert store.last_saved_offset is None
