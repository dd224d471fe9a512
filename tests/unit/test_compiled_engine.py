"""The two forms of the engine (docs/engine.md, "Two forms of one source"): the mypyc build and
the pure source must give byte-identical events and the same state for the same commands.

One process can hold only one form (both are the modules ``bourse.engine.*``), so each form
runs the streams in a child process of its own (``python -m tests.unit.test_compiled_engine``)
and reports digests: of each command's encoded events, of all of them, of the state halfway
(where the engine is also replaced by ``Engine.restore(engine.snapshot())``) and at the end.
The streams are the benchmark's standard workload (stops, icebergs, STP, quote orders, thin
accounts) and the differential test's random one (every command kind, order lists, admin
commands, amends, invalid commands), generated in the child as the reference engine answers.

Without a current build this module skips, unless BOURSE_ENGINE=compiled (as `make test`
sets it) says a build must be there.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bourse import engine_form
from bourse.settings import engine_build_dir

ROOT = Path(__file__).resolve().parents[2]
WORKLOAD_COMMANDS = 20_000
RANDOM_COMMANDS = 3_000
RANDOM_SEED = 7


def _run_streams() -> dict[str, Any]:
    from bench.workload import commands, setup_commands
    from bourse.domain.commands import Command
    from bourse.domain.event_codec import encode_events
    from bourse.engine import Engine
    from tests.reference_engine import ReferenceEngine
    from tests.unit.test_differential import BTCUSDT, ETHBTC, Chooser, Generator

    report: dict[str, Any] = {"form": engine_form.form, "why": engine_form.reason}

    def run(name: str, stream: list[Command]) -> None:
        engine = Engine()
        digests: list[str] = []
        everything = hashlib.sha256()
        for i, cmd in enumerate(stream):
            if i == len(stream) // 2:
                report[f"{name}.state.half"] = engine.state_hash()
                engine = Engine.restore(engine.snapshot())
            data = encode_events(engine.process(cmd))
            everything.update(data)
            digests.append(hashlib.sha256(data).hexdigest()[:16])
        report[f"{name}.events"] = everything.hexdigest()
        report[f"{name}.state"] = engine.state_hash()
        report[f"{name}.per_command"] = digests

    accounts = 200
    run("workload", [*setup_commands(accounts), *commands(WORKLOAD_COMMANDS, accounts, seed=11)])

    ref = ReferenceEngine()
    gen = Generator(Chooser(rng=random.Random(RANDOM_SEED)), 4, [BTCUSDT, ETHBTC])
    stream = gen.setup()
    for cmd in stream:
        ref.process(cmd)
    for _ in range(RANDOM_COMMANDS):
        cmd = gen.next(ref)
        ref.process(cmd)
        stream.append(cmd)
    run("random", stream)
    return report


def _child(form: str) -> dict[str, Any]:
    env = {**os.environ, "BOURSE_ENGINE": form}
    done = subprocess.run(
        [sys.executable, "-m", "tests.unit.test_compiled_engine"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"the {form} child failed:\n{done.stderr[-3000:]}"
    report: dict[str, Any] = json.loads(done.stdout)
    return report


@pytest.fixture(scope="module")
def build() -> Path:
    build_dir = Path(engine_build_dir()).resolve()
    problem = engine_form.build_problem(build_dir)
    if problem is not None:
        if os.environ.get("BOURSE_ENGINE") == "compiled":
            pytest.fail(f"BOURSE_ENGINE=compiled but {problem}")
        pytest.skip(problem)
    return build_dir


@pytest.mark.slow
def test_compiled_and_pure_give_identical_events_and_state(build: Path) -> None:
    compiled, pure = _child("compiled"), _child("pure")
    forms = (compiled.pop("form"), pure.pop("form"))
    assert forms == ("compiled", "pure"), (compiled.pop("why"), pure.pop("why"))
    for name in ("workload", "random"):
        per_c, per_p = compiled.pop(f"{name}.per_command"), pure.pop(f"{name}.per_command")
        assert len(per_c) == len(per_p)
        first = next((i for i, (a, b) in enumerate(zip(per_c, per_p, strict=True)) if a != b), None)
        assert first is None, f"{name}: the forms' events differ first at command {first}"
    del compiled["why"], pure["why"]
    assert compiled == pure


def test_a_build_of_other_sources_is_never_loaded(tmp_path: Path) -> None:
    (tmp_path / engine_form.STAMP).write_text(json.dumps({"sources": "0" * 64}))
    problem = engine_form.build_problem(tmp_path)
    assert problem is not None and "other sources" in problem
    assert engine_form.build_problem(tmp_path / "absent") is not None


def test_the_image_builds_with_the_pins_make_builds_with() -> None:
    def pins(path: Path) -> dict[str, str]:
        lines = (ln.strip() for ln in path.read_text().splitlines())
        return dict(ln.split("==", 1) for ln in lines if "==" in ln and not ln.startswith("#"))

    dev = pins(ROOT / "requirements" / "dev.txt")
    image = pins(ROOT / "matching-service" / "build-requirements.txt")
    assert {name: dev.get(name) for name in image} == image


if __name__ == "__main__":
    json.dump(_run_streams(), sys.stdout)
