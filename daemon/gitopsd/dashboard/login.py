"""Logging in and out: a token from the tokens file, typed once, becomes a session cookie.

The login form is a POST like any other, so it carries a CSRF token too: before there is a
session, a short-lived random value in a cookie of its own (`gitopsd_login`) that the form
repeats (a "double submit"), so that another site cannot log a browser in as someone else.
"""

from __future__ import annotations

import hmac
import re
import secrets
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from gitopsd.api.auth import Tokens
from gitopsd.dashboard import access
from gitopsd.dashboard.sessions import COOKIE
from gitopsd.dashboard.site import Page, Site, set_session_cookie
from gitopsd.errors import DashboardAccessError
from gitopsd.runtime.control import Identity

LOGIN_COOKIE = "gitopsd_login"
LOGIN_COOKIE_AGE = 3600
_CSRF_SHAPE = re.compile(r"[A-Za-z0-9_-]{43}")  # what token_urlsafe(32) makes


async def login_page(site: Site, request: Request) -> Response:
    """The login form; without a tokens file there is nothing to log in to: the pipeline."""
    if not site.tokens.present:
        return RedirectResponse("/", status_code=303)
    return _form(site, request, next_path=request.query_params.get("next", "/"))


def _form(site: Site, request: Request, *, next_path: str, problem: str | None = None) -> Response:
    """The form, with the browser's login CSRF value if it has one already: a second
    rendering of /login (another tab, or a page whose session ended fetching itself and
    being sent here) would otherwise replace the cookie under a form already open, which
    then failed with "CSRF token ... wrong"."""
    kept = request.cookies.get(LOGIN_COOKIE, "")
    csrf = kept if _CSRF_SHAPE.fullmatch(kept) else secrets.token_urlsafe(32)
    status = 401 if problem else 200
    response = site.render(
        request,
        None,
        "login.html",
        csrf=csrf,
        next=_local(next_path),
        problem=problem,
        status=status,
    )
    response.set_cookie(
        LOGIN_COOKIE, csrf, max_age=LOGIN_COOKIE_AGE, path="/login", httponly=True,
        samesite="strict", secure=site.secure(request),
    )  # fmt: skip
    return response


async def log_in(site: Site, request: Request) -> Response:
    """Check the form's CSRF value and the token; a good token opens a session."""
    fields = await access.form(request)
    expected = request.cookies.get(LOGIN_COOKIE, "")
    given = fields.get("csrf", "")
    if not expected or not hmac.compare_digest(expected.encode(), given.encode()):
        raise DashboardAccessError("the login form's CSRF token is missing or wrong: reload it")
    next_path = _local(fields.get("next", "/"))
    identity = _identity(site.tokens, fields.get("token", ""))
    if identity is None:
        return _form(site, request, next_path=next_path, problem="unknown token")
    session = site.sessions.open(identity)
    response = RedirectResponse(next_path, status_code=303)
    set_session_cookie(response, session.id, secure=site.secure(request))
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    return response


def _identity(tokens: Tokens, token: str) -> Identity | None:
    token = token.strip()
    return tokens.authenticate(f"Bearer {token}") if token and tokens.present else None


async def log_out(site: Site, request: Request) -> Response:
    """End the session (a POST with its CSRF token, so no other site can log you out)."""
    viewer = site.viewer(request)
    await access.checked_form(request, viewer)
    site.sessions.close(viewer.session.id)
    response = RedirectResponse("/login" if site.tokens.present else "/", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


def _local(path: str) -> str:
    """Only a path on this server to go back to after logging in (no open redirect)."""
    parts = urlsplit(path)
    if parts.scheme or parts.netloc or not path.startswith("/") or path.startswith("//"):
        return "/"
    return path


PAGES = [
    Page("/login", login_page),
    Page("/login", log_in, ("POST",)),
    Page("/logout", log_out, ("POST",)),
]
