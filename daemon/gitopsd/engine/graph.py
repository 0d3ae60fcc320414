"""The dependency graph of components: apply order, parallel waves and cycles.

Built on `graphlib.TopologicalSorter`. Order within a wave is by name, so the same repo always
gives the same plan; components of one wave do not depend on each other and may run at once.
"""

from __future__ import annotations

import graphlib
from collections.abc import Iterable, Mapping

Dependencies = Mapping[str, Iterable[str]]


# not in gitopsd.errors: the pure core's; validation reports a cycle as a problem
class DependencyCycleError(ValueError):
    """The graph has a cycle; `cycle` lists it with the first name repeated at the end."""

    def __init__(self, cycle: list[str]) -> None:
        super().__init__("dependency cycle: " + " -> ".join(cycle))
        self.cycle = cycle


def apply_waves(dependencies: Dependencies) -> list[list[str]]:
    """Groups of components in dependency order; dependencies on unknown names are ignored."""
    sorter = graphlib.TopologicalSorter(_known_edges(dependencies))
    try:
        sorter.prepare()
    except graphlib.CycleError as error:
        raise DependencyCycleError(_canonical(list(error.args[1]))) from None
    waves: list[list[str]] = []
    while sorter.is_active():
        wave = sorted(sorter.get_ready())
        sorter.done(*wave)
        waves.append(wave)
    return waves


def apply_order(dependencies: Dependencies) -> list[str]:
    """Every component after all of its dependencies."""
    return [name for wave in apply_waves(dependencies) for name in wave]


def find_cycle(dependencies: Dependencies) -> list[str] | None:
    """One dependency cycle (`[a, b, c, a]`: a depends on b, ...), or None."""
    try:
        apply_waves(dependencies)
    except DependencyCycleError as error:
        return error.cycle
    return None


def _known_edges(dependencies: Dependencies) -> dict[str, list[str]]:
    """Edges between known names; a self-dependency is left to validation to report."""
    known = set(dependencies)
    return {name: sorted((set(deps) & known) - {name}) for name, deps in dependencies.items()}


def _canonical(cycle: list[str]) -> list[str]:
    """graphlib reports a cycle as [x, ..., x] in reverse; start at its smallest name.

    graphlib walks predecessors, so its list reads "is depended on by"; reversing it gives
    "depends on", which is how users read `a -> b`.
    """
    ring = list(reversed(cycle[:-1]))
    start = ring.index(min(ring))
    ring = ring[start:] + ring[:start]
    return [*ring, ring[0]]
