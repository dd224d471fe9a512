"""The deploy check's registry and runner: checks register by module, failures are counted, a
broken check is one failure, and the last line is the verdict."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.deploy_check import checks, runner
from infra.deploy_check.checks import Failure, Stack, check, run_check

pytestmark = pytest.mark.unit

# What issue 14 asks the deploy check to catch, by check name.
EXPECTED = {
    "cfn-lint", "iam-code-calls", "iam-xray", "iam-kms", "iam-redis-secret",
    "iam-managed-policies", "reserved-concurrency", "msk-poller-mode", "fixed-names",
    "websocket-deployment", "websocket-stage",
}  # fmt: skip


def test_every_module_registers_its_checks() -> None:
    registered = runner.load_checks()
    assert set(registered) >= EXPECTED
    for entry in registered.values():
        assert entry.description and callable(entry.run)


def test_a_name_registers_once() -> None:
    runner.load_checks()
    with pytest.raises(ValueError, match="registered twice"):
        check("iam-xray", "again")(lambda stack: iter(()))


def test_a_check_that_raises_is_one_failure_and_the_others_still_run() -> None:
    def broken(stack: Stack) -> Iterator[Failure]:
        raise KeyError("Resources")

    entry = checks.Check("broken", "raises", broken, needs_transformed=False)
    (failure,) = run_check(entry, Stack())
    assert "KeyError" in failure.message


def test_a_check_that_needs_sams_output_fails_without_it() -> None:
    entry = checks.Check("needs", "sam", lambda stack: iter(()), needs_transformed=True)
    (failure,) = runner.run(Stack(extra={"translate_error": "boom"}), {"needs": entry})[0][1]
    assert "boom" in failure.message


def test_the_report_ends_with_the_verdict() -> None:
    good = checks.Check("good", "passes", lambda stack: iter(()), needs_transformed=False)
    bad = checks.Check(
        "bad", "fails", lambda stack: iter([Failure("A", "x"), Failure("B", "y")]), False
    )
    text, count = runner.report(runner.run(Stack(), {"good": good, "bad": bad}))
    assert count == 2
    assert text.splitlines()[-1] == "deploy-check: 2 checks, 2 failures"
    assert "FAIL bad: fails" in text and "ok   good: passes" in text


def test_nested_stacks_are_found_by_their_location(tmp_path: Path) -> None:
    template = {
        "Resources": {
            "Net": {"Type": "AWS::Serverless::Application", "Properties": {"Location": "a.yaml"}},
            "Old": {"Type": "AWS::CloudFormation::Stack", "Properties": {"TemplateURL": "b.yaml"}},
            "Far": {
                "Type": "AWS::CloudFormation::Stack",
                "Properties": {"TemplateURL": "https://example.com/c.yaml"},
            },
        }
    }
    assert runner.nested_locations(template) == {"Net": "a.yaml", "Old": "b.yaml"}


def test_main_lists_the_checks(capsys: pytest.CaptureFixture[str]) -> None:
    assert runner.main(["--list"]) == 0
    listed = {line.split(":")[0] for line in capsys.readouterr().out.splitlines()}
    assert listed >= EXPECTED
