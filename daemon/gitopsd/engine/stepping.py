"""Which steps of a run may start now, which never will, and when the run is over.

Every run (plan, apply, destroy, prune, remediation) is a graph of steps decided when it
starts: one node per step, each naming the steps it waits for. The runtime asks `progress`
after every step settles and starts what is `ready`; nothing here knows about threads,
processes or the store, so the rules are the same for every action and tested on their own.

Rules:
- a step is ready when every step it needs succeeded or was skipped, and the run is not
  halted;
- a step that needs a failed, cancelled or blocked step is blocked: it never runs;
- the run halts (starts nothing more) when it is stopping (cancel, timeout, shutdown) or a
  step failed whose `on_failure` is not `continue`;
- the run is done when nothing runs and nothing is ready.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from gitopsd.model.state import StepAction, StepStatus

OnFailure = Literal["rollback", "stop", "continue"]
StepKey = tuple[str, StepAction]  # (component or gate name, action)
GOOD = (StepStatus.SUCCEEDED, StepStatus.SKIPPED)
BAD = (StepStatus.FAILED, StepStatus.CANCELLED)


@dataclass(frozen=True)
class Node:
    """One step of a run and the steps it waits for."""

    component: str
    action: StepAction
    needs: frozenset[StepKey] = frozenset()
    on_failure: OnFailure = "stop"
    after_any: bool = False  # waits for its needs to finish, however they end (rollbacks)
    key: StepKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # made once: a schedule keeps several tables by step, and a key made at every look
        # was a tuple of its own in each of them (benchmarks/README.md)
        object.__setattr__(self, "key", (self.component, self.action))


@dataclass(frozen=True)
class Progress:
    """Where a run stands: what to start, what will never run, and whether it is over."""

    ready: list[StepKey]
    blocked: list[StepKey]
    running: list[StepKey]
    unstarted: list[StepKey]  # neither ready nor blocked: the run halted before them
    failed: list[StepKey]
    cancelled: list[StepKey]
    wants_rollback: bool

    @property
    def done(self) -> bool:
        return not self.running and not self.ready

    @property
    def succeeded(self) -> bool:
        return self.done and not (self.blocked or self.unstarted or self.failed or self.cancelled)


def progress(
    nodes: Sequence[Node], statuses: Mapping[StepKey, StepStatus], *, stopping: bool = False
) -> Progress:
    """Classify every node of a run given the statuses known now (absent: pending)."""
    schedule = Schedule(nodes, statuses)
    if stopping:
        schedule.stop()
    return schedule.progress()


class Schedule:
    """`progress` kept up to date step by step: settling one step costs the steps it touches,
    not the whole run (1,000 steps must not cost a million checks). Pure: no threads."""

    def __init__(self, nodes: Sequence[Node], statuses: Mapping[StepKey, StepStatus]) -> None:
        self._nodes = list(nodes)
        self._statuses = {n.key: statuses.get(n.key, StepStatus.PENDING) for n in self._nodes}
        self._dependents: dict[StepKey, list[StepKey]] = {n.key: [] for n in self._nodes}
        self._waiting: dict[StepKey, int] = {}
        self._blocked: set[StepKey] = set()
        self._halted = False
        self._rollback = False
        for node in self._nodes:
            for need in node.needs:
                self._dependents.setdefault(need, []).append(node.key)
            known = [d for d in node.needs if d in self._statuses]
            self._waiting[node.key] = sum(self._statuses[d] not in GOOD for d in known)
        self._on_failure = {n.key: n.on_failure for n in self._nodes}
        self._after_any = {n.key: n.after_any for n in self._nodes}
        self._ready: dict[StepKey, None] = {}
        for node in self._nodes:
            if self._statuses[node.key] in BAD:
                self._failed(node.key, self._statuses[node.key])
        self._ready = {n.key: None for n in self._nodes if self._startable(n.key)}

    def take(self, limit: int) -> list[StepKey]:
        """Up to `limit` ready steps, in the graph's order, marked running."""
        if self._halted:
            return []
        taken = list(itertools.islice(self._ready, max(limit, 0)))
        for key in taken:
            del self._ready[key]
            self._statuses[key] = StepStatus.RUNNING
        return taken

    def settle(self, key: StepKey, status: StepStatus) -> None:
        """Record how a step ended (or that a running one went back to pending)."""
        self._statuses[key] = status
        self._settled(key, status)

    def stop(self) -> None:
        """Start nothing more: cancel, timeout, shutdown."""
        self._halted = True

    @property
    def halted(self) -> bool:
        return self._halted

    @property
    def has_ready(self) -> bool:
        return bool(self._ready) and not self._halted

    def progress(self) -> Progress:
        statuses = self._statuses
        pending = [n.key for n in self._nodes if statuses[n.key] is StepStatus.PENDING]
        left = [k for k in pending if k not in self._blocked]
        return Progress(
            ready=[] if self._halted else [k for k in left if k in self._ready],
            blocked=[k for k in pending if k in self._blocked],
            running=[n.key for n in self._nodes if statuses[n.key] is StepStatus.RUNNING],
            unstarted=[k for k in left if self._halted or k not in self._ready],
            failed=[n.key for n in self._nodes if statuses[n.key] is StepStatus.FAILED],
            cancelled=[n.key for n in self._nodes if statuses[n.key] is StepStatus.CANCELLED],
            wants_rollback=self._rollback,
        )

    def _startable(self, key: StepKey) -> bool:
        pending = self._statuses[key] is StepStatus.PENDING
        return pending and not self._waiting[key] and key not in self._blocked

    def _settled(self, key: StepKey, status: StepStatus) -> None:
        if status in GOOD:
            for dependent in self._dependents.get(key, []):
                self._waiting[dependent] -= 1
                if self._startable(dependent):
                    self._ready[dependent] = None
        elif status in BAD:
            self._failed(key, status)

    def _failed(self, key: StepKey, status: StepStatus) -> None:
        policy = self._on_failure.get(key)
        if status is StepStatus.FAILED:
            self._halted |= policy != "continue"
            self._rollback |= policy == "rollback"
        self._block_below(key)

    def _block_below(self, key: StepKey) -> None:
        """Block what waits on `key` (failed or blocked), transitively; a step that only
        waits for its needs to finish (`after_any`) counts `key` as finished instead."""
        below = list(self._dependents.get(key, []))
        while below:
            dependent = below.pop()
            if dependent in self._blocked or self._statuses[dependent] is not StepStatus.PENDING:
                continue
            if self._after_any[dependent]:
                self._waiting[dependent] -= 1
                if self._startable(dependent):
                    self._ready[dependent] = None
                continue
            self._blocked.add(dependent)
            self._ready.pop(dependent, None)
            below.extend(self._dependents.get(dependent, []))


