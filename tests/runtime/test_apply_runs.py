"""Apply runs on real git repositories with real subprocess drivers."""

from __future__ import annotations

import pytest

from gitopsd.engine.ports import StateStore
from gitopsd.errors import RunRefusedError
from gitopsd.model.state import ComponentStatus, EnvironmentStatus, RunStatus, StepAction
from gitopsd.runtime.runs.workspace import Workspace
from tests.runtime.world import World, component, environment

NET = "components/net/component.yaml"
K8S = "components/k8s/component.yaml"
DNS = "components/dns/component.yaml"
APP = "components/app/component.yaml"


def layered(**overrides: str) -> dict[str, str]:
    files = {
        "environments/dev.yaml": environment("dev", variables={"size": 3}),
        NET: component("net"),
        DNS: component("dns"),
        K8S: component(
            "k8s",
            layer="clusters",
            deps=("net",),
            inputs={"vnet": "${{ components.net.outputs.id }}", "size": "${{ vars.size }}"},
        ),
        APP: component(
            "app",
            layer="platform",
            deps=("k8s", "dns"),
            inputs={"endpoint": "${{ components.k8s.outputs.id }}"},
        ),
    }
    return files | overrides


def test_components_apply_in_dependency_order_with_outputs_flowing(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    sha = world.commit(layered())
    run = workspace.apply("dev")
    assert run.status is RunStatus.SUCCEEDED, run.error
    order = world.calls()
    assert sorted(order) == ["app", "dns", "k8s", "net"]
    assert order.index("net") < order.index("k8s") < order.index("app")
    assert order.index("dns") < order.index("app")
    k8s = next(e for e in world.journal() if e["component"] == "k8s")
    assert k8s["inputs"] == {"vnet": "net-dev", "size": 3}
    assert k8s["revision"] == sha and k8s["cwd"].endswith(f"checkouts/{sha}/components/k8s")
    state = store.get_environment("dev")
    assert state is not None and (state.revision, state.status) == (sha, EnvironmentStatus.VERIFIED)
    assert store.get_component("dev", "app").outputs["seen"] == {"endpoint": "k8s-dev"}  # type: ignore[union-attr]


def test_only_what_changed_runs_and_dependents_follow_changed_outputs(
    world: World, workspace: Workspace
) -> None:
    world.commit(layered())
    workspace.apply("dev")
    world.journal_path.unlink()
    world.commit(layered())  # a new revision, nothing changed
    assert workspace.apply("dev").status is RunStatus.SUCCEEDED
    assert world.calls() == []
    world.commit(layered(**{"environments/dev.yaml": environment("dev", variables={"size": 5})}))
    assert workspace.apply("dev").status is RunStatus.SUCCEEDED
    assert world.calls() == ["k8s"]  # app reads k8s's id, which did not change


def test_a_new_dependency_output_re_applies_the_dependent(
    world: World, workspace: Workspace
) -> None:
    world.commit(layered())
    workspace.apply("dev")
    world.journal_path.unlink()
    # net's inputs change, so its outputs ("seen") change; k8s reads only net's id: unchanged
    world.commit(
        layered(
            **{
                NET: component("net", inputs={"cidr": "10.1.0.0/16"}),
                K8S: component(
                    "k8s",
                    layer="clusters",
                    deps=("net",),
                    inputs={"net": "${{ components.net.outputs.seen }}"},
                ),
            }
        )
    )
    assert workspace.apply("dev").status is RunStatus.SUCCEEDED
    assert world.calls() == ["net", "k8s"]


def test_independent_components_overlap_up_to_parallelism(
    world: World, workspace: Workspace
) -> None:
    files = {"environments/dev.yaml": environment("dev", parallelism=2)}
    for name in ("a", "b", "c", "d"):
        files[f"components/{name}/component.yaml"] = component(name)
    world.commit(files)
    world.control(sleep={f"{n}:apply": 0.4 for n in "abcd"})
    assert workspace.apply("dev").status is RunStatus.SUCCEEDED
    spans = sorted((e["started"], e["ended"]) for e in world.journal())
    overlapping = max(sum(1 for s, e in spans if s < t < e) for t, _ in spans for t in [t + 0.01])
    assert overlapping == 2


def test_retries_count_every_try(world: World, workspace: Workspace, store: StateStore) -> None:
    world.commit(layered(**{NET: component("net", attempts=3)}))
    world.control(fail={"net:apply": 2})
    run = workspace.apply("dev")
    assert run.status is RunStatus.SUCCEEDED
    assert world.calls().count("net") == 3
    step = next(s for s in store.list_steps(run.id) if s.component == "net")
    assert step.attempts == 3


def test_attempts_exhausted_fails_with_stop(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    world.commit(layered(**{NET: component("net", attempts=2, on_failure="stop")}))
    world.control(fail={"net:apply": -1})
    run = workspace.apply("dev")
    assert run.status is RunStatus.FAILED
    assert world.calls().count("net") == 2
    assert "k8s" not in world.calls() and "app" not in world.calls()
    assert store.get_environment("dev").status is EnvironmentStatus.FAILED  # type: ignore[union-attr]


def test_continue_lets_independent_components_finish(world: World, workspace: Workspace) -> None:
    world.commit(layered(**{NET: component("net", on_failure="continue")}))
    world.control(fail={"net:apply": -1})
    run = workspace.apply("dev")
    assert run.status is RunStatus.FAILED
    assert "dns" in world.calls()
    assert "k8s" not in world.calls() and "app" not in world.calls()


def test_rollback_reapplies_the_previous_revision_in_reverse_order(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    first = world.commit(layered())
    assert workspace.apply("dev").status is RunStatus.SUCCEEDED
    world.journal_path.unlink()
    second = world.commit(
        layered(
            **{
                "environments/dev.yaml": environment("dev", variables={"size": 9}),
                NET: component("net", inputs={"cidr": "10.9.0.0/16"}),
                APP: component("app", layer="platform", deps=("k8s", "dns"), inputs={"v": 2}),
            }
        )
    )
    world.control(fail={f"app:apply@{second}": -1})
    run = workspace.apply("dev")
    assert run.status is RunStatus.FAILED and "rolled back" in (run.error or "")
    forward = [(e["component"], e["revision"]) for e in world.journal() if e["revision"] != first]
    back = [e for e in world.journal() if e["revision"] == first]
    assert [c for c, _ in forward] == ["net", "k8s", "app"]
    assert [e["component"] for e in back] == ["app", "k8s", "net"]  # reverse dependency order
    assert back[1]["inputs"] == {"vnet": "net-dev", "size": 3}  # the inputs recorded then
    env = store.get_environment("dev")
    assert env is not None and (env.revision, env.status) == (first, EnvironmentStatus.FAILED)
    assert store.get_component("dev", "k8s").inputs["size"] == 3  # type: ignore[union-attr]
    assert all(s.status is ComponentStatus.APPLIED for s in store.list_components("dev"))


def test_without_a_previous_revision_nothing_is_rolled_back(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    world.commit(layered())
    world.control(fail={"app:apply": -1})
    run = workspace.apply("dev")
    assert run.status is RunStatus.FAILED and "nothing to roll back to" in (run.error or "")
    assert world.calls("destroy") == []
    assert store.get_component("dev", "net").status is ComponentStatus.APPLIED  # type: ignore[union-attr]
    assert store.get_environment("dev").status is EnvironmentStatus.FAILED  # type: ignore[union-attr]


def test_a_timeout_fails_the_step(world: World, workspace: Workspace, store: StateStore) -> None:
    world.commit(layered(**{DNS: component("dns", timeout="1s", on_failure="stop")}))
    world.control(sleep={"dns:apply": 30})
    run = workspace.apply("dev")
    assert run.status is RunStatus.FAILED
    step = next(s for s in store.list_steps(run.id) if s.component == "dns")
    assert step.error is not None and "timed out" in step.error


def test_health_runs_after_apply_and_a_failed_one_fails_the_component(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    world.commit(layered(**{DNS: component("dns", health=True, on_failure="stop")}))
    world.control(fail={"dns:health": -1})
    run = workspace.apply("dev")
    assert run.status is RunStatus.FAILED
    assert world.calls("health") == ["dns"]
    actions = {(s.component, s.action) for s in store.list_steps(run.id)}
    assert ("dns", StepAction.HEALTH) in actions
    assert store.get_component("dev", "dns").status is ComponentStatus.FAILED  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "value",
    [
        "$(touch /tmp/gitopsd-pwned)",
        "`id`; rm -rf /",
        "a\nb\r\nc",
        "'\"\\",
        "x" * 100_000,
        "ünï 🚀",
    ],
)
def test_hostile_input_values_arrive_verbatim(
    world: World, workspace: Workspace, value: str
) -> None:
    world.commit(
        {
            "environments/dev.yaml": environment("dev", variables={"v": value}),
            NET: component("net", inputs={"v": "${{ vars.v }}"}),
        }
    )
    assert workspace.apply("dev").status is RunStatus.SUCCEEDED
    assert world.journal()[0]["inputs"] == {"v": value}


def test_components_limits_the_run_and_needs_applied_dependencies(
    world: World, workspace: Workspace
) -> None:
    world.commit(layered())
    with pytest.raises(RunRefusedError, match="k8s depends on net, which was never applied"):
        workspace.apply("dev", components=["k8s"])
    with pytest.raises(RunRefusedError, match="not components of dev: nope"):
        workspace.apply("dev", components=["nope"])
    assert workspace.apply("dev", components=["net", "k8s"]).status is RunStatus.SUCCEEDED
    assert world.calls() == ["net", "k8s"]


def test_an_output_a_dependency_never_wrote_fails_its_dependent_by_name(
    world: World, workspace: Workspace, store: StateStore
) -> None:
    """Before the dependency applies, the plan says the input waits for it; once it has
    applied without the output, the dependent fails naming the input and the output, and
    the next plan says so too: nothing is waiting any more."""
    reads_nope = component(
        "k8s", deps=("net",), inputs={"vnet": "${{ components.net.outputs.nope }}"}
    )
    world.commit(layered(**{K8S: reads_nope}))
    before = {d.component: d.reason for d in workspace.preview("dev").decisions}
    assert (
        before["k8s"]
        == "inputs wait for a dependency: vnet: no outputs recorded for component 'net'"
    )

    run = workspace.apply("dev")
    assert run.status is RunStatus.FAILED
    step = next(s for s in store.list_steps(run.id) if s.component == "k8s")
    cannot = "inputs cannot be rendered: vnet: component 'net' has no output 'nope'"
    assert step.error == cannot

    after = {d.component: d.reason for d in workspace.preview("dev").decisions}
    assert after["k8s"] == cannot
