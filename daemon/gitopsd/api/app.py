"""The HTTP API of `gitopsd serve` (SPEC section 6): thin routes over the daemon's `Control`.

Each route checks the caller's role, calls one `Control` method and shapes the answer; the
daemon's queues and workers stay behind the protocol. Calls into `Control` run in the
threadpool, because the daemon answers from SQLite and would otherwise stall the event loop.
Every error is JSON `{"error": ...}`: one handler answers the daemon's errors as
`gitopsd.answers` says, and pure ASGI middlewares refuse requests that break the request rules
(`guards`: 421, 403, 415), bound request bodies in size (413) and time (`deadlines`: 408),
and turn a crash into a logged 500 that reveals nothing. Bodies are parsed by `json_limits`.
Built on Starlette alone (no FastAPI): bodies and query parameters are validated with
pydantic here, which keeps the idle daemon smaller (benchmarks/README.md).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gitopsd import answers
from gitopsd.adapters.clock import SystemClock
from gitopsd.api import (
    deadlines,
    deliveries,
    guards,
    json_limits,
    log_stream,
    openapi,
    scopes,
    webhooks,
)
from gitopsd.api.auth import Role, Tokens, bearer_token
from gitopsd.engine.ports import Clock
from gitopsd.errors import GitopsdError, InvalidRequestError, JsonLimitError
from gitopsd.model.state import MAX_REASON_LENGTH
from gitopsd.runtime.control import Control, Identity

logger = logging.getLogger(__name__)
MAX_LIMIT = 1000
Model = TypeVar("Model", bound=BaseModel)
Endpoint = Callable[[Request], Awaitable[Response]]


class RequestInvalidError(InvalidRequestError):
    """A malformed body or query parameter: 422 with `<field>: <message>` for each problem
    (private to the API: it only joins the problems pydantic found)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))


def create_app(
    control: Control,
    *,
    tokens: Tokens,
    webhook_secret: bytes | None,
    rules: guards.RequestRules,
    max_body: int = 1_048_576,
    body_timeout: float = 30.0,
    clock: Clock | None = None,
    extra_routes: Sequence[BaseRoute] = (),
) -> Starlette:
    """The API over `control`; only SPEC section 6's routes are served (and `extra_routes`:
    the dashboard's, guarded by the same middleware), to requests that keep `rules`
    (`guards`) and send their body within `body_timeout` seconds."""
    app = Starlette(
        routes=[*ROUTES, *extra_routes],
        middleware=[
            Middleware(CloseUnreadBodies),
            Middleware(CatchCrashes),
            Middleware(guards.GuardRequests, rules=rules),
            Middleware(deadlines.BodyDeadline, seconds=body_timeout),
            Middleware(LimitBody, max_body=max_body),
        ],
        exception_handlers={
            HTTPException: _http_error,
            GitopsdError: _gitopsd_error,
        },
    )
    recent = deliveries.RecentDeliveries(clock or SystemClock())
    app.state.gitopsd = _Context(control, tokens, webhook_secret, recent)
    return app


# --- what the routes depend on -----------------------------------------------------------------


@dataclass(frozen=True)
class _Context:
    control: Control
    tokens: Tokens
    webhook_secret: bytes | None
    recent_deliveries: deliveries.RecentDeliveries


def _context(request: Request) -> _Context:
    """What `create_app` was given, kept on the app so the module-level routes serve any app."""
    context: _Context = request.app.state.gitopsd
    return context


def _caller(request: Request, role: Role) -> Identity:
    """The caller's identity: 401 without a valid token, 403 without `role`; then, for the
    environment the route names (`{env}` in its path, else `?env=`), 404 to a read and 403
    to an action when the token does not reach it (`scopes`), on every route alike."""
    tokens = _context(request).tokens
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


async def _check_run_reached(request: Request, caller: Identity, run_id: str, role: Role) -> None:
    """For a route naming a run: the scope rule of `_caller` for the run's environment (an
    unknown run is left to the route, which answers 404 for it)."""
    if caller.environments is None:
        return
    show = _context(request).control.run
    run = await run_in_threadpool(lambda: show(run_id, steps_limit=1))
    if run is None:
        return
    scopes.check_run(caller, run_id, str(run.get("environment")), acting=role != "read")