# --- the graphs of each action ----------------------------------------------------------------


@dataclass(frozen=True)
class Part:
    """What the graphs need of a component: its dependencies, policy and health probe."""

    name: str
    depends_on: tuple[str, ...] = ()
    on_failure: OnFailure = "rollback"
    health: bool = False


def apply_graph(
    parts: Sequence[Part], *, gates: Sequence[str] = (), orphans: Sequence[Part] = ()
) -> list[Node]:
    """Apply (then health) each component after its dependencies; then destroy the orphans,
    dependents first; then the gates, one after the other, judging the result."""
    inside = {p.name for p in parts}
    last = {p.name: (p.name, StepAction.HEALTH if p.health else StepAction.APPLY) for p in parts}
    nodes: list[Node] = []
    for part in parts:
        needs = frozenset(last[d] for d in part.depends_on if d in inside and d != part.name)
        nodes.append(Node(part.name, StepAction.APPLY, needs, part.on_failure))
        if part.health:
            after_apply = frozenset({(part.name, StepAction.APPLY)})
            nodes.append(Node(part.name, StepAction.HEALTH, after_apply, part.on_failure))
    applied = frozenset(last.values())
    pruned = destroy_graph(orphans, after=applied)
    nodes.extend(pruned)
    before = applied | {n.key for n in pruned}
    for gate in gates:
        nodes.append(Node(gate, StepAction.GATE, before, "stop"))
        before = frozenset({(gate, StepAction.GATE)})
    return nodes


def destroy_graph(parts: Sequence[Part], *, after: frozenset[StepKey] = frozenset()) -> list[Node]:
    """Destroy each component after every component that depends on it (and after `after`);
    the first failure stops the rest: tearing down what others stand on makes things worse."""
    inside = {p.name for p in parts}
    dependents: dict[str, set[StepKey]] = {p.name: set() for p in parts}
    for part in parts:
        for dependency in part.depends_on:
            if dependency in inside and dependency != part.name:
                dependents[dependency].add((part.name, StepAction.DESTROY))
    return [
        Node(p.name, StepAction.DESTROY, frozenset(dependents[p.name]) | after, "stop")
        for p in reversed(parts)
    ]


def rollback_graph(parts: Sequence[Part]) -> list[Node]:
    """Roll back each component after those that depend on it, whether or not theirs
    worked: as much as possible is undone."""
    nodes = []
    for node in destroy_graph(parts):
        after = frozenset((name, StepAction.ROLLBACK) for name, _ in node.needs)
        nodes.append(Node(node.component, StepAction.ROLLBACK, after, "continue", after_any=True))
    return nodes


def plan_graph(names: Sequence[str]) -> list[Node]:
    """A plan asks every driver at once: no plan waits for another, none stops the rest."""
    return [Node(name, StepAction.PLAN, frozenset(), "continue") for name in names]
