"""Orphans: deployed in an environment that no longer has them (deleted, `when`, `include`)."""

from __future__ import annotations

from typing import Any

import pytest

from gitopsd.engine.ports import StateStore
from gitopsd.errors import GitopsdError, RunRefusedError
from gitopsd.model.state import DriftStatus, RunStatus
from gitopsd.runtime.records import reports
from gitopsd.runtime.runs.workspace import Workspace
from tests.runtime.world import World, component, environment

ENV = "environments/dev.yaml"
NET = "components/net/component.yaml"
DB = "components/db/component.yaml"
API = "components/api/component.yaml"


def files(**spec: Any) -> dict[str, str]:
    return {
        ENV: environment("dev", variables={"tier": "small"}, **spec),
        NET: component("net"),
        DB: component("db", deps=("net",)),
        API: component("api", deps=("db",), inputs={"db": "${{ components.db.outputs.id }}"}),
    }


def without_db_and_api(**spec: Any) -> dict[str, str]:
    """The repo with db and api deleted and net changed (so the apply has work too)."""
    return {ENV: files(**spec)[ENV], NET: component("net", inputs={"v": 2})}


def statuses(workspace: Workspace, store: StateStore) -> dict[str, str]:
    repository = workspace.load_revision().repository
    report = reports.status_report(store, repository, environment="dev")
    return {c["name"]: c["status"] for c in report["environments"][0]["components"]}


