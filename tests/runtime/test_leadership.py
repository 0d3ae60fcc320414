"""Terms in-process, with a scripted election and stand-in daemons: who gets started, who is
stopped, what a standby answers, what /metrics says of the lead, and whose environment leases a
new leader takes over."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from gitopsd.adapters.clock import SystemClock
from gitopsd.adapters.memory_store import MemoryStore
from gitopsd.adapters.metrics import Lead, Metrics
from gitopsd.engine.ports import FencedError, Term
from gitopsd.errors import BusyError, StandbyError
from gitopsd.runtime.control import Identity
from gitopsd.runtime.runs import leases
from gitopsd.runtime.runs.workspace import Workspace
from gitopsd.runtime.service.leadership import SoleElection, Terms
from tests.daemon.harness import metric
from tests.runtime.world import World

ME = Identity("alice")


class ScriptedElection:
    """Wins when `winning` is set; `confirm` answers `still_leading`."""

    holder = "me:1:aaa"

    def __init__(self) -> None:
        self.winning = threading.Event()
        self.still_leading = True
        self.next_term = Term(epoch=5, previous="old:2:bbb")
        self.resigned = 0

    def campaign(self) -> Term | None:
        return self.next_term if self.winning.is_set() else None

    def confirm(self, epoch: int) -> bool:
        return self.still_leading and epoch == self.next_term.epoch

    def leader(self) -> str | None:
        return self.holder if self.winning.is_set() else "other:3:ccc"

    def resign(self) -> None:
        self.resigned += 1
        self.winning.clear()


@dataclass
class StandIn:
    """What Terms asks of a Daemon, recorded."""

    workspace: Workspace
    calls: list[str] = field(default_factory=list)
    recorder: Metrics = field(default_factory=lambda: Metrics(version="test", snapshot=list))

    def report_lead(self, lead: Lead) -> None:
        self.recorder.follow_lead(lead)

    def metrics(self) -> tuple[bytes, str]:
        return self.recorder.exposition()

    def prepare(self) -> None:
        self.calls.append("prepare")

    def start(self) -> None:
        self.calls.append("start")

    def stop(self, *, grace: float) -> None:
        self.calls.append(f"stop {grace}")

    def submit_run(self, environment: str, **options: Any) -> str:
        self.calls.append(f"submit_run {environment}")
        return "run-1"

    def is_ready(self) -> tuple[bool, str]:
        return True, "ready"


@dataclass
class FencedStore:
    """A shared store (engine.ports.Fencing) whose `fenced(epoch)` views remember their epoch
    and whom to tell of a write refused."""

    epoch: int | None = None
    on_fenced: Callable[[FencedError], None] | None = None
    url: str = "postgresql://db/gitopsd"

    def fenced(
        self, epoch: int, *, on_fenced: Callable[[FencedError], None] | None = None
    ) -> FencedStore:
        return FencedStore(epoch=epoch, on_fenced=on_fenced)

    def fencing(self) -> FencedStore:
        return self


def lead_in_metrics(terms: Terms) -> tuple[float | None, float | None]:
    """(`gitopsd_leader`, `gitopsd_leader_epoch`) as the process's /metrics shows them."""
    text = terms.metrics()[0].decode()
    return metric(text, "gitopsd_leader"), metric(text, "gitopsd_leader_epoch")


