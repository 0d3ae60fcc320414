"""Long lists read from the store a page at a time: a finished run's steps, an environment's
component states.

A run of a thousand components records two thousand steps, and its start goes through a
thousand component states: holding every one of them at once, three environments at a time
when a commit goes down the promotion chain, is what a long-lived daemon's memory keeps as
its high-water mark (benchmarks/README.md). A page is read, used and let go.
"""

from __future__ import annotations

from collections.abc import Iterator

from gitopsd.engine.ports import StateStore
from gitopsd.model.state import ComponentState, Step

PAGE = 200  # records read at once


def each_step(store: StateStore, run_id: str) -> Iterator[Step]:
    """The run's steps by index, every one once."""
    after = None
    while True:
        page = store.list_steps(run_id, after=after, limit=PAGE)
        yield from page
        if len(page) < PAGE:
            return
        after = page[-1].index


def each_component(store: StateStore, environment: str) -> Iterator[ComponentState]:
    """The environment's component states by name, every one once."""
    after = None
    while True:
        page = store.list_components(environment, after=after, limit=PAGE)
        yield from page
        if len(page) < PAGE:
            return
        after = page[-1].name
