"""A run's driver output as one text that only grows: what `Control.run_logs` answers.

Each step that ran contributes a header line (`==> apply network`) and its output: the stored
output once the step has ended, what its driver printed so far while it runs
(`runs.live_output`, which is always the start of the stored output). The text stops at the
first step still running or not started: steps running beside it (parallel components) follow
once it has ended, so that text already read never moves and an offset stays valid. After the
run, it is exactly the stored outputs under their headers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from gitopsd.engine.ports import StateStore
from gitopsd.model.state import Step, StepStatus
from gitopsd.runtime.control import RunLogs
from gitopsd.runtime.runs.live_output import LiveOutput
from gitopsd.runtime.service.intake import Intake


def run_logs(
    store: StateStore, intake: Intake, live: LiveOutput, run_id: str, *, offset: int = 0
) -> RunLogs | None:
    """The output of run `run_id` from `offset` on; a request whose run has not started yet
    has none so far (finished once it is closed); None for an unknown id."""
    offset = max(0, offset)
    run = store.get_run(run_id)  # before its steps: a finished run has all of them stored
    if run is None:
        request = intake.get(run_id)
        if request is None:
            return None
        return RunLogs(text="", offset=offset, finished=not request.status.is_open)
    finished = run.status.is_finished
    text = whole_text(
        store.list_steps(run_id), lambda step: live.text(run_id, step.index), finished
    )
    return RunLogs(text=text[offset:], offset=max(offset, len(text)), finished=finished)


def whole_text(steps: Iterable[Step], running: Callable[[Step], str], finished: bool) -> str:
    """The steps' output under their headers, in order, up to the first step not ended
    (`running` gives a running step's output so far); every step when the run has `finished`."""
    parts: list[str] = []
    for step in sorted(steps, key=lambda found: found.index):
        if step.status is StepStatus.PENDING and not finished:
            break
        if step.status in (StepStatus.PENDING, StepStatus.SKIPPED):
            continue  # never ran
        parts.append(f"==> {step.action} {step.component}\n")
        if step.status is StepStatus.RUNNING and not finished:
            parts.append(running(step))
            break
        parts.append(ended(step.output))
    return "".join(parts)


def ended(output: str) -> str:
    """A finished step's output, ending its last line (the next header starts a line)."""
    return output if not output or output.endswith("\n") else output + "\n"
