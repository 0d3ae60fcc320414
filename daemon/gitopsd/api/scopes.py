"""Which environments a token reaches: the answers for the ones it does not (SPEC 6, 9).

A tokens file entry may list `environments`; outside them a token's reads answer as for an
environment that does not exist (404, so a scoped token learns nothing of the others) and its
actions are refused (403). Lists (environments, runs, events) keep only the environments the
token reaches. `Identity.reaches` is the rule; this module turns it into the API's answers, so
every route, the dashboard's included, answers the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gitopsd.errors import OutOfScopeError, UnknownEnvironmentError, UnknownRunError
from gitopsd.runtime.control import Identity


def check_read(identity: Identity, environment: str | None) -> None:
    """UnknownEnvironmentError (404, the words of a name nobody knows) outside the scope."""
    if environment is not None and not identity.reaches(environment):
        raise UnknownEnvironmentError(f"unknown environment {environment!r}")


def check_action(identity: Identity, environment: str | None) -> None:
    """OutOfScopeError (403) for an action on an environment outside the token's scope."""
    if environment is not None and not identity.reaches(environment):
        raise OutOfScopeError(
            f"{identity.name!r} may not act on environment {environment!r}:"
            " it is not among the token's environments"
        )


def check(identity: Identity, environment: str | None, *, acting: bool) -> None:
    """`check_action` when `acting`, else `check_read`."""
    if acting:
        check_action(identity, environment)
    else:
        check_read(identity, environment)


def check_run(identity: Identity, run_id: str, environment: str | None, *, acting: bool) -> None:
    """For a run of `environment`: an action outside the scope is refused (403), a read
    answers as for a run that does not exist (UnknownRunError, 404)."""
    if acting:
        check_action(identity, environment)
    elif environment is not None and not identity.reaches(environment):
        raise UnknownRunError(f"unknown run {run_id!r}")


def within(identity: Identity, page: Mapping[str, Any], key: str) -> dict[str, Any]:
    """`page` with its list `key` (`environments`, `runs`, `events`) cut to the items of the
    environments `identity` reaches; cursors stay as they are (positions in the whole list),
    so a scoped token's page may hold fewer items than its limit and still have a next one."""
    if identity.environments is None:
        return dict(page)
    return {**page, key: [item for item in page[key] if _reached(identity, item, key)]}


def _reached(identity: Identity, item: Mapping[str, Any], key: str) -> bool:
    environment = item.get("name") if key == "environments" else item.get("environment")
    return isinstance(environment, str) and identity.reaches(environment)
