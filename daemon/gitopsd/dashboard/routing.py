"""The dashboard's routes, for the API app to serve beside its own.

They are plain Starlette routes added to the API app (`api.app.create_app(extra_routes=...)`),
so the API's middleware guards them too: the Host, Origin and Sec-Fetch-Site rules, body
limits, crash handling. A new page module adds its `PAGES` to `PAGE_MODULES`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from gitopsd.adapters.clock import SystemClock
from gitopsd.api.auth import Tokens
from gitopsd.dashboard import (
    actions,
    drift,
    environment,
    live,
    login,
    pipeline,
    run_page,
    runs_pages,
)
from gitopsd.dashboard.changes import Changes
from gitopsd.dashboard.sessions import Sessions
from gitopsd.dashboard.site import Site, bind
from gitopsd.engine.ports import Clock
from gitopsd.runtime.control import Control

STATIC = Path(__file__).with_name("static")
PAGE_MODULES = (login, live, pipeline, environment, actions, drift, runs_pages, run_page)


@dataclass(frozen=True)
class Dashboard:
    """The routes to serve, and `close` to end the open event streams when the daemon stops."""

    routes: list[BaseRoute]
    close: Callable[[], None]


def dashboard(
    control: Control, *, tokens: Tokens, clock: Clock | None = None, https: bool = False
) -> Dashboard:
    """Every page of `PAGE_MODULES`, and the CSS and JavaScript under `/static`; `https`
    when browsers reach the daemon over TLS (its cookies are then Secure)."""
    sessions = Sessions(clock or SystemClock())
    site = Site(control, tokens, sessions, Changes(control), https=https)
    pages = [page for module in PAGE_MODULES for page in module.PAGES]
    bound: list[BaseRoute] = [
        Route(page.path, bind(site, page.endpoint), methods=list(page.methods)) for page in pages
    ]
    static = Mount("/static", StaticFiles(directory=STATIC), name="static")
    return Dashboard([*bound, static], site.changes.close)
