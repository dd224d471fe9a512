"""Lambda handlers freeze what their container's initialisation built (bourse.lambda_gc), so
the cyclic collector's full passes stop walking the ~150,000 import-time objects."""

from __future__ import annotations

import ast
import gc
from pathlib import Path

import pytest

from bourse.lambda_gc import frozen_after_init

pytestmark = pytest.mark.unit

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"
# Custom resources run once per deploy: nothing to keep the collector off.
RUN_ONCE = {"kafka_topics", "migrations"}


def test_freezes_at_definition_and_after_the_first_call_only() -> None:
    gc.unfreeze()
    calls: list[int] = []
    built_lazily: list[list[int]]

    def handler(event: dict[str, int], context: object) -> int:
        calls.append(event["n"])
        return event["n"] * 2

    wrapped = frozen_after_init(handler)
    at_definition = gc.get_freeze_count()
    assert at_definition > 0
    built_lazily = [[] for _ in range(10)]  # what a first call creates, e.g. a client's model
    assert wrapped({"n": 2}, None) == 4
    after_first = gc.get_freeze_count()
    assert after_first >= at_definition + len(built_lazily)
    assert wrapped({"n": 3}, None) == 6
    assert gc.get_freeze_count() == after_first  # later calls leave the collector alone
    assert calls == [2, 3] and built_lazily
    gc.unfreeze()


def test_a_first_call_that_raises_still_freezes_and_the_error_passes_through() -> None:
    gc.unfreeze()

    def handler(event: object, context: object) -> None:
        raise ValueError("bad event")

    wrapped = frozen_after_init(handler)
    gc.unfreeze()
    with pytest.raises(ValueError, match="bad event"):
        wrapped({}, None)
    assert gc.get_freeze_count() > 0
    gc.unfreeze()


def test_every_serving_handler_is_frozen_after_init_outermost() -> None:
    checked = []
    for app in sorted(FUNCTIONS.glob("*/app.py")):
        if app.parent.name in RUN_ONCE:
            continue
        tree = ast.parse(app.read_text())
        handler = next(
            node
            for node in tree.body
            if isinstance(node, ast.FunctionDef) and node.name == "lambda_handler"
        )
        first = handler.decorator_list[0]
        assert isinstance(first, ast.Name) and first.id == "frozen_after_init", app
        checked.append(app.parent.name)
    assert len(checked) >= 10
