"""Which form of the engine this process runs: compiled by mypyc, or the pure Python source.

Both forms come from the same source, ``bourse/engine/*.py``. ``make engine-compiled``
(``matching-service/build_engine.py``) compiles it with mypyc into a directory of its own,
never beside the sources, so the pure form stays importable in every checkout; the package's
``__init__`` asks :func:`select` which directory its submodules come from (docs/engine.md,
"Two forms of one source").

``BOURSE_ENGINE``: ``auto`` (the default) runs the compiled engine when a build of exactly
the current sources is there, else the pure one; ``compiled`` insists (an ImportError when
there is no current build); ``pure`` never loads the build.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import json
import sys
from pathlib import Path

from bourse.settings import engine_build_dir, engine_form_setting

PACKAGE_DIR = Path(__file__).resolve().parent
SOURCE_DIR = PACKAGE_DIR / "engine"
STAMP = "engine-build.json"
# The engine package's __init__ holds this switch, so it must stay interpreted; every other
# module of the package is compiled.
NOT_COMPILED = frozenset({"__init__.py"})

# What select() chose for this process, "compiled" or "pure", and why (the service logs both).
form = "pure"
reason = "bourse.engine not imported yet"
_chosen: Path | None = None
_decided = False


def compiled_modules() -> list[Path]:
    return sorted(p for p in SOURCE_DIR.glob("*.py") if p.name not in NOT_COMPILED)


def source_hash() -> str:
    """The build's cache key: every source file of the package, by name and content."""
    digest = hashlib.sha256()
    for path in sorted(SOURCE_DIR.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def build_problem(build_dir: Path) -> str | None:
    """Why the build in build_dir cannot serve these sources, or None when it can."""
    try:
        stamp = json.loads((build_dir / STAMP).read_text())
    except (OSError, ValueError):
        return f"no engine build in {build_dir} (make engine-compiled)"
    if stamp.get("sources") != source_hash():
        # A stale build would run yesterday's semantics under today's tests: never load it.
        return f"the engine build in {build_dir} is of other sources (make engine-compiled)"
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    missing = [
        p.stem
        for p in compiled_modules()
        if not (build_dir / "bourse" / p.parent.name / f"{p.stem}{suffix}").is_file()
    ]
    if missing:
        return f"the engine build in {build_dir} lacks {', '.join(missing)} for {suffix}"
    return None


def _choose() -> Path | None:
    """The build directory to load, or None for the pure form; decided once per process."""
    global form, reason, _chosen, _decided
    if _decided:
        return _chosen
    wanted = engine_form_setting()
    if wanted not in ("auto", "compiled", "pure"):
        raise ImportError(f"BOURSE_ENGINE must be auto, compiled or pure, not {wanted!r}")
    if wanted == "pure":
        form, reason = "pure", "BOURSE_ENGINE=pure"
    else:
        build_dir = Path(engine_build_dir()).resolve()
        problem = build_problem(build_dir)
        if problem is None:
            # mypyc's per-module shims import the group's shared library as a top-level module.
            if str(build_dir) not in sys.path:
                sys.path.append(str(build_dir))
            form, reason, _chosen = "compiled", f"mypyc build in {build_dir}", build_dir
        elif wanted == "compiled":
            raise ImportError(f"BOURSE_ENGINE=compiled: {problem}")
        else:
            form, reason = "pure", problem
    _decided = True
    return _chosen


def select(package_path: list[str], package: str) -> list[str]:
    """The __path__ of bourse.<package> for the chosen form."""
    build_dir = _choose()
    if build_dir is None:
        return package_path
    # The sources stay on the path after the build for the modules left out of compilation;
    # build_problem has checked that none of the compiled ones would fall through to them.
    return [str(build_dir / "bourse" / package), *package_path]
