"""Every request is recorded before it is acted on, survives faults and restarts, and the daemon
says when it cannot read its store or its repository (issue 16, finding 2)."""

from __future__ import annotations

import errno
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gitopsd.adapters import metrics
from gitopsd.adapters.scheduling import ManualJobs
from gitopsd.adapters.sqlite_store import SqliteStore
from gitopsd.errors import StoreUnavailableError
from gitopsd.model.state import Request, RequestStatus
from gitopsd.runtime.control import Identity
from gitopsd.runtime.promotion import suspending
from gitopsd.runtime.service.daemon import Daemon
from tests.daemon.conftest import FakeClock, InProcess, StartDaemon, eventually, status
from tests.gitrepos import git
from tests.runtime.test_apply_runs import layered
from tests.runtime.test_promotion_flow import chain
from tests.runtime.test_promotion_flow import environment as promoted
from tests.runtime.world import World, environment
from tests.store.test_sqlite_store import Locker

T0 = datetime(2026, 12, 1, 12, 30, tzinfo=UTC)
ELSEWHERE = "elsewhere:1:cafe0001"  # a process on another host holding a lease


@dataclass
class Served:
    daemon: Daemon
    clock: FakeClock
    jobs: ManualJobs

    @property
    def store(self) -> SqliteStore:
        store = self.daemon.workspace.store
        assert isinstance(store, SqliteStore)
        return store

    def later(self, minutes: float = 5) -> None:
        """Let `minutes` pass and fire what was due (retries, looks again)."""
        self.clock.current += timedelta(minutes=minutes)
        self.jobs.run_due()

    def at(self, revision: str) -> bool:
        state = self.store.get_environment("dev")
        return bool(state and state.revision == revision and state.status.value == "verified")

    def settled_at(self, revision: str) -> bool:
        """Dev verified at `revision` and its request closed: a run records its end first,
        and the request's end after it."""
        return self.at(revision) and not self.store.list_requests("dev", open_only=True)

    def requests(self) -> list[dict[str, Any]]:
        """What `GET /api/v1/runs?env=dev` lists that no run answers for yet."""
        return [r for r in self.daemon.runs("dev", limit=100)["runs"] if "reason" in r]


@dataclass
class Daemons:
    root: Path
    running: list[Served] = field(default_factory=list)

    def start(self, world: World, **store_options: float) -> Served:
        clock = FakeClock(T0)
        store = SqliteStore(self.root / "state.db", **store_options)
        workspace = world.workspace(store)
        workspace.clock = clock
        jobs = ManualJobs(clock.now)
        served = Served(
            Daemon(workspace, jobs=jobs, poll_interval=3600, metrics=metrics.recorder), clock, jobs
        )
        self.running.append(served)
        served.daemon.start()
        return served

    def stop(self, served: Served) -> None:
        self.running.remove(served)
        served.daemon.stop(grace=5)
        served.store.close()
        served.daemon.workspace.source.close()


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World.committed(tmp_path, layered())


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Daemons]:
    made = Daemons(tmp_path)
    yield made
    for served in list(made.running):
        made.stop(served)


def sized(size: int) -> dict[str, str]:
    return layered(**{"environments/dev.yaml": environment("dev", variables={"size": size})})


def head(world: World) -> str:
    return git(world.repo, "rev-parse", "HEAD").strip()


def status_of(served: Served, request_id: str) -> RequestStatus | None:
    recorded = served.store.get_request(request_id)
    return recorded.status if recorded else None


def wait(check: Callable[[], bool], what: str) -> None:
    eventually(check, what)


def test_a_commit_that_meets_a_locked_store_is_retrying_and_runs_after_the_release(
    world: World, daemons: Daemons
) -> None:
    served = daemons.start(world, busy_timeout=0.05, write_patience=0.1)
    wait(lambda: served.settled_at(head(world)), "the first apply")
    locker = Locker(served.store.path)
    try:
        second = world.commit(sized(5))
        wait(
            lambda: any(r["revision"] == second for r in served.requests()),
            "the commit's request to show",
        )
        shown = next(r for r in served.requests() if r["revision"] == second)
        assert shown["status"] == "retrying" and shown["trigger"] == "commit"
        assert "database is locked" in shown["last_error"]
        ready, reason = served.daemon.is_ready()
        assert not ready and "database is locked" in reason
        (dev,) = served.daemon.status("dev")["environments"]  # status agrees with the runs
        assert [(r["id"], r["status"]) for r in dev["requests"]] == [(shown["id"], "retrying")]
        time.sleep(0.3)
        assert not served.at(second)
    finally:
        locker.release()
    served.later()
    wait(lambda: served.at(second), "the commit to be applied after the release")
    run = served.daemon.run(shown["id"])
    assert run is not None and run["status"] == "succeeded" and run["revision"] == second
    wait(lambda: status_of(served, shown["id"]) is RequestStatus.DONE, "the request to be done")
    assert served.daemon.is_ready() == (True, "ready")


