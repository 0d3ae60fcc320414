"""What an environment's page lets a user do: roll back, suspend, resume, check drift, and
see the diff to the next candidate.

Every action is a form POST carrying the session's CSRF token, checked before anything
else; then the role (operate) and the token's reach of the environment (403 outside it) are
checked, whatever the page showed; then it is the same
`Control` call the API makes, so the daemon's rules and its history are the same. A done
action goes back to the environment's page, which says what was done.
"""

from __future__ import annotations

from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from gitopsd.dashboard import access
from gitopsd.dashboard.site import Page, Site
from gitopsd.errors import InvalidRequestError
from gitopsd.model.state import reason_problem


async def _operator(site: Site, request: Request) -> tuple[access.Viewer, dict[str, str]]:
    viewer = site.viewer(request)
    fields = await access.checked_form(request, viewer)
    access.require_on(viewer, "operate", request.path_params["env"])
    return viewer, fields


def _done(env: str, done: str, run: str = "") -> Response:
    query = urlencode({"done": done, **({"run": run} if run else {})})
    return RedirectResponse(f"/environments/{quote(env, safe='')}?{query}", status_code=303)


async def rollback(site: Site, request: Request) -> Response:
    viewer, fields = await _operator(site, request)
    env, revision = request.path_params["env"], fields.get("revision", "").strip()
    if not revision:
        raise InvalidRequestError("revision: choose a revision to roll back to")
    control = site.control
    run = await site.call(control.rollback, env, revision=revision, identity=viewer.identity)
    return _done(env, "rollback", run)


async def suspend(site: Site, request: Request) -> Response:
    viewer, fields = await _operator(site, request)
    env, reason = request.path_params["env"], fields.get("reason", "").strip()
    problem = reason_problem(reason)
    if problem is not None:
        raise InvalidRequestError(f"reason: {problem}")
    await site.call(site.control.suspend, env, reason=reason, identity=viewer.identity)
    return _done(env, "suspend")


async def resume(site: Site, request: Request) -> Response:
    viewer, _ = await _operator(site, request)
    env = request.path_params["env"]
    await site.call(site.control.resume, env, identity=viewer.identity)
    return _done(env, "resume")


async def check_drift(site: Site, request: Request) -> Response:
    viewer, _ = await _operator(site, request)
    env = request.path_params["env"]
    check = await site.call(site.control.submit_drift_check, env, identity=viewer.identity)
    return _done(env, "drift", check)


async def diff_page(site: Site, request: Request) -> Response:
    """The diff to the next candidate (or `?from=&to=`, or `?other=ENV`: what that
    environment has that this one lacks); both sides within the viewer's scope."""
    viewer = site.viewer(request)
    env, query = request.path_params["env"], request.query_params
    access.require_on(viewer, "read", env)
    access.require_on(viewer, "read", query.get("other") or None)  # the other side is read too
    found = await site.call(
        site.control.diff,
        env,
        old=query.get("from") or None,
        new=query.get("to") or None,
        other=query.get("other") or None,
    )
    return site.render(request, viewer, "diff.html", env=env, diff=found)


PAGES = [
    Page("/environments/{env}/diff", diff_page),
    Page("/environments/{env}/rollback", rollback, ("POST",)),
    Page("/environments/{env}/suspend", suspend, ("POST",)),
    Page("/environments/{env}/resume", resume, ("POST",)),
    Page("/environments/{env}/drift-check", check_drift, ("POST",)),
]