def eventually(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


@pytest.fixture
def made() -> list[StandIn]:
    return []


@pytest.fixture
def terms(world: World, made: list[StandIn]) -> Iterator[tuple[Terms, ScriptedElection]]:
    election = ScriptedElection()
    base = FencedStore()
    workspace = world.workspace(base)  # type: ignore[arg-type]

    def make(ws: Workspace) -> Any:
        made.append(StandIn(ws))
        return made[-1]

    shared = Terms(
        workspace,
        election=election,
        make_daemon=make,
        fencing=base,  # type: ignore[arg-type]
        poll=0.01,
        heartbeat=0.01,
    )
    shared.start()
    yield shared, election
    shared.stop(grace=0)
    workspace.source.close()


def test_a_standby_prepares_reads_and_refuses_work_naming_the_leader(
    terms: tuple[Terms, ScriptedElection], made: list[StandIn]
) -> None:
    shared, _ = terms
    assert made[0].calls == ["prepare"] and made[0].workspace.store.epoch == 0  # type: ignore[attr-defined]
    assert shared.leadership() == {"role": "standby", "leader": "other:3:ccc"}
    assert lead_in_metrics(shared) == (0, 0)
    assert shared.is_ready() == (True, "ready")
    with pytest.raises(StandbyError, match="standby and takes no work; the leader is other:3:ccc"):
        shared.submit_run("dev", action="apply", components=None, revision=None, identity=ME)
    with pytest.raises(StandbyError):
        shared.approve("dev", revision=None, identity=ME)
    with pytest.raises(StandbyError):
        shared.promote("dev", revision=None, force=True, identity=ME)
    with pytest.raises(StandbyError):
        shared.rollback("dev", revision="HEAD", identity=ME)


def test_an_elected_term_starts_a_daemon_fenced_at_its_epoch(
    terms: tuple[Terms, ScriptedElection], made: list[StandIn]
) -> None:
    shared, election = terms
    election.winning.set()
    eventually(lambda: shared.is_leading, "the lead")
    leader = made[-1]
    assert leader.calls == ["start"]
    assert leader.workspace.store.epoch == 5  # type: ignore[attr-defined]
    assert leader.workspace.deposed == frozenset({"old:2:bbb"})
    assert leader.workspace.interrupted is not made[0].workspace.interrupted
    assert shared.leadership() == {"role": "leader", "leader": "me:1:aaa", "epoch": 5}
    assert lead_in_metrics(shared) == (1, 5)
    assert shared.submit_run("dev", action="apply", components=None, revision=None, identity=ME)


def test_losing_the_lead_stops_the_term_at_once_and_stands_by_again(
    terms: tuple[Terms, ScriptedElection], made: list[StandIn]
) -> None:
    shared, election = terms
    election.winning.set()
    eventually(lambda: shared.is_leading, "the lead")
    leader = made[-1]
    election.still_leading = False
    election.winning.clear()
    eventually(lambda: not shared.is_leading, "the step down")
    assert leader.calls == ["start", "stop 0"]
    assert election.resigned >= 1
    eventually(lambda: made[-1] is not leader, "a new standby")
    assert made[-1].calls == ["prepare"]
    assert lead_in_metrics(shared) == (0, 0)
    assert metric(leader.metrics()[0].decode(), "gitopsd_leader") == 0  # the stopped term's
    with pytest.raises(StandbyError):
        shared.submit_drift_check("dev", identity=ME)


def test_a_fenced_write_deposes_the_leader(
    terms: tuple[Terms, ScriptedElection], made: list[StandIn]
) -> None:
    shared, election = terms
    election.winning.set()
    eventually(lambda: shared.is_leading, "the lead")
    leader = made[-1]
    election.winning.clear()  # do not win again at once
    store = leader.workspace.store
    assert store.on_fenced is not None  # type: ignore[attr-defined]
    store.on_fenced(FencedError("fenced: epoch 6 leads now"))  # type: ignore[attr-defined]
    eventually(lambda: not shared.is_leading, "the step down")
    assert "stop 0" in leader.calls


def test_the_sole_election_leads_at_once_with_the_store_unfenced(world: World) -> None:
    store = MemoryStore()
    workspace = world.workspace(store)
    made: list[StandIn] = []

    def make(ws: Workspace) -> Any:
        made.append(StandIn(ws))
        return made[-1]

    sole = Terms(workspace, election=SoleElection(workspace.holder), make_daemon=make)
    sole.start()
    try:
        assert [d.calls for d in made] == [["start"]]
        assert made[0].workspace is workspace
        assert sole.leadership()["role"] == "leader"
        assert lead_in_metrics(sole) == (1, 0)
    finally:
        sole.stop(grace=0)
        workspace.source.close()
    assert made[0].calls == ["start", "stop 0"]


def test_after_a_failover_metrics_show_the_new_leader_and_the_old_one_standing_by(
    world: World,
) -> None:
    """Two processes on one store: 1/0 while the first leads, 0/1 once the second took over."""
    base = FencedStore()
    pair: list[tuple[Terms, ScriptedElection]] = []
    workspaces = [world.workspace(base) for _ in range(2)]  # type: ignore[arg-type]

    def make(ws: Workspace) -> Any:
        return StandIn(ws)

    for holder, workspace in zip(("a:1:aaa", "b:2:bbb"), workspaces, strict=True):
        election = ScriptedElection()
        election.holder = holder
        process = Terms(
            workspace, election=election, make_daemon=make, fencing=base, poll=0.01,  # type: ignore[arg-type]
            heartbeat=0.01,
        )  # fmt: skip
        process.start()
        pair.append((process, election))
    (first, first_election), (second, second_election) = pair
    try:
        first_election.winning.set()
        eventually(lambda: first.is_leading, "the first lead")
        assert [lead_in_metrics(first), lead_in_metrics(second)] == [(1, 5), (0, 0)]
        first_election.still_leading = False  # its session ended: it is cut off
        first_election.winning.clear()
        second_election.next_term = Term(epoch=6, previous="a:1:aaa")
        second_election.winning.set()
        eventually(lambda: second.is_leading and not first.is_leading, "the failover")
        assert [lead_in_metrics(first), lead_in_metrics(second)] == [(0, 0), (1, 6)]
    finally:
        for process, _ in pair:
            process.stop(grace=0)
        for workspace in workspaces:
            workspace.source.close()


def test_a_new_leader_takes_over_the_deposed_leaders_lease_at_once() -> None:
    store, clock = MemoryStore(), SystemClock()
    assert store.acquire_lease("dev", "old:2:bbb", now=clock.now(), ttl=30)
    with (
        pytest.raises(BusyError),
        leases.held(store, "dev", holder="me:1:aaa", clock=clock, lost=threading.Event()),
    ):
        pass
    with leases.held(
        store, "dev", holder="me:1:aaa", clock=clock, lost=threading.Event(), deposed={"old:2:bbb"}
    ):
        assert store.lease_holder("dev", now=clock.now()) == "me:1:aaa"