def test_a_driver_that_finishes_while_the_store_is_locked_is_recorded_succeeded(
    world: World, daemons: Daemons
) -> None:
    world.control(sleep={"k8s:apply": 1.0})
    served = daemons.start(world, busy_timeout=0.05, write_patience=30)

    def k8s_running() -> bool:
        runs = served.store.list_runs("dev")
        steps = served.store.list_steps(runs[0].id) if runs else []
        return any(s.component == "k8s" and s.status.value == "running" for s in steps)

    wait(k8s_running, "the k8s step to start")
    locker = Locker(served.store.path)
    try:
        wait(lambda: "k8s" in world.calls(), "the k8s driver to finish")
        time.sleep(0.5)  # its result waits for the lock
    finally:
        locker.release()
    wait(lambda: served.at(head(world)), "the run to finish")
    run = served.store.list_runs("dev")[0]
    steps = served.store.list_steps(run.id)
    assert run.status.value == "succeeded" and run.error is None
    assert {s.component: s.status.value for s in steps}["k8s"] == "succeeded"
    assert all(s.status.value == "succeeded" for s in steps)


def test_an_unreadable_repository_makes_the_daemon_unready_and_its_commit_runs_after(
    world: World, daemons: Daemons
) -> None:
    served = daemons.start(world)
    wait(lambda: served.settled_at(head(world)), "the first apply")
    hidden = world.repo / ".git-away"
    (world.repo / ".git").rename(hidden)
    served.daemon.heads.poke()
    wait(lambda: not served.daemon.is_ready()[0], "the daemon to say it is not ready")
    assert "git source cannot be read" in served.daemon.is_ready()[1]
    (world.repo / "environments" / "dev.yaml").write_text(environment("dev", variables={"size": 9}))
    away = ("--git-dir", str(hidden), "--work-tree", str(world.repo))
    git(world.repo, *away, "commit", "-qam", "a commit git cannot be read for")
    second = git(world.repo, *away, "rev-parse", "HEAD").strip()
    served.daemon.heads.poke()
    time.sleep(0.3)
    assert not served.daemon.is_ready()[0] and not served.at(second)
    hidden.rename(world.repo / ".git")
    served.later()  # the look again after a failed one
    wait(lambda: served.at(second), "the commit to run after the recovery")
    assert served.daemon.is_ready() == (True, "ready")


def test_an_api_run_is_known_at_once_while_it_retries_and_after_a_restart(
    world: World, daemons: Daemons
) -> None:
    first = daemons.start(world)
    wait(lambda: first.at(head(world)), "the first apply")
    # the run records its end before it lets go of the lease: take it once it is free
    wait(
        lambda: first.store.acquire_lease("dev", ELSEWHERE, now=T0, ttl=3600),
        "the first apply's lease to be released",
    )
    alice = Identity("alice")
    run_id = first.daemon.submit_run(
        "dev", action="apply", components=None, revision=None, identity=alice
    )
    known = first.daemon.run(run_id)
    assert known is not None and (known["trigger"], known["actor"]) == ("api", "alice")
    wait(lambda: (first.daemon.run(run_id) or {})["status"] == "retrying", "the busy retry")
    retrying = first.daemon.run(run_id)
    assert retrying is not None and "busy (pid 1, host elsewhere)" in retrying["last_error"]
    assert [r["id"] for r in first.requests()] == [run_id]
    daemons.stop(first)

    second = daemons.start(world)
    assert (second.daemon.run(run_id) or {}).get("id") == run_id  # known after the restart
    second.store.release_lease("dev", ELSEWHERE)

    def succeeded() -> bool:
        second.later()  # the retry, whenever the worker met the lease before the release
        return (second.daemon.run(run_id) or {}).get("status") == "succeeded"

    wait(succeeded, "the run")
    wait(lambda: status_of(second, run_id) is RequestStatus.DONE, "the request to be done")
    done = second.store.get_request(run_id)
    assert done is not None and done.attempts >= 2 and done.outcome == f"run {run_id} succeeded"


