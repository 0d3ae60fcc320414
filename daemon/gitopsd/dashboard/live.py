"""Live pages: `GET /events`, the Server-Sent Events stream every open page listens to.

It says `changed` when what the pages show changed (`changes`: one poll for all streams),
and the page's script fetches the page again. A comment every 15 s keeps proxies from
closing an idle stream; the streams end when the daemon stops.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response

from gitopsd.api import streams
from gitopsd.api.numbers import whole_number
from gitopsd.dashboard import access
from gitopsd.dashboard.site import Page, Site
from gitopsd.runtime.control import Identity

KEEP_ALIVE = 15.0


async def events(site: Site, request: Request) -> Response:
    """Server-Sent Events: `changed` whenever what the pages show changed, a comment every
    15 s to keep proxies from closing the stream."""
    viewer = site.viewer(request)
    access.require(viewer, "read")
    shown = request.query_params.get("v", "")
    seen = whole_number(shown)
    if seen is None:
        seen = site.changes.version(viewer.identity)
    return streams.of(request).response(
        _stream(site, viewer.identity, seen),
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _stream(site: Site, identity: Identity, seen: int) -> AsyncIterator[str]:
    """From the version the page shows (`seen`): a page that is behind already is told so
    at once. The versions are those of what `identity` reaches (`changes`): a change in an
    environment outside a token's scope never wakes its pages."""
    async with site.changes.listening(identity):
        yield "retry: 3000\n\n"
        while not site.changes.closed:
            version = await site.changes.after(identity, seen, timeout=KEEP_ALIVE)
            if site.changes.closed:
                return
            if version == seen:
                yield ": still here\n\n"
                continue
            seen = version
            yield f"event: changed\ndata: {version}\n\n"


PAGES = [Page("/events", events)]
