"""Fast constructors for the domain's frozen dataclasses.

A frozen dataclass's generated ``__init__`` goes through its own ``__setattr__`` guard for
every field, which makes ``OrderInfo``, ``OrderResult``, ``ReplyPart`` and ``Fill`` several
times dearer to build than the engine's other events, and the engine builds one or more of
each per order. These builders produce the very same objects (same class, same fields, still
frozen afterwards) by writing each slot once with ``object.__setattr__``. They are generated
from ``dataclasses.fields`` so they follow the domain classes if fields are added or renamed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import Any

from bourse.domain.events import Fill, OrderInfo, OrderResult, ReplyPart


def frozen_builder(cls: type) -> Callable[..., Any]:
    names = [f.name for f in fields(cls)]
    body = "".join(f"    _set(o, {name!r}, {name})\n" for name in names)
    source = f"def build({', '.join(names)}):\n    o = _new(_cls)\n{body}    return o\n"
    namespace: dict[str, Any] = {"_new": object.__new__, "_set": object.__setattr__, "_cls": cls}
    exec(source, namespace)  # trusted source: built from the dataclass's own field names
    build: Callable[..., Any] = namespace["build"]
    build.__qualname__ = build.__name__ = f"build_{cls.__name__}"
    return build


build_order_info: Callable[..., OrderInfo] = frozen_builder(OrderInfo)
build_order_result: Callable[..., OrderResult] = frozen_builder(OrderResult)
build_reply_part: Callable[..., ReplyPart] = frozen_builder(ReplyPart)
build_fill: Callable[..., Fill] = frozen_builder(Fill)