def test_a_deleted_component_is_destroyed_after_the_rest_with_its_own_revision(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    first = world.commit(files(prune=True))
    assert workspace.apply("dev").status is RunStatus.SUCCEEDED
    world.journal_path.unlink()
    world.commit(without_db_and_api(prune=True), replace=True)
    run = workspace.apply("dev")
    assert run.status is RunStatus.SUCCEEDED
    journal = [(e["component"], e["action"]) for e in world.journal()]
    assert journal == [("net", "apply"), ("api", "destroy"), ("db", "destroy")]
    destroyed = [e for e in world.journal() if e["action"] == "destroy"]
    assert {e["revision"] for e in destroyed} == {first}  # the revision that applied them
    assert destroyed[0]["inputs"] == {"db": "db-dev"}  # api's recorded inputs
    assert [s.name for s in store.list_components("dev")] == ["net"]


def test_without_prune_an_orphan_stays_deployed_and_is_shown_orphaned(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    world.commit(files())
    workspace.apply("dev")
    world.commit(without_db_and_api(), replace=True)
    assert workspace.apply("dev").status is RunStatus.SUCCEEDED
    assert world.calls("destroy") == []
    assert statuses(workspace, store) == {"api": "orphaned", "db": "orphaned", "net": "applied"}


def test_without_prune_an_orphan_whose_revision_is_gone_does_not_stop_the_apply(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    world.commit(files())
    workspace.apply("dev")
    gone = "0" * 40  # its last revision force-pushed away and collected
    for state in store.list_components("dev"):
        if state.name in ("db", "api"):
            store.save_component(state.model_copy(update={"revision": gone}))
    world.commit(without_db_and_api(), replace=True)
    assert workspace.apply("dev").status is RunStatus.SUCCEEDED
    assert world.calls("destroy") == [] and "net" in world.calls()


def test_a_component_excluded_by_when_is_pruned(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    world.commit(files(prune=True))
    workspace.apply("dev")
    api = component(
        "api",
        deps=("db",),
        inputs={"db": "${{ components.db.outputs.id }}"},
        when="vars.tier == 'large'",
    )
    world.commit({**files(prune=True), API: api})
    assert statuses(workspace, store)["api"] == "orphaned"
    assert workspace.apply("dev").status is RunStatus.SUCCEEDED
    assert world.calls("destroy") == ["api"]
    assert sorted(s.name for s in store.list_components("dev")) == ["db", "net"]


def test_a_component_left_out_by_include_is_pruned(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    world.commit(files(prune=True))
    workspace.apply("dev")
    world.commit(files(prune=True, components={"include": ["net"]}))
    assert workspace.apply("dev").status is RunStatus.SUCCEEDED
    assert world.calls("destroy") == ["api", "db"]
    assert [s.name for s in store.list_components("dev")] == ["net"]


def test_plan_shows_an_orphan_as_a_destroy(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    world.commit(files())
    workspace.apply("dev")
    world.commit({ENV: files()[ENV], NET: component("net"), DB: component("db", deps=("net",))},
                 replace=True)  # fmt: skip
    run, planned = workspace.plan("dev")
    assert run.status is RunStatus.SUCCEEDED
    orphan = [p for p in planned if p.action == "destroy"]
    assert [(p.name, p.changes) for p in orphan] == [("api", True)]
    assert world.calls("destroy") == [] and len(store.list_components("dev")) == 3


def test_destroy_accepts_an_orphan_by_name(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    first = world.commit(files())
    workspace.apply("dev")
    world.commit(without_db_and_api(), replace=True)
    run = workspace.destroy("dev", components=["api"])
    assert run.status is RunStatus.SUCCEEDED
    assert world.calls("destroy") == ["api"]
    assert [e["revision"] for e in world.journal() if e["action"] == "destroy"] == [first]
    assert sorted(s.name for s in store.list_components("dev")) == ["db", "net"]


def test_a_destroy_runs_the_driver_of_the_revision_that_applied_each_component(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    """A destroy brings no revision in: the head's destroy command (here a new checkout of
    net's folder, in a promoted environment a revision its upstream never verified) is not
    what takes down what an older revision applied."""
    first = world.commit(files())
    assert workspace.apply("dev").status is RunStatus.SUCCEEDED
    head = world.commit(without_db_and_api(), replace=True)  # net changed, db and api gone
    run = workspace.destroy("dev")
    assert run.status is RunStatus.SUCCEEDED
    destroyed = [e for e in world.journal() if e["action"] == "destroy"]
    assert [e["component"] for e in destroyed] == ["api", "db", "net"]
    assert all(f"/{first}/" in e["cwd"] and head not in e["cwd"] for e in destroyed)
    assert {e["revision"] for e in destroyed} == {first}
    assert store.list_components("dev") == []


def test_a_partial_apply_prunes_nothing(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    world.commit(files(prune=True))
    workspace.apply("dev")
    world.commit(without_db_and_api(prune=True), replace=True)
    assert workspace.apply("dev", components=["net"]).status is RunStatus.SUCCEEDED
    assert world.calls("destroy") == []
    assert len(store.list_components("dev")) == 3


def test_prune_defaults_off_and_run_timeout_must_be_a_positive_duration() -> None:
    from pydantic import ValidationError

    from gitopsd.model.manifests import EnvironmentSpec

    assert EnvironmentSpec().prune is False and EnvironmentSpec().run_timeout is None
    assert EnvironmentSpec.model_validate({"run_timeout": "2m"}).run_timeout == 120.0
    with pytest.raises(ValidationError):
        EnvironmentSpec.model_validate({"run_timeout": "0s"})


def test_a_destroy_takes_components_applied_at_older_revisions_from_the_environments_own(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    """Unchanged components keep the revision that last applied them; the environment's own
    revision has the same driver and files for them, so one checkout serves the destroy
    rather than one for every commit that changed a component."""
    world.commit(files())
    assert workspace.apply("dev").status is RunStatus.SUCCEEDED
    second = world.commit({**files(), NET: component("net", inputs={"v": 2})})
    assert workspace.apply("dev").status is RunStatus.SUCCEEDED  # net at second, the rest not
    assert {s.name: s.revision == second for s in store.list_components("dev")} == {
        "api": False, "db": False, "net": True,
    }  # fmt: skip
    head = world.commit({**files(), NET: component("net", inputs={"v": 3})})
    assert workspace.destroy("dev").status is RunStatus.SUCCEEDED
    destroyed = [e for e in world.journal() if e["action"] == "destroy"]
    assert [e["component"] for e in destroyed] == ["api", "db", "net"]
    assert all(f"/{second}/" in e["cwd"] and head not in e["cwd"] for e in destroyed)


def test_a_component_a_failed_run_applied_is_destroyed_with_that_runs_revision(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    """dev is at `first`; a run of `second` applied net, then failed on db, which stops
    the run (no rollback): net's resources are `second`'s, so its destroy runs `second`'s
    driver, and says so (GITOPSD_REVISION). The rest are destroyed with `first`'s."""
    first = world.commit(files())
    assert workspace.apply("dev").status is RunStatus.SUCCEEDED
    stops = component("db", deps=("net",), inputs={"v": 2}, on_failure="stop")
    changed = {NET: component("net", inputs={"v": 2}), DB: stops}
    second = world.commit({**files(), **changed})
    world.control(fail={"db:apply": -1})
    assert workspace.apply("dev").status is RunStatus.FAILED
    world.control()
    assert store.get_environment("dev").revision == first  # type: ignore[union-attr]
    assert store.get_component("dev", "net").revision == second  # type: ignore[union-attr]
    assert workspace.destroy("dev").status is RunStatus.SUCCEEDED
    destroyed = {e["component"]: e for e in world.journal() if e["action"] == "destroy"}
    assert f"/{second}/" in destroyed["net"]["cwd"] and destroyed["net"]["revision"] == second
    for name in ("api", "db"):
        assert f"/{first}/" in destroyed[name]["cwd"] and destroyed[name]["revision"] == first


def test_a_component_a_failed_run_of_an_older_revision_applied_goes_down_with_that_one(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    """dev at `second`; `apply --revision first` re-applies net with first's files, then
    fails on db (on_failure: stop): dev stays at `second`, net's resources are first's.
    first is second's ancestor, which does not make second's driver net's."""
    stop = {"on_failure": "stop"}
    first = world.commit({**files(), DB: component("db", deps=("net",), inputs={"v": 1}, **stop),
                          NET: component("net", inputs={"v": 1})})  # fmt: skip
    assert workspace.apply("dev").status is RunStatus.SUCCEEDED
    second = world.commit({**files(), DB: component("db", deps=("net",), inputs={"v": 2},
                                                    **stop),
                           NET: component("net", inputs={"v": 2})})  # fmt: skip
    assert workspace.apply("dev").status is RunStatus.SUCCEEDED
    world.control(fail={f"db:apply@{first}": -1})
    assert workspace.apply("dev", revision=first).status is RunStatus.FAILED
    world.control()
    assert store.get_environment("dev").revision == second  # type: ignore[union-attr]
    assert workspace.destroy("dev").status is RunStatus.SUCCEEDED
    destroyed = {e["component"]: e for e in world.journal() if e["action"] == "destroy"}
    assert f"/{first}/" in destroyed["net"]["cwd"] and destroyed["net"]["revision"] == first
    assert all(f"/{e['revision']}/" in e["cwd"] for e in destroyed.values())  # said as run


def test_a_drifted_component_does_not_make_its_dependents_need_their_own_revisions(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    """db and api were last applied at a revision git no longer has (a rewritten branch,
    then gc; dev's revision has them unchanged). net drifted: that says nothing of db's and
    api's files, so dev's revision still stands for them and the destroy works."""
    world.commit(files())
    assert workspace.apply("dev").status is RunStatus.SUCCEEDED
    world.commit({**files(), NET: component("net", inputs={"v": 2})})
    assert workspace.apply("dev").status is RunStatus.SUCCEEDED
    for state in store.list_components("dev"):
        if state.name in ("db", "api"):
            store.save_component(state.model_copy(update={"revision": "0" * 40}))
    net = store.get_component("dev", "net")
    assert net is not None
    store.save_component(net.model_copy(update={"drift": DriftStatus.DRIFTED}))
    assert workspace.destroy("dev").status is RunStatus.SUCCEEDED  # refused: 000000 unknown
    assert store.list_components("dev") == []


def test_a_component_whose_revision_is_gone_goes_down_with_the_environments(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    """db was applied at a revision git no longer has (nor the data folder), and does not
    match dev's revision (a rotated secret, say): the destroy takes it down with dev's
    revision, which has it, rather than refusing."""
    first = world.commit(files())
    assert workspace.apply("dev").status is RunStatus.SUCCEEDED
    db = store.get_component("dev", "db")
    assert db is not None
    store.save_component(db.model_copy(update={"revision": "0" * 40, "fingerprint": "other"}))
    assert workspace.destroy("dev").status is RunStatus.SUCCEEDED  # refused: 000000 unknown
    destroyed = {e["component"]: e for e in world.journal() if e["action"] == "destroy"}
    assert f"/{first}/" in destroyed["db"]["cwd"] and destroyed["db"]["revision"] == first
    assert store.list_components("dev") == []


def test_a_partial_destroy_is_judged_by_the_dependencies_the_environment_applied(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    """A head that drops api's dependency on db (not applied yet: in a promoted environment,
    perhaps never verified) does not make db's destroy safe: api stands on it as applied."""
    world.commit(files())
    assert workspace.apply("dev").status is RunStatus.SUCCEEDED
    world.commit({**files(), API: component("api")})  # api no longer needs db, at the head
    with pytest.raises(RunRefusedError, match="api depends on db and is not being destroyed"):
        workspace.destroy("dev", components=["db"])
    assert world.calls("destroy") == [] and len(store.list_components("dev")) == 3


def test_an_apply_naming_other_components_is_not_stopped_by_an_orphan_it_cannot_prune(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    """Where the environment prunes, a whole apply refuses to run while an orphan cannot be
    destroyed with its own revision; one naming other components prunes none of them, so
    that orphan is none of its business."""
    world.commit(files(prune=True))
    workspace.apply("dev")
    gone = "0" * 40  # the orphans' last revision force-pushed away and collected
    for state in store.list_components("dev"):
        if state.name in ("db", "api"):
            store.save_component(state.model_copy(update={"revision": gone}))
    world.commit(without_db_and_api(prune=True), replace=True)
    world.journal_path.unlink()
    assert workspace.apply("dev", components=["net"]).status is RunStatus.SUCCEEDED
    assert world.calls() == ["net"] and world.calls("destroy") == []
    with pytest.raises(GitopsdError):
        workspace.apply("dev")  # it would prune them: refused, nothing run