async def _body(request: Request, model: type[Model], *, required: bool) -> Model | None:
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
        raise RequestInvalidError([_describe_invalid(e) for e in error.errors()]) from None


_LIMIT = TypeAdapter(Annotated[int, Field(ge=1, le=MAX_LIMIT)])


def _limit(request: Request, default: int, *, name: str = "limit") -> int:
    value = request.query_params.get(name)
    if value is None:
        return default
    try:
        limit: int = _LIMIT.validate_python(value, strict=False)
    except ValidationError as error:
        raise RequestInvalidError([f"{name}: {e['msg']}" for e in error.errors()]) from None
    return limit


class RunRequest(BaseModel):
    """The body of POST /api/v1/environments/{env}/runs."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["plan", "apply", "destroy"]
    components: list[str] | None = Field(default=None, min_length=1)
    revision: str | None = Field(default=None, min_length=1)
    plan: str | None = Field(default=None, min_length=1, description="a saved plan's id")


class NoFields(BaseModel):
    """The body of a route that takes no fields: none, `{}`, or 422. Read all the same, so a
    hostile body is refused as on any other route and the connection stays in step."""

    model_config = ConfigDict(extra="forbid")


class ApprovalRequest(BaseModel):
    """The body of POST /api/v1/environments/{env}/approvals (no revision: the pending one)."""

    model_config = ConfigDict(extra="forbid")

    revision: str | None = Field(default=None, min_length=1)


class PromotionRequest(BaseModel):
    """The body of POST /api/v1/environments/{env}/promotions (optional: the upstream's
    newest verified revision, no force)."""

    model_config = ConfigDict(extra="forbid")

    revision: str | None = Field(default=None, min_length=1)
    force: bool = Field(
        default=False, strict=True, description="override a change window (recorded)"
    )


class RollbackRequest(BaseModel):
    """The body of POST /api/v1/environments/{env}/rollbacks."""

    model_config = ConfigDict(extra="forbid")

    revision: str = Field(min_length=1, description="a revision the environment verified")


# --- routes ------------------------------------------------------------------------------------


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    control = _context(request).control
    ready, reason = await run_in_threadpool(control.is_ready)
    role = await run_in_threadpool(control.leadership)
    if ready:
        return JSONResponse({"ready": True, **role})
    return JSONResponse({"ready": False, "reason": reason, **role}, status_code=503)


async def metrics(request: Request) -> Response:
    body, content_type = await run_in_threadpool(_context(request).control.metrics)
    return Response(body, media_type=content_type)


async def openapi_document(request: Request) -> Response:
    """The API's OpenAPI document; no token needed, as for the probes."""
    return Response(openapi.body(), media_type="application/json")


async def list_environments(request: Request) -> Response:
    caller = _caller(request, "read")
    report = await run_in_threadpool(_context(request).control.status)
    return JSONResponse(scopes.within(caller, report, "environments"))


async def show_environment(request: Request) -> Response:
    _caller(request, "read")
    env = request.path_params["env"]
    report = await run_in_threadpool(_context(request).control.status, env)
    return JSONResponse(report["environments"][0])


async def list_runs(request: Request) -> Response:
    """Run summaries (no steps), newest first: `{"runs": [...], "next_cursor": ...}`, of one
    environment (`env`), status and action when asked."""
    caller = _caller(request, "read")
    limit = _limit(request, 50)
    query = request.query_params
    env, cursor = query.get("env"), query.get("cursor")
    status, action = query.get("status") or None, query.get("action") or None
    runs = _context(request).control.runs
    page = await run_in_threadpool(
        lambda: runs(env, limit=limit, cursor=cursor, status=status, action=action)
    )
    return JSONResponse(scopes.within(caller, page, "runs"))


async def show_run(request: Request) -> Response:
    """The run with a page of its steps (`steps_limit`, `steps_cursor`)."""
    caller = _caller(request, "read")
    run_id = request.path_params["run_id"]
    await _check_run_reached(request, caller, run_id, "read")
    steps_limit = _limit(request, 100, name="steps_limit")
    steps_cursor = request.query_params.get("steps_cursor")
    show = _context(request).control.run
    run = await run_in_threadpool(
        lambda: show(run_id, steps_limit=steps_limit, steps_cursor=steps_cursor)
    )
    if run is None:
        raise HTTPException(404, f"unknown run {run_id!r}")
    return JSONResponse(run)


