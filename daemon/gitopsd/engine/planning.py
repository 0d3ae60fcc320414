"""Decide which components a run changes: desired state fingerprints against the last apply.

A component's desired state in an environment is its files at the revision (the git tree of
its folder), its rendered inputs and its driver. Its fingerprint is compared with the one
recorded at its last apply: only a difference runs it. Inputs that read a dependency's
outputs are rendered with the outputs known now, so a dependent is decided again after each
dependency applies (`decide` is called by execution at that moment, and by `plan` up front).

The fingerprint is stored, so sensitive inputs (secret-named, or rendered from a sensitive
output) enter it through `conceal`, which the runtime gives as a keyed hash of each
(runtime/records/sensitivity.py): a changed secret still changes the fingerprint, and the stored
fingerprint cannot be used to guess a secret without the key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from gitopsd.engine import rendering
from gitopsd.engine.loading import ComponentEntry, EnvironmentEntry
from gitopsd.engine.references import ExpressionError
from gitopsd.engine.selection import Selection, scope_for
from gitopsd.model.state import ComponentState, ComponentStatus, DriftStatus, kept_hash

Outputs = Mapping[str, Mapping[str, Any]]
# the inputs as they enter a component's fingerprint: sensitive values replaced by keyed hashes
Conceal = Callable[[ComponentEntry, Mapping[str, Any]], Mapping[str, Any]]


class Verdict(StrEnum):
    RUN = "run"
    UNCHANGED = "unchanged"
    WAITING = "waiting"  # inputs read outputs a dependency has not produced yet


class Applied(Protocol):
    """What deciding a component needs of its last apply: a `ComponentState`, or the
    `LastApply` a run keeps of each component while it decides them all."""

    @property
    def status(self) -> ComponentStatus: ...

    @property
    def drift(self) -> DriftStatus: ...

    @property
    def fingerprint(self) -> str: ...

    @property
    def inputs(self) -> Mapping[str, Any]: ...

    @property
    def outputs(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True, slots=True)
class LastApply:
    """`Applied`, without the rest of a component's state (a tenth of its memory)."""

    status: ComponentStatus
    drift: DriftStatus
    fingerprint: str
    inputs: Mapping[str, Any]
    outputs: Mapping[str, Any]

    @classmethod
    def of(cls, state: ComponentState) -> LastApply:
        return cls(state.status, state.drift, state.fingerprint, state.inputs, state.outputs)


@dataclass(frozen=True)
class Decision:
    component: str
    verdict: Verdict
    reason: str
    fingerprint: str | None = None
    inputs: dict[str, Any] | None = None
    # WAITING: which input cannot be rendered yet, and why (`v: component 'net' has no
    # output 'id'`); once the dependencies have applied, a failure of the component
    problem: str | None = None


@dataclass(frozen=True)
class Preview:
    """What a run at `revision` would do, in apply order."""

    environment: str
    revision: str
    decisions: list[Decision]

    @property
    def has_changes(self) -> bool:
        return any(d.verdict is not Verdict.UNCHANGED for d in self.decisions)


