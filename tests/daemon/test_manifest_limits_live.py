"""A real `gitopsd serve` given a commit over the size limits, or with a YAML key that is not
text (issue 17, findings 5 and 6): the revision is refused like any invalid one, with the
located problem, and the daemon stays ready at its last good revision."""

from __future__ import annotations

from typing import Any

from tests.cli.test_manifest_limits import many_variables
from tests.daemon.conftest import StartDaemon
from tests.daemon.harness import DaemonProcess
from tests.daemon.test_commit_reaction import SLOW_POLL, at
from tests.runtime.test_apply_runs import layered
from tests.runtime.world import World, environment

COMPLEX_KEY = many_variables(0).replace("    size: 3\n", "    size: 3\n    ? [a, b]\n    : 1\n")


def invalid_events(served: DaemonProcess) -> list[dict[str, Any]]:
    events = served.get("/api/v1/events", params={"limit": 50}).json()["events"]
    return [event for event in events if event["kind"] == "revision.invalid"]


def test_commits_over_the_limits_or_with_a_list_as_a_key_are_refused_as_invalid(
    world: World, daemon: StartDaemon
) -> None:
    good = world.commit(layered())
    served = daemon(*SLOW_POLL)
    served.wait_for(lambda: at(served, good), what="the first apply")

    oversized = many_variables(100_000)
    huge = world.commit(layered(**{"environments/dev.yaml": oversized}))
    served.wait_for(lambda: len(invalid_events(served)) == 1, what="the oversized commit")
    keyed = world.commit(layered(**{"environments/dev.yaml": COMPLEX_KEY}))
    served.wait_for(lambda: len(invalid_events(served)) == 2, what="the complex key commit")

    by_revision = {event["data"]["revision"]: event["message"] for event in invalid_events(served)}
    assert f"environments/dev.yaml:1: file is {len(oversized):,} bytes" in by_revision[huge]
    assert "over the 1 MiB limit (limits.max_file_bytes in gitopsd.yaml)" in by_revision[huge]
    assert "environments/dev.yaml:7: mapping key is a list: keys must be text" in by_revision[keyed]
    assert at(served, good) and served.ready()
    assert "Traceback" not in served.logs()
    fixed = world.commit(
        layered(**{"environments/dev.yaml": environment("dev", variables={"size": 4})})
    )
    served.wait_for(lambda: at(served, fixed), what="the fix to be applied")