def test_a_restart_runs_the_requests_recorded_in_the_store(
    world: World, daemons: Daemons, tmp_path: Path
) -> None:
    store = SqliteStore(tmp_path / "state.db")
    queued = Request(
        id="20261201T120000-queued",
        environment="dev",
        action="plan",
        trigger="api",
        actor="alice",
        priority=0,
        created_at=T0,
        updated_at=T0,
    )
    store.save_request(queued)
    store.close()
    served = daemons.start(world)
    wait(
        lambda: (served.daemon.run(queued.id) or {}).get("status") == "succeeded",
        "the recorded request to run",
    )
    run = served.daemon.run(queued.id)
    assert run is not None and (run["action"], run["actor"], run["trigger"]) == (
        "plan",
        "alice",
        "api",
    )
    wait(lambda: status_of(served, queued.id) is RequestStatus.DONE, "the request to be done")


def test_a_newer_commit_supersedes_a_retrying_one_and_only_the_newer_runs(
    world: World, daemons: Daemons
) -> None:
    served = daemons.start(world)
    wait(lambda: served.settled_at(head(world)), "the first apply")
    wait(  # the run's lease is let go just after its end is recorded
        lambda: served.store.acquire_lease("dev", ELSEWHERE, now=T0, ttl=3600),
        "dev's lease to be free for another host",
    )

    def request_of(revision: str) -> dict[str, Any] | None:
        return next((r for r in served.requests() if r["revision"] == revision), None)

    older = world.commit(sized(5))
    wait(lambda: (request_of(older) or {}).get("status") == "retrying", "the older to retry")
    older_id = (request_of(older) or {})["id"]
    newer = world.commit(sized(6))
    wait(lambda: (request_of(newer) or {}).get("status") == "retrying", "the newer to retry")
    newer_id = (request_of(newer) or {})["id"]
    superseded = served.store.get_request(older_id)
    assert superseded is not None and superseded.status is RequestStatus.SUPERSEDED
    assert superseded.superseded_by == newer_id
    assert [r["id"] for r in served.requests()] == [newer_id]
    events = served.daemon.events("dev", limit=50)["events"]
    said = [e["data"] for e in events if e["kind"] == "revision.superseded"]
    assert said == [{"revision": older, "by": newer}]
    served.store.release_lease("dev", ELSEWHERE)
    served.later()  # both retries fire; the superseded one is not run
    wait(lambda: served.at(newer), "the newer commit to be applied")
    assert older not in {entry["revision"] for entry in world.journal()}
    shown = served.daemon.run(older_id)
    assert shown is not None and shown["status"] == "superseded"


def test_through_http_a_run_id_is_known_while_it_waits_and_after_a_restart(
    world: World, daemon: StartDaemon
) -> None:
    served = daemon("--poll-interval", "1h")
    served.wait_for(lambda: served.environment("dev")["status"] == "verified", what="apply")
    store = SqliteStore(served.data / "state.db")
    served.wait_for(  # the run's lease is let go just after its end is recorded
        lambda: store.acquire_lease("dev", ELSEWHERE, now=datetime.now(UTC), ttl=3600),
        what="dev's lease to be free for another host",
    )
    answer = served.post("/api/v1/environments/dev/runs", json={"action": "plan"})
    assert answer.status_code == 202, answer.text
    run_id = answer.json()["id"]
    assert served.get(f"/api/v1/runs/{run_id}").status_code == 200
    served.wait_for(
        lambda: served.get(f"/api/v1/runs/{run_id}").json()["status"] == "retrying",
        what="the busy environment's retry",
    )
    listed = served.get("/api/v1/runs", params={"env": "dev"}).json()["runs"]
    assert listed[0]["id"] == run_id and "busy (pid 1, host elsewhere)" in listed[0]["last_error"]
    assert served.terminate() == 0

    again = daemon("--poll-interval", "1h")
    assert again.get(f"/api/v1/runs/{run_id}").status_code == 200
    store.release_lease("dev", ELSEWHERE)
    store.close()
    again.wait_for(
        lambda: again.get(f"/api/v1/runs/{run_id}").json()["status"] == "succeeded",
        what="the request to run after the restart",
    )


