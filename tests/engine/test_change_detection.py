"""Only what changed runs: fingerprints of files, rendered inputs and driver."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from gitopsd.engine import planning, selection
from gitopsd.engine.loading import ComponentEntry, Repository
from gitopsd.engine.planning import Verdict
from gitopsd.model.state import HASHED, ComponentState, ComponentStatus
from tests.engine.builders import component, environment, repository

NET = "components/net/component.yaml"
K8S = "components/k8s/component.yaml"
APP = "components/app/component.yaml"


def files(*, size: int = 3, k8s_extra: str = "") -> dict[str, str]:
    return {
        "environments/dev.yaml": environment("dev", variables=f"{{size: {size}, region: eu}}"),
        NET: component("net", inputs="{region: '${{ vars.region }}'}"),
        K8S: component(
            "k8s",
            layer="clusters",
            deps="[net]",
            inputs="{vnet: '${{ components.net.outputs.id }}', size: '${{ vars.size }}'"
            + k8s_extra
            + "}",
        ),
        APP: component(
            "app", layer="platform", deps="[k8s]", inputs="{ep: '${{ components.k8s.outputs.ep }}'}"
        ),
    }


TREES = {"components/net": "t-net", "components/k8s": "t-k8s", "components/app": "t-app"}


def applied(repo: Repository, trees: dict[str, str] = TREES) -> dict[str, ComponentState]:
    """Component states as if everything had been applied at `repo`'s revision."""
    outputs = {"net": {"id": "vnet-1"}, "k8s": {"ep": "https://k8s"}, "app": {}}
    states: dict[str, ComponentState] = {}
    chosen = selection.select(repo, "dev")
    for entry in chosen.components:
        name = entry.manifest.name
        decision = planning.decide(
            entry,
            environment=chosen.environment,
            revision=repo.revision,
            tree=trees[entry.folder],
            outputs={n: s.outputs for n, s in states.items()},
            last=None,
        )
        assert decision.fingerprint is not None and decision.inputs is not None
        states[name] = ComponentState(
            environment="dev",
            name=name,
            revision=repo.revision,
            fingerprint=decision.fingerprint,
            inputs=decision.inputs,
            outputs=outputs[name],
            updated_at=datetime.now(UTC),
        )
    return states


def verdicts(
    repo: Repository, observed: dict[str, ComponentState], trees: dict[str, str] = TREES
) -> dict[str, Verdict]:
    plan = planning.plan(
        selection.select(repo, "dev"), revision=repo.revision, trees=trees, observed=observed
    )
    return {d.component: d.verdict for d in plan.decisions}


def test_a_new_environment_runs_the_roots_and_waits_on_the_rest() -> None:
    repo = repository(files())
    assert verdicts(repo, {}) == {
        "net": Verdict.RUN,
        "k8s": Verdict.WAITING,
        "app": Verdict.WAITING,
    }


def test_nothing_changed_nothing_runs() -> None:
    repo = repository(files())
    assert set(verdicts(repo, applied(repo)).values()) == {Verdict.UNCHANGED}
    assert not planning.plan(
        selection.select(repo, "dev"), revision="r2", trees=TREES, observed=applied(repo)
    ).has_changes


def test_a_new_revision_with_the_same_desired_state_changes_nothing() -> None:
    before = repository(files())
    after = repository(files(), revision="r2")
    assert set(verdicts(after, applied(before)).values()) == {Verdict.UNCHANGED}


def test_a_variable_change_runs_its_reader_and_waits_its_dependents() -> None:
    observed = applied(repository(files()))
    repo = repository(files(size=5))
    assert verdicts(repo, observed) == {
        "net": Verdict.UNCHANGED,
        "k8s": Verdict.RUN,
        "app": Verdict.WAITING,
    }
    plan = planning.plan(
        selection.select(repo, "dev"), revision="r1", trees=TREES, observed=observed
    )
    assert plan.decisions[1].reason == "inputs changed: size"


def test_changed_files_run_the_component() -> None:
    observed = applied(repository(files()))
    trees = TREES | {"components/app": "t-app-2"}
    decisions = verdicts(repository(files()), observed, trees)
    assert decisions == {"net": Verdict.UNCHANGED, "k8s": Verdict.UNCHANGED, "app": Verdict.RUN}


