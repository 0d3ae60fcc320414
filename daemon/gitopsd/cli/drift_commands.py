"""`gitopsd drift`: check environments for drift now, report, and optionally remediate.

Exit codes are SPEC section 5's: 0 in sync, 2 drift, 1 error (a check that failed, or a
remediation run that failed).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from gitopsd.adapters import data_folder
from gitopsd.cli import progress
from gitopsd.cli.context import (
    EXIT_CHANGES,
    EXIT_FAILED,
    EXIT_OK,
    Context,
    common_options,
    fail,
    trust_option,
)
from gitopsd.cli.stopping import stopping
from gitopsd.model.state import DriftStatus
from gitopsd.runtime.drift import drift_reports, drifting


@click.command()
@common_options
@trust_option
@click.option("--env", "environment", default=None, help="Only this environment (default: all).")
@click.option(
    "--report",
    "report_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Write the report to this file.",
)
@click.option(
    "--format",
    "form",
    type=click.Choice(["json", "markdown"]),
    default=None,
    help="Report format (default: json, or markdown for a .md file).",
)
@click.option(
    "--remediate",
    is_flag=True,
    help="Re-apply drifted components (also when the environment sets remediate).",
)
def drift(
    context: Context,
    environment: str | None,
    report_path: Path | None,
    form: str | None,
    remediate: bool,
) -> None:
    """Check for drift now: each applied component's check at the environment's revision."""

    with context.workspace() as workspace, stopping(workspace), progress.shown():
        chosen = [environment] if environment else None
        reports = drifting.check_environments(workspace, chosen, remediate=remediate, actor="local")
    form = form or ("markdown" if report_path and report_path.suffix == ".md" else "json")
    text = (
        drift_reports.as_markdown(reports) if form == "markdown" else drift_reports.as_json(reports)
    )
    if report_path is not None:
        _write_report(context, report_path, text)
    if report_path is None or context.as_json:
        click.echo(text, nl=False)
    else:
        for report in reports:
            click.echo(drift_reports.one_line(report))
    exits = {DriftStatus.IN_SYNC: EXIT_OK, DriftStatus.DRIFTED: EXIT_CHANGES}
    sys.exit(exits.get(drifting.outcome(reports), EXIT_FAILED))


def _write_report(context: Context, path: Path, text: str) -> None:
    """Write the report; a path that cannot name a file (a missing folder, a folder) is the
    user's mistake, said in one line naming it rather than a traceback. A full or read-only
    disk is said as every command says it (cli.context)."""
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as error:
        if data_folder.is_unwritable(error):
            raise
        fail(f"cannot write the report {path}: {error.strerror}", as_json=context.as_json)
