"""The matching engine: pure, deterministic, single-threaded (docs/engine.md)."""

from bourse import engine_form

# The same source runs compiled by mypyc or as it is (docs/engine.md, "Two forms of one
# source"): the submodules below load from the directory of the form chosen here.
__path__ = engine_form.select(__path__, "engine")

from bourse.engine.engine import Engine

__all__ = ["Engine"]
