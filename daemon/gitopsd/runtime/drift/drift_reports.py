"""Drift reports as JSON (for tools) and Markdown (for a GitHub issue or a job summary).

JSON: `{"environment", "revision", "checked_at", "result", "components": [{"name", "drift",
"exit_code", "summary"}], "remediation": null | {"run", "status", "components"}}`; a
report of several environments is `{"environments": [...]}`. Markdown: a heading per
environment, a table of the components with their state, and each drifted or failed
component's summary in a collapsed block. The daemon writes both under
`.gitopsd/reports/<env>/` after every scheduled check, keeping the newest `KEEP` of each.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gitopsd.model.state import DriftStatus
from gitopsd.runtime.drift.drifting import DriftReport

KEEP = 20
FENCE = "`" * 3
MARKS = {
    DriftStatus.IN_SYNC: "in sync",
    DriftStatus.DRIFTED: "**drifted**",
    DriftStatus.ERROR: "**error**",
    DriftStatus.UNKNOWN: "unknown",
}


def as_data(report: DriftReport) -> dict[str, Any]:
    run = report.remediation
    return {
        "environment": report.environment,
        "revision": report.revision,
        "checked_at": report.checked_at.isoformat(),
        "result": report.result.value,
        "components": [
            {"name": c.name, "drift": c.drift.value, "exit_code": c.exit_code, "summary": c.summary}
            for c in report.components
        ],
        "remediation": (
            {
                "run": run.id,
                "status": run.status.value,
                "components": [c.name for c in report.repaired],
            }
            if run
            else None
        ),
    }


def one_line(report: DriftReport) -> str:
    """`dev: drifted (clusters)`, or `dev: in_sync after re-applying clusters (run ...)`."""
    if report.remediation is not None:
        run = report.remediation
        fixed = ", ".join(c.name for c in report.repaired)
        return (
            f"{report.environment}: {report.result.value} after re-applying {fixed} "
            f"(run {run.id} {run.status.value})"
        )
    drifted = f" ({', '.join(report.drifted())})" if report.drifted() else ""
    return f"{report.environment}: {report.result.value}{drifted}"


def as_json(reports: list[DriftReport]) -> str:
    if len(reports) == 1:
        return json.dumps(as_data(reports[0]), indent=2) + "\n"
    return json.dumps({"environments": [as_data(r) for r in reports]}, indent=2) + "\n"


def as_markdown(reports: list[DriftReport]) -> str:
    return "\n".join(_markdown(report) for report in reports)


def _markdown(report: DriftReport) -> str:
    revision = report.revision[:12] if report.revision else "nothing applied"
    lines = [
        f"## Drift in `{report.environment}`: {MARKS[report.result]}",
        "",
        f"Revision `{revision}`, checked {report.checked_at:%Y-%m-%d %H:%M:%S} UTC.",
        "",
    ]
    if report.components:
        lines += ["| component | state | exit |", "|---|---|---|"]
        lines += [
            f"| `{c.name}` | {MARKS[c.drift]} | {'-' if c.exit_code is None else c.exit_code} |"
            for c in report.components
        ]
        lines.append("")
    for component in report.components:
        if component.drift in (DriftStatus.DRIFTED, DriftStatus.ERROR) and component.summary:
            lines += _details(component.name, "what the check said", component.summary)
    if report.remediation is not None:
        run = report.remediation
        repaired = ", ".join(f"`{c.name}`" for c in report.repaired)
        lines += [
            f"Drifted and re-applied: {repaired} (run `{run.id}` {run.status.value}); "
            "the table is the check after it.",
            "",
        ]
        for component in report.repaired:
            lines += _details(component.name, "what the check said before", component.summary)
    return "\n".join(lines)


def _details(name: str, title: str, summary: str) -> list[str]:
    body = summary.replace(FENCE, "'" * 3)  # a fence inside would end the block early
    return [
        f"<details><summary><code>{name}</code>: {title}</summary>",
        "",
        FENCE,
        body,
        FENCE,
        "",
        "</details>",
        "",
    ]


def write(reports_root: Path, report: DriftReport, *, keep: int = KEEP) -> list[Path]:
    """Write the report as JSON and Markdown under `reports_root/<env>/`; prune old ones."""
    folder = reports_root / report.environment
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"drift-{report.checked_at:%Y%m%dT%H%M%S}"
    written = [folder / f"{stem}.json", folder / f"{stem}.md"]
    written[0].write_text(as_json([report]), encoding="utf-8")
    written[1].write_text(as_markdown([report]), encoding="utf-8")
    for suffix in (".json", ".md"):
        for old in sorted(folder.glob(f"drift-*{suffix}"))[:-keep]:
            old.unlink(missing_ok=True)
    return written


def latest(reports_root: Path, environment: str) -> dict[str, Any] | None:
    """The newest report `write` left for `environment` (as `as_data`), or None: what the
    dashboard's drift page shows. A file that cannot be read counts as none."""
    folder = reports_root / environment
    newest = sorted(folder.glob("drift-*.json"))[-1:] if folder.is_dir() else []
    for path in newest:
        try:
            found = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return found if isinstance(found, dict) else None
    return None
