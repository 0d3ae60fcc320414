"""The samples of drift reports are what `gitopsd drift --report` writes: the renderer's
output for the same facts, character for character (the README's Markdown with its fenced
block of what the check said; docs/drift.md's JSON with its layout and time format), so
that a tool written against a sample reads the real report."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from gitopsd.model.state import DriftStatus, Run, RunAction, RunStatus
from gitopsd.runtime.drift import drift_reports
from gitopsd.runtime.drift.drifting import ComponentDrift, DriftReport

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = re.compile(r"^(`{3,})markdown\n(## Drift in .*?)\n\1$", re.DOTALL | re.MULTILINE)
JSON_SAMPLE = re.compile(r"^```json\n(\{\n  \"environment\".*?)^```$", re.DOTALL | re.MULTILINE)


def readme_sample() -> str:
    found = SAMPLE.search((ROOT / "README.md").read_text(encoding="utf-8"))
    assert found is not None, "the README shows no drift report"
    return found.group(2)


def test_the_readmes_drift_report_is_what_the_renderer_writes() -> None:
    """The README's facts: dev's clusters drifted (node_count 9) and were re-applied."""
    checked_at = datetime(2026, 11, 30, 23, 4, 9, tzinfo=UTC)
    in_sync = [
        ComponentDrift(name, DriftStatus.IN_SYNC, f"{name} (dev): in sync", 0)
        for name in ("network", "clusters", "ingress", "platform")
    ]
    before = "clusters (dev): drifted\n  ~ node_count: 9 -> 1"
    run = Run(
        id="20261130T230409-d544cb",
        environment="dev",
        revision="43636667f8059806298e8dfd93fd00022edfcf96",
        action=RunAction.APPLY,
        status=RunStatus.SUCCEEDED,
        trigger="remediation",
        created_at=checked_at,
    )
    report = DriftReport(
        environment="dev",
        revision=run.revision,
        checked_at=checked_at,
        components=in_sync,
        remediation=run,
        repaired=[ComponentDrift("clusters", DriftStatus.DRIFTED, before, 2)],
    )
    assert readme_sample() + "\n" == drift_reports.as_markdown([report])


def test_the_json_sample_of_docs_drift_is_what_the_renderer_writes() -> None:
    found = JSON_SAMPLE.search((ROOT / "docs/drift.md").read_text(encoding="utf-8"))
    assert found is not None, "docs/drift.md shows no JSON report"
    report = DriftReport(
        environment="dev",
        revision="43636667f8059806298e8dfd93fd00022edfcf96",
        checked_at=datetime(2026, 11, 30, 22, 58, 44, 104211, tzinfo=UTC),
        components=[
            ComponentDrift("network", DriftStatus.IN_SYNC, "network (dev): in sync", 0),
            ComponentDrift(
                "clusters",
                DriftStatus.DRIFTED,
                "clusters (dev): drifted\n  ~ node_count: 9 -> 1",
                2,
            ),
        ],
    )
    assert found.group(1) == drift_reports.as_json([report])
