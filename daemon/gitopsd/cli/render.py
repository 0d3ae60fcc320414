"""Text forms of plans, runs, status and history for a terminal (JSON goes through reports)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from gitopsd.engine.planning import Preview, Verdict
from gitopsd.model.state import Event, Request, Run, Step, escape_unsafe
from gitopsd.runtime.runs.plan_run import PlannedComponent

if TYPE_CHECKING:
    from gitopsd.runtime.promotion.diffing import Diff

MARKS = {Verdict.RUN: "~", Verdict.WAITING: "?", Verdict.UNCHANGED: "="}
CHANGE_MARKS = {"added": "+", "removed": "-", "changed": "~"}
CHANGELOG_SHOWN = 10  # commits `diff` lists before "and N more" (JSON lists them all)
# what a wait's kind waits for, in status's line about it (its reason says until when)
WAITS = {
    "waiting_approval": "approvals",
    "waiting_window": "a change window",
    "waiting_soak": "the soak",
    "suspended": "a resume",
}


def rollback_suspension(environment: str, reason: str) -> str:
    """The line saying a rollback suspended the environment's automatic work, for stderr."""
    return escape_unsafe(f"{environment} suspended: {reason} (gitopsd resume --env {environment})")


def planned(run: Run, components: list[PlannedComponent]) -> str:
    lines = [f"plan of {run.environment} at {run.revision[:12]} (run {run.id})"]
    for item in components:
        mark = "!" if item.changes is None else ("~" if item.changes else "=")
        mark = "-" if item.action == "destroy" else mark  # an orphan, destroyed by prune
        lines.append(f"  {mark} {item.name:<24} {item.reason}")
        lines.extend(f"      {line}" for line in item.output.rstrip().splitlines())
    changing = sum(1 for item in components if item.changes)
    failed = sum(1 for item in components if item.changes is None)
    lines.append(
        f"{changing} to change, {len(components) - changing - failed} unchanged, {failed} failed"
    )
    return "\n".join(lines)


def preview(plan: Preview, *, as_json: bool) -> str:
    if as_json:
        return json.dumps(
            {
                "environment": plan.environment,
                "revision": plan.revision,
                "components": [
                    {"name": d.component, "verdict": d.verdict.value, "reason": d.reason}
                    for d in plan.decisions
                ],
            },
            indent=2,
        )
    lines = [f"dry run: {plan.environment} at {plan.revision[:12]}, in apply order"]
    lines.extend(f"  {MARKS[d.verdict]} {d.component:<24} {d.reason}" for d in plan.decisions)
    return "\n".join(lines)


def _error_after(status: str, error: str | None) -> str:
    """A run's error after its status, without saying the status twice ("failed: failed: net",
    "cancelled: cancelled")."""
    shown = (error or "").removeprefix(f"{status}: ")
    return "" if shown in ("", status) else f": {shown}"


def run(record: Run, steps: list[Step], *, verbose: bool = False, timed: bool = False) -> str:
    """A run and its steps; `timed` (as `runs` lists them) adds when it started and how long
    it took."""
    head = (
        f"run {record.id}  {record.action.value} {record.environment} at "
        f"{record.revision[:12]}  {record.status.value}"
    )
    # errors may quote what a driver, its outputs file or GitHub said: escaped (the output of
    # `verbose` is the driver's own, shown as it printed it)
    lines = [head + escape_unsafe(_error_after(record.status.value, record.error))]
    if timed:
        lines.append(f"  {_timing(record)}")
    for step in steps:
        tries = f" ({step.attempts} tries)" if step.attempts > 1 else ""
        detail = f": {escape_unsafe(step.error)}" if step.error else ""
        lines.append(
            f"  {step.index:>3}. {step.action.value:<8} {step.component:<24} "
            f"{step.status.value}{tries}{detail}"
        )
        if verbose and step.output:
            lines.extend(f"         {line}" for line in step.output.rstrip().splitlines())
    return "\n".join(lines)


def _timing(record: Run) -> str:
    if record.started_at is None:
        return f"created {record.created_at:%Y-%m-%d %H:%M:%S}Z, not started"
    started = f"started {record.started_at:%Y-%m-%d %H:%M:%S}Z"
    if record.finished_at is None:
        return f"{started}, not finished"
    return f"{started}, took {duration(record.finished_at - record.started_at)}"


