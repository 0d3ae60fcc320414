"""What a route of the API needs from its request: the app's context, who calls, the body.

`caller` is the one place a route's caller is checked: 401 without a valid token, 403 without
the route's role, and the token's scope (`scopes`) for the environment the route names, so a
route added later cannot forget any of the three. Bodies and query parameters are validated
with pydantic and refused with 422, `<field>: <message>` for each problem.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request

from gitopsd.api import deliveries, scopes
from gitopsd.api.auth import Role, Tokens, bearer_token
from gitopsd.engine import json_limits
from gitopsd.errors import InvalidRequestError, JsonLimitError
from gitopsd.runtime.control import Control, Identity

MAX_LIMIT = 1000
Model = TypeVar("Model", bound=BaseModel)


class RequestInvalidError(InvalidRequestError):
    """A malformed body or query parameter: 422 with `<field>: <message>` for each problem
    (private to the API: it only joins the problems pydantic found)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))


@dataclass(frozen=True)
class Context:
    control: Control
    tokens: Tokens
    webhook_secret: bytes | None
    recent_deliveries: deliveries.RecentDeliveries


def context(request: Request) -> Context:
    """What `create_app` was given, kept on the app so the module-level routes serve any app."""
    found: Context = request.app.state.gitopsd
    return found


def caller(request: Request, role: Role) -> Identity:
    """The caller's identity: 401 without a valid token, 403 without `role`; then, for the
    environment the route names (`{env}` in its path, else `?env=`), 404 to a read and 403
    to an action when the token does not reach it (`scopes`), on every route alike."""
    tokens = context(request).tokens
    header = request.headers.get("authorization")
    identity = tokens.authenticate(header)
    if identity is None:
        problem = "invalid bearer token" if bearer_token(header) else "missing bearer token"
        raise HTTPException(401, problem, headers={"WWW-Authenticate": "Bearer"})
    if not tokens.allows(identity, role):
        raise HTTPException(403, f"{identity.name!r} does not have the {role!r} role")
    named = request.path_params.get("env") or request.query_params.get("env")
    scopes.check(identity, named, acting=role != "read")
    return identity


async def check_run_reached(request: Request, caller: Identity, run_id: str, role: Role) -> None:
    """For a route naming a run: the scope rule of `_caller` for the run's environment (an
    unknown run is left to the route, which answers 404 for it)."""
    if caller.environments is None:
        return
    show = context(request).control.run
    run = await run_in_threadpool(lambda: show(run_id, steps_limit=1))
    if run is None:
        return
    scopes.check_run(caller, run_id, str(run.get("environment")), acting=role != "read")


async def body(request: Request, model: type[Model], *, required: bool) -> Model | None:
    """The JSON body as `model`; 422 naming each bad field."""
    raw = await request.body()
    if not raw:
        if required:
            raise RequestInvalidError(["body: Field required"])
        return None
    try:
        data = json_limits.parse(raw)
    except JsonLimitError as error:
        raise RequestInvalidError([f"body: {error}"]) from None
    if not isinstance(data, dict):
        message = "Input should be a valid dictionary or object to extract fields from"
        raise RequestInvalidError([f"body: {message}"])
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise RequestInvalidError([describe_invalid(e) for e in error.errors()]) from None


_LIMIT = TypeAdapter(Annotated[int, Field(ge=1, le=MAX_LIMIT)])


def limit(request: Request, default: int, *, name: str = "limit") -> int:
    value = request.query_params.get(name)
    if value is None:
        return default
    try:
        limit: int = _LIMIT.validate_python(value, strict=False)
    except ValidationError as error:
        raise RequestInvalidError([f"{name}: {e['msg']}" for e in error.errors()]) from None
    return limit


def describe_invalid(error: Mapping[str, Any]) -> str:
    """`<field>: <message>`, the field as a user writes it (`components[0]`, `limit`)."""
    if error.get("type") == "json_invalid":
        return f"body: invalid JSON: {error.get('ctx', {}).get('error', 'cannot decode')}"
    return f"{_field_name(error.get('loc', ()))}: {error.get('msg', 'invalid')}"


def _field_name(location: Sequence[str | int]) -> str:
    parts = list(location)
    if len(parts) > 1 and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    name = ""
    for part in parts:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or "request"