def test_a_dependent_is_decided_again_with_its_dependency_new_outputs() -> None:
    repo = repository(files())
    observed = applied(repo)
    chosen = selection.select(repo, "dev")
    k8s = chosen.components[1]
    same = planning.decide(
        k8s,
        environment=chosen.environment,
        revision="r1",
        tree="t-k8s",
        outputs={"net": {"id": "vnet-1"}},
        last=observed["k8s"],
    )
    moved = planning.decide(
        k8s,
        environment=chosen.environment,
        revision="r1",
        tree="t-k8s",
        outputs={"net": {"id": "vnet-2"}},
        last=observed["k8s"],
    )
    assert (same.verdict, moved.verdict) == (Verdict.UNCHANGED, Verdict.RUN)
    assert moved.inputs == {"vnet": "vnet-2", "size": 3}


def test_a_failed_or_rolled_back_component_runs_again() -> None:
    repo = repository(files())
    observed = applied(repo)
    for status in (ComponentStatus.FAILED, ComponentStatus.ROLLED_BACK):
        broken = observed | {"net": observed["net"].model_copy(update={"status": status})}
        assert verdicts(repo, broken)["net"] is Verdict.RUN


def test_the_fingerprint_depends_on_tree_inputs_and_driver_only() -> None:
    repo = repository(files())
    entry = repo.components["net"]
    base = planning.fingerprint(tree="t", inputs={"a": 1}, component=entry)
    assert base == planning.fingerprint(tree="t", inputs={"a": 1}, component=entry)
    assert base != planning.fingerprint(tree="u", inputs={"a": 1}, component=entry)
    assert base != planning.fingerprint(tree="t", inputs={"a": 2}, component=entry)
    other_driver = repository(files() | {NET: files()[NET].replace("./apply.sh", "./apply2.sh")})
    assert base != planning.fingerprint(
        tree="t", inputs={"a": 1}, component=other_driver.components["net"]
    )


def unchanged_at_start(
    repo: Repository, observed: dict[str, ComponentState], trees: dict[str, str] = TREES
) -> dict[str, str | None]:
    found = planning.unchanged(
        selection.select(repo, "dev"), revision=repo.revision, trees=trees, observed=observed
    )
    return {name: decision.fingerprint for name, decision in found.items()}


def test_what_an_apply_skips_at_its_start_is_what_plan_finds_unchanged() -> None:
    before = repository(files())
    observed = applied(before)
    cases = [
        (before, observed, TREES),  # nothing changed
        (repository(files(size=5)), observed, TREES),  # k8s changes: app waits for it
        (before, observed, TREES | {"components/app": "t-app-2"}),  # only app changes
        (before, {"k8s": observed["k8s"], "app": observed["app"]}, TREES),  # net is new
        (before, {}, TREES),  # everything is new: after a destroy
    ]
    for repo, states, trees in cases:
        plan = planning.plan(
            selection.select(repo, "dev"), revision=repo.revision, trees=trees, observed=states
        )
        expected = {
            d.component: d.fingerprint for d in plan.decisions if d.verdict is Verdict.UNCHANGED
        }
        assert unchanged_at_start(repo, states, trees) == expected
    assert unchanged_at_start(before, observed) == {
        name: state.fingerprint for name, state in observed.items()
    }
    assert unchanged_at_start(before, {}) == {}


def test_a_secret_input_kept_only_as_a_hash_is_not_named_as_changed() -> None:
    """The store keeps `k8s_token` as the keyed hash the fingerprint takes it as: compared
    through that hash, it is not reported changed when only `size` changed."""

    def conceal(_: ComponentEntry, inputs: Mapping[str, Any]) -> Mapping[str, Any]:
        return {k: f"hash-of-{v}" if k == "k8s_token" else v for k, v in inputs.items()}

    token = ", k8s_token: '${{ vars.region }}'"
    observed = applied(repository(files(k8s_extra=token)))
    k8s = observed["k8s"]
    kept = {**k8s.inputs, "k8s_token": {HASHED: "hash-of-eu"}}
    observed["k8s"] = k8s.model_copy(update={"fingerprint": "before", "inputs": kept})
    repo = repository(files(size=5, k8s_extra=token))
    plan = planning.plan(
        selection.select(repo, "dev"),
        revision="r1",
        trees=TREES,
        observed=observed,
        conceal=conceal,
    )
    assert plan.decisions[1].reason == "inputs changed: size"
