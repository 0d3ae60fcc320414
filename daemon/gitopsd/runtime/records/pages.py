"""Long lists read from the store a page at a time: a finished run's steps, an environment's
component states and runs.

A run of a thousand components records two thousand steps, and its start goes through a
thousand component states: holding every one of them at once, three environments at a time
when a commit goes down the promotion chain, is what a long-lived daemon's memory keeps as
its high-water mark (benchmarks/README.md). A page is read, used and let go.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TypeVar

from gitopsd.engine.ports import StateStore
from gitopsd.model.state import ComponentState, Run, RunAction, Step

PAGE = 200  # records read at once

Record = TypeVar("Record")
Key = TypeVar("Key")


def each_step(store: StateStore, run_id: str) -> Iterator[Step]:
    """The run's steps by index, every one once."""

    def page(after: int | None) -> list[Step]:
        return store.list_steps(run_id, after=after, limit=PAGE)

    return _paged(page, lambda step: step.index)


def each_component(store: StateStore, environment: str) -> Iterator[ComponentState]:
    """The environment's component states by name, every one once."""

    def page(after: str | None) -> list[ComponentState]:
        return store.list_components(environment, after=after, limit=PAGE)

    return _paged(page, lambda state: state.name)


def each_run(
    store: StateStore, environment: str, *, action: RunAction, page_size: int = PAGE
) -> Iterator[Run]:
    """The environment's runs of `action`, newest first, every one once; `page_size` runs
    read at a time (fewer where the first few are usually all that is looked at)."""

    def page(before: tuple[datetime, str] | None) -> list[Run]:
        return store.list_runs(environment, limit=page_size, before=before, action=action.value)

    return _paged(page, lambda run: (run.created_at, run.id), page_size)


def _paged(
    page: Callable[[Key | None], list[Record]],
    key: Callable[[Record], Key],
    page_size: int = PAGE,
) -> Iterator[Record]:
    """Every record of the pages `page` reads, each after the `key` of the last one seen."""
    after: Key | None = None
    while True:
        records = page(after)
        yield from records
        if len(records) < page_size:
            return
        after = key(records[-1])
