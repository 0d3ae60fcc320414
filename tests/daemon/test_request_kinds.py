"""Requests by kind in the daemon: each kind is handled by its own handler and recorded
under the same string as before; a kind the worker does not take ends refused, not in a
crash; and the daemon tells its metrics recorder what happened in plain verbs."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path

from gitopsd.adapters.sqlite_store import SqliteStore
from gitopsd.engine.recording import Lead, Snapshot
from gitopsd.model.state import Request, RequestKind, RequestStatus, Run, Step
from gitopsd.runtime.control import Identity
from tests.daemon.conftest import InProcess, eventually, status
from tests.runtime.test_drift_checks import with_checks

ALICE = Identity("alice")


class Told:
    """A metrics recorder that keeps what the daemon told it, in order."""

    def __init__(self) -> None:
        self.said: list[tuple[str, ...]] = []
        self.snapshot: Snapshot = list

    def make(self, *, snapshot: Snapshot, ready: Callable[[], bool]) -> Told:
        self.snapshot = snapshot
        return self

    def run_finished(self, run: Run, steps: Iterable[Step]) -> None:
        self.said.append(("run_finished", run.environment, run.action, run.status))

    def commit_reached_apply(self, environment: str, seconds: float) -> None:
        self.said.append(("commit_reached_apply", environment))

    def promotion_ended(self, environment: str, result: str) -> None:
        self.said.append(("promotion_ended", environment, result))

    def revision_untrusted(self, environment: str) -> None:
        self.said.append(("revision_untrusted", environment))

    def drift_checked(self, environment: str, result: str) -> None:
        self.said.append(("drift_checked", environment, result))

    def fetched(self, result: str) -> None:
        self.said.append(("fetched", result))

    def notification_sent(self, notification: str, result: str) -> None:
        self.said.append(("notification_sent", notification, result))

    def commit_status_set(self, result: str) -> None:
        self.said.append(("commit_status_set", result))

    def expect_deliveries(self, notifications: Iterable[str], *, commit_statuses: bool) -> None:
        self.said.append(("expect_deliveries", *notifications))

    def follow_lead(self, lead: Lead) -> None:
        self.said.append(("follow_lead",))

    def exposition(self) -> tuple[bytes, str]:
        return f"{len(self.said)} things said\n".encode(), "text/plain"


def test_the_daemon_tells_its_recorder_what_happened_in_plain_verbs(started: InProcess) -> None:
    told = Told()
    daemon, _clock, _jobs, _world = started(with_checks(), recorder=told.make)
    eventually(lambda: status(daemon, "dev") == "verified", "dev to be applied")
    eventually(lambda: ("run_finished", "dev", "apply", "succeeded") in told.said, "the run")
    assert ("commit_reached_apply", "dev") in told.said
    daemon.submit_drift_check("dev", identity=ALICE)
    eventually(lambda: ("drift_checked", "dev", "in_sync") in told.said, "the drift check")
    assert [environment.name for environment, _ in told.snapshot()] == ["dev"]
    body, content_type = daemon.metrics()
    assert body.endswith(b"things said\n") and content_type == "text/plain"


def test_each_kind_of_request_is_recorded_under_its_own_name(started: InProcess) -> None:
    daemon, _clock, _jobs, _world = started(with_checks())
    eventually(lambda: status(daemon, "dev") == "verified", "dev to be applied")
    plan = daemon.submit_run("dev", action="plan", components=None, revision=None, identity=ALICE)
    check = daemon.submit_drift_check("dev", identity=ALICE)
    store = daemon.workspace.store
    eventually(lambda: not store.list_requests("dev", open_only=True), "every request done")
    recorded = {r.id: r.model_dump(mode="json")["action"] for r in store.list_requests("dev")}
    assert (recorded[plan], recorded[check]) == ("plan", "drift")
    assert "apply" in recorded.values()  # the commit's
    assert (daemon.run(plan) or {})["action"] == "plan"


def test_a_kind_no_worker_takes_ends_refused_with_the_reason(
    tmp_path: Path, started: InProcess
) -> None:
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    left = Request(
        id="left-remediation",
        environment="dev",
        action=RequestKind.REMEDIATE,  # admitted where a drift check asks, never queued
        trigger="api",
        priority=0,
        created_at=now,
        updated_at=now,
    )
    stopped = SqliteStore(tmp_path / "state.db")  # what a stopped process left
    stopped.save_request(left)
    stopped.close()
    daemon, _clock, _jobs, _world = started(with_checks())
    store = daemon.workspace.store

    def ended() -> Request | None:
        record = store.get_request(left.id)
        return record if record is not None and not record.status.is_open else None

    eventually(lambda: ended() is not None, "the left request to end")
    record = ended()
    assert record is not None and record.status is RequestStatus.DONE
    assert record.outcome == "refused: a remediate request is not queued work"
    eventually(lambda: status(daemon, "dev") == "verified", "dev to be applied all the same")
