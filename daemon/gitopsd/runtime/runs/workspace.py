"""Runs as commands and the daemon start them: load, lease, resume, execute, record.

A `Workspace` is one watched repository with its state store and data folder. Starting a
run means: load the revision (valid manifests only), take the environment's lease, finish
any run a crashed process left behind, then create and execute the new run. Everything
the executor needs is prepared here, so the executor itself never touches git.

The three run engines (apply, destroy, plan), and the fingerprint planning of a dry run, are
imported by the method that starts one: a drift check or a status read opens a workspace too
and needs none of them.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gitopsd.adapters import data_folder
from gitopsd.adapters.checkouts import CheckoutCache
from gitopsd.adapters.commit_signatures import CommitSignatures
from gitopsd.adapters.gitrepo import GitSource
from gitopsd.engine import planning, selection
from gitopsd.engine.loading import ComponentEntry, Repository
from gitopsd.engine.ports import Clock, DriverRunner, SecretSource, StateStore
from gitopsd.errors import GitopsdError, LeaseLostError, RunRefusedError
from gitopsd.model.state import ComponentStatus, Run, RunAction, RunStatus
from gitopsd.runtime.runs import apply_records, closing, leases, orphan_drivers, orphans, revisions
from gitopsd.runtime.runs.apply_run import ApplyRun
from gitopsd.runtime.runs.destroying import DestroyRun
from gitopsd.runtime.runs.live_output import LiveOutput
from gitopsd.runtime.runs.lookout import Lookout
from gitopsd.runtime.runs.orphans import Orphan
from gitopsd.runtime.runs.plan_run import PlannedComponent, PlanRun, as_applied, preview
from gitopsd.runtime.runs.revisions import Revisioned
from gitopsd.runtime.runs.revisions_at import RevisionsAt
from gitopsd.runtime.runs.steps import Either, Interrupted, Services

log = logging.getLogger(__name__)


@dataclass
class Workspace:
    source: GitSource
    store: StateStore
    drivers: DriverRunner
    checkouts: CheckoutCache
    clock: Clock
    data_dir: Path
    holder: str
    # set when the process stops past its grace period: drivers are stopped and runs are left
    # resumable, as a crash would leave them (see steps.Interrupted)
    interrupted: threading.Event = field(default_factory=threading.Event)
    # set when the process starts stopping: runs start no new step and are left resumable
    draining: threading.Event = field(default_factory=threading.Event)
    # holders of environment leases known to be fenced out (a deposed leader): taken over
    deposed: frozenset[str] = frozenset()
    # how long a driver left running by a dead holder gets between SIGTERM and SIGKILL
    kill_grace: float = orphan_drivers.KILL_GRACE
    # the keyed hash of sensitive inputs in fingerprints (runtime.records.sensitivity)
    digest: Callable[[bytes], str] | None = None
    # the values of `${{ secrets.NAME }}`, for their keyed hashes in fingerprints
    secrets: SecretSource | None = None
    # what the drivers of its running steps printed so far (runs.live_output)
    live: LiveOutput = field(default_factory=LiveOutput)
    # looks for a stop of each of its walks in progress, from one thread (runs.lookout)
    lookout: Lookout = field(default_factory=Lookout)
    # held by the run of any environment that is deciding its steps (steps.Services.deciding)
    deciding: threading.Lock = field(default_factory=threading.Lock)
    # the trust file's signature check (SPEC 9); None: no environment requires signed commits
    signatures: CommitSignatures | None = None

    @property
    def state_root(self) -> Path:
        return self.data_dir / "state"

    def __post_init__(self) -> None:
        folder = self.data_dir / "cache" / "revisions"
        self._revisions = revisions.RevisionCache(self.source, folder=folder)
        self._at = RevisionsAt()

    def delay_cache_writes(self, seconds: float) -> None:
        """A daemon writes a loaded revision to disk `seconds` later, not beside the run a
        new head starts (`revisions.RevisionCache`)."""
        self._revisions.write_delay = seconds

    def close(self) -> None:
        """Write the revisions still waiting for their delayed write now, so a daemon that
        stops just after a load neither waits out the delay nor leaves the load unwritten."""
        self._revisions.close()

    def load_revision(self, revision: str | None = None) -> revisions.LoadedRevision:
        """The manifests of `revision` (default: the branch head), valid or not; cached, and
        the revision an environment is at is the one held for it (`revisions_at`)."""
        sha = self.source.resolve(revision) if revision else self.source.head()
        return self._at.find(sha) or self._revisions.load(sha)

    def manifests(self, revision: str | None = None) -> Repository:
        """A valid revision's manifests (cached), without its checkout: what deciding about
        a revision needs; invalid manifests refuse the run."""
        return self._valid(revision).repository

    def valid_manifests(self, revision: str) -> Repository | None:
        """`manifests`, or None where they refuse a run: a revision valid when it was applied
        may not be to this gitopsd (a stricter limit), and its rules are then not known."""
        try:
            return self.manifests(revision)
        except RunRefusedError:
            return None

    def parsed(self, revision: str) -> revisions.LoadedRevision:
        """A valid revision's manifests and file trees, without exporting its checkout: what
        `diff` compares, which must work while the data folder is full or read-only."""
        return self._valid(revision)

    def prepare(self, revision: str | None = None) -> str:
        """Start exporting `revision`'s checkout (default: the branch head) in the background,
        so that it is built while the manifests are parsed, by admission or by `load`; its
        commit. A command that admits before it applies calls this first: admission parses
        the manifests, and the export started only after it used to add its whole time."""
        sha = self.source.resolve(revision) if revision else self.source.head()
        self.checkouts.prepare(sha)
        return sha

    def load(self, revision: str | None = None) -> Revisioned:
        """A valid revision, ready to run from (its checkout exported); invalid manifests
        refuse the run. The checkout is exported while the manifests are parsed."""
        sha = self.prepare(revision)
        loaded = self._valid(sha)
        try:
            checkout = self.checkouts.path(loaded.revision)
        except OSError as error:  # full or read-only: a fault that passes, not a bug
            if not data_folder.is_unwritable(error):
                raise
            raise data_folder.cannot_write(self.data_dir, error) from error
        return Revisioned(repository=loaded.repository, checkout=checkout, trees=loaded.trees)

    def _valid(self, revision: str | None) -> revisions.LoadedRevision:
        loaded = self.load_revision(revision)
        if not loaded.is_valid:
            problems = "\n".join(str(p) for p in loaded.problems)
            raise RunRefusedError(
                f"the manifests at {loaded.revision[:12]} are invalid:\n{problems}"
            )
        return loaded

    # --- the three kinds of run -------------------------------------------------------------

    def apply(
        self,
        environment: str,
        *,
        revision: str | None = None,
        components: Sequence[str] | None = None,
        trigger: str = "cli",
        actor: str = "local",
        forced: bool = False,
        run_id: str | None = None,
        check: Callable[[], None] | None = None,
        plan: str | None = None,
    ) -> Run:
        """Apply `revision` (default: the branch head) to `environment`, in the foreground.

        `check` is called once the lease is held, before the run is recorded: what it
        verifies (a saved plan still matching the state) cannot change until the run ends,
        and an error it raises refuses the run. `plan`: the saved plan it applies."""
        target = self.load(revision)
        chosen = self._members(target, environment, components)
        self._check_dependencies_applied(environment, chosen)
        self._check_prunable(target, environment, components)
        with self.lease(environment) as lost:
            self.resume(environment)
            if check is not None:
                check()
            run = self._new_run(
                environment,
                RunAction.APPLY,
                target.revision,
                components,
                trigger=trigger,
                actor=actor,
                forced=forced,
                run_id=run_id,
                plan=plan,
            )
            return self._apply(run, target, chosen, lost)

    def preview(
        self,
        environment: str,
        *,
        revision: str | None = None,
        components: Sequence[str] | None = None,
    ) -> planning.Preview:
        """The ordered plan of an apply, from fingerprints alone: no driver runs, no writes."""
        target = self.load(revision)
        chosen = self._components(target.repository, environment, components)
        entry = target.repository.environments[environment]
        with self.deciding:  # as a run decides its steps (steps.Services.deciding)
            decided, _ = preview(
                self.store,
                target,
                entry,
                chosen,
                digest=self.digest,
                secrets=self.secrets,
            )
        return decided

    def plan(
        self,
        environment: str,
        *,
        revision: str | None = None,
        components: Sequence[str] | None = None,
        trigger: str = "cli",
        actor: str = "local",
        run_id: str | None = None,
    ) -> tuple[Run, list[PlannedComponent]]:
        """Ask the drivers what applying `revision` would change; nothing is changed.

        An apply or destroy a stopped process left unfinished is not resumed here (a plan
        changes nothing): the plan is refused, naming it, since what it still has to do is
        not in what the plan would show; interrupted plans are closed."""
        target = self.load(revision)
        chosen = self._components(target.repository, environment, components)
        with self.lease(environment) as lost:
            self._refuse_while_unfinished(environment)
            self.resume(environment)  # only interrupted plans are left: closed, cancelled
            run = self._new_run(
                environment,
                RunAction.PLAN,
                target.revision,
                components,
                trigger=trigger,
                actor=actor,
                run_id=run_id,
            )
            planner = PlanRun(
                self._services(lost),
                run,
                environment=target.repository.environments[environment],
                components=chosen,
                target=target,
                orphans=[] if components else self.orphan_names(environment, target),
            )
            return planner.execute()

    def destroy(
        self,
        environment: str,
        *,
        components: Sequence[str] | None = None,
        trigger: str = "cli",
        actor: str = "local",
        run_id: str | None = None,
    ) -> Run:
        """Destroy the environment's components (or some of them), dependents first. What
        goes, and with which revision, is decided under the lease after an unfinished run is
        resumed: a component that run applies is destroyed with its revision, not the
        head's. Whether the rest stands without it is judged by the dependencies they were
        applied with (the environment's revision), not the head's."""
        target = self.load(None)
        with self.lease(environment) as lost:
            self.resume(environment)
            current = self._revision_at(environment)
            chosen, doomed = self._doomed(environment, target, components, current)
            going = [*chosen, *(o.component for o in doomed.values())]
            applied = [r.repository for r in (current, target) if r is not None]
            self._check_nothing_depends_on(environment, going, applied)
            run = self._new_run(
                environment,
                RunAction.DESTROY,
                target.revision,
                components,
                trigger=trigger,
                actor=actor,
                run_id=run_id,
            )
            return self._destroy(run, target, chosen, doomed, lost)

    def resume_unfinished(self, environment: str) -> list[Run]:
        """Take the environment's lease and finish what a stopped process left (daemon start)."""
        if not self.store.unfinished_runs(environment):
            return []
        with self.lease(environment):
            return self.resume(environment)

    def resume(self, environment: str) -> list[Run]:
        """Finish the runs of `environment` that a stopped process left unfinished.

        Applies and destroys carry on where they stopped; an interrupted plan changed
        nothing and is closed as cancelled. The caller holds the environment's lease.
        """
        finished = []
        for run in self.store.unfinished_runs(environment):
            if run.action is RunAction.PLAN:  # it changed nothing: closed, with its event
                steps = self.store.list_steps(run.id)
                closing.close_steps(
                    self.store,
                    environment,
                    steps,
                    "interrupted",
                    stopped=True,
                    now=self.clock.now(),
                )
                services = self._services(threading.Event())
                status = RunStatus.CANCELLED
                finished.append(apply_records.finished(services, run, status, "interrupted"))
                continue
            target = self.load(run.revision)
            if run.action is RunAction.DESTROY:
                current = self._revision_at(environment)
                chosen, doomed = self._doomed(environment, target, run.components, current)
                done = self._destroy(run, target, chosen, doomed, threading.Event())
                finished.append(done)
            else:
                chosen = self._members(target, environment, run.components)
                finished.append(self._apply(run, target, chosen, threading.Event()))
        return finished

    # --- helpers ----------------------------------------------------------------------------

    def _refuse_while_unfinished(self, environment: str) -> None:
        for run in self.store.unfinished_runs(environment):
            if run.action is not RunAction.PLAN:
                raise RunRefusedError(
                    f"{environment} has an unfinished {run.action.value} run {run.id} that a "
                    f"stopped gitopsd left: the next `gitopsd {run.action.value} --env "
                    f"{environment}` resumes it; a plan meanwhile would not show what it "
                    "still has to do"
                )

    def prune_checkouts(self) -> list[str]:
        """Remove old checkouts, keeping every revision an environment is at or rolls back to,
        and those of runs still going (in this process or another: they are recorded), whose
        drivers may be working in them. A data folder that cannot be written keeps them: the
        run before it is done, and recorded, and must not be reported failed for housekeeping."""
        pinned = {
            revision
            for state in self.store.list_environments()
            for revision in (state.revision, state.previous_revision)
            if revision
        }
        for run in self.store.unfinished_runs():
            pinned.update(r for r in (run.revision, run.previous_revision) if r)
        try:
            return self.checkouts.prune(pinned=pinned)
        except OSError as error:
            if not data_folder.is_unwritable(error):
                raise
            log.warning("old checkouts kept: %s", data_folder.cannot_write(self.data_dir, error))
            return []

    def _apply(
        self, run: Run, target: Revisioned, chosen: list[ComponentEntry], lost: threading.Event
    ) -> Run:
        previous = self.load(run.previous_revision) if run.previous_revision else None
        finished = self._run_apply(run, target, chosen, lost, previous)
        self._hold_revision_at(run.environment, target, previous)
        self.prune_checkouts()
        return finished

    def _hold_revision_at(self, environment: str, *loaded: Revisioned | None) -> None:
        """After a run: keep loaded the revision `environment` is at now, one of those the
        run `loaded` (its target, or its rollback target), for the environment's next run."""
        state = self.store.get_environment(environment)
        ran = {revision.revision for revision in loaded if revision is not None}
        at = state.revision if state and state.revision in ran else None
        self._at.keep(environment, self.load_revision(at) if at else None)

    def _run_apply(
        self,
        run: Run,
        target: Revisioned,
        chosen: list[ComponentEntry],
        lost: threading.Event,
        previous: Revisioned | None,
    ) -> Run:
        entry = target.repository.environments[run.environment]
        pruned = (  # loaded only where they are destroyed: an orphan's revision may be gone
            self._requested_orphans(run.environment, target, run.components)
            if entry.manifest.spec.prune
            else {}
        )
        return ApplyRun(
            self._services(lost),
            run,
            environment=entry,
            components=chosen,
            target=target,
            previous=previous,
            orphans=list(pruned.values()),
        ).execute()

    def _destroy(
        self,
        run: Run,
        target: Revisioned,
        chosen: list[ComponentEntry],
        doomed: dict[str, Orphan],
        lost: threading.Event,
    ) -> Run:
        spec = target.repository.environments[run.environment].manifest.spec
        return DestroyRun(
            self._services(lost),
            run,
            components=[*chosen, *(o.component for o in doomed.values())],
            target=target,
            elsewhere={name: o.source for name, o in doomed.items()},
            parallelism=spec.parallelism,
            timeout=spec.run_timeout,
        ).execute()

    # --- orphans: deployed, but no longer part of the environment ---------------------------

    def orphan_names(self, environment: str, target: Revisioned) -> list[str]:
        """Components recorded in `environment` that it does not have at `target`."""
        return orphans.names(self.store, environment, target)

    def _doomed(
        self,
        environment: str,
        target: Revisioned,
        requested: Sequence[str] | None,
        current: Revisioned | None,
    ) -> tuple[list[ComponentEntry], dict[str, Orphan]]:
        """What a destroy of `requested` (default: everything) takes down: the components
        the head has, with the driver and checkout of `current` (the revision the
        environment is at) where it has them as they were applied (`_unchanged_at`), else
        of the revision that last applied each, as the orphans (a destroy brings no revision
        in); and those of the head's that have no state, for which there is nothing to
        destroy."""
        orphaned = self._requested_orphans(environment, target, requested)
        wanted = [name for name in requested or () if name not in orphaned]
        chosen = (
            self._components(target.repository, environment, wanted)
            if wanted or not requested
            else []
        )
        names = [c.manifest.name for c in chosen]
        unchanged = self._unchanged_at(environment, current)
        found = orphans.deployed(
            self.store, self.load, environment, names, current=current, unchanged=unchanged
        )
        doomed = {o.state.name: o for o in found}
        doomed.update(orphaned)
        return [c for c in chosen if c.manifest.name not in doomed], doomed

    def _unchanged_at(self, environment: str, current: Revisioned | None) -> set[str]:
        """The components `current` has as they were last applied (same files, driver and
        inputs): those its driver and checkout can destroy (`orphans.deployed`)."""
        if current is None or environment not in current.repository.environments:
            return set()
        entry = current.repository.environments[environment]
        chosen = self._components(current.repository, environment, None)
        with self.deciding:  # as a run decides its steps (steps.Services.deciding)
            return as_applied(
                self.store, current, entry, chosen, digest=self.digest, secrets=self.secrets
            )

    def _revision_at(self, environment: str) -> Revisioned | None:
        """The revision `environment` is at, loaded; None if it has none, or it can no longer
        be loaded (each component's own revision is taken then)."""
        state = self.store.get_environment(environment)
        if state is None or state.revision is None:
            return None
        try:
            return self.load(state.revision)
        except GitopsdError as error:
            log.warning("%s is at %s, which cannot be loaded: %s", environment,
                        state.revision[:12], error)  # fmt: skip
            return None

    def _members(
        self, target: Revisioned, environment: str, requested: Sequence[str] | None
    ) -> list[ComponentEntry]:
        """What an apply of `requested` (default: everything) runs: the environment's
        components, less the orphans it names (those it prunes, see `_check_prunable`)."""
        if not requested:
            return self._components(target.repository, environment, None)
        orphaned = set(self.orphan_names(environment, target))
        wanted = [name for name in requested if name not in orphaned]
        return self._components(target.repository, environment, wanted) if wanted else []

    def _check_prunable(
        self, target: Revisioned, environment: str, requested: Sequence[str] | None
    ) -> None:
        """An apply prunes every orphan (or those it names) where the environment prunes, each
        with the revision that last applied it: one that cannot be loaded refuses the run. An
        orphan named where it does not prune is refused: `destroy` is the way."""
        pruning = target.repository.environments[environment].manifest.spec.prune
        if pruning:
            self._requested_orphans(environment, target, requested)
            return
        named = set(requested or ()) & set(self.orphan_names(environment, target))
        refusal = orphans.unprunable(environment, named, prunes=pruning)
        if refusal is not None:
            raise RunRefusedError(refusal)

    def _requested_orphans(
        self, environment: str, target: Revisioned, requested: Sequence[str] | None
    ) -> dict[str, Orphan]:
        """The orphans among the components a run names (all of them when none named), each
        with the revision that last applied it."""
        named = requested or None
        found = orphans.find(self.store, self.load, environment, target, named=named)
        return {o.component.manifest.name: o for o in found}

    def _new_run(
        self,
        environment: str,
        action: RunAction,
        revision: str,
        components: Sequence[str] | None,
        *,
        run_id: str | None,
        **fields: Any,
    ) -> Run:
        state = self.store.get_environment(environment)
        run = Run(
            id=run_id or new_run_id(self.clock),
            environment=environment,
            revision=revision,
            action=action,
            components=list(components) if components else None,
            previous_revision=state.revision if state else None,
            created_at=self.clock.now(),
            **fields,
        )
        self.store.save_run(run)
        return run

    @contextlib.contextmanager
    def lease(self, environment: str) -> Iterator[threading.Event]:
        """Hold the environment's lease; the event is set if it is ever lost. Drivers a dead
        holder left running for it are ended first (`orphan_drivers`).

        A run whose lease is lost is interrupted, not cancelled: its drivers are stopped and
        it is left as a crash leaves it, since another process may take the environment
        over, and that process, or this one once its store answers again, resumes it. The
        walk's Interrupted comes out as a LeaseLostError, a transient fault, so that the
        request that started the run is tried again rather than ended (it was ended as
        `cancelled`, with nothing to run the commit again)."""
        lost = threading.Event()
        with leases.held(
            self.store,
            environment,
            holder=self.holder,
            clock=self.clock,
            lost=lost,
            deposed=self.deposed,
        ):
            orphan_drivers.end_orphans(
                self.store, environment, clock=self.clock, grace=self.kill_grace
            )
            try:
                yield lost
            except Interrupted:
                if not lost.is_set() or self.interrupted.is_set():
                    raise  # the process stops: the run resumes when it starts again
                raise LeaseLostError(
                    f"the lease of {environment} could not be renewed in time (the state store"
                    " failed or stalled): its run stopped and is resumed once the store answers"
                ) from None

    def _services(self, lost: threading.Event) -> Services:
        """A run's services; `lost`: its lease's, which interrupts it (see `lease`)."""
        return Services(
            store=self.store,
            drivers=self.drivers,
            clock=self.clock,
            state_root=self.state_root,
            interrupted=Either(self.interrupted, lost),
            draining=self.draining,
            digest=self.digest,
            secrets=self.secrets,
            manifests=self.manifests,
            live=self.live,
            lookout=self.lookout,
            deciding=self.deciding,
        )

    def _components(
        self, repository: Repository, environment: str, requested: Sequence[str] | None
    ) -> list[ComponentEntry]:
        """The environment's components in apply order, or the requested ones among them."""
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
        return [c for c in ordered if c.manifest.name in requested]

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

    def _check_nothing_depends_on(
        self, environment: str, chosen: list[ComponentEntry], repositories: list[Repository]
    ) -> None:
        """Destroying part of an environment must not pull the floor from under the rest:
        each remaining component's dependencies as the first of `repositories` that has it
        says (the environment's own revision first)."""
        going = {c.manifest.name for c in chosen}
        for state in self.store.list_components(environment):
            found = (r.components.get(state.name) for r in repositories)
            entry = next((e for e in found if e is not None), None)
            if state.name in going or entry is None:
                continue
            below = going.intersection(entry.manifest.spec.depends_on)
            if below:
                raise RunRefusedError(
                    f"{state.name} depends on {', '.join(sorted(below))} and is not being "
                    f"destroyed; destroy {state.name} too, or first"
                )


_RUN_ID_TIME = "%Y%m%dT%H%M%S"
_RUN_ID_ENDING = re.compile(r"(\d{8}T\d{6})-[0-9a-f]{6}$")  # a resumed run's id ends with one


def new_run_id(clock: Clock) -> str:
    """Sortable by time, unique by a random suffix: 20261125T071530-3f2a9c."""
    return f"{clock.now():{_RUN_ID_TIME}}-{uuid.uuid4().hex[:6]}"


def run_id_time(run_id: str) -> datetime | None:
    """The second `new_run_id` wrote into `run_id` (UTC), None for an id it did not make:
    where a run no longer kept stood among the others."""
    found = _RUN_ID_ENDING.search(run_id)
    if found is None:
        return None
    try:
        return datetime.strptime(found[1], _RUN_ID_TIME).replace(tzinfo=UTC)
    except ValueError:  # 20261399T...: digits, not a time
        return None