async def run_logs(request: Request) -> Response:
    """The run's driver output: events while it goes, text after (`log_stream`)."""
    caller = _caller(request, "read")
    run_id = request.path_params["run_id"]
    await _check_run_reached(request, caller, run_id, "read")
    return await log_stream.run_logs_response(_context(request).control, run_id, request)


async def list_events(request: Request) -> Response:
    """The audit trail, newest first: `{"events": [...], "next_cursor": ...}`."""
    caller = _caller(request, "read")
    limit = _limit(request, 100)
    env, cursor = request.query_params.get("env"), request.query_params.get("cursor")
    events = _context(request).control.events
    page = await run_in_threadpool(lambda: events(env, limit=limit, cursor=cursor))
    return JSONResponse(scopes.within(caller, page, "events"))


async def start_run(request: Request) -> Response:
    caller = _caller(request, "operate")
    body = await _body(request, RunRequest, required=True)
    assert body is not None
    env = request.path_params["env"]
    if body.plan is not None:
        return await _apply_plan(request, env, body, caller)
    run_id = await run_in_threadpool(
        lambda: _context(request).control.submit_run(
            env,
            action=body.action,
            components=body.components,
            revision=body.revision,
            identity=caller,
        )
    )
    location = f"/api/v1/runs/{quote(run_id, safe='')}"
    return JSONResponse(
        {"id": run_id, "status": "pending"}, status_code=202, headers={"Location": location}
    )


async def _apply_plan(request: Request, env: str, body: RunRequest, caller: Identity) -> Response:
    """A saved plan carries its own revision and components; one that changes nothing is
    marked applied at once (200, no run), else its run is queued (202)."""
    if body.action != "apply" or body.revision is not None or body.components is not None:
        raise RequestInvalidError(["plan: only with action apply, without revision or components"])
    plan = body.plan or ""
    control = _context(request).control
    run_id = await run_in_threadpool(lambda: control.submit_plan(env, plan=plan, identity=caller))
    if run_id is None:
        return JSONResponse({"id": None, "plan": plan, "status": "nothing to change"})
    location = f"/api/v1/runs/{quote(run_id, safe='')}"
    return JSONResponse(
        {"id": run_id, "plan": plan, "status": "pending"},
        status_code=202,
        headers={"Location": location},
    )


async def cancel_run(request: Request) -> Response:
    """202 once the run is asked to stop (it ends `cancelled` within a second); 404 for an
    unknown id; 409 for a run that has ended."""
    caller = _caller(request, "operate")
    await _body(request, NoFields, required=False)
    run_id = request.path_params["run_id"]
    await _check_run_reached(request, caller, run_id, "operate")
    control = _context(request).control
    cancelled = await run_in_threadpool(lambda: control.cancel(run_id, identity=caller))
    if cancelled is None:
        raise HTTPException(404, f"unknown run {run_id!r}")
    return JSONResponse(cancelled, status_code=202)


async def check_drift(request: Request) -> Response:
    caller = _caller(request, "operate")
    await _body(request, NoFields, required=False)
    env = request.path_params["env"]
    control = _context(request).control
    check_id = await run_in_threadpool(lambda: control.submit_drift_check(env, identity=caller))
    return JSONResponse({"id": check_id}, status_code=202)


async def approve(request: Request) -> Response:
    """A refusal is the caller's (403: not an approver) unless it is the state's (409)."""
    caller = _caller(request, "approve")
    body = await _body(request, ApprovalRequest, required=False)
    revision = None if body is None else body.revision
    env = request.path_params["env"]
    control = _context(request).control
    approved = await run_in_threadpool(
        lambda: control.approve(env, revision=revision, identity=caller)
    )
    return JSONResponse(approved)