def test_readyz_is_503_while_the_repository_cannot_be_read_and_200_after(
    world: World, daemon: StartDaemon
) -> None:
    served = daemon("--poll-interval", "0.3")  # a local repository is looked at this often too
    served.wait_for(lambda: served.environment("dev")["status"] == "verified", what="apply")
    hidden = world.repo / ".git-away"
    (world.repo / ".git").rename(hidden)
    served.wait_for(lambda: served.get("/readyz").status_code == 503, what="readyz 503")
    assert "git source cannot be read" in served.get("/readyz").text
    asked = served.post("/api/v1/environments/dev/runs", json={"action": "apply"})
    assert asked.status_code == 503, asked.text  # not a 500: ask again once it is ready
    assert asked.headers["Retry-After"] == "5" and "try again shortly" in asked.json()["error"]
    time.sleep(1)  # the daemon's own looks meanwhile end in no traceback (checked below)
    hidden.rename(world.repo / ".git")
    served.wait_for(served.ready, what="readyz 200 after the recovery")
    second = world.commit(sized(8))
    served.wait_for(lambda: served.environment("dev")["revision"] == second, what="the commit")
    assert "Traceback" not in served.logs()


def test_a_full_disk_leaves_the_commit_retrying_until_it_can_run(
    world: World, daemons: Daemons, monkeypatch: pytest.MonkeyPatch
) -> None:
    served = daemons.start(world)
    wait(lambda: served.settled_at(head(world)), "the first apply")
    apply, tries = served.daemon.workspace.apply, []

    def full_disk_once(*args: Any, **options: Any) -> Any:
        tries.append(options.get("revision"))
        if len(tries) == 1:
            raise OSError(errno.ENOSPC, "No space left on device", "data/checkouts")
        return apply(*args, **options)

    monkeypatch.setattr(served.daemon.workspace, "apply", full_disk_once)
    second = world.commit(sized(5))

    def shown() -> dict[str, Any]:
        return next((r for r in served.requests() if r["revision"] == second), {})

    wait(lambda: shown().get("status") == "retrying", "the commit to retry")
    assert shown()["last_error"] == "No space left on device: data/checkouts"
    assert shown()["next_attempt_at"] is not None
    served.later()
    wait(lambda: served.at(second), "the commit to run once the disk has room")
    assert tries == [second, second]


def test_a_commit_a_window_holds_waits_with_the_reason_then_runs_under_its_id(
    started: InProcess,
) -> None:
    lunch = [{"kind": "deny", "schedule": "0 12 * * *", "duration": "1h", "timezone": "UTC"}]
    files = {**chain(), "environments/dev.yaml": promoted("dev", windows=lunch)}
    daemon, clock, jobs, _ = started(files)
    eventually(lambda: status(daemon, "dev") == "waiting_window", "dev to wait for the window")
    listed = lambda: daemon.runs("dev")["runs"]  # noqa: E731
    eventually(lambda: any(r.get("status") == "waiting" for r in listed()), "the request")
    (waiting,) = [r for r in listed() if r.get("status") == "waiting"]
    assert "window" in waiting["reason"] and waiting["trigger"] == "commit"
    assert waiting["next_attempt_at"] == "2026-12-01T13:00:00Z"
    clock.current += timedelta(minutes=30)  # 13:00: the window ends
    jobs.run_due()
    eventually(lambda: status(daemon, "dev") == "verified", "dev to be applied")
    run = daemon.run(waiting["id"])
    assert run is not None and run["status"] == "succeeded" and run["steps"]


def test_a_queued_commit_a_newer_one_replaces_is_recorded_superseded_by_it(
    world: World, daemons: Daemons
) -> None:
    served = daemons.start(world)
    wait(lambda: served.settled_at(head(world)), "the first apply")
    world.control(sleep={"k8s:apply": 1.5})
    running = world.commit(sized(5))
    wait(lambda: status(served.daemon, "dev") == "reconciling", "the slow apply to start")

    def recorded(revision: str) -> Request | None:
        found = [r for r in served.store.list_requests("dev") if r.revision == revision]
        return found[0] if found else None

    queued = world.commit(sized(6))
    wait(lambda: recorded(queued) is not None, "the second commit's request")
    newer = world.commit(sized(7))
    wait(lambda: served.at(newer), "the newest commit to be applied")
    replaced, newest = recorded(queued), recorded(newer)
    assert replaced is not None and newest is not None
    assert replaced.status is RequestStatus.SUPERSEDED and replaced.superseded_by == newest.id
    assert queued not in {entry["revision"] for entry in world.journal()}
    assert running in {entry["revision"] for entry in world.journal()}