def duration(elapsed: timedelta) -> str:
    """`0.4s`, `12.3s`, `4m05s`, `2h03m`: as precise as a reader of a run list wants."""
    seconds = elapsed.total_seconds()
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{rest:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def request(record: Request) -> str:
    """A request no run answers for yet: what it asks, where it stands, and why."""
    revision = f" at {record.revision[:12]}" if record.revision else ""
    head = f"request {record.id}  {record.action} {record.environment}{revision}  "
    lines = [head + f"{record.status.value} ({record.trigger}, {record.actor})"]
    lines += _request_details(
        record.reason, record.last_error, record.next_attempt_at, record.superseded_by
    )
    if record.outcome and not record.status.is_open:  # what came of it (`runs --run ID`)
        lines.append(f"  outcome: {record.outcome}")
    return "\n".join(map(escape_unsafe, lines))


def _request_details(
    reason: str | None, error: str | None, next_at: datetime | str | None, by: str | None
) -> list[str]:
    moment = next_at.isoformat() if isinstance(next_at, datetime) else next_at
    found = [("waits", reason), ("last error", error), ("next try", moment), ("by", by)]
    return [f"  {label}: {value}" for label, value in found if value]


def status(report: dict[str, Any]) -> str:
    """An aligned table of the environments, then one of each environment's components."""
    environments = report["environments"]
    if not environments:
        return "no environments"
    rows: list[tuple[str, ...]] = [
        ("ENVIRONMENT", "REVISION", "STATUS", "FROM", "PENDING APPROVAL", "DRIFT")
    ]
    rows += [
        (
            e["name"],
            (e["revision"] or "-")[:12],
            e["status"],
            e["upstream"] or "-",
            _pending(e.get("pending_approval")),
            _drift_summary(e["components"]),
        )
        for e in environments
    ]
    lines = _aligned(rows)
    lines += [line for e in environments for line in _holding(e)]
    for environment in environments:
        if environment["components"]:
            lines += ["", f"{environment['name']}:"]
            parts: list[tuple[str, ...]] = [("  COMPONENT", "STATUS", "REVISION", "DRIFT")]
            parts += [
                (f"  {c['name']}", c["status"], c["revision"][:12], c["drift"])
                for c in environment["components"]
            ]
            lines += _aligned(parts)
    for environment in environments:
        for open_request in environment.get("requests", []):
            lines += ["", f"{environment['name']}: request {open_request['id']} "
                      f"{open_request['action']} {open_request['status']}"]  # fmt: skip
            lines += _request_details(
                open_request.get("reason"),
                open_request.get("last_error"),
                open_request.get("next_attempt_at"),
                None,
            )
    return "\n".join(map(escape_unsafe, lines))


def _holding(environment: dict[str, Any]) -> list[str]:
    """What holds an environment: its suspension (who, why, since) and its current wait."""
    lines = []
    suspension = environment.get("suspension")
    if suspension:
        why = f": {suspension['reason']}" if suspension["reason"] else ""
        lines.append(
            f"{environment['name']} suspended by {suspension['actor']} "
            f"since {suspension['since']}{why}"
        )
    waiting = environment.get("waiting")
    if waiting and waiting["kind"] == "blocked":  # no wait ends it: a trusted commit does
        lines.append(f"{environment['name']} is blocked: {waiting['reason']}")
    elif waiting:
        what = WAITS.get(waiting["kind"], waiting["kind"])
        lines.append(
            f"{environment['name']} waits for {what}: {waiting['reason']}{_so_far(waiting)}"
        )
    return lines


def _so_far(waiting: dict[str, Any]) -> str:
    """Who approved so far, for a wait on approvals (the reason says how many are missing)."""
    if "approvals" not in waiting:
        return ""
    who = f": {', '.join(waiting['approvals'])}" if waiting["approvals"] else ""
    return f" ({len(waiting['approvals'])} of {waiting['required']} so far{who})"


def _pending(pending: dict[str, Any] | None) -> str:
    if not pending:
        return "-"
    who = ", ".join(pending["approvals"]) or "none yet"
    return (
        f"{pending['revision'][:12]}: {len(pending['approvals'])} of {pending['required']} ({who})"
    )


def _drift_summary(components: list[dict[str, Any]]) -> str:
    if not components:
        return "-"
    counts: dict[str, int] = {}
    for component in components:
        counts[component["drift"]] = counts.get(component["drift"], 0) + 1
    return ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))


def _aligned(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def history(events: list[Event]) -> str:
    lines = []
    for event in events:
        where = event.environment or "-"
        lines.append(
            f"{event.at:%Y-%m-%d %H:%M:%S}  {where:<10} {event.actor:<10} "
            f"{event.kind:<22} {event.message}"
        )
    return "\n".join(map(escape_unsafe, lines)) or "no events"


def diff(found: Diff) -> str:
    """The components that change (a first diff adds them all), then the desired state's
    diff as YAML, then the newest commits between the revisions."""
    old = found.old[:12] if found.old else "nothing"
    if not found.differs:
        lines = [f"{found.environment}: no difference in the desired state"]
    else:
        counts = [(sum(c.change == kind for c in found.changes), kind) for kind in CHANGE_MARKS]
        counts.append((found.unchanged, "unchanged"))
        tally = ", ".join(f"{n} {kind}" for n, kind in counts if n)
        lines = [f"{found.environment}: {old} -> {found.new[:12]}: {tally}"]
        lines += [
            f"  {CHANGE_MARKS[c.change]} {c.name:<24} {', '.join(c.fields)}".rstrip()
            for c in found.changes
        ]
        lines += ["", found.readable.rstrip("\n")]
    return "\n".join(lines + _changelog(found))


def _changelog(found: Diff) -> list[str]:
    if not found.changelog:
        return []
    shown = found.changelog[:CHANGELOG_SHOWN]
    lines = [
        "",
        f"changelog ({found.commits} commit{'s' if found.commits != 1 else ''}, newest first):",
    ]
    lines += [f"  {line}" for line in shown]
    if found.commits > len(shown):
        lines.append(f"  and {found.commits - len(shown)} more")
    return lines
