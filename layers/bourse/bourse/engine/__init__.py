"""The matching engine: pure, deterministic, single-threaded (docs/engine.md)."""

from bourse.engine.engine import Engine

__all__ = ["Engine"]
