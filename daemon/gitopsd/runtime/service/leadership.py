"""Which of the daemons sharing a state store runs work: one leader, any number of standbys.

Pipeline: this wraps the whole daemon. With SQLite there is one process, and it leads from
the start (`SoleElection`). With PostgreSQL, `Leadership` campaigns in a thread of its own
(see `adapters.postgres_election`) every `poll` seconds while it stands by; once elected, it
confirms its lead every `heartbeat` seconds. Each lead is a *term*:

- elected: a `Daemon` on a workspace whose store is fenced at the term's epoch starts exactly
  as a restarted single daemon does (resume unfinished runs, reconcile the head, watch); the
  previous leader's environment leases are taken over at once, since its writes are fenced;
- deposed (the lock session is gone, a newer epoch exists, or a write came back fenced): the
  term stops at once, like a shutdown past its grace: no new step starts, running drivers are
  stopped, the runs are left resumable for whoever leads next. The process goes back to
  standing by, and campaigns again.

Between terms a standby `Daemon` (never started, on a store that refuses fenced writes) serves
the read API and /metrics. `Terms` is the `control.Control` the API talks to: it answers reads
from whichever daemon is current and refuses work on a standby (HTTP 503, naming the leader).
Every daemon it makes reports the process's lead in /metrics (`gitopsd_leader`, 1 or 0, and
`gitopsd_leader_epoch`), read from the current term at scrape time, so a deposed term's daemon
says 0 while it stops.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from gitopsd.engine.ports import Election, Fencing, Term
from gitopsd.runtime.control import Identity, RunLogs, StandbyError
from gitopsd.runtime.runs.workspace import Workspace
from gitopsd.runtime.service.daemon import Daemon

log = logging.getLogger(__name__)

MakeDaemon = Callable[[Workspace], Daemon]


class SoleElection:
    """One process on its own store (SQLite): it always leads, at epoch 0, unfenced."""

    def __init__(self, holder: str) -> None:
        self.holder = holder

    def campaign(self) -> Term | None:
        return Term(epoch=0, previous=None)

    def confirm(self, epoch: int) -> bool:
        return True

    def leader(self) -> str | None:
        return self.holder

    def resign(self) -> None:
        return None


class Terms:
    """Implements `control.Control`: `start`, then `stop`; reads go to the current daemon."""

    def __init__(
        self,
        workspace: Workspace,
        *,
        election: Election,
        make_daemon: MakeDaemon,
        fencing: Fencing | None = None,
        poll: float = 2.0,
        heartbeat: float = 2.0,
    ) -> None:
        self._base = workspace
        self._election = election
        self._make_daemon = make_daemon
        self._fencing = fencing  # None: the store is not shared, this process always leads
        self._poll, self._heartbeat = poll, heartbeat
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._term: Term | None = None
        self._deposed_because: str | None = None
        # the sole process leads with the daemon made now; a shared store starts as a standby
        self._daemon = self._made(workspace) if fencing is None else self._standby()
        self._thread = threading.Thread(target=self._loop, name="leadership", daemon=True)

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Lead at once if the election allows (SQLite always does), then keep campaigning."""
        self._try_to_lead()
        if self._fencing is not None:
            self._thread.start()

    def stop(self, *, grace: float) -> None:
        with self._lock:
            self._stopping = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()
        self._daemon.stop(grace=grace)
        self._election.resign()

    def interrupt(self) -> None:
        """Stop the current term's drivers now (a second stop signal)."""
        self._daemon.workspace.interrupted.set()

    def fenced(self, error: BaseException) -> None:
        """A write came back fenced: another process leads; step down at once."""
        with self._lock:
            self._deposed_because = str(error)
        self._wake.set()

    @property
    def daemon(self) -> Daemon:
        return self._daemon

    @property
    def is_leading(self) -> bool:
        return self._term is not None

    # --- the campaign ---------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stopping:
            if self._term is None:
                self._try_to_lead()
            else:
                self._check_lead(self._term)
            self._wake.wait(self._heartbeat if self._term is not None else self._poll)
            self._wake.clear()

    def _try_to_lead(self) -> None:
        term = self._election.campaign()
        with self._lock:
            if term is None or self._stopping:
                return
            self._deposed_because = None
        log.info("leading at epoch %d (after %s)", term.epoch, term.previous or "nobody")
        daemon = self._daemon if self._fencing is None else self._made(self._term_workspace(term))
        self._daemon, self._term = daemon, term
        daemon.start()

    def _check_lead(self, term: Term) -> None:
        because = self._deposed_because
        if because is None and self._election.confirm(term.epoch):
            return
        reason = because or "the leader's session to the database ended or a newer epoch exists"
        log.error(
            "fenced out: no longer leading at epoch %d (%s); stopping this term's work",
            term.epoch,
            reason,
        )
        self._election.resign()
        leading = self._daemon
        self._term = None
        leading.stop(grace=0)  # drivers stopped, runs left resumable for the next leader
        self._daemon = self._standby()
        log.warning("standing by: the runs left unfinished resume under the next leader")

    def _term_workspace(self, term: Term) -> Workspace:
        assert self._fencing is not None
        store = self._fencing.fenced(term.epoch, on_fenced=self.fenced)
        deposed = frozenset({term.previous} - {self._base.holder, None})
        return _fresh(self._base, store=store, deposed=deposed)

    def _standby(self) -> Daemon:
        """A daemon that is never started: it serves reads, its store refuses fenced writes."""
        assert self._fencing is not None
        daemon = self._made(_fresh(self._base, store=self._fencing.fenced(0)))
        daemon.prepare()
        return daemon

    def _made(self, workspace: Workspace) -> Daemon:
        """A daemon whose /metrics says whether this process leads, whatever term it serves."""
        daemon = self._make_daemon(workspace)
        daemon.report_lead(self._lead)
        return daemon

    def _lead(self) -> int | None:
        term = self._term
        return None if term is None else term.epoch

    # --- control.Control ----------------------------------------------------------------------

    @property
    def branch(self) -> str:
        return self._daemon.branch

    def leadership(self) -> dict[str, Any]:
        if self._term is not None:
            return {"role": "leader", "leader": self._election.holder, "epoch": self._term.epoch}
        return {"role": "standby", "leader": self._election.leader()}

    def is_ready(self) -> tuple[bool, str]:
        return self._daemon.is_ready()

    def status(self, environment: str | None = None) -> dict[str, Any]:
        return self._daemon.status(environment)

    def runs(
        self,
        environment: str | None = None,
        *,
        limit: int = 50,
        cursor: str | None = None,
        status: str | None = None,
        action: str | None = None,
    ) -> dict[str, Any]:
        return self._daemon.runs(
            environment, limit=limit, cursor=cursor, status=status, action=action
        )

    def run(
        self, run_id: str, *, steps_limit: int = 100, steps_cursor: str | None = None
    ) -> dict[str, Any] | None:
        return self._daemon.run(run_id, steps_limit=steps_limit, steps_cursor=steps_cursor)

    def run_logs(self, run_id: str, *, offset: int = 0) -> RunLogs | None:
        return self._daemon.run_logs(run_id, offset=offset)

    def events(
        self, environment: str | None = None, *, limit: int = 100, cursor: str | None = None
    ) -> dict[str, Any]:
        return self._daemon.events(environment, limit=limit, cursor=cursor)

    def submit_run(
        self,
        environment: str,
        *,
        action: str,
        components: Sequence[str] | None,
        revision: str | None,
        identity: Identity,
    ) -> str:
        return self._leader().submit_run(
            environment, action=action, components=components, revision=revision, identity=identity
        )

    def submit_drift_check(
        self, environment: str, *, identity: Identity, remediate: bool = False
    ) -> str:
        return self._leader().submit_drift_check(
            environment, identity=identity, remediate=remediate
        )

    def promote(
        self, environment: str, *, revision: str | None, force: bool, identity: Identity
    ) -> str:
        return self._leader().promote(
            environment, revision=revision, force=force, identity=identity
        )

    def rollback(self, environment: str, *, revision: str, identity: Identity) -> str:
        return self._leader().rollback(environment, revision=revision, identity=identity)

    def diff(
        self, environment: str, *, old: str | None, new: str | None, other: str | None
    ) -> dict[str, Any]:
        return self._daemon.diff(environment, old=old, new=new, other=other)

    def cancel(self, run_id: str, *, identity: Identity) -> dict[str, Any] | None:
        return self._leader().cancel(run_id, identity=identity)

    def submit_plan(self, environment: str, *, plan: str, identity: Identity) -> str | None:
        return self._leader().submit_plan(environment, plan=plan, identity=identity)

    def approve(
        self, environment: str, *, revision: str | None, identity: Identity
    ) -> dict[str, Any]:
        return self._leader().approve(environment, revision=revision, identity=identity)

    def suspend(self, environment: str, *, reason: str, identity: Identity) -> dict[str, Any]:
        return self._leader().suspend(environment, reason=reason, identity=identity)

    def resume(self, environment: str, *, identity: Identity) -> dict[str, Any]:
        return self._leader().resume(environment, identity=identity)

    def commits(self, revisions: Sequence[str] = (), *, recent: int = 0) -> list[dict[str, Any]]:
        return self._daemon.commits(revisions, recent=recent)

    def graph(self, environment: str) -> dict[str, Any]:
        return self._daemon.graph(environment)

    def drift_report(self, environment: str) -> dict[str, Any] | None:
        return self._daemon.drift_report(environment)

    def request_fetch(self, reason: str) -> None:
        if self._term is not None:
            self._daemon.request_fetch(reason)
        else:
            log.info("standby: ignoring a fetch request (%s); the leader fetches", reason)

    def metrics(self) -> tuple[bytes, str]:
        return self._daemon.metrics()

    def _leader(self) -> Daemon:
        if self._term is None:
            leader = self._election.leader()
            raise StandbyError(
                "this gitopsd is a standby and takes no work; "
                + (f"the leader is {leader}" if leader else "a leader is being elected"),
                leader=leader,
            )
        return self._daemon


def terms(workspace: Workspace, *, make_daemon: MakeDaemon, poll: float, timeout: float) -> Terms:
    """Leadership for the workspace's store: sole for one of its own (SQLite), elected among
    the daemons sharing a PostgreSQL store (whose driver is imported only then)."""
    fencing = workspace.store.fencing()
    if fencing is None:
        return Terms(workspace, election=SoleElection(workspace.holder), make_daemon=make_daemon)
    from gitopsd.adapters.postgres_election import PostgresElection  # psycopg: heavy, optional

    election = PostgresElection(fencing.url, holder=workspace.holder, timeout=timeout)
    return Terms(
        workspace,
        election=election,
        make_daemon=make_daemon,
        fencing=fencing,
        poll=poll,
        heartbeat=timeout / 4,
    )


def _fresh(workspace: Workspace, **changes: Any) -> Workspace:
    """The workspace with its own stop flags: a term's stop must not stop the next term."""
    return dataclasses.replace(
        workspace, interrupted=threading.Event(), draining=threading.Event(), **changes
    )
