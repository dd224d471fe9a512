"""The garbage collector as the matching service runs it, for benchmarks of the engine.

``matching_service/service.py`` collects and freezes what start-up allocated (the restored
engine) and raises the young-generation threshold before it serves; collection stays on while
it serves. A benchmark that disabled the collector in its timed loop would hide the pauses the
service really has.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

THRESHOLDS = (100_000, 50, 100)  # matching_service/service.py, keep them equal


@contextmanager
def production_gc() -> Iterator[None]:
    """Set-up frozen, collection on with the service's thresholds; restored afterwards."""
    saved = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
    gc.enable()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*saved)
