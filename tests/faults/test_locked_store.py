"""The state store locked by another process for longer than its busy timeout (10 s), under
a real `gitopsd serve`: the commit that arrives meanwhile is kept and shown as retrying,
/readyz says why, and once the lock goes the commit is applied, once (the fault suite)."""

from __future__ import annotations

from typing import Any

from tests.daemon.conftest import StartDaemon
from tests.runtime.test_apply_runs import layered
from tests.runtime.world import World, environment
from tests.store.test_sqlite_store import Locker

BUSY_TIMEOUT = 10  # seconds: SqliteStore's own, which the daemon uses


def test_a_commit_outlasts_a_lock_held_past_the_busy_timeout(
    world: World, daemon: StartDaemon
) -> None:
    first = world.commit(layered())
    served = daemon("--poll-interval", "0.3")
    served.wait_for(lambda: served.environment()["revision"] == first, what="the first apply")
    locker = Locker(served.data / "state.db")
    try:
        bigger = environment("dev", variables={"size": 4})
        second = world.commit(layered(**{"environments/dev.yaml": bigger}))

        def shown() -> dict[str, Any]:
            runs = served.get("/api/v1/runs?env=dev").json()["runs"]
            return next((r for r in runs if r.get("revision") == second), {})

        wait = BUSY_TIMEOUT + 20
        served.wait_for(lambda: shown().get("status") == "retrying", what="retrying", timeout=wait)
        assert "database is locked" in shown()["last_error"]
        answer = served.get("/readyz")
        assert answer.status_code == 503 and "database is locked" in answer.json()["reason"]
        assert "cannot record request" in served.logs()
    finally:
        locker.release()
    served.wait_for(lambda: served.environment()["revision"] == second, what="commit", timeout=60)
    served.wait_for(served.ready, what="/readyz 200 again")
    revisions = [e["revision"] for e in world.journal() if e["component"] == "net"]
    assert revisions == [first]  # net's inputs did not change: applied at the first only
    applied = [e["component"] for e in world.journal() if e["revision"] == second]
    assert "k8s" in applied and len(applied) == len(set(applied))  # the size changed: once