def test_a_resume_made_outside_the_daemon_runs_the_held_commit_at_its_next_look(
    world: World, daemons: Daemons
) -> None:
    served = daemons.start(world)
    wait(lambda: served.settled_at(head(world)), "the first apply")
    cli = world.workspace(served.store)  # `gitopsd suspend` / `resume` on the same store
    suspending.suspend(cli, "dev", reason="incident 7", actor="alice")
    second = world.commit(sized(6))
    wait(lambda: any(r.reason and "suspended" in r.reason for r in open_requests(served)), "held")
    suspending.resume(cli, "dev", actor="alice")  # the daemon is not told
    served.later(minutes=1)  # the held commit's next look
    wait(lambda: served.at(second), "the held commit to run after the resume")


def open_requests(served: Served) -> list[Request]:
    return served.store.list_requests("dev", open_only=True)


def test_a_commit_retried_after_a_newer_one_ran_leaves_the_newer_in_place(
    world: World, daemons: Daemons, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk filled while the older commit's run went on, with the newer commit's request
    queued behind it: the older request was retrying then, not queued, so the newer one did
    not supersede it. The newer one's apply resumed and finished the older run, then applied
    the newer revision; the older request's retry then started a second run under the same
    id, which took the first one's steps (all done), ended at once, and left dev `verified`
    at the older revision."""
    served = daemons.start(world)
    wait(lambda: served.settled_at(head(world)), "the first apply")
    save_step, full_until = served.store.save_step, [lambda: False]

    def filling(step: Any) -> None:
        if full_until[0]():
            raise StoreUnavailableError("the state database cannot be written: disk is full")
        save_step(step)

    monkeypatch.setattr(served.store, "save_step", filling)
    world.control(sleep={"k8s:apply": 1.5})  # the input `size` changes k8s alone
    older = world.commit(sized(5))
    wait(lambda: any(r.revision == older for r in served.store.unfinished_runs("dev")),
         "the older commit's run")  # fmt: skip
    newer = world.commit(sized(6))

    def request_of(revision: str) -> Request | None:
        found = [r for r in served.store.list_requests("dev") if r.revision == revision]
        return found[0] if found else None

    wait(lambda: request_of(newer) is not None, "the newer commit's request")
    older_request = request_of(older)
    assert older_request is not None
    retrying = lambda: status_of(served, older_request.id) == RequestStatus.RETRYING  # noqa: E731
    full_until[0] = lambda: not retrying()  # full until the older request gives up for now
    wait(retrying, "the older commit to retry")
    wait(lambda: served.at(newer), "the newer commit to be applied")
    served.later()  # the older request's retry comes due

    def older_ended() -> bool:
        ended = served.store.get_request(older_request.id)
        return ended is not None and not ended.status.is_open

    wait(older_ended, "the older request to end")
    ended = served.store.get_request(older_request.id)
    assert ended is not None and ended.outcome == f"run {older_request.id} succeeded"
    assert served.at(newer)
    runs_of_older = [r for r in served.store.list_runs("dev", limit=50) if r.revision == older]
    assert [r.id for r in runs_of_older] == [older_request.id]


def test_a_commit_retried_after_the_branch_moved_on_is_superseded_not_applied(
    world: World, daemons: Daemons, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The older commit's first try failed before its run was recorded (the checkout met a
    full disk) while the newer commit's request was queued behind it: its retry, due after
    the newer one ran, applied the older revision over the newer."""
    served = daemons.start(world)
    wait(lambda: served.settled_at(head(world)), "the first apply")
    apply, held = served.daemon.workspace.apply, threading.Event()

    def full_disk_for(older: str) -> Callable[..., Any]:
        def applying(*args: Any, **options: Any) -> Any:
            if options.get("revision") == older and not held.is_set():
                held.wait(10)  # until the newer commit's request is queued behind this one
                held.set()
                raise OSError(errno.ENOSPC, "No space left on device", "data/checkouts")
            return apply(*args, **options)

        return applying

    older = world.commit(sized(5))
    monkeypatch.setattr(served.daemon.workspace, "apply", full_disk_for(older))
    newer = world.commit(sized(6))
    wait(lambda: any(r.revision == newer for r in served.store.list_requests("dev")),
         "the newer commit's request")  # fmt: skip
    held.set()
    wait(lambda: served.at(newer), "the newer commit to be applied")
    (older_request,) = [r for r in served.store.list_requests("dev") if r.revision == older]
    served.later()  # the older request's retry comes due
    wait(lambda: status_of(served, older_request.id) == RequestStatus.SUPERSEDED,
         "the older request to end superseded")  # fmt: skip
    assert served.at(newer)
    assert older not in {entry["revision"] for entry in world.journal()}
