"""Keep a Lambda container's cyclic garbage collector off what its initialisation built.

A container imports boto3 and botocore's service models, Powertools, the X-Ray SDK, redis-py,
librdkafka's binding and the bourse layer: about 150,000 objects that live as long as the
container. CPython's full collection walks every tracked object of the oldest generation, and
in an OrdersFunction container serving ~20 requests a second one ran every few seconds and took
100-220 ms on this project's 2-core machines, the request in flight waiting for it: those
pauses were the REST path's p99 (docs/benchmarks.md, "REST API").

``gc.freeze()`` moves every object alive at that moment into a generation the collector never
scans. ``frozen_after_init`` does it twice: when the handler is defined (the module's import,
its clients and app built) and after the first invocation, which builds what is made lazily
(a boto3 client loads its service model on first use, caches fill). Reference counting still
frees everything as before; only cycle detection skips the frozen objects. A garbage cycle
alive at either moment stays for the container's life: a few kilobytes at most.
"""

from __future__ import annotations

import functools
import gc
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


def frozen_after_init(handler: Callable[P, R]) -> Callable[P, R]:
    """Decorate a Lambda handler (outermost): freeze now and after its first invocation."""
    gc.freeze()
    first = True

    @functools.wraps(handler)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        nonlocal first
        try:
            return handler(*args, **kwargs)
        finally:
            if first:
                first = False
                gc.freeze()

    return run
