"""Who is looking at a page, what they may do, and whether a form really came from us.

A browser proves who it is with the session cookie `login` gave it; without a tokens file
(loopback only) everyone is `local` with every role and gets a session cookie on the first
page, so that the forms carry a CSRF token all the same (`Sessions.local`: kept by the
browser alone). A POST must send its session's CSRF
token in the form (`csrf`); the Origin, Sec-Fetch-Site and Host rules of `api.guards` are
applied before a route is reached, by the API app's middleware.

A viewer's token may reach only some environments: `require_on` applies the API's answers
(`api.scopes`: a read outside the scope answers as for an unknown environment, an action is
refused), so a page and the API route it mirrors never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs

from starlette.requests import Request

from gitopsd.api import scopes
from gitopsd.api.auth import LOCAL, ROLES, Role, Tokens
from gitopsd.dashboard.sessions import COOKIE, Session, Sessions
from gitopsd.errors import DashboardAccessError, InvalidRequestError
from gitopsd.runtime.control import Identity

MAX_FIELDS = 20


class LoginRequiredError(Exception):
    """No session: the page answers with a redirect to the login page (not an error page)."""


@dataclass(frozen=True)
class Viewer:
    """The person a page is for: who they are, the roles they hold, and their session."""

    session: Session
    roles: frozenset[Role]
    fresh: bool = False  # a session opened by this request: its cookie must be set

    @property
    def identity(self) -> Identity:
        return self.session.identity

    def may(self, role: Role) -> bool:
        return role in self.roles

    def reaches(self, environment: str) -> bool:
        """Whether the viewer's token reaches `environment` (a page links only to those)."""
        return self.identity.reaches(environment)


def viewer(request: Request, *, tokens: Tokens, sessions: Sessions) -> Viewer:
    """The viewer of `request`; LoginRequiredError when a tokens file asks for a login."""
    if tokens.present:
        found = sessions.find(request.cookies.get(COOKIE))
        if found is None:
            raise LoginRequiredError
        session, fresh = found, False
    else:
        session, fresh = sessions.local(LOCAL, request.cookies.get(COOKIE))
    roles = frozenset(role for role in ROLES if tokens.allows(session.identity, role))
    return Viewer(session, roles, fresh=fresh)


def require(viewer: Viewer, role: Role) -> None:
    """Refuse (403) a viewer without `role`: the page hides the button, the server refuses."""
    if not viewer.may(role):
        raise DashboardAccessError(f"{viewer.identity.name!r} does not have the {role!r} role")


def require_on(viewer: Viewer, role: Role, environment: str | None) -> None:
    """`require` the role, then the token's scope for `environment` (None: no environment
    named): outside it a read answers 404 as for an unknown environment, an action 403."""
    require(viewer, role)
    scopes.check(viewer.identity, environment, acting=role != "read")


async def form(request: Request) -> dict[str, str]:
    """An `application/x-www-form-urlencoded` body as one value per field (the first)."""
    body = (await request.body()).decode("utf-8", "replace")
    try:
        fields = parse_qs(body, keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except ValueError:
        raise InvalidRequestError(f"a form has at most {MAX_FIELDS} fields") from None
    return {name: values[0] for name, values in fields.items()}


async def checked_form(request: Request, viewer: Viewer) -> dict[str, str]:
    """The form of a POST after its CSRF token is checked (403 when missing or wrong)."""
    fields = await form(request)
    if not viewer.session.accepts(fields.get("csrf")):
        raise DashboardAccessError("the form's CSRF token is missing or wrong: reload the page")
    return fields
