"""The pipeline page (`/`): one card per environment in promotion order, kept current by SSE.

Each card says what the environment runs, where it stands, what it waits for and until when
(with an Approve button for those who may approve), its drift and its last run; below them,
the revision timeline. The page updates itself through `live`. A viewer whose token reaches
only some environments sees only those, in the cards and in the timeline alike.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from gitopsd.api import scopes
from gitopsd.dashboard import access
from gitopsd.dashboard.site import Page, Site
from gitopsd.runtime.control import Control, Identity

TIMELINE = 10  # the newest commits the revision timeline shows


async def pipeline(site: Site, request: Request) -> Response:
    viewer = site.viewer(request)
    access.require(viewer, "read")
    shown = await site.call(_gather, site.control, viewer.identity)
    return site.render(request, viewer, "pipeline.html", live="/events", **shown)


def _gather(control: Control, identity: Identity) -> dict[str, Any]:
    """The cards (the environments `identity` reaches in chain order, each with its commit,
    last run and drifted components) and the revision timeline."""
    environments = reached(control, identity)
    commits = control.commits([e["revision"] for e in environments], recent=TIMELINE)
    by_revision = {commit["revision"]: commit for commit in commits}
    for environment in environments:
        runs = control.runs(environment["name"], limit=1)["runs"]
        environment["last_run"] = runs[0] if runs else None
        environment["commit"] = by_revision.get(environment["revision"] or "")
        environment["drifted"] = [
            c["name"] for c in environment["components"] if c["drift"] in ("drifted", "error")
        ]
    return {"cards": environments, "timeline": timeline(commits[:TIMELINE], environments)}


def timeline(
    commits: list[dict[str, Any]], environments: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Each recent commit with the environments that verified it, run it now, or wait for it
    (approval, window or soak)."""
    rows = []
    for commit in commits:
        sha = commit["revision"]
        rows.append(
            {
                **commit,
                "runs": [e["name"] for e in environments if e["revision"] == sha],
                "verified": [e["name"] for e in environments if sha in e["verified"]],
                "waits": [e["name"] for e in environments if _waits_for(e, sha)],
            }
        )
    return rows


def _waits_for(environment: dict[str, Any], sha: str) -> bool:
    pending = environment.get("pending_approval") or {}
    waiting = environment.get("waiting") or {}
    return sha in (pending.get("revision"), waiting.get("revision"))


def reached(control: Control, identity: Identity) -> list[dict[str, Any]]:
    """The status of each environment `identity` reaches, in chain order."""
    report = scopes.within(identity, control.status(), "environments")
    return chain_order(report["environments"])


def chain_order(environments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Upstreams before the environments they feed (dev, staging, prod), else by name."""
    by_name = {e["name"]: e for e in environments}
    placed: dict[str, int] = {}

    def depth(name: str, seen: frozenset[str]) -> int:
        if name not in placed:
            upstream = str(by_name[name].get("upstream"))
            known = upstream in by_name and upstream not in seen
            placed[name] = depth(upstream, seen | {name}) + 1 if known else 0
        return placed[name]

    return sorted(environments, key=lambda e: (depth(e["name"], frozenset()), e["name"]))


async def approve(site: Site, request: Request) -> Response:
    """Approve the pending revision the card showed, as the viewer (the approve role)."""
    viewer = site.viewer(request)
    fields = await access.checked_form(request, viewer)
    env = request.path_params["env"]
    access.require_on(viewer, "approve", env)
    revision = fields.get("revision") or None
    await site.call(site.control.approve, env, revision=revision, identity=viewer.identity)
    return RedirectResponse(_back(fields.get("back"), env), status_code=303)


def _back(back: str | None, env: str) -> str:
    """Where a form returns: the page it was on (`/` or the environment's page)."""
    page = f"/environments/{quote(env, safe='')}"
    return f"{page}?done=approve" if back == page else "/"


PAGES = [
    Page("/", pipeline),
    Page("/environments/{env}/approve", approve, ("POST",)),
]
