"""Gates (SPEC 2.2): the environment's checks after every component applied.

Pipeline: apply -> **gates** -> verified -> promote. A revision is verified in an environment
only when it is applied, healthy, and every gate passed; only verified revisions flow down
the promotion chain. Each gate runs its command from the repo root of the revision's
read-only checkout, with `GITOPSD_ENVIRONMENT`, `GITOPSD_REVISION` and `GITOPSD_ACTION=gate`,
under its `timeout`, tried `retries + 1` times. Gates run one after the other, in the order
written, after every component and pruned orphan, and stop at the first failure. Each is a
step of the run: recorded before and after, so a resumed run does not repeat a gate that
passed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gitopsd.engine.ports import DriverCall
from gitopsd.model.manifests import Gate, RetryPolicy
from gitopsd.model.state import Run, StepAction
from gitopsd.runtime.runs.steps import StepRunner

GATE_BACKOFF = 2.0  # seconds before the first retry of a gate; doubles, up to 30 s


@dataclass(frozen=True)
class GateFailure:
    gate: str
    error: str
    cancelled: bool = False


def run_gate(
    runner: StepRunner, run: Run, gate: Gate, *, checkout: Path, state_root: Path
) -> GateFailure | None:
    """Run one gate as a step of `run`; its failure, or None when it passed."""
    step = runner.book.new(run, gate.name, StepAction.GATE)
    call = gate_call(gate, run=run, checkout=checkout, state_root=state_root)
    step, result = runner.call(step, call, _policy(gate))
    step = runner.finish(step, result)
    runner.services.store.save_step(step)
    verdict = "passed" if result.succeeded else f"failed: {step.error}"
    runner.services.event(run, f"gate.{'passed' if result.succeeded else 'failed'}",
                          f"gate {gate.name} {verdict}", gate=gate.name)  # fmt: skip
    if not result.succeeded:
        return GateFailure(gate.name, step.error or "failed", cancelled=result.cancelled)
    return None


def gate_call(gate: Gate, *, run: Run, checkout: Path, state_root: Path) -> DriverCall:
    return DriverCall(
        argv=tuple(gate.command),
        cwd=checkout,
        environment=run.environment,
        component=gate.name,
        revision=run.revision,
        action="gate",
        inputs={},
        state_dir=state_root / run.environment / ".gates" / gate.name,
        timeout=gate.timeout,
    )


def _policy(gate: Gate) -> RetryPolicy:
    return RetryPolicy(attempts=gate.retries + 1, backoff=GATE_BACKOFF, max_backoff=30.0)
