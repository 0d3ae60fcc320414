"""The daemon's read side: what the API and /metrics ask of it, answered without a worker.

Pipeline: run -> report -> **read**. Every answer comes from the state store (a snapshot),
the request records (`Intake`, for work not started yet) and the loaded manifests; nothing
here queues work or waits for a worker, so a standby daemon, which never starts, answers all
of it. The worker side (runtime.service.daemon) owns what changes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from gitopsd.adapters import data_folder
from gitopsd.engine import selection
from gitopsd.errors import (
    DataFolderError,
    InvalidRequestError,
    RevisionNotFoundError,
    UnknownRevisionError,
)
from gitopsd.model.state import ComponentState, EnvironmentState
from gitopsd.runtime.control import RunLogs, UnknownEnvironmentError
from gitopsd.runtime.drift import drift_reports
from gitopsd.runtime.promotion import diffing
from gitopsd.runtime.records import promotion_records, reports
from gitopsd.runtime.runs.workspace import Workspace
from gitopsd.runtime.service import paging
from gitopsd.runtime.service.intake import Intake
from gitopsd.runtime.service.reconciling import Reconciler
from gitopsd.runtime.service.run_logs import RunLogReader


class Reads:
    """The reads of `control.Control`, for one daemon. `git_problem` says why the branch head
    could not be read at the last look (None when it could)."""

    def __init__(
        self,
        workspace: Workspace,
        *,
        intake: Intake,
        reconciler: Reconciler,
        git_problem: Callable[[], str | None],
    ) -> None:
        self.workspace = workspace
        self._intake = intake
        self._reconciler = reconciler
        self._git_problem = git_problem
        self._logs = RunLogReader(workspace.store, intake, workspace.live)

    def is_ready(self) -> tuple[bool, str]:
        """Ready while the store answers and takes requests, the data folder takes writes
        (a byte written and removed per probe), and the branch head was read at the last look
        (a cached answer, refreshed by the head watch: no git call per probe)."""
        try:
            self.workspace.store.list_environments()
        except Exception as error:  # any store failure means not ready, with its reason
            return False, f"the state store does not answer: {error}"
        try:  # a full or read-only data folder fails every run
            data_folder.probe(self.workspace.data_dir)
        except DataFolderError as error:
            return False, str(error)
        if self._intake.problem is not None:
            return False, f"the state store does not take writes: {self._intake.problem}"
        if (problem := self._git_problem()) is not None:
            return False, f"the git source cannot be read: {problem}"
        if self._reconciler.repository is None:
            return False, self._reconciler.problem or "the repository is not loaded yet"
        return True, "ready"

    def status(self, environment: str | None = None) -> dict[str, Any]:
        if environment is not None:
            self.check_environment(environment)
        return reports.status_report(
            self.workspace.store,
            self._reconciler.repository,
            environment=environment,
            open_requests=self._intake.open_requests,
            manifests_at=self.workspace.valid_manifests,
            authors=reports.commit_authors(self.workspace.source.author),
        )

    def runs(
        self,
        environment: str | None = None,
        *,
        limit: int = 50,
        cursor: str | None = None,
        status: str | None = None,
        action: str | None = None,
    ) -> dict[str, Any]:
        """Requests not started yet first (queued, waiting, retrying), then run summaries,
        newest first, a page at a time (runtime.service.paging), only those with `status` and
        `action` when given; UnknownEnvironmentError for a name neither the manifests nor
        the store know, as every route taking one."""
        if environment is not None:
            self.check_environment(environment)
        start = paging.runs_cursor(cursor, self.workspace.clock.now())
        waiting = self._intake.not_started(environment) if start.requests else []
        return paging.runs_page(
            self.workspace.store,
            waiting,
            environment,
            limit=limit,
            start=start,
            status=status,
            action=action,
        )

    def run(
        self, run_id: str, *, steps_limit: int = 100, steps_cursor: str | None = None
    ) -> dict[str, Any] | None:
        """The run of that id with a page of its steps, else the request that will start it
        (an id the API returned is always known)."""
        store = self.workspace.store
        stored = store.get_run(run_id)
        if stored is not None:
            return paging.run_report(
                store, stored, steps_limit=steps_limit, steps_cursor=steps_cursor
            )
        request = self._intake.get(run_id)
        return reports.request_report(request) if request is not None else None

    def run_logs(self, run_id: str, *, offset: int = 0) -> RunLogs | None:
        """The run's driver output from `offset` on: the store's, and what the drivers of its
        running steps printed so far (a standby runs none: the store's only)."""
        return self._logs.read(run_id, offset=offset)

    def events(
        self, environment: str | None = None, *, limit: int = 100, cursor: str | None = None
    ) -> dict[str, Any]:
        """The audit trail a page at a time; UnknownEnvironmentError as for `runs`."""
        if environment is not None:
            self.check_environment(environment)
        return paging.events_page(self.workspace.store, environment, limit=limit, cursor=cursor)

    def commits(self, revisions: Sequence[str] = (), *, recent: int = 0) -> list[dict[str, Any]]:
        return list(self.workspace.source.describe(revisions, recent=recent))

    def graph(self, environment: str) -> dict[str, Any]:
        """The components at the head in dependency order; none when the head is not loaded."""
        self.check_environment(environment)
        repository = self._reconciler.repository
        if repository is None or environment not in repository.environments:
            return {"environment": environment, "components": []}
        chosen = selection.select(repository, environment).components
        components = [
            {
                "name": c.manifest.name,
                "layer": c.manifest.metadata.layer,
                "depends_on": list(c.manifest.spec.depends_on),
            }
            for c in chosen
        ]
        return {"environment": environment, "components": components}

    def drift_report(self, environment: str) -> dict[str, Any] | None:
        self.check_environment(environment)
        return drift_reports.latest(self.workspace.data_dir / "reports", environment)

    def diff(
        self, environment: str, *, old: str | None, new: str | None, other: str | None
    ) -> dict[str, Any]:
        """`diffing.report` of the environment between two revisions, or against `other`'s
        current revision; a revision git does not know is not found (404), as an unknown
        environment is."""
        self.check_environment(environment)
        if other is not None:
            self.check_environment(other)
            if old is not None or new is not None:
                raise InvalidRequestError(
                    "environment: compares current revisions, not with from/to"
                )
        try:
            if other is not None:
                found = diffing.against(self.workspace, environment, other)
            else:
                found = diffing.diff(self.workspace, environment, old=old, new=new)
        except UnknownRevisionError as error:
            raise RevisionNotFoundError(str(error)) from None
        return diffing.report(found)

    def check_environment(self, environment: str) -> None:
        """UnknownEnvironmentError unless the manifests at the head or the store know it."""
        repository = self._reconciler.repository
        known = set(repository.environments) if repository else set()
        known |= {state.name for state in self.workspace.store.list_environments()}
        if environment not in known:
            raise UnknownEnvironmentError(f"unknown environment {environment!r}")

    def snapshot(self) -> Iterator[tuple[EnvironmentState, list[ComponentState]]]:
        """Every environment and its components as the store has them (the state gauges),
        its pending approval as status shows it (promotion_records.pending)."""
        store, repository = self.workspace.store, self._reconciler.repository
        for environment in store.list_environments():
            entry = repository.environments.get(environment.name) if repository else None
            pending = promotion_records.pending(environment, entry)
            shown = environment.model_copy(update={"pending_approval": pending})
            yield shown, store.list_components(environment.name)
