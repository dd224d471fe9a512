"""`make engine-compiled`: the engine package compiled by mypyc from its own typed source.

``python -m matching_service.build_engine [--build-dir DIR]`` compiles every module of
``bourse/engine`` but its ``__init__`` (bourse.engine_form.NOT_COMPILED) into extension
modules under DIR (``bourse/engine/<module>.<abi>.so`` and mypyc's shared library
``bourse_engine__mypyc.<abi>.so``), then writes DIR/engine-build.json with the hash of the
sources it compiled. Nothing is written beside the sources: the pure form stays importable,
and bourse.engine_form loads the build only while that hash is the sources' own.

It does nothing when the build is current (same sources, same mypy, same Python ABI), so
make may call it whenever a source's mtime changed without paying for a compile.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bourse.engine_form import SOURCE_DIR, STAMP, build_problem, compiled_modules, source_hash
from bourse.settings import engine_build_dir

GROUP = "bourse_engine"
# The layer's root (the folder holding the bourse package): mypy names modules from it.
LAYER_ROOT = SOURCE_DIR.parent.parent


def wanted_stamp() -> dict[str, str]:
    import mypy.version

    return {
        "sources": source_hash(),
        "mypy": mypy.version.__version__,
        "abi": importlib.machinery.EXTENSION_SUFFIXES[0],
    }


def current(build_dir: Path, stamp: dict[str, str]) -> bool:
    try:
        built = json.loads((build_dir / STAMP).read_text())
    except (OSError, ValueError):
        return False
    return bool(built == stamp and build_problem(build_dir) is None)


def compile_into(out: Path, work: Path) -> None:
    # setuptools and mypyc are build-time only: the matching image's runtime stage has neither.
    from mypyc.build import mypycify
    from setuptools import setup

    here = Path.cwd()
    os.chdir(LAYER_ROOT)
    try:
        paths = [str(p.relative_to(LAYER_ROOT)) for p in compiled_modules()]
        # mypy's cache would otherwise land in the layer's folder, and so in the Lambda layer.
        options = ["--cache-dir", str(work / "mypy-cache")]
        extensions = mypycify(
            [*options, *paths], opt_level="3", group_name=GROUP, target_dir=str(work / "c")
        )
        setup(
            name=GROUP,
            ext_modules=extensions,
            script_args=[
                "--quiet",
                "build_ext",
                "--build-lib",
                str(out),
                "--build-temp",
                str(work / "obj"),
                "--parallel",
                str(os.cpu_count() or 1),
            ],
        )
    finally:
        os.chdir(here)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build-dir", default=engine_build_dir())
    args = parser.parse_args()
    build_dir = Path(args.build_dir).resolve()
    stamp = wanted_stamp()
    if current(build_dir, stamp):
        # make compares mtimes: a fresh one keeps it from asking again until a source changes.
        (build_dir / STAMP).touch()
        print(f"engine-compiled: {build_dir} is current")
        return 0
    started = time.perf_counter()
    build_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="engine-build-", dir=build_dir.parent) as tmp:
        work = Path(tmp)
        out = work / "out"
        compile_into(out, work)
        (out / STAMP).write_text(json.dumps(stamp, indent=1) + "\n")
        # Never a half-written build in place: the new one is whole before the old one goes.
        if build_dir.exists():
            shutil.rmtree(build_dir)
        out.rename(build_dir)
    problem = build_problem(build_dir)
    if problem is not None:
        print(f"engine-compiled: {problem}", file=sys.stderr)
        return 1
    elapsed = time.perf_counter() - started
    print(f"engine-compiled: {len(compiled_modules())} modules in {elapsed:.0f}s into {build_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
