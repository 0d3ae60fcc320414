"""Text forms of plans, runs, status and history for a terminal (JSON goes through reports)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from gitopsd.engine.planning import Plan, Verdict
from gitopsd.model.state import Event, Request, Run, Step
from gitopsd.runtime.plan_run import PlannedComponent

MARKS = {Verdict.RUN: "~", Verdict.WAITING: "?", Verdict.UNCHANGED: "="}


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


def dry_run(plan: Plan, *, as_json: bool) -> str:
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


def run(record: Run, steps: list[Step], *, verbose: bool = False) -> str:
    head = (
        f"run {record.id}  {record.action.value} {record.environment} at "
        f"{record.revision[:12]}  {record.status.value}"
    )
    lines = [head + (f": {record.error}" if record.error else "")]
    for step in steps:
        tries = f" ({step.attempts} tries)" if step.attempts > 1 else ""
        detail = f": {step.error}" if step.error else ""
        lines.append(
            f"  {step.index:>3}. {step.action.value:<8} {step.component:<24} "
            f"{step.status.value}{tries}{detail}"
        )
        if verbose and step.output:
            lines.extend(f"         {line}" for line in step.output.rstrip().splitlines())
    return "\n".join(lines)


def request(record: Request) -> str:
    """A request no run answers for yet: what it asks, where it stands, and why."""
    revision = f" at {record.revision[:12]}" if record.revision else ""
    head = f"request {record.id}  {record.action} {record.environment}{revision}  "
    lines = [head + f"{record.status.value} ({record.trigger}, {record.actor})"]
    lines += _request_details(
        record.reason, record.last_error, record.next_attempt_at, record.superseded_by
    )
    return "\n".join(lines)


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
    return "\n".join(lines)


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
    if waiting:
        until = f" (until {waiting['until']})" if waiting.get("until") else ""
        lines.append(f"{environment['name']} {waiting['kind']}: {waiting['reason']}{until}")
    return lines


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
    return "\n".join(lines) or "no events"