def fingerprint(
    *,
    tree: str,
    inputs: Mapping[str, Any],
    component: ComponentEntry,
    conceal: Conceal | None = None,
) -> str:
    """A digest of everything that defines the component's desired state."""
    spec = component.manifest.spec
    desired = {
        "tree": tree,
        "inputs": conceal(component, inputs) if conceal else inputs,
        "driver": spec.driver.model_dump(mode="json"),
        "timeout": spec.timeout,
    }
    encoded = json.dumps(desired, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(encoded.encode()).hexdigest()


def decide(
    component: ComponentEntry,
    *,
    environment: EnvironmentEntry,
    revision: str,
    tree: str,
    outputs: Outputs,
    last: Applied | None,
    conceal: Conceal | None = None,
) -> Decision:
    """Whether `component` must run, given the outputs its dependencies have now."""
    name = component.manifest.name
    scope = scope_for(
        environment, name, revision=revision, outputs=_own_outputs(component, outputs)
    )
    try:
        inputs = rendering.render(component.manifest.spec.inputs, scope)
    except ExpressionError as error:
        problem = _unrendered(error)
        waiting = f"inputs wait for a dependency: {problem}"
        return Decision(name, Verdict.WAITING, waiting, problem=problem)
    digest = fingerprint(tree=tree, inputs=inputs, component=component, conceal=conceal)
    reason = _change_reason(
        digest, inputs, last, lambda: conceal(component, inputs) if conceal else inputs
    )
    verdict = Verdict.UNCHANGED if reason is None else Verdict.RUN
    return Decision(name, verdict, reason or "unchanged", digest, inputs)


def _unrendered(error: ExpressionError) -> str:
    """The input and the reason, without the column within the input's text: a plan's
    reason and a failed step name the input, and the placeholder is plain to see there."""
    path = getattr(error, "path", ())
    return f"{rendering.format_path(path)}: {error.message}" if path else error.message


def plan(
    selection: Selection,
    *,
    revision: str,
    trees: Mapping[str, str],
    observed: Mapping[str, Applied],
    conceal: Conceal | None = None,
) -> Preview:
    """Decide every selected component up front, with the outputs recorded now.

    A dependent of a component that will run may change once that one's outputs are known;
    it is marked WAITING here and decided for real when execution reaches it.
    """
    found = _up_front(selection, revision, trees, observed, conceal, complete=True)
    return Preview(selection.environment.manifest.name, revision, list(found))


def unchanged(
    selection: Selection,
    *,
    revision: str,
    trees: Mapping[str, str],
    observed: Mapping[str, Applied],
    conceal: Conceal | None = None,
) -> dict[str, Decision]:
    """The components `plan` would find UNCHANGED, by name: those an apply records skipped
    when it starts. A component with no recorded state runs whatever its inputs are, so it
    is not decided here (nothing is, in an apply after a destroy); neither is one after a
    dependency that runs."""
    found = _up_front(selection, revision, trees, observed, conceal, complete=False)
    return {d.component: d for d in found if d.verdict is Verdict.UNCHANGED}


def as_applied(
    selection: Selection,
    *,
    revision: str,
    trees: Mapping[str, str],
    observed: Mapping[str, Applied],
    conceal: Conceal | None = None,
) -> set[str]:
    """The components whose desired state at `revision`, rendered with the outputs recorded
    now, has the fingerprint they were last applied with: the same files, driver and
    inputs, whatever their status or drift and whatever their dependencies do next (what a
    destroy asks: may `revision`'s driver and checkout stand for the one that applied it)."""
    decided = _deciding(selection, revision, trees, observed, conceal)
    same = set()
    for component in selection.components:
        last = observed.get(component.manifest.name)
        if last is not None and decided(component).fingerprint == last.fingerprint:
            same.add(component.manifest.name)
    return same


def _up_front(
    selection: Selection,
    revision: str,
    trees: Mapping[str, str],
    observed: Mapping[str, Applied],
    conceal: Conceal | None,
    *,
    complete: bool,
) -> Iterator[Decision]:
    """Each selected component's decision in apply order, with the outputs recorded now; not
    `complete`: one that cannot be unchanged (never applied, or after a dependency that
    runs) is only marked RUN or WAITING, undecided."""
    decided = _deciding(selection, revision, trees, observed, conceal)
    moving: set[str] = set()
    for component in selection.components:
        name = component.manifest.name
        upstream = [d for d in component.manifest.spec.depends_on if d in moving]
        if complete or (name in observed and not upstream):
            decision = decided(component)
        else:
            decision = Decision(name, Verdict.RUN, "decided when it runs")
        if decision.verdict is Verdict.UNCHANGED and upstream:
            reason = f"decided after {', '.join(upstream)} apply (its outputs may change)"
            decision = Decision(name, Verdict.WAITING, reason)
        elif decision.problem is not None and not upstream:  # no dependency will change it
            reason = f"inputs cannot be rendered: {decision.problem}"
            decision = dataclasses.replace(decision, reason=reason)
        if decision.verdict is not Verdict.UNCHANGED:
            moving.add(name)
        yield decision


def _deciding(
    selection: Selection,
    revision: str,
    trees: Mapping[str, str],
    observed: Mapping[str, Applied],
    conceal: Conceal | None,
) -> Callable[[ComponentEntry], Decision]:
    """`decide` for the components of `selection` with the outputs recorded now (up front,
    as `plan` and a run's start decide), each against its own last apply."""
    outputs = {name: state.outputs for name, state in observed.items()}

    def decided(component: ComponentEntry) -> Decision:
        return decide(
            component,
            environment=selection.environment,
            revision=revision,
            tree=trees[component.folder],
            outputs=outputs,
            last=observed.get(component.manifest.name),
            conceal=conceal,
        )

    return decided


def _own_outputs(component: ComponentEntry, outputs: Outputs) -> dict[str, dict[str, Any]]:
    """Only the dependencies' outputs: a component never sees anything else."""
    return {d: dict(outputs[d]) for d in component.manifest.spec.depends_on if d in outputs}


def _change_reason(
    digest: str,
    inputs: Mapping[str, Any],
    last: Applied | None,
    concealed: Callable[[], Mapping[str, Any]],
) -> str | None:
    """Why the component must run, or None. `concealed`: the inputs as a fingerprint takes
    them, which is how a record keeps a secret-named input (`kept_hash`)."""
    if last is None:
        return "new in this environment"
    if last.status is not ComponentStatus.APPLIED:
        return f"last apply left it {last.status.value}"
    if last.drift is DriftStatus.DRIFTED:
        return "drifted from its desired state"
    if last.fingerprint == digest:
        return None
    changed = sorted(
        k for k in set(inputs) | set(last.inputs) if inputs.get(k) != last.inputs.get(k)
    )
    if any(kept_hash(last.inputs.get(k)) for k in changed):
        hidden = concealed()
        changed = [k for k in changed if kept_hash(last.inputs.get(k)) != hidden.get(k)]
    return "inputs changed: " + ", ".join(changed) if changed else "files or driver changed"