class SuspensionRequest(BaseModel):
    """The body of POST /api/v1/environments/{env}/suspension (optional)."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=MAX_REASON_LENGTH)


async def suspend(request: Request) -> Response:
    """200 with the suspension (it is in force at once); 409 when suspended already."""
    caller = _caller(request, "operate")
    body = await _body(request, SuspensionRequest, required=False)
    reason = "" if body is None else body.reason
    env = request.path_params["env"]
    control = _context(request).control
    done = await run_in_threadpool(lambda: control.suspend(env, reason=reason, identity=caller))
    return JSONResponse(done)


async def resume(request: Request) -> Response:
    """200 with the suspension it ended; 409 when the environment is not suspended."""
    caller = _caller(request, "operate")
    await _body(request, NoFields, required=False)
    env = request.path_params["env"]
    control = _context(request).control
    done = await run_in_threadpool(lambda: control.resume(env, identity=caller))
    return JSONResponse(done)


def _queued(run_id: str) -> JSONResponse:
    """202 for work queued on an environment's worker: the id its run will have."""
    location = f"/api/v1/runs/{quote(run_id, safe='')}"
    body = {"run_id": run_id, "id": run_id, "status": "pending"}
    return JSONResponse(body, status_code=202, headers={"Location": location})


async def promote(request: Request) -> Response:
    """202 once queued; 409 with the reason when admission refuses it (the upstream never
    verified the revision, nothing to promote); a window or soak makes it wait, queued."""
    caller = _caller(request, "operate")
    body = await _body(request, PromotionRequest, required=False) or PromotionRequest()
    env = request.path_params["env"]
    control = _context(request).control
    run_id = await run_in_threadpool(
        lambda: control.promote(env, revision=body.revision, force=body.force, identity=caller)
    )
    return _queued(run_id)


async def roll_back(request: Request) -> Response:
    """202 once queued; 409 unless the environment verified the revision before."""
    caller = _caller(request, "operate")
    body = await _body(request, RollbackRequest, required=True)
    assert body is not None
    env = request.path_params["env"]
    control = _context(request).control
    run_id = await run_in_threadpool(
        lambda: control.rollback(env, revision=body.revision, identity=caller)
    )
    return _queued(run_id)


async def show_diff(request: Request) -> Response:
    """`gitopsd diff` as JSON: `from`/`to` revisions (default: current -> next), or
    `environment=OTHER` for what this environment lacks that OTHER has."""
    caller = _caller(request, "read")
    env, query = request.path_params["env"], request.query_params
    old, new, other = query.get("from"), query.get("to"), query.get("environment")
    scopes.check_read(caller, other or None)  # OTHER is read too: the same scope
    control = _context(request).control
    found = await run_in_threadpool(
        lambda: control.diff(env, old=old or None, new=new or None, other=other or None)
    )
    return JSONResponse(found)


async def github_webhook(request: Request) -> Response:
    """Signed by GitHub rather than bearer-authenticated; nothing is parsed before the check,
    and a delivery acted on already (same `X-GitHub-Delivery`) answers 200 and does nothing."""
    context = _context(request)
    body = await request.body()
    if context.webhook_secret is None:
        raise HTTPException(403, "webhooks are disabled: set GITOPSD_WEBHOOK_SECRET")
    signature = request.headers.get(webhooks.SIGNATURE_HEADER)
    if not webhooks.verify_signature(context.webhook_secret, body, signature):
        raise HTTPException(401, f"missing or wrong {webhooks.SIGNATURE_HEADER} signature")
    delivery = deliveries.delivery_id(request.headers.get(deliveries.HEADER))
    if delivery and context.recent_deliveries.seen(delivery):
        return JSONResponse({"status": "duplicate", "delivery": delivery})
    event = request.headers.get(webhooks.EVENT_HEADER)
    reply = webhooks.respond_to(event, body, branch=context.control.branch)
    if reply.fetch_reason is not None:
        await run_in_threadpool(context.control.request_fetch, reply.fetch_reason)
    if delivery:
        context.recent_deliveries.note(delivery)  # once acted on: a failed one may be redelivered
    return JSONResponse(reply.body, status_code=reply.status)


