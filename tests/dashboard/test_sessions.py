"""Sessions of the dashboard, read as a page would read them (`access.viewer`)."""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request

from gitopsd.api.auth import Tokens
from gitopsd.dashboard import access
from gitopsd.dashboard.sessions import COOKIE, Sessions
from tests.daemon.conftest import FakeClock


def page_load(cookie: str | None = None) -> Request:
    headers = [] if cookie is None else [(b"cookie", f"{COOKIE}={cookie}".encode())]
    return Request({"type": "http", "method": "GET", "path": "/", "headers": headers})


def test_page_loads_without_the_cookie_do_not_end_the_local_operators_session() -> None:
    """Without a tokens file, any web page can make the operator's browser load dashboard
    pages without its cookie (an image: SameSite cookies are not sent). Each such load
    opened a session, and past the limit the operator's ended: its next form got 403."""
    sessions = Sessions(FakeClock(datetime(2026, 12, 7, tzinfo=UTC)), limit=3)
    operator = access.viewer(page_load(), tokens=Tokens.none(), sessions=sessions)
    assert operator.fresh
    for _ in range(10):
        access.viewer(page_load(), tokens=Tokens.none(), sessions=sessions)
    again = access.viewer(page_load(operator.session.id), tokens=Tokens.none(), sessions=sessions)
    assert not again.fresh
    assert again.session.accepts(operator.session.csrf)
    assert again.identity.name == "local"


def test_a_local_cookie_of_another_shape_gets_a_new_session() -> None:
    sessions = Sessions(FakeClock(datetime(2026, 12, 7, tzinfo=UTC)))
    for cookie in ("", "short", "x" * 44, "a" * 42 + "!"):
        viewer = access.viewer(page_load(cookie), tokens=Tokens.none(), sessions=sessions)
        assert viewer.fresh and viewer.session.id != cookie


def test_another_process_does_not_accept_this_ones_local_csrf_token() -> None:
    """The token is an HMAC of the session id under a key of the process: a cookie alone,
    or one from before a restart, does not make a form's token."""
    clock = FakeClock(datetime(2026, 12, 7, tzinfo=UTC))
    first = access.viewer(page_load(), tokens=Tokens.none(), sessions=Sessions(clock))
    cookie = page_load(first.session.id)
    later = access.viewer(cookie, tokens=Tokens.none(), sessions=Sessions(clock))
    assert not later.session.accepts(first.session.csrf)
