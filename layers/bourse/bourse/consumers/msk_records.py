"""The records of an MSK event source's delivery, as the consumers of bourse.events read them."""

from __future__ import annotations

import base64
from collections.abc import Iterator, Mapping
from typing import Any


def records(event: Mapping[str, Any]) -> Iterator[tuple[str, int, bytes]]:
    """(partition, offset, value) of an MSK event, partitions in order."""
    for partition, items in sorted((event.get("records") or {}).items()):
        for record in items:
            yield partition, int(record["offset"]), base64.b64decode(record.get("value") or "")