ROUTES = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
    Route(openapi.PATH, openapi_document, methods=["GET"]),
    Route("/api/v1/environments", list_environments, methods=["GET"]),
    Route("/api/v1/environments/{env}", show_environment, methods=["GET"]),
    Route("/api/v1/runs", list_runs, methods=["GET"]),
    Route("/api/v1/runs/{run_id}", show_run, methods=["GET"]),
    Route("/api/v1/runs/{run_id}/cancel", cancel_run, methods=["POST"]),
    Route("/api/v1/runs/{run_id}/logs", run_logs, methods=["GET"]),
    Route("/api/v1/events", list_events, methods=["GET"]),
    Route("/api/v1/environments/{env}/runs", start_run, methods=["POST"]),
    Route("/api/v1/environments/{env}/drift", check_drift, methods=["POST"]),
    Route("/api/v1/environments/{env}/approvals", approve, methods=["POST"]),
    Route("/api/v1/environments/{env}/suspension", suspend, methods=["POST"]),
    Route("/api/v1/environments/{env}/suspension", resume, methods=["DELETE"]),
    Route("/api/v1/environments/{env}/promotions", promote, methods=["POST"]),
    Route("/api/v1/environments/{env}/rollbacks", roll_back, methods=["POST"]),
    Route("/api/v1/environments/{env}/diff", show_diff, methods=["GET"]),
    Route("/api/v1/webhooks/github", github_webhook, methods=["POST"]),
]


# --- errors ------------------------------------------------------------------------------------


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    """Raised by the routes above, and by the router for unknown routes and methods."""
    assert isinstance(exc, HTTPException)
    message = str(exc.detail)
    if exc.status_code == 404 and message == "Not Found":
        message = f"no such route: {request.url.path}"
    elif exc.status_code == 405 and message == "Method Not Allowed":
        message = f"method {request.method} is not allowed on {request.url.path}"
    return _error(exc.status_code, message, exc.headers)


async def _gitopsd_error(request: Request, exc: Exception) -> JSONResponse:
    """The daemon's errors, answered as `answers.http_answer` says; one it has no answer
    for is the server's fault, raised on to `CatchCrashes` (a logged, opaque 500)."""
    assert isinstance(exc, GitopsdError)
    answer = answers.http_answer(exc)
    if answer is None:
        raise exc
    return JSONResponse(answer.body, status_code=answer.status, headers=answer.headers)


def _describe_invalid(error: Mapping[str, Any]) -> str:
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


# --- middleware --------------------------------------------------------------------------------


# not in gitopsd.errors: raised inside ASGI `receive`, where only HTTPExceptions are answered
class BodyTooLargeError(HTTPException):
    """Raised while a body streams in; Starlette answers an HTTPException from `receive`."""

    def __init__(self, max_body: int) -> None:
        super().__init__(413, f"request body is larger than {max_body} bytes")


class LimitBody:
    """Refuse bodies over `max_body` bytes: at once by Content-Length, else while counting.

    A chunked body declares no length, so the bytes are counted as the route reads them and
    the read fails past the limit; the route never sees more than `max_body` bytes.
    """

    def __init__(self, app: ASGIApp, *, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body:
            too_large = BodyTooLargeError(self.max_body)
            await _error(413, too_large.detail)(scope, receive, send)
            return
        await self.app(scope, self._counting(receive), send)

    def _counting(self, receive: Receive) -> Receive:
        received = 0

        async def receive_counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise BodyTooLargeError(self.max_body)
            return message

        return receive_counted


class CloseUnreadBodies:
    """Say `Connection: close` on a response sent before the request's body was read.

    A refusal (401, 403, 413, 415, 421...) may answer while the client is still sending; the
    server then closes the connection rather than read a body nobody wants. Without the
    header, a client keeping the connection alive would send its next request into a closed
    socket; with it, the client knows to open a new one.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body_read = not _has_body(scope)

        async def receive_noted() -> Message:
            nonlocal body_read
            message = await receive()
            if message["type"] == "http.request" and not message.get("more_body", False):
                body_read = True
            return message

        async def send_closing(message: Message) -> None:
            if message["type"] == "http.response.start" and not body_read:
                headers = [*message.get("headers", []), (b"connection", b"close")]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive_noted, send_closing)


class CatchCrashes:
    """Answer an unexpected exception with a bare 500 and log it here, with its request.

    Starlette's own handler for `Exception` would re-raise after answering, so the crash
    would be logged twice (and TestClient would raise it); this stops it where it is logged.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_tracked)
        except Exception:
            if started:
                raise  # too late to answer: the server logs it and drops the connection
            logger.exception("internal error on %s %s", scope.get("method"), scope.get("path"))
            await _error(500, "internal error")(scope, receive, send)


def _has_body(scope: Scope) -> bool:
    """Whether the request's head announces a body (a length over 0, or chunks)."""
    names = {name for name, _ in scope.get("headers", ())}
    return b"transfer-encoding" in names or bool(_content_length(scope))


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None
