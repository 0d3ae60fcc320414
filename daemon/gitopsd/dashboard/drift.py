"""The drift page (`/drift`): the latest drift report of each environment, with the same
content as the Markdown report the daemon writes (runtime.drift.drift_reports): the result,
revision and time of the check, each component's state and exit code, what the check said
of each drifted or failed component, and the re-apply a remediation made; of the
environments the viewer's token reaches only."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gitopsd.dashboard import access
from gitopsd.dashboard.pipeline import reached
from gitopsd.dashboard.site import Page, Site
from gitopsd.runtime.control import Control, Identity


async def drift_page(site: Site, request: Request) -> Response:
    viewer = site.viewer(request)
    access.require(viewer, "read")
    reports = await site.call(_reports, site.control, viewer.identity)
    return site.render(request, viewer, "drift.html", reports=reports, live="/events")


def _reports(control: Control, identity: Identity) -> list[tuple[str, dict[str, Any] | None]]:
    """(environment, its newest report or None) in chain order, of those `identity` reaches."""
    environments = reached(control, identity)
    return [(e["name"], control.drift_report(e["name"])) for e in environments]


PAGES = [Page("/drift", drift_page)]
