"""Apply order, parallel waves and cycle reports of the dependency graph."""

from __future__ import annotations

import pytest

from gitopsd.engine import graph


def test_every_component_comes_after_its_dependencies() -> None:
    deps = {
        "platform": ["ingress", "monitoring"],
        "ingress": ["clusters"],
        "monitoring": ["clusters"],
        "clusters": ["network"],
        "network": [],
    }
    order = graph.apply_order(deps)
    for name, needs in deps.items():
        assert all(order.index(dep) < order.index(name) for dep in needs)


def test_independent_components_share_a_wave_sorted_by_name() -> None:
    waves = graph.apply_waves({"b": ["net"], "a": ["net"], "net": [], "top": ["a", "b"]})
    assert waves == [["net"], ["a", "b"], ["top"]]


def test_dependencies_on_unknown_names_are_ignored() -> None:
    assert graph.apply_order({"a": ["ghost"], "b": ["a"]}) == ["a", "b"]


@pytest.mark.parametrize(
    ("deps", "cycle"),
    [
        ({"a": ["b"], "b": ["c"], "c": ["a"]}, ["a", "b", "c", "a"]),
        ({"b": ["a"], "a": ["c"], "c": ["b"]}, ["a", "c", "b", "a"]),
        ({"x": ["y"], "y": ["x"], "z": ["x"]}, ["x", "y", "x"]),
    ],
)
def test_a_cycle_is_reported_in_depends_on_direction(
    deps: dict[str, list[str]], cycle: list[str]
) -> None:
    assert graph.find_cycle(deps) == cycle
    with pytest.raises(graph.DependencyCycleError, match=" -> ".join(cycle)):
        graph.apply_order(deps)


def test_a_self_dependency_is_not_a_cycle_of_the_graph() -> None:
    # validation reports it as its own problem; the graph just ignores the edge
    assert graph.apply_order({"self": ["self"], "other": ["self"]}) == ["self", "other"]


def test_an_acyclic_graph_has_no_cycle() -> None:
    assert graph.find_cycle({"a": [], "b": ["a"]}) is None
