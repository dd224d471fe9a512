"""The registry of deploy checks.

A check is a function over a :class:`Stack` (the parsed templates) that yields one
:class:`Failure` per thing it finds wrong, and nothing when all is well::

    from infra.deploy_check.checks import Failure, Stack, check, where

    @check("xray", "every traced function's role may write X-Ray segments")
    def xray(stack: Stack) -> Iterator[Failure]:
        for key, name, resource in stack.resources("AWS::Lambda::Function"):
            ...
            yield Failure(where(key, name), "Tracing Active but its role lacks X-Ray")

Checks are pure: they read the Stack and nothing else (no AWS, no network), so unit tests feed
them small templates built in the test. A module of checks registers them by being imported:
the runner imports every module of this package, so a new file here with ``@check`` functions
is all it takes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

Template = dict[str, Any]


@dataclass(frozen=True)
class Failure:
    """One thing wrong: where (a logical id, ``stack/logicalId`` for a nested stack, or a
    file) and what."""

    where: str
    message: str


@dataclass
class Stack:
    """What the checks look at.

    - ``template``: template.yaml as written (short tags in their long JSON forms);
    - ``transformed``: SAM's translator's output for it (plain CloudFormation; None when a
      check runs without it, e.g. in a unit test that only gives ``template``);
    - ``nested``: each nested stack's template by the logical id of its
      ``AWS::CloudFormation::Stack`` in template.yaml (``Network``, ``Msk``, ...);
    - ``files``: the path each template was read from, by the same keys plus ``template``
      (for messages, and for the checks that run a tool on the files);
    - ``extra``: anything else a check module wants to carry (e.g. lint output).
    """

    template: Template = field(default_factory=dict)
    transformed: Template | None = None
    nested: dict[str, Template] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def deployed(self) -> Template:
        """The root stack as deployed: the transformed template when there is one."""
        return self.transformed if self.transformed is not None else self.template

    def templates(self) -> Iterator[tuple[str, Template]]:
        """The root (as deployed, key ``""``) and every nested stack (by its logical id)."""
        yield "", self.deployed
        yield from self.nested.items()

    def resources(self, *types: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
        """(stack key, logical id, resource) over the root as deployed and every nested stack,
        of the given types (all when none given). The stack key is "" for the root."""
        for key, template in self.templates():
            for logical_id, resource in (template.get("Resources") or {}).items():
                if not isinstance(resource, dict):
                    continue
                if not types or resource.get("Type") in types:
                    yield key, logical_id, resource


def where(stack_key: str, logical_id: str) -> str:
    """How a failure names a resource: ``Id`` in the root stack, ``Nested/Id`` in a nested one."""
    return f"{stack_key}/{logical_id}" if stack_key else logical_id


CheckFunction = Callable[[Stack], Iterable[Failure]]


@dataclass(frozen=True)
class Check:
    name: str
    description: str
    run: CheckFunction
    needs_transformed: bool


REGISTRY: dict[str, Check] = {}


def check(
    name: str, description: str, *, needs_transformed: bool = False
) -> Callable[[CheckFunction], CheckFunction]:
    """Register ``fn`` as the check ``name`` (unique). ``needs_transformed``: the check reads
    ``stack.transformed`` and fails when SAM's translator could not produce it."""

    def register(fn: CheckFunction) -> CheckFunction:
        if name in REGISTRY:
            raise ValueError(f"deploy check {name!r} is registered twice")
        REGISTRY[name] = Check(name, description, fn, needs_transformed)
        return fn

    return register


def run_check(entry: Check, stack: Stack) -> list[Failure]:
    """Every failure of one check; a check that raises is one failure, not a crash."""
    if entry.needs_transformed and stack.transformed is None:
        return [Failure("template.yaml", "SAM's translator produced no template")]
    try:
        return list(entry.run(stack))
    except Exception as error:  # a broken check is reported; the others still run
        return [Failure(entry.name, f"the check itself failed: {type(error).__name__}: {error}")]
