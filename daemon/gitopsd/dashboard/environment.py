"""An environment's page (`/environments/{env}`): components in dependency order with the
graph drawn as SVG, its history (filterable by kind), and what may be done to it.

The actions themselves (rollback, suspend, resume, drift check) are in `actions`; this
module gathers what the page shows, all of it from `Control`.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gitopsd.dashboard import access, graph
from gitopsd.dashboard.site import Page, Site
from gitopsd.runtime.control import Control

HISTORY = 200  # the newest events the history is filtered from
DONE = {
    "rollback": (
        "Rollback queued as run {run}. If this environment follows the branch or promotes"
        " automatically, the rollback suspends that automatic work, which would undo it:"
        " resume once a fix is ready."
    ),
    "suspend": "Suspended: automatic work is held.",
    "resume": "Resumed.",
    "drift": "Drift check queued ({run}).",
    "approve": "Approval recorded.",
}


async def environment_page(site: Site, request: Request) -> Response:
    viewer = site.viewer(request)
    env = request.path_params["env"]
    access.require_on(viewer, "read", env)  # outside the token's scope: as an unknown one
    kind = request.query_params.get("kind") or None
    shown = await site.call(_gather, site.control, env, kind)
    notice = _notice(request.query_params.get("done"), request.query_params.get("run", ""))
    return site.render(
        request, viewer, "environment.html", live="/events", notice=notice, kind=kind, **shown
    )


def _gather(control: Control, env: str, kind: str | None) -> dict[str, Any]:
    environment = control.status(env)["environments"][0]
    drawn = control.graph(env)["components"]
    components = _in_order(environment["components"], drawn)
    statuses = {c["name"]: c["status"] for c in components}
    events = control.events(env, limit=HISTORY)["events"]
    commits = control.commits([environment["revision"], *environment["verified"]])
    return {
        "env": environment,
        "components": components,
        "layout": graph.layout(drawn, statuses),
        "events": [e for e in events if kind is None or _is_kind(e["kind"], kind)],
        "kinds": sorted({e["kind"] for e in events}),
        "commits": {c["revision"]: c for c in commits},
        "rollback_to": [r for r in environment["verified"] if r != environment["revision"]],
    }


def _in_order(
    components: list[dict[str, Any]], drawn: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The status's components in dependency order; those the head no longer has (not yet
    applied ones show as `never applied`) after them."""
    known = {c["name"]: c for c in components}
    ordered = [
        known.get(d["name"])
        or {"name": d["name"], "status": "never applied", "revision": None, "outputs": {},
            "drift": "unknown"}
        for d in drawn
    ]  # fmt: skip
    order = {d["name"] for d in drawn}
    return ordered + [c for c in components if c["name"] not in order]


def _is_kind(kind: str, wanted: str) -> bool:
    """`approval` matches `approval.recorded` and `approval.refused`; a full kind itself."""
    return kind == wanted or kind.startswith(wanted + ".")


def _notice(done: str | None, run: str) -> str | None:
    """The line that says an action was taken (fixed texts: nothing from the URL but an id)."""
    if done not in DONE:
        return None
    safe_run = run if run.replace("-", "").replace("_", "").isalnum() else "?"
    return DONE[done].format(run=safe_run)


PAGES = [Page("/environments/{env}", environment_page)]
