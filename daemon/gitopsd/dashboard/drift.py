"""The drift page (`/drift`): the latest drift report of each environment."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from gitopsd.dashboard import access
from gitopsd.dashboard.site import Page, Site


async def drift_page(site: Site, request: Request) -> Response:
    viewer = site.viewer(request)
    access.require(viewer, "read")
    report = await site.call(site.control.status)
    return site.render(request, viewer, "drift.html", environments=report["environments"])


PAGES = [Page("/drift", drift_page)]
