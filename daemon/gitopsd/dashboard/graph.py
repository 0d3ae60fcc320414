"""An environment's dependency graph as an SVG drawing, laid out by the server.

A simple layered layout: a component's column is the length of the longest chain of
dependencies below it (so every arrow points right), its row its place in the apply order
within that column. An arrow between neighbouring columns is a plain curve; one that skips
columns runs along the gap below the rows it passes, so it never crosses a box. No
JavaScript and no graph library: the graphs are small and a left-to-right drawing reads
like the apply order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

NODE_WIDTH = 160
NODE_HEIGHT = 34
COLUMN_GAP = 60
ROW_GAP = 16
MARGIN = 10
MAX_LABEL = 22


@dataclass(frozen=True)
class Node:
    name: str
    label: str
    status: str
    x: int
    y: int


@dataclass(frozen=True)
class Edge:
    """An arrow from a dependency (left) to the component that needs it (right), as the
    `d` of an SVG path (numbers only)."""

    path: str


@dataclass(frozen=True)
class Layout:
    nodes: list[Node]
    edges: list[Edge]
    width: int
    height: int


def layout(components: Sequence[Mapping[str, Any]], statuses: Mapping[str, str]) -> Layout:
    """Place `components` (`{"name", "depends_on"}` in dependency order) in columns."""
    columns = _columns(components)
    rows: dict[int, int] = {}
    places: dict[str, tuple[int, int]] = {}
    for component in components:
        column = columns[component["name"]]
        row = rows.get(column, 0)
        rows[column] = row + 1
        places[component["name"]] = (
            MARGIN + column * (NODE_WIDTH + COLUMN_GAP),
            MARGIN + row * (NODE_HEIGHT + ROW_GAP),
        )
    nodes = [
        Node(name, _label(name), statuses.get(name, "unknown"), x, y)
        for name, (x, y) in places.items()
    ]
    edges = [
        _edge(places[dependency], places[component["name"]])
        for component in components
        for dependency in component["depends_on"]
        if dependency in places
    ]
    width = MARGIN * 2 + (max(columns.values(), default=0) + 1) * (NODE_WIDTH + COLUMN_GAP)
    height = MARGIN * 2 + max(rows.values(), default=1) * (NODE_HEIGHT + ROW_GAP)
    return Layout(nodes, edges, width - COLUMN_GAP, height)  # room for a gap below the rows


def _columns(components: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """The longest dependency chain below each component (dependencies come first)."""
    columns: dict[str, int] = {}
    for component in components:
        below = [columns[d] for d in component["depends_on"] if d in columns]
        columns[component["name"]] = max(below, default=-1) + 1
    return columns


def _edge(start: tuple[int, int], end: tuple[int, int]) -> Edge:
    half, bend = NODE_HEIGHT // 2, COLUMN_GAP // 2
    x1, y1, x2, y2 = start[0] + NODE_WIDTH, start[1] + half, end[0], end[1] + half
    if x2 - x1 <= COLUMN_GAP:  # neighbouring columns
        return Edge(f"M {x1} {y1} C {x1 + bend} {y1}, {x2 - bend} {y2}, {x2} {y2}")
    gap = max(y1, y2) + half + ROW_GAP // 2  # between the rows: no box there
    return Edge(
        f"M {x1} {y1} C {x1 + bend} {y1}, {x1} {gap}, {x1 + bend} {gap} "
        f"L {x2 - bend} {gap} C {x2} {gap}, {x2 - bend} {y2}, {x2} {y2}"
    )


def _label(name: str) -> str:
    return name if len(name) <= MAX_LABEL else name[: MAX_LABEL - 1] + "…"
