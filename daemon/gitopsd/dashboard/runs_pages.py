"""The runs list (`/runs`): every run and request not started yet, newest first, filtered by
environment, status and action with a plain GET form, a page at a time.

The filters and the pages are those of `GET /api/v1/runs` (`Control.runs` and its cursors),
so a link to a filtered page is a bookmark a user can share, and it works without
JavaScript; the first page updates by itself when a run starts or ends. A viewer whose token
reaches only some environments sees only their runs and may filter by those only, as the API
answers the same token.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from gitopsd.api import scopes
from gitopsd.api.numbers import whole_number
from gitopsd.dashboard import access, timing
from gitopsd.dashboard.pipeline import reached
from gitopsd.dashboard.site import Page, Site
from gitopsd.errors import InvalidRequestError
from gitopsd.runtime.control import RUN_ACTIONS, RUN_STATUSES, Control, Identity

PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
FILTERS = ("env", "status", "action")


async def runs_page(site: Site, request: Request) -> Response:
    viewer = site.viewer(request)
    chosen = {name: request.query_params.get(name) or None for name in FILTERS}
    access.require_on(viewer, "read", chosen["env"])
    cursor = request.query_params.get("cursor") or None
    size = page_size(request.query_params.get("limit"))
    shown = await site.call(_gather, site.control, viewer.identity, chosen, cursor, size)
    return site.render(
        request,
        viewer,
        "runs.html",
        live=None if cursor else "/events",  # an older page stays as it was asked for
        chosen=chosen,
        cursor=cursor,
        statuses=RUN_STATUSES,
        actions=RUN_ACTIONS,
        size=size,
        default_size=PAGE_SIZE,
        newest_url=_url(chosen, None, size),
        **shown,
    )


def page_size(asked: str | None) -> int:
    """`limit`: how many runs a page lists (1 to MAX_PAGE_SIZE, default PAGE_SIZE)."""
    if not asked:
        return PAGE_SIZE
    size = whole_number(asked)
    if size is None or not 1 <= size <= MAX_PAGE_SIZE:
        raise InvalidRequestError(f"limit: a whole number from 1 to {MAX_PAGE_SIZE}")
    return size


def _gather(
    control: Control,
    identity: Identity,
    chosen: dict[str, str | None],
    cursor: str | None,
    size: int,
) -> dict[str, Any]:
    """The rows of the page and the environments to filter by (of those `identity`
    reaches), and the next page's address."""
    found = control.runs(
        chosen["env"],
        limit=size,
        cursor=cursor,
        status=chosen["status"],
        action=chosen["action"],
    )
    page = scopes.within(identity, found, "runs")
    environments = [e["name"] for e in reached(control, identity)]
    following = page["next_cursor"]
    now = datetime.now(UTC)
    return {
        "rows": [row(entry, now) for entry in page["runs"]],
        "environments": environments,
        "older_url": _url(chosen, following, size) if following else None,
    }


def row(entry: dict[str, Any], now: datetime) -> dict[str, Any]:
    """A run (or a request not started yet) as the list shows it."""
    started = entry.get("started_at")
    return {
        "id": entry["id"],
        "environment": entry["environment"],
        "action": entry["action"],
        "status": entry["status"],
        "revision": entry.get("revision"),
        "trigger": entry.get("trigger", ""),
        "actor": entry.get("actor", ""),
        "started": timing.clock(started or entry.get("created_at")),
        "duration": timing.span(started, entry.get("finished_at"), now),
        "reason": entry.get("reason") or entry.get("error"),
    }


def _url(chosen: dict[str, str | None], cursor: str | None, size: int) -> str:
    """The list's address with these filters (and page): what the filter form submits."""
    query = {name: value for name, value in chosen.items() if value}
    if size != PAGE_SIZE:
        query["limit"] = str(size)
    if cursor:
        query["cursor"] = cursor
    return "/runs" + (f"?{urlencode(query)}" if query else "")


PAGES = [Page("/runs", runs_page)]
