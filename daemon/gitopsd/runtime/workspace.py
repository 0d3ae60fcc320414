"""Runs as commands and the daemon start them: load, lease, resume, execute, record.

A `Workspace` is one watched repository with its state store and data folder. Starting a
run means: load the revision (valid manifests only), take the environment's lease, finish
any run a crashed process left behind, then create and execute the new run. Everything
the executor needs is prepared here, so the executor itself never touches git.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gitopsd.adapters.checkouts import CheckoutCache
from gitopsd.adapters.gitrepo import GitSource
from gitopsd.engine import selection
from gitopsd.engine.loading import ComponentEntry, Repository
from gitopsd.engine.ports import Clock, DriverRunner, StateStore
from gitopsd.model.state import ComponentStatus, Run, RunAction, RunStatus
from gitopsd.runtime import leases, revisions
from gitopsd.runtime.executor import ApplyRun, Revisioned
from gitopsd.runtime.steps import Services


class RunRefusedError(Exception):
    """A run that cannot start: unknown environment, invalid revision, bad component list."""


@dataclass
class Workspace:
    source: GitSource
    store: StateStore
    drivers: DriverRunner
    checkouts: CheckoutCache
    clock: Clock
    data_dir: Path
    holder: str

    @property
    def state_root(self) -> Path:
        return self.data_dir / "state"

    def load(self, revision: str | None = None) -> Revisioned:
        """A valid revision, ready to run from; invalid manifests refuse the run."""
        loaded = revisions.load(self.source, revision)
        if not loaded.is_valid:
            problems = "\n".join(str(p) for p in loaded.problems)
            raise RunRefusedError(
                f"the manifests at {loaded.revision[:12]} are invalid:\n{problems}"
            )
        return Revisioned(
            repository=loaded.repository,
            checkout=self.checkouts.path(loaded.revision),
            trees=self.source.folder_trees(loaded.revision),
        )

    def apply(
        self,
        environment: str,
        *,
        revision: str | None = None,
        components: Sequence[str] | None = None,
        trigger: str = "cli",
        actor: str = "local",
        forced: bool = False,
    ) -> Run:
        """Apply `revision` (default: the branch head) to `environment`, in the foreground."""
        target = self.load(revision)
        chosen = self._components(target.repository, environment, components)
        lost = threading.Event()
        with leases.held(self.store, environment, holder=self.holder, clock=self.clock, lost=lost):
            self.resume(environment)
            state = self.store.get_environment(environment)
            run = Run(
                id=new_run_id(self.clock),
                environment=environment,
                revision=target.revision,
                action=RunAction.APPLY,
                components=list(components) if components else None,
                trigger=trigger,
                actor=actor,
                forced=forced,
                previous_revision=state.revision if state else None,
                created_at=self.clock.now(),
            )
            self.store.save_run(run)
            return self._execute(run, target, chosen, lost)

    def resume(self, environment: str) -> list[Run]:
        """Finish the runs of `environment` that a stopped process left unfinished."""
        finished = []
        for run in self.store.unfinished_runs(environment):
            target = self.load(run.revision)
            chosen = self._components(target.repository, environment, run.components)
            finished.append(self._execute(run, target, chosen, threading.Event()))
        return finished

    def _execute(
        self, run: Run, target: Revisioned, chosen: list[ComponentEntry], lost: threading.Event
    ) -> Run:
        services = Services(
            store=self.store,
            drivers=self.drivers,
            clock=self.clock,
            state_root=self.state_root,
            cancel=lost,
        )
        previous = self._previous(run)
        return ApplyRun(
            services,
            run,
            environment=target.repository.environments[run.environment],
            components=chosen,
            target=target,
            previous=previous,
        ).execute()

    def _previous(self, run: Run) -> Revisioned | None:
        """The revision a failed run rolls back to: the environment's current one."""
        return self.load(run.previous_revision) if run.previous_revision else None

    def _components(
        self, repository: Repository, environment: str, requested: Sequence[str] | None
    ) -> list[ComponentEntry]:
        if environment not in repository.environments:
            known = ", ".join(sorted(repository.environments)) or "none"
            raise RunRefusedError(f"unknown environment {environment!r} (environments: {known})")
        ordered = selection.select(repository, environment).components
        if not requested:
            return ordered
        names = {c.manifest.name for c in ordered}
        unknown = [name for name in requested if name not in names]
        if unknown:
            raise RunRefusedError(
                f"not components of {environment}: {', '.join(unknown)} "
                f"(it has {', '.join(sorted(names))})"
            )
        chosen = [c for c in ordered if c.manifest.name in requested]
        self._check_dependencies_applied(environment, chosen)
        return chosen

    def _check_dependencies_applied(self, environment: str, chosen: list[ComponentEntry]) -> None:
        """A partial run builds on what is there: its outside dependencies must be applied."""
        inside = {c.manifest.name for c in chosen}
        for component in chosen:
            for dependency in component.manifest.spec.depends_on:
                if dependency in inside:
                    continue
                state = self.store.get_component(environment, dependency)
                if state is None or state.status is not ComponentStatus.APPLIED:
                    raise RunRefusedError(
                        f"{component.manifest.name} depends on {dependency}, which was never "
                        f"applied in {environment}; apply {dependency} first or include it"
                    )


def new_run_id(clock: Clock) -> str:
    """Sortable by time, unique by a random suffix: 20261125T071530-3f2a9c."""
    return f"{clock.now():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


def is_unfinished(run: Run) -> bool:
    return run.status in (RunStatus.PENDING, RunStatus.RUNNING)
