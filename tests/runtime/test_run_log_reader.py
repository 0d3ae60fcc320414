"""`Control.run_logs` over a real SQLite store through a run's life: a reader that passes each
offset back sees exactly the text a reader from the start sees, whatever ended meanwhile;
parallel steps show in order; a finished run is its stored outputs."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gitopsd.adapters.scheduling import ManualJobs
from gitopsd.adapters.sqlite_store import SqliteStore
from gitopsd.model.state import Run, RunAction, RunStatus, Step, StepAction, StepStatus
from gitopsd.runtime.runs.live_output import LiveOutput
from gitopsd.runtime.service.intake import Intake
from gitopsd.runtime.service.run_logs import RunLogReader
from tests.daemon.conftest import FakeClock

AT = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    opened = SqliteStore(tmp_path / "state.db")
    yield opened
    opened.close()


def reader_over(store: SqliteStore, live: LiveOutput) -> RunLogReader:
    clock = FakeClock(AT)
    jobs = ManualJobs(clock.now)
    intake = Intake(store, clock=clock, jobs=jobs, admit=lambda work: None, on_superseded=print)
    return RunLogReader(store, intake, live)


def step(index: int, component: str, status: StepStatus, output: str = "") -> Step:
    return Step(
        run_id="run-1",
        index=index,
        component=component,
        action=StepAction.APPLY,
        status=status,
        revision="a" * 40,
        output=output,
    )


class Follower:
    """A stream's reader: passes each offset back, keeps all it was given."""

    def __init__(self, reader: RunLogReader) -> None:
        self.reader, self.offset, self.seen = reader, 0, ""

    def follow(self) -> bool:
        logs = self.reader.read("run-1", offset=self.offset)
        assert logs is not None
        self.seen += logs.text
        self.offset = logs.offset
        return logs.finished


def test_a_follower_sees_what_a_reader_from_the_start_sees_at_every_moment(
    store: SqliteStore,
) -> None:
    live = LiveOutput()
    reader = reader_over(store, live)
    run = Run(id="run-1", environment="dev", revision="a" * 40, action=RunAction.APPLY,
              status=RunStatus.RUNNING, created_at=AT)  # fmt: skip
    store.save_run(run)
    pending = [
        step(n, name, StepStatus.PENDING) for n, name in enumerate(["net", "dns", "app", "web"])
    ]
    store.save_steps(pending)
    follower = Follower(reader)

    def check(expected: str) -> None:
        assert not follower.follow()
        whole = reader.read("run-1")
        assert whole is not None and whole.text == follower.seen == expected

    check("")
    with live.kept("run-1", 0) as net_prints, live.kept("run-1", 1) as dns_prints:
        store.save_steps([step(0, "net", StepStatus.RUNNING), step(1, "dns", StepStatus.RUNNING)])
        net_prints("net: one\n")
        dns_prints("dns: all done\n")  # beside net: shown once net has ended
        check("==> apply net\nnet: one\n")
        net_prints("net: two\n")
        check("==> apply net\nnet: one\nnet: two\n")
        store.save_step(step(1, "dns", StepStatus.SUCCEEDED, "dns: all done"))
    # the calls have ended, net's step is not saved yet: nothing new, nothing moves back
    assert not follower.follow()
    assert follower.seen == "==> apply net\nnet: one\nnet: two\n"
    store.save_step(step(0, "net", StepStatus.SUCCEEDED, "net: one\nnet: two\n"))
    check("==> apply net\nnet: one\nnet: two\n==> apply dns\ndns: all done\n")
    with live.kept("run-1", 2) as app_prints:  # read after what has settled
        store.save_step(step(2, "app", StepStatus.RUNNING))
        app_prints("app: up\n")
        check("==> apply net\nnet: one\nnet: two\n==> apply dns\ndns: all done\n"
              "==> apply app\napp: up\n")  # fmt: skip
    store.save_steps([step(2, "app", StepStatus.FAILED, "app: up\nno"),
                      step(3, "web", StepStatus.SKIPPED)])  # fmt: skip
    store.save_run(run.model_copy(update={"status": RunStatus.FAILED}))

    assert follower.follow()  # finished
    assert follower.seen == (
        "==> apply net\nnet: one\nnet: two\n==> apply dns\ndns: all done\n"
        "==> apply app\napp: up\nno\n"
    )
    again = reader_over(store, LiveOutput()).read("run-1", offset=14)  # another daemon, later
    assert again is not None and again.finished
    assert again.text == follower.seen[14:] and again.offset == len(follower.seen)


def test_unknown_ids_have_no_logs(store: SqliteStore) -> None:
    assert reader_over(store, LiveOutput()).read("no-such-run") is None


def test_a_run_of_many_steps_reads_whole_up_to_its_running_step(store: SqliteStore) -> None:
    live = LiveOutput()
    run = Run(id="run-1", environment="dev", revision="a" * 40, action=RunAction.APPLY,
              status=RunStatus.RUNNING, created_at=AT)  # fmt: skip
    store.save_run(run)
    names = [f"c{n:02d}" for n in range(50)]
    store.save_steps([step(n, name, StepStatus.SUCCEEDED, f"{name} ok") for n, name in
                      enumerate(names[:40])])  # fmt: skip
    store.save_steps([step(n, names[n], StepStatus.PENDING) for n in range(40, 50)])
    store.save_step(step(40, names[40], StepStatus.RUNNING))
    reader = reader_over(store, live)
    sections = "".join(f"==> apply {name}\n{name} ok\n" for name in names[:40])

    with live.kept("run-1", 40) as printing:
        printing("c40 half")
        logs = reader.read("run-1")
        assert logs is not None and logs.text == sections + "==> apply c40\nc40 half"
        later = reader.read("run-1", offset=len(sections))
        assert later is not None and later.text == "==> apply c40\nc40 half"
