"""Requests for work as records: written before anything acts on them, kept until they end.

Pipeline: git/API/schedule/webhook -> **intake** -> queue -> worker -> run. This module is the
only one that writes request records (SPEC 3.6). Why each rule:
- a request is recorded (`queued`) before it is queued, so a crash, a restart or a fault
  never loses it, and the id handed out (the id of the run it starts) is known at once;
- when the store cannot record it (locked, disk full), it is kept here in memory, shown as
  `retrying` with the error, and recording is tried again with backoff: it is queued once
  recorded, never dropped silently; a status change that cannot be saved waits here too;
- the worker marks it `running`, then `done` (with what came of it), or it becomes
  `waiting` (admission says later), `retrying` (a transient fault, see `adapters.faults`) or
  `superseded` (a newer request for the same environment replaces it);
- a newer commit supersedes older ones still open, in the store as in the queue, so a retry
  of an old commit that fires later can never apply an older revision over a newer one.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from gitopsd.adapters import faults
from gitopsd.adapters.scheduling import Jobs
from gitopsd.engine import retrying
from gitopsd.engine.ports import Clock, StateStore
from gitopsd.engine.queueing import Priority
from gitopsd.engine.queueing import Request as Work
from gitopsd.errors import ConflictError
from gitopsd.model.manifests import RetryPolicy
from gitopsd.model.state import Request, RequestStatus, Run

log = logging.getLogger(__name__)

BACKOFF = RetryPolicy(attempts=100, backoff=1.0, max_backoff=60.0)
FLUSH_JOB = "intake-record"
# closed (done, superseded) requests kept per environment: the daemon's own looks (an auto
# promotion every beat) would otherwise grow the table without end; runs and the audit
# trail keep what came of them
KEEP_CLOSED = 1000


class Intake:
    """Records requests in `store`; `admit` queues one once it is recorded; `on_superseded`
    (old, new) is told of each request a newer one replaces (the daemon records the
    revision's supersession in the audit trail, and this one's record)."""

    def __init__(
        self,
        store: StateStore,
        *,
        clock: Clock,
        jobs: Jobs,
        admit: Callable[[Work], None],
        on_superseded: Callable[[Work, Work], None],
        uniform: retrying.Uniform = random.uniform,
    ) -> None:
        self._store = store
        self._clock = clock
        self._jobs = jobs
        self._admit = admit
        self._on_superseded = on_superseded
        self._uniform = uniform
        self._lock = threading.Lock()
        self._unsaved: dict[str, tuple[Request, Work | None]] = {}
        # the newest record of each open request this process wrote or read: it is the one
        # writer of request records, so a store read that fails cannot make it forget one
        self._open: dict[str, Request] = {}
        self._store_error: str | None = None
        self._flushes = 0

    # --- arriving ---------------------------------------------------------------------------

    def accept(self, work: Work) -> None:
        """Record `work`, then queue it; a request already done or superseded is not queued
        again (a look-again or retry that fired after its end). Unable to read whether it
        ended, it is held, not written: `flush` looks again before it records or queues it."""
        try:
            record = self._current(work, unreadable_is_new=False)
        except Exception as error:
            if not faults.is_transient(error):
                raise
            self._hold(_record(work, self._clock.now()), work, error)
            return
        if not record.status.is_open:
            log.info("request %s is %s already; not queued again", work.id, record.status.value)
            return
        status = RequestStatus.RETRYING if record.last_error else RequestStatus.QUEUED
        queued = record.model_copy(update={"status": status, "updated_at": self._clock.now()})
        if self._save(queued, admit=work):
            self._queue(queued, work)

    def pick_up(self, *, seen_at: float) -> list[Work]:
        """The open requests a stopped process left, oldest first, to queue again (seen
        again at `seen_at`, monotonic seconds). One that was running when it stopped and left
        a run of its id is done: resuming that run finishes it."""
        found: list[Work] = []
        for record in self._store.list_requests(open_only=True):
            if record.status is RequestStatus.RUNNING and self._store.get_run(record.id):
                self._end(record, RequestStatus.DONE, outcome=f"run {record.id} resumed")
                continue
            found.append(replace(_work(record), seen_at=seen_at))
        return found

    # --- the worker's side ------------------------------------------------------------------

    def running(self, work: Work) -> bool:
        """Mark `work` running; False if it ended meanwhile (superseded while queued)."""
        record = self._current(work)
        if not record.status.is_open:
            return False
        update = {"status": RequestStatus.RUNNING, "attempts": record.attempts + 1}
        self._save(record.model_copy(update={**update, "updated_at": self._clock.now()}))
        return True

    def finished(self, work: Work, runs: Sequence[Run]) -> None:
        """Done, saying what came of it; unless handling it left it waiting or retrying."""
        record = self._current(work)
        if record.status is not RequestStatus.RUNNING:
            return
        ended = ", ".join(f"run {run.id} {run.status.value}" for run in runs)
        self._end(record, RequestStatus.DONE, outcome=ended or "nothing to do")

    def ended(self, work: Work, *, outcome: str) -> None:
        """Done without a run of its own, `outcome` saying why (a wait for approvals: the
        approval that completes them promotes, as a request of its own)."""
        self._end(self._current(work), RequestStatus.DONE, outcome=outcome)

    def refused(self, work: Work, error: BaseException) -> None:
        message = faults.describe(error)
        self._end(self._current(work), RequestStatus.DONE, outcome=f"refused: {message}")

    def failed(self, work: Work, error: BaseException) -> None:
        """Ended by an error that trying again would not mend (a bug): said, not retried."""
        message = faults.describe(error)
        self._end(self._current(work), RequestStatus.DONE, outcome=f"failed: {message}")

    def superseded(self, work: Work, *, by: str | None, outcome: str | None = None) -> None:
        """Replaced by the newer request `by` (None: absorbed by an identical queued one),
        or by what `outcome` says."""
        if outcome is None:
            outcome = f"superseded by {by}" if by else "absorbed by an identical queued request"
        record = self._current(work)
        self._end(record, RequestStatus.SUPERSEDED, outcome=outcome, superseded_by=by)

    def cancel(self, request_id: str, *, actor: str) -> Request | None:
        """End a request that has not started (queued, waiting, retrying) as cancelled; the
        worker then skips it. None if unknown; ConflictError once it runs
        (its run is cancelled instead, when it exists) or has ended."""
        record = self.get(request_id)
        if record is None:
            return None
        if record.status is RequestStatus.RUNNING:
            raise ConflictError(f"{request_id} is starting its run; cancel it again in a moment")
        if not record.status.is_open:
            raise ConflictError(f"{request_id} is {record.status.value}")
        self._end(record, RequestStatus.DONE, outcome=f"cancelled by {actor} before it ran")
        return self.get(request_id)

    def waiting(self, work: Work, *, reason: str, until: datetime | None) -> None:
        update = {"status": RequestStatus.WAITING, "reason": reason, "next_attempt_at": until}
        record = self._current(work)
        self._save(record.model_copy(update={**update, "updated_at": self._clock.now()}))

    def next_attempt(self, work: Work, *, delay: float | None = None) -> datetime:
        """When to try `work` again: after `delay`, else by backoff with jitter."""
        wait = delay if delay is not None else self._delay(self._current(work).attempts + 1)
        return self._clock.now() + timedelta(seconds=wait)

    def retrying(self, work: Work, error: BaseException, *, at: datetime) -> None:
        """Record the transient `error`, and that `work` is tried again `at`."""
        update: dict[str, object] = {"status": RequestStatus.RETRYING, "next_attempt_at": at}
        update |= {"last_error": faults.describe(error), "updated_at": self._clock.now()}
        self._save(self._current(work).model_copy(update=update))

    # --- what the API shows -----------------------------------------------------------------

    def get(self, request_id: str) -> Request | None:
        with self._lock:
            held = self._unsaved.get(request_id)
        return held[0] if held else self._store.get_request(request_id)

    def not_started(self, environment: str | None = None) -> list[Request]:
        """Open requests whose run is not recorded (queued, waiting, retrying, and running
        ones whose worker has not made their run yet), oldest first, those only held in
        memory included: a run shows the others. A running request is listed until its run
        is, so that a list read in between does not lose it; one that starts no run of its
        id (a drift check) is not a run, and is not listed once it runs."""
        return [r for r in self.open_requests(environment) if not self._shown_by_a_run(r)]

    def _shown_by_a_run(self, request: Request) -> bool:
        if request.status is not RequestStatus.RUNNING:
            return False
        return not request.action.runs_under_its_id or self._store.get_run(request.id) is not None

    def open_requests(self, environment: str | None = None) -> list[Request]:
        """Every open request, oldest first: the store's, and those only held in memory
        while the store does not take writes (their newest state wins)."""
        with self._lock:
            held = {rid: record for rid, (record, _) in self._unsaved.items()}
        stored = {r.id: r for r in self._store.list_requests(environment, open_only=True)}
        mine = [r for r in held.values() if environment in (None, r.environment)]
        merged = {**stored, **{r.id: r for r in mine}}
        found = [r for r in merged.values() if r.status.is_open]
        return sorted(found, key=lambda record: (record.created_at, record.id))

    @property
    def problem(self) -> str | None:
        """Why some requests are not recorded yet (the store's last error), or None."""
        with self._lock:
            count, error = len(self._unsaved), self._store_error
        return f"{count} request(s) not recorded yet: {error}" if count else None

    # --- recording --------------------------------------------------------------------------

    def flush(self) -> None:
        """Try again to record what the store refused, oldest first; queue what was waiting
        for its record."""
        with self._lock:
            held = sorted(self._unsaved.values(), key=lambda pair: pair[0].created_at)
        for record, work in held:
            try:
                if self._ended_already(record):
                    continue
                self._store.save_request(record)
            except Exception as error:
                if not faults.is_transient(error):
                    raise
                self._hold(record, work, error)
                return
            with self._lock:
                self._unsaved.pop(record.id, None)
                self._flushes = 0
            log.info("request %s recorded after all", record.id)
            if work is not None:
                self._queue(record, work)

    def _ended_already(self, record: Request) -> bool:
        """Whether the store has `record`'s request ended: an open record held while the store
        could not be read must not reopen it (nor queue its work again)."""
        stored = self._store.get_request(record.id) if record.status.is_open else None
        if stored is None or stored.status.is_open:
            return False
        with self._lock:
            self._unsaved.pop(record.id, None)
        log.info("request %s is %s already; not recorded again", record.id, stored.status.value)
        return True

    def _queue(self, record: Request, work: Work) -> None:
        """Hand recorded `work` to its worker; a new commit first supersedes the older ones
        of its environment that wait or retry outside the queue."""
        if record.attempts == 0 and work.priority is Priority.COMMIT:
            self._supersede_open(work)
        self._admit(work)

    def _save(self, record: Request, *, admit: Work | None = None) -> bool:
        """Save `record`; True if it is in the store. A transient fault keeps it here (with
        `admit`, the work to queue once it is recorded) and schedules another try."""
        with self._lock:
            waiting = record.id in self._unsaved
        if waiting:  # keep the order: an older change of it is not saved yet
            self._hold(record, admit, None)
            return False
        try:
            self._store.save_request(record)
        except Exception as error:
            if not faults.is_transient(error):
                raise
            self._hold(record, admit, error)
            return False
        self._remember(record)
        return True

    def _remember(self, record: Request) -> None:
        with self._lock:
            if record.status.is_open:
                self._open[record.id] = record
            else:
                self._open.pop(record.id, None)

    def _hold(self, record: Request, admit: Work | None, error: BaseException | None) -> None:
        """Keep `record` until the store takes it; one not queued yet shows as retrying.
        The flush is scheduled before the record is shown, so whoever sees it retrying can
        count on the flush (which waits for the lock if it fires at once)."""
        now = self._clock.now()
        with self._lock:
            earlier = self._unsaved.get(record.id)
            admit = admit or (earlier[1] if earlier else None)
            if error is not None:
                self._store_error = faults.describe(error)
            self._flushes += 1
            delay = self._delay(self._flushes + 1)
            flush_at = now + timedelta(seconds=delay)
            self._jobs.at(FLUSH_JOB, flush_at, self.flush)
            if admit is not None:
                shown = {"status": RequestStatus.RETRYING, "last_error": self._store_error}
                record = record.model_copy(update={**shown, "next_attempt_at": flush_at})
            self._unsaved[record.id] = (record, admit)
        if error is not None:
            log.warning(
                "cannot record request %s, trying again in %.1fs: %s", record.id, delay, error
            )

    def _end(self, record: Request, status: RequestStatus, **update: object) -> None:
        changes = {"status": status, "next_attempt_at": None, **update}
        if self._save(record.model_copy(update={**changes, "updated_at": self._clock.now()})):
            self._forget_old(record.environment)

    def _forget_old(self, environment: str) -> None:
        try:
            self._store.forget_closed_requests(environment, keep=KEEP_CLOSED)
        except Exception as error:  # the next end tries again; nothing open is at stake
            if not faults.is_transient(error):
                raise
            log.info("closed requests of %s not pruned this time: %s", environment, error)

    def _current(self, work: Work, *, unreadable_is_new: bool = True) -> Request:
        """The newest record of `work`: held here, known open here, else stored, else a new
        one. A store that cannot be read gives a new one too (the worker's side: it holds the
        request), or raises (`unreadable_is_new=False`: arriving, it may have ended)."""
        with self._lock:
            held = self._unsaved.get(work.id)
            known = self._open.get(work.id)
        if held is not None:
            return held[0]
        if known is not None:
            return known
        try:
            stored = self._store.get_request(work.id)
        except Exception as error:
            if unreadable_is_new is False or not faults.is_transient(error):
                raise
            stored = None
        if stored is not None:
            self._remember(stored)
        return stored or _record(work, self._clock.now())

    def _supersede_open(self, work: Work) -> None:
        """Older commits of `work`'s environment waiting or retrying (outside the queue,
        which coalesces its own) give way to it."""
        for record in self._store.list_requests(work.environment, open_only=True):
            if record.id == work.id or record.priority != Priority.COMMIT:
                continue
            if record.status in (RequestStatus.WAITING, RequestStatus.RETRYING):
                self._on_superseded(_work(record), work)

    def _delay(self, attempt: int) -> float:
        return retrying.delay_before(max(attempt, 2), BACKOFF, uniform=self._uniform)


def _record(work: Work, now: datetime) -> Request:
    return Request(
        id=work.id,
        environment=work.environment,
        action=work.action,
        revision=work.revision,
        components=list(work.components) if work.components else None,
        trigger=work.trigger,
        actor=work.actor,
        priority=int(work.priority),
        plan=work.plan,
        forced=work.forced,
        remediate=work.remediate,
        created_at=now,
        updated_at=now,
    )


def _work(record: Request) -> Work:
    return Work(
        id=record.id,
        environment=record.environment,
        priority=Priority(record.priority),
        action=record.action,
        revision=record.revision,
        components=tuple(record.components) if record.components else None,
        actor=record.actor,
        trigger=record.trigger,
        plan=record.plan,
        forced=record.forced,
        remediate=record.remediate,
    )
