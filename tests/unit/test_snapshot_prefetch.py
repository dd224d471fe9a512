"""The newest snapshot is fetched while a restart waits on KMS and Kafka, and recovery uses
it only when it is the one recovery would choose (``SnapshotStore.prefetch_newest``)."""

from __future__ import annotations

import io
from typing import Any

from bourse.domain.commands import CreateAccount
from bourse.engine import Engine
from matching_service.snapshots import SnapshotStore, encode_snapshot, snapshot_key

PREFIX = "engine/test/"


class FakeS3:
    """The three S3 calls the store makes, over a dict; counts the downloads."""

    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects = objects
        self.downloads: list[str] = []

    def get_paginator(self, name: str) -> Any:
        objects = self.objects

        class Paginator:
            def paginate(self, **_: Any) -> list[dict[str, Any]]:
                return [{"Contents": [{"Key": k} for k in sorted(objects)]}]

        return Paginator()

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        self.downloads.append(Key)
        return {"Body": io.BytesIO(self.objects[Key])}


def _store(corrupt_newest: bool = False) -> tuple[SnapshotStore, FakeS3]:
    objects: dict[str, bytes] = {}
    engine = Engine()
    for offset in (10, 20, 30):
        engine.process(CreateAccount(f"acct-{offset}", 0, offset))
        data, _ = encode_snapshot(engine, offset, offset)
        objects[snapshot_key(PREFIX, offset)] = data
    if corrupt_newest:
        key = snapshot_key(PREFIX, 30)
        objects[key] = objects[key][:-5] + b"xxxxx"
    s3 = FakeS3(objects)
    return SnapshotStore(s3, "bucket", PREFIX), s3


def test_the_prefetched_newest_is_used_without_a_second_download() -> None:
    store, s3 = _store()
    store.prefetch_newest()
    restored = store.load_newest(30)
    assert restored.meta is not None and restored.meta.offset == 30
    assert restored.engine.accounts() == {10: "ACTIVE", 20: "ACTIVE", 30: "ACTIVE"}
    assert s3.downloads == [snapshot_key(PREFIX, 30)]


def test_a_prefetched_snapshot_beyond_the_committed_offset_is_not_used() -> None:
    store, s3 = _store()
    store.prefetch_newest()
    restored = store.load_newest(25)
    assert restored.meta is not None and restored.meta.offset == 20
    assert restored.engine.accounts() == {10: "ACTIVE", 20: "ACTIVE"}
    assert s3.downloads == [snapshot_key(PREFIX, 30), snapshot_key(PREFIX, 20)]


def test_a_corrupt_prefetched_snapshot_falls_back_to_the_one_before() -> None:
    store, s3 = _store(corrupt_newest=True)
    store.prefetch_newest()
    restored = store.load_newest(30)
    assert restored.meta is not None and restored.meta.offset == 20
    assert s3.downloads == [snapshot_key(PREFIX, 30), snapshot_key(PREFIX, 20)]


def test_without_a_prefetch_the_store_downloads_as_before() -> None:
    store, s3 = _store()
    assert store.load_newest(30).meta is not None
    assert s3.downloads == [snapshot_key(PREFIX, 30)]
