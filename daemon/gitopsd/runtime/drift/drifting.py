"""Drift checks (SPEC 3.5): is what runs still what the environment's revision says?

Pipeline: apply -> ... -> **drift** -> report -> (remediate). A check runs each applied
component's `check` command (its `plan` when it has none) against the environment's current
revision, with the inputs the component was applied with, in parallel up to the
environment's `parallelism`, under the environment's lease: it never overlaps a run of that
environment, in this process or another. Exit 0 is in sync, 2 drifted, anything else (a
timeout, a driver that cannot start) an error, never counted as in sync. Each component's
result is stored with the time and the last `SUMMARY_LIMIT` characters of the check's output
(already capped and redacted by the driver runner).

Remediation re-applies the drifted components through a normal run at the current revision
(trigger `remediation`, windows respected), then checks again, so the report and the status
describe the repaired state. Whether a check remediates, and what a set of checks comes to,
is decided here once, for the daemon's scheduled checks and `gitopsd drift` alike
(`check_now`, `check_environments`, `outcome`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from gitopsd.engine import secret_references, selection
from gitopsd.engine.loading import ComponentEntry, Repository
from gitopsd.engine.ports import DriverCall, DriverResult
from gitopsd.errors import RunRefusedError
from gitopsd.model.state import (
    REMEDIATION_TRIGGER,
    ComponentState,
    ComponentStatus,
    DriftStatus,
    RequestKind,
    Run,
    RunStatus,
)
from gitopsd.runtime.promotion import admission
from gitopsd.runtime.records import audit
from gitopsd.runtime.runs import recalling
from gitopsd.runtime.runs.revisions import Revisioned
from gitopsd.runtime.runs.steps import (
    StepError,
    check_opened,
    check_supported,
    output_secrets,
)
from gitopsd.runtime.runs.workspace import Workspace

log = logging.getLogger("gitopsd.runs")
SUMMARY_LIMIT = 4000
EXIT_IN_SYNC, EXIT_DRIFTED = 0, 2


@dataclass(frozen=True)
class ComponentDrift:
    name: str
    drift: DriftStatus
    summary: str
    exit_code: int | None = None


@dataclass(frozen=True)
class DriftReport:
    environment: str
    revision: str | None
    checked_at: datetime
    components: list[ComponentDrift] = field(default_factory=list)
    remediation: Run | None = None
    repaired: list[ComponentDrift] = field(default_factory=list)  # what drifted, before repair

    @property
    def result(self) -> DriftStatus:
        """drifted if any component drifted, else error if any check failed, else in_sync."""
        found = {component.drift for component in self.components}
        for worst in (DriftStatus.DRIFTED, DriftStatus.ERROR):
            if worst in found:
                return worst
        return DriftStatus.IN_SYNC

    def drifted(self) -> list[str]:
        return [c.name for c in self.components if c.drift is DriftStatus.DRIFTED]


def check_environments(
    workspace: Workspace, environments: Sequence[str] | None, *, remediate: bool, actor: str
) -> list[DriftReport]:
    """Check `environments` (None: every one at the branch head) now, one after the other.
    The head only names them and says whether each remediates: each is checked at the
    revision it runs, so a broken head stops nothing and needs no checkout."""
    repository = workspace.load_revision().repository
    names = list(environments) if environments else sorted(repository.environments)
    return [
        check_now(workspace, name, repository=repository, remediate=remediate, actor=actor)
        for name in names
    ]


def check_now(
    workspace: Workspace,
    environment: str,
    *,
    repository: Repository | None,
    remediate: bool = False,
    actor: str,
    automatic: bool = False,
) -> DriftReport:
    """Check `environment`, remediating when asked (`remediate`, the operator's flag) or when
    its manifest in `repository` (the head; None: not loaded) says `drift.remediate`. A
    remediation only the manifest asks for is automatic work, which suspension holds: nobody
    asked for it, and a check run on a schedule outside the daemon (a CI job's `gitopsd
    drift`) looks like any other command."""
    entry = repository.environments.get(environment) if repository else None
    by_manifest = bool(entry and entry.manifest.spec.drift.remediate)
    return check_and_remediate(
        workspace,
        environment,
        remediate=remediate or by_manifest,
        actor=actor,
        automatic=automatic or not remediate,
    )


def outcome(reports: Sequence[DriftReport]) -> DriftStatus:
    """What the checks come to: error if a check or a remediation run failed, else drifted
    if anything drifted (repaired or not: the drift was found), else in sync."""
    failed_fix = any(
        r.remediation and r.remediation.status is not RunStatus.SUCCEEDED for r in reports
    )
    if failed_fix or any(r.result is DriftStatus.ERROR for r in reports):
        return DriftStatus.ERROR
    if any(r.result is DriftStatus.DRIFTED or r.remediation for r in reports):
        return DriftStatus.DRIFTED
    return DriftStatus.IN_SYNC


def check(workspace: Workspace, environment: str, *, actor: str = "local") -> DriftReport:
    """Check every applied component of `environment` now, and store the results.

    All of it under the environment's lease: a running apply finishes first, so the check
    sees what it left, and the states read here are still the stored ones when the results
    are written over them.
    """
    if workspace.store.get_environment(environment) is None:
        return DriftReport(environment, None, workspace.clock.now())  # never applied
    with workspace.lease(environment):
        now = workspace.clock.now()
        state = workspace.store.get_environment(environment)
        if state is None or state.revision is None:
            return DriftReport(environment, None, now)
        target = workspace.load(state.revision)
        applied = {
            s.name: s
            for s in workspace.store.list_components(environment)
            if s.status is ComponentStatus.APPLIED
        }
        chosen = [
            entry
            for entry in selection.select(target.repository, environment).components
            if entry.manifest.name in applied
        ]
        parallelism = target.repository.environments[environment].manifest.spec.parallelism
        found = _run_checks(
            workspace, chosen, applied, target, environment=environment, parallelism=parallelism
        )
        report = DriftReport(environment, state.revision, now, found)
        _record(workspace, report, applied, actor=actor)
    return report


def check_and_remediate(
    workspace: Workspace,
    environment: str,
    *,
    remediate: bool,
    actor: str = "local",
    automatic: bool = False,
) -> DriftReport:
    """Check; when asked and something drifted, re-apply the drifted components and check
    again (if admission lets it: `automatic` for a scheduled check, which suspension holds).
    The returned report is the last check, with the remediation run if one ran."""
    report = check(workspace, environment, actor=actor)
    if not remediate or not report.drifted() or report.revision is None:
        return report

    admitted = admission.admit(
        workspace,
        environment,
        action=RequestKind.REMEDIATE,
        revision=report.revision,
        actor=actor,
        automatic=automatic,
    )
    if admitted.wait is not admission.Wait.READY:
        audit.record(workspace, environment, "drift.remediation_held", admitted.reason, actor=actor)
        return report
    checked = report.revision
    try:
        run = workspace.apply(
            environment,
            revision=checked,
            components=report.drifted(),
            trigger=REMEDIATION_TRIGGER,
            actor=actor,
            check=lambda: _still_at(workspace, environment, checked),
        )
    except RunRefusedError as moved:
        audit.record(workspace, environment, "drift.remediation_held", str(moved), actor=actor)
        return report
    after = check(workspace, environment, actor=actor)
    drifted = [c for c in report.components if c.drift is DriftStatus.DRIFTED]
    return dataclasses.replace(after, remediation=run, repaired=drifted)


def _still_at(workspace: Workspace, environment: str, revision: str) -> None:
    """Under the lease, before the remediation is recorded: the environment still runs the
    revision the check saw. The check let the lease go, and a run of another revision that
    took it meanwhile (another process) would otherwise see the drifted components it just
    applied taken back to the older one."""
    state = workspace.store.get_environment(environment)
    current = state.revision if state is not None else None
    if current != revision:
        now = current[:12] if current else "nothing"
        raise RunRefusedError(
            f"{environment} moved from {revision[:12]} to {now} since the drift check:"
            " not remediated (the next check looks again)"
        )


def _run_checks(
    workspace: Workspace,
    chosen: list[ComponentEntry],
    applied: dict[str, ComponentState],
    target: Revisioned,
    *,
    environment: str,
    parallelism: int,
) -> list[ComponentDrift]:
    """Each chosen component's check (all of `environment`), `parallelism` at once; a result
    per component, in the order chosen. A check that cannot be made (no command) is an
    error, not run."""
    found: dict[str, ComponentDrift] = {}
    names: list[str] = []
    calls: list[DriverCall] = []
    state_folder = workspace.state_root / environment
    for entry in chosen:
        name = entry.manifest.name
        try:
            state = applied[name]
            inputs = recalling.recalled(
                state, manifests=workspace.manifests, digest=workspace.digest
            )
            calls.append(_check_call(entry, state, inputs, target.checkout, state_folder))
            names.append(name)
        except StepError as error:
            found[name] = ComponentDrift(name, DriftStatus.ERROR, str(error))

    def done(index: int, result: DriverResult) -> None:  # progress, as each check ends
        environment = calls[index].environment
        log.info("%s: %s", names[index], _verdict(result).value, extra={"environment": environment})

    results = workspace.drivers.run_many(
        calls, parallelism=parallelism, cancel=workspace.interrupted, on_done=done
    )
    for name, result in zip(names, results, strict=True):
        found[name] = ComponentDrift(name, _verdict(result), _summary(result), result.exit_code)
    return [found[entry.manifest.name] for entry in chosen]


def _check_call(
    entry: ComponentEntry,
    state: ComponentState,
    inputs: Mapping[str, Any],
    checkout: Path,
    state_folder: Path,
) -> DriverCall:
    """`state_folder` is the environment's, joined once: a `Path` join costs microseconds, and
    a check of 1,000 components made 4,000 of them (now 2,000) before its first check ran."""
    check_supported(entry, "check")
    check_opened(state.name, inputs)
    return DriverCall(
        driver=entry.manifest.spec.driver,
        cwd=checkout / entry.folder,
        environment=state.environment,
        component=state.name,
        revision=state.revision,
        action="check",
        inputs=inputs,
        state_dir=state_folder / state.name,
        timeout=entry.manifest.spec.timeout,
        sensitive_inputs=frozenset(state.sensitive_inputs),
        secrets=output_secrets([state]),  # a check may print what it compares
        secret_names=secret_references.referenced(entry),
    )


def _verdict(result: DriverResult) -> DriftStatus:
    if result.error is None and result.exit_code == EXIT_IN_SYNC:
        return DriftStatus.IN_SYNC
    if result.error is None and result.exit_code == EXIT_DRIFTED:
        return DriftStatus.DRIFTED
    return DriftStatus.ERROR


def _summary(result: DriverResult) -> str:
    text = result.output.strip()
    if _verdict(result) is DriftStatus.ERROR:
        why = result.error or f"exited with code {result.exit_code}"
        text = f"{why}\n{text}".strip()
    return text if len(text) <= SUMMARY_LIMIT else "[...]\n" + text[-SUMMARY_LIMIT:]


def _record(
    workspace: Workspace,
    report: DriftReport,
    checked: dict[str, ComponentState],
    *,
    actor: str,
) -> None:
    """Store each component's result and the audit event. The caller still holds the lease,
    so the states read before the checks are still the stored ones."""
    results = [
        checked[found.name].model_copy(
            update={
                "drift": found.drift,
                "drift_checked_at": report.checked_at,
                "drift_summary": found.summary,
            }
        )
        for found in report.components
    ]
    with workspace.store.transaction():
        workspace.store.save_components(results)
        counts = {s.value: 0 for s in (DriftStatus.IN_SYNC, DriftStatus.DRIFTED, DriftStatus.ERROR)}
        for found in report.components:
            counts[found.drift.value] += 1
        message = ", ".join(f"{n} {kind}" for kind, n in counts.items() if n) or "nothing applied"
        audit.record(
            workspace,
            report.environment,
            "drift.checked",
            f"drift check: {message}",
            actor=actor,
            result=report.result.value,
            drifted=report.drifted(),
            revision=report.revision,
        )
