"""A run's page (`/runs/{id}`): its steps on a timeline with their output, live while the
run goes, and Cancel.

The page is rendered with what the store has: each step's component, action, status,
attempts, times and stored output (redacted and capped as the drivers' output always is),
and, while the run goes, its output so far. Its own script (`static/run.js`) then follows
`/runs/{id}/logs`, the same stream as `GET /api/v1/runs/{id}/logs` (`api.log_stream`) behind
the dashboard's session, and appends what the drivers print; without JavaScript the page
shows the output as it was and a Reload link. Cancel is a form POST with the CSRF token,
refused without the operate role whatever the page showed, and then `Control.cancel`, as the
API's cancel. A run of an environment outside the viewer's token scope is unknown to them
(404: its page and its output), and Cancel on it is refused (403), as the API answers.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from gitopsd.api import scopes
from gitopsd.api.log_stream import run_logs_response
from gitopsd.dashboard import access, timing
from gitopsd.dashboard.site import Page, Site
from gitopsd.runtime.control import Control, Identity

STEPS = 1000  # the steps a page shows (the API pages through more)
# statuses of a run or a request that has not ended: it may still be cancelled
GOING = frozenset({"pending", "running", "queued", "waiting", "retrying"})
DONE = {"cancel": "Cancel requested: the run stops now, its running drivers with it."}


async def run_page(site: Site, request: Request) -> Response:
    viewer = site.viewer(request)
    access.require(viewer, "read")
    run_id = request.path_params["run_id"]
    shown = await site.call(_gather, site.control, run_id, viewer.identity)
    notice = DONE.get(request.query_params.get("done", ""))
    return site.render(request, viewer, "run.html", live="/events", notice=notice, **shown)


def _gather(control: Control, run_id: str, identity: Identity) -> dict[str, Any]:
    """The run, its steps with their bars and times, its commit, and its output so far
    while it goes; 404 for an id no run or request has, or one `identity` may not see."""
    run = control.run(run_id, steps_limit=STEPS)
    if run is None:
        raise HTTPException(404, f"unknown run {run_id!r}")
    scopes.check_run(identity, run_id, run.get("environment"), acting=False)
    now = datetime.now(UTC)
    going = run["status"] in GOING
    logs = control.run_logs(run_id) if going else None
    revision = run.get("revision")
    commits = control.commits([revision]) if revision else []
    return {
        "run": run,
        "going": going,
        "started": timing.clock(run.get("started_at") or run.get("created_at")),
        "duration": timing.span(run.get("started_at"), run.get("finished_at"), now),
        "steps": steps(run, now),
        "more_steps": run.get("next_steps_cursor") is not None,
        "commit": commits[0] if commits else None,
        "output": logs.text if logs is not None else None,
    }


def steps(run: dict[str, Any], now: datetime) -> list[dict[str, Any]]:
    """Each step as the timeline shows it: its facts, its times and its bar."""
    found = run.get("steps", [])
    bars = timing.bars(run, found, now)
    return [
        {
            **step,
            "start": timing.clock(step.get("started_at")),
            "end": timing.clock(step.get("finished_at")),
            "took": timing.span(step.get("started_at"), step.get("finished_at"), now),
            "bar": bar,
        }
        for step, bar in zip(found, bars, strict=True)
    ]


async def run_logs(site: Site, request: Request) -> Response:
    """The run's output as `GET /api/v1/runs/{id}/logs` serves it, for the session's user."""
    viewer = site.viewer(request)
    access.require(viewer, "read")
    run_id = request.path_params["run_id"]
    await _check_reach(site, viewer, run_id, acting=False)
    return await run_logs_response(site.control, run_id, request)


async def _check_reach(site: Site, viewer: access.Viewer, run_id: str, *, acting: bool) -> None:
    """The scope rule for the run's environment (`scopes.check_run`); an unknown run is
    left to the caller, which answers 404 for it."""
    if viewer.identity.environments is None:
        return
    run = await site.call(site.control.run, run_id, steps_limit=1)
    if run is not None:
        scopes.check_run(viewer.identity, run_id, run.get("environment"), acting=acting)


async def cancel(site: Site, request: Request) -> Response:
    """Ask the run to stop (operate role), then back to its page, which says so."""
    viewer = site.viewer(request)
    await access.checked_form(request, viewer)
    access.require(viewer, "operate")
    run_id = request.path_params["run_id"]
    await _check_reach(site, viewer, run_id, acting=True)
    asked = await site.call(site.control.cancel, run_id, identity=viewer.identity)
    if asked is None:
        raise HTTPException(404, f"unknown run {run_id!r}")
    return RedirectResponse(f"/runs/{quote(run_id, safe='')}?done=cancel", status_code=303)


PAGES = [
    Page("/runs/{run_id}", run_page),
    Page("/runs/{run_id}/logs", run_logs),
    Page("/runs/{run_id}/cancel", cancel, ("POST",)),
]
