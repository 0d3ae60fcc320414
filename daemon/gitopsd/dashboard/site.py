"""What every dashboard page shares: the `Site`, the page-rendering helper, the cookie.

Each page module lists its pages in `PAGES` (`Page`: path, endpoint, methods); an endpoint
takes the `Site` and the request. `bind` makes it a Starlette endpoint whose errors become
HTML pages with the status the API would answer (`gitopsd.answers`), and which sends a
viewer without a session to the login page.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from jinja2 import Environment
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from gitopsd import answers
from gitopsd.api.auth import Tokens
from gitopsd.dashboard import access, rendering
from gitopsd.dashboard.changes import Changes
from gitopsd.dashboard.sessions import COOKIE, LIFETIME, Sessions
from gitopsd.errors import GitopsdError
from gitopsd.runtime.control import Control

logger = logging.getLogger(__name__)
# What every page says to the browser. no-store: pages carry CSRF tokens and what a user may
# see; a cached login form would post a token its cookie no longer matches. The policy lets a
# page load its own CSS and scripts only (the templates have no inline ones), so text that
# slipped into the markup would run nothing; and no page may be framed, not even by a page of
# the same site (another port, a sibling subdomain), which SameSite=Strict does not stop and
# whose disguised click would press an Approve button (clickjacking).
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
        " object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


@dataclass
class Site:
    """What every page uses: the daemon, the tokens, the sessions and the templates."""

    control: Control
    tokens: Tokens
    sessions: Sessions
    changes: Changes
    templates: Environment = field(default_factory=rendering.templates)
    # browsers reach the daemon over TLS (an https:// public URL), through a proxy that may
    # not be on loopback, whose X-Forwarded-Proto the server does not take: cookies are Secure
    https: bool = False

    def secure(self, request: Request) -> bool:
        """Whether cookies must be Secure: the public URL is https://, or this request is."""
        return self.https or request.url.scheme == "https"

    def viewer(self, request: Request) -> access.Viewer:
        """Who is asking (`access.viewer`); LoginRequiredError sends them to log in."""
        return access.viewer(request, tokens=self.tokens, sessions=self.sessions)

    async def call(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """A `Control` call, in the threadpool: the daemon answers from its store."""
        return await run_in_threadpool(function, *args, **kwargs)

    def render(
        self, request: Request, viewer: access.Viewer | None, template: str, **data: Any
    ) -> HTMLResponse:
        """A page: `template` with `data`, the viewer, and the current path for navigation;
        a session this request opened gets its cookie. A live page (`live`: its events URL)
        listens from the version of the daemon's state it shows."""
        if data.get("live") and viewer is not None:  # the version of what the viewer may see
            data["live"] = f"{data['live']}?v={self.changes.version(viewer.identity)}"
        page = self.templates.get_template(template).render(
            **rendering.context_defaults(), viewer=viewer, path=request.url.path, **data
        )
        status = int(data.get("status", 200))
        response = HTMLResponse(page, status_code=status, headers=PAGE_HEADERS)
        if viewer is not None and viewer.fresh:
            set_session_cookie(response, viewer.session.id, secure=self.secure(request))
        return response


Endpoint = Callable[[Site, Request], Awaitable[Response]]


@dataclass(frozen=True)
class Page:
    """One route of the dashboard: its path, its endpoint and its methods."""

    path: str
    endpoint: Endpoint
    methods: Sequence[str] = ("GET",)


def bind(site: Site, endpoint: Endpoint) -> Callable[[Request], Awaitable[Response]]:
    async def page(request: Request) -> Response:
        try:
            return await endpoint(site, request)
        except access.LoginRequiredError:
            return login_redirect(request)
        except HTTPException as error:
            return _error_page(site, request, error.status_code, str(error.detail))
        except GitopsdError as error:
            answer = answers.http_answer(error)
            if answer is None:
                return _crashed(site, request)
            return _error_page(site, request, answer.status, answer.body["error"])
        except Exception:  # a bug: logged, and a page that reveals nothing of it
            return _crashed(site, request)

    return page


def _crashed(site: Site, request: Request) -> HTMLResponse:
    logger.exception("dashboard page %s failed", request.url.path)
    return _error_page(site, request, 500, "the daemon failed to answer: see its log")


def _error_page(site: Site, request: Request, status: int, message: str) -> HTMLResponse:
    return site.render(request, None, "error.html", status=status, message=message)


def login_redirect(request: Request) -> Response:
    """To the login page, which comes back here afterwards (`next`)."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


def set_session_cookie(response: Response, session_id: str, *, secure: bool) -> None:
    """HttpOnly (no script reads it), SameSite=Strict (no other site sends it), Secure over
    TLS (`Site.secure`); it lasts as long as the session does."""
    response.set_cookie(
        COOKIE,
        session_id,
        max_age=int(LIFETIME.total_seconds()),
        path="/",
        httponly=True,
        samesite="strict",
        secure=secure,
    )
