"""Orphans named in a request through the daemon (the API's `components`), as the command
line takes them: a destroy removes the orphan it names; an apply that names one where the
environment does not prune is refused at once, with the `destroy` that removes it."""

from __future__ import annotations

import pytest

from gitopsd.engine.ports import StateStore
from gitopsd.errors import ConflictError, InvalidRequestError
from gitopsd.runtime.control import Identity
from tests.daemon.conftest import InProcess, eventually, status
from tests.runtime.test_pruning import files, without_db_and_api

ALICE = Identity("alice")


def deployed(store: StateStore) -> list[str]:
    return sorted(state.name for state in store.list_components("dev"))


def test_a_destroy_through_the_daemon_takes_the_orphan_it_names(started: InProcess) -> None:
    daemon, _clock, _jobs, world = started(files())
    store = daemon.workspace.store
    eventually(lambda: deployed(store) == ["api", "db", "net"], "dev to be applied")
    world.commit(without_db_and_api(), replace=True)  # db and api: orphans, and no prune
    eventually(lambda: world.calls().count("net") == 2, "the new head to be applied")
    eventually(lambda: status(daemon, "dev") == "verified", "dev to be verified again")

    with pytest.raises(ConflictError, match="api: orphaned, and dev does not prune"):
        daemon.submit_run("dev", action="apply", components=["api"], revision=None, identity=ALICE)
    with pytest.raises(InvalidRequestError, match="not components of dev: nope"):
        daemon.submit_run(
            "dev", action="destroy", components=["nope"], revision=None, identity=ALICE
        )
    asked = daemon.submit_run(
        "dev", action="destroy", components=["api"], revision=None, identity=ALICE
    )
    eventually(lambda: deployed(store) == ["db", "net"], "the orphan api to be destroyed")
    assert world.calls("destroy") == ["api"]
    eventually(lambda: (daemon.run(asked) or {}).get("status") == "succeeded", "its run")


def test_a_destroy_through_the_daemon_takes_no_revision(started: InProcess) -> None:
    """A destroy takes down what the environment runs, each component with the revision that
    applied it; a revision named with it was recorded as the run's, as if it had run that."""
    daemon, _clock, _jobs, _world = started(files())
    eventually(lambda: status(daemon, "dev") == "verified", "dev to be applied")
    with pytest.raises(InvalidRequestError, match="a destroy takes no revision"):
        daemon.submit_run("dev", action="destroy", components=None, revision="HEAD", identity=ALICE)
    assert status(daemon, "dev") == "verified"
