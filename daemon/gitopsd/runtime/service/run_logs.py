"""A run's driver output as one text that only grows: what `Control.run_logs` answers.

Each step that ran contributes a header line (`==> apply network`) and its output: the stored
output once the step has ended, what its driver printed so far while it runs
(`runs.live_output`, which is always the start of the stored output). The text stops at the
first step still running or not started: steps running beside it (parallel components) follow
once it has ended, so that text already read never moves and an offset stays valid. After the
run, it is exactly the stored outputs under their headers.

A stream asks again every fraction of a second for what came after its offset. The part of the
text made of ended steps never changes, so its length and last step are remembered per run
(`Settled`): a reader already past it reads only the steps after it from the store, not the
outputs of a thousand steps it has seen.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from gitopsd.engine.ports import StateStore
from gitopsd.model.state import Step, StepStatus
from gitopsd.runtime.control import RunLogs
from gitopsd.runtime.runs.live_output import LiveOutput
from gitopsd.runtime.service.intake import Intake

REMEMBERED_RUNS = 256  # runs whose settled text is remembered (a few bytes each)
FIRST_PAGE, LAST_PAGE = 8, 512  # steps read at once: a few first, more while all have ended


@dataclass(frozen=True)
class Settled:
    """The start of a run's text that can no longer change: `length` characters, made of the
    steps up to index `last` (-1: none)."""

    length: int = 0
    last: int = -1


class RunLogReader:
    """`Control.run_logs` of one daemon: its store, its requests and its running steps."""

    def __init__(self, store: StateStore, intake: Intake, live: LiveOutput) -> None:
        self._store = store
        self._intake = intake
        self._live = live
        self._settled: OrderedDict[str, Settled] = OrderedDict()
        self._lock = threading.Lock()

    def read(self, run_id: str, *, offset: int = 0) -> RunLogs | None:
        """The output of run `run_id` from `offset` on; a request whose run has not started
        yet has none so far (finished once it is closed); None for an unknown id."""
        offset = max(0, offset)
        run = self._store.get_run(run_id)  # before its steps: a finished run has all of them
        if run is None:
            request = self._intake.get(run_id)
            if request is None:
                return None
            return RunLogs(text="", offset=offset, finished=not request.status.is_open)
        finished = run.status.is_finished
        start = self._remembered(run_id, offset)
        text, settled = self._compose(run_id, start, finished=finished)
        self._remember(run_id, settled)
        end = start.length + len(text)
        return RunLogs(
            text=text[offset - start.length :], offset=max(offset, end), finished=finished
        )

    def _compose(self, run_id: str, start: Settled, *, finished: bool) -> tuple[str, Settled]:
        """The text after `start` (see `compose`), reading the steps a page at a time: a poll
        while a step runs reads the few steps after what has settled, not every step left."""
        parts: list[str] = []
        settled, page_size = start, FIRST_PAGE
        live = self._live
        while True:
            after = None if settled.last < 0 else settled.last
            page = self._store.list_steps(run_id, after=after, limit=page_size)
            text, reached = compose(
                page, lambda step: live.text(run_id, step.index), finished=finished, start=settled
            )
            parts.append(text)
            if len(page) < page_size or reached.last != page[-1].index:  # the end, or a step
                return "".join(parts), reached  # not ended
            settled, page_size = reached, min(page_size * 4, LAST_PAGE)

    def _remembered(self, run_id: str, offset: int) -> Settled:
        """Where to start composing for a reader at `offset`: after the run's settled text if
        the reader is past it, else from the first step."""
        with self._lock:
            settled = self._settled.get(run_id)
        return settled if settled is not None and offset >= settled.length else Settled()

    def _remember(self, run_id: str, settled: Settled) -> None:
        with self._lock:
            self._settled[run_id] = settled
            self._settled.move_to_end(run_id)
            while len(self._settled) > REMEMBERED_RUNS:
                self._settled.popitem(last=False)


def compose(
    steps: Iterable[Step],
    running: Callable[[Step], str],
    *,
    finished: bool,
    start: Settled | None = None,
) -> tuple[str, Settled]:
    """The text of `steps` (those after `start`), up to the first step not ended (`running`
    gives a running step's output so far; every step counts as ended once the run has
    `finished`), and how far the text is settled then."""
    parts: list[str] = []
    settled = start or Settled()
    for step in sorted(steps, key=lambda found: found.index):
        if not finished and not step.status.is_finished:
            if step.status is StepStatus.RUNNING:
                parts.append(header(step) + running(step))
            break
        section = "" if step.status in _NEVER_RAN else header(step) + ended(step.output)
        parts.append(section)
        settled = Settled(settled.length + len(section), step.index)
    return "".join(parts), settled


_NEVER_RAN = (StepStatus.PENDING, StepStatus.SKIPPED)


def header(step: Step) -> str:
    return f"==> {step.action} {step.component}\n"


def ended(output: str) -> str:
    """A finished step's output, ending its last line (the next header starts a line)."""
    return output if not output or output.endswith("\n") else output + "\n"
