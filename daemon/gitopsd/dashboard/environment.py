"""An environment's page (`/environments/{env}`): its components, graph, history and actions."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from gitopsd.dashboard import access
from gitopsd.dashboard.site import Page, Site


async def environment_page(site: Site, request: Request) -> Response:
    viewer = site.viewer(request)
    access.require(viewer, "read")
    env = request.path_params["env"]
    report = await site.call(site.control.status, env)
    return site.render(
        request, viewer, "environment.html", env=report["environments"][0], live="/events"
    )


PAGES = [Page("/environments/{env}", environment_page)]
