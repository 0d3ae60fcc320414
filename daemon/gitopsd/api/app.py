"""The HTTP API of `gitopsd serve` (SPEC section 6): thin routes over the daemon's `Control`.

Each route checks the caller's role, calls one `Control` method and shapes the answer; the
daemon's queues and workers stay behind the protocol. Routes that call `Control` are plain
`def`s, which FastAPI runs in its threadpool, because the daemon answers from SQLite and would
otherwise stall the event loop. Every error is JSON `{"error": ...}`: the handlers below map the
daemon's exceptions to status codes, and two pure ASGI middlewares bound request bodies (413)
and turn a crash into a logged 500 that reveals nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gitopsd import __version__
from gitopsd.api import webhooks
from gitopsd.api.auth import Role, Tokens, bearer_token
from gitopsd.runtime.control import (
    Control,
    Identity,
    RequestRefusedError,
    UnknownEnvironmentError,
)

logger = logging.getLogger(__name__)
router = APIRouter()
MAX_LIMIT = 1000


def create_app(
    control: Control, *, tokens: Tokens, webhook_secret: bytes | None, max_body: int = 1_048_576
) -> FastAPI:
    """The API over `control`; no OpenAPI or docs routes, so only SPEC section 6 is served."""
    app = FastAPI(
        title="gitopsd",
        version=__version__,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        middleware=[Middleware(CatchCrashes), Middleware(LimitBody, max_body=max_body)],
    )
    app.state.gitopsd = _Context(control, tokens, webhook_secret)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(UnknownEnvironmentError, _unknown_environment)
    app.add_exception_handler(RequestRefusedError, _refused)
    app.add_exception_handler(webhooks.InvalidPayloadError, _invalid_payload)
    app.include_router(router)
    return app


# --- what the routes depend on -----------------------------------------------------------------


@dataclass(frozen=True)
class _Context:
    control: Control
    tokens: Tokens
    webhook_secret: bytes | None


async def _context(request: Request) -> _Context:
    """What `create_app` was given, kept on the app so one module-level router serves any app."""
    context: _Context = request.app.state.gitopsd
    return context


def _caller_with(role: Role) -> Any:
    """A dependency giving the caller's identity: 401 without a valid token, 403 without `role`."""

    async def caller(request: Request, context: Annotated[_Context, Depends(_context)]) -> Identity:
        header = request.headers.get("authorization")
        identity = context.tokens.authenticate(header)
        if identity is None:
            problem = "invalid bearer token" if bearer_token(header) else "missing bearer token"
            raise HTTPException(401, problem, headers={"WWW-Authenticate": "Bearer"})
        if not context.tokens.allows(identity, role):
            raise HTTPException(403, f"{identity.name!r} does not have the {role!r} role")
        return identity

    return Depends(caller)


async def _raw_body(request: Request) -> bytes:
    """The body as sent, since the webhook signature covers its exact bytes (read on the loop)."""
    return await request.body()


Ctx = Annotated[_Context, Depends(_context)]
Reader = Annotated[Identity, _caller_with("read")]
Operator = Annotated[Identity, _caller_with("operate")]
Approver = Annotated[Identity, _caller_with("approve")]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]


class RunRequest(BaseModel):
    """The body of POST /api/v1/environments/{env}/runs."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["plan", "apply", "destroy"]
    components: list[str] | None = Field(default=None, min_length=1)
    revision: str | None = Field(default=None, min_length=1)


class ApprovalRequest(BaseModel):
    """The body of POST /api/v1/environments/{env}/approvals (no revision: the pending one)."""

    model_config = ConfigDict(extra="forbid")

    revision: str | None = Field(default=None, min_length=1)


# --- routes ------------------------------------------------------------------------------------


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
def readyz(context: Ctx) -> JSONResponse:
    ready, reason = context.control.is_ready()
    if ready:
        return JSONResponse({"ready": True})
    return JSONResponse({"ready": False, "reason": reason}, status_code=503)


@router.get("/metrics")
def metrics(context: Ctx) -> Response:
    body, content_type = context.control.metrics()
    return Response(body, media_type=content_type)


@router.get("/api/v1/environments")
def list_environments(context: Ctx, caller: Reader) -> dict[str, Any]:
    return context.control.status()


@router.get("/api/v1/environments/{env}")
def show_environment(env: str, context: Ctx, caller: Reader) -> dict[str, Any]:
    environment: dict[str, Any] = context.control.status(env)["environments"][0]
    return environment


@router.get("/api/v1/runs")
def list_runs(
    context: Ctx, caller: Reader, env: str | None = None, limit: Limit = 50
) -> dict[str, Any]:
    return {"runs": context.control.runs(env, limit=limit)}


@router.get("/api/v1/runs/{run_id}")
def show_run(run_id: str, context: Ctx, caller: Reader) -> dict[str, Any]:
    run = context.control.run(run_id)
    if run is None:
        raise HTTPException(404, f"unknown run {run_id!r}")
    return run


@router.get("/api/v1/events")
def list_events(
    context: Ctx, caller: Reader, env: str | None = None, limit: Limit = 100
) -> dict[str, Any]:
    return {"events": context.control.events(env, limit=limit)}


@router.post("/api/v1/environments/{env}/runs", status_code=202)
def start_run(env: str, body: RunRequest, context: Ctx, caller: Operator) -> JSONResponse:
    run_id = context.control.submit_run(
        env,
        action=body.action,
        components=body.components,
        revision=body.revision,
        identity=caller,
    )
    location = f"/api/v1/runs/{quote(run_id, safe='')}"
    return JSONResponse(
        {"id": run_id, "status": "pending"}, status_code=202, headers={"Location": location}
    )


@router.post("/api/v1/environments/{env}/drift", status_code=202)
def check_drift(env: str, context: Ctx, caller: Operator) -> JSONResponse:
    check_id = context.control.submit_drift_check(env, identity=caller)
    return JSONResponse({"id": check_id}, status_code=202)


@router.post("/api/v1/environments/{env}/approvals")
def approve(
    env: str, context: Ctx, caller: Approver, body: ApprovalRequest | None = None
) -> dict[str, Any]:
    """A refusal is the caller's (403: not an approver) unless it is the state's (409)."""
    revision = None if body is None else body.revision
    try:
        return context.control.approve(env, revision=revision, identity=caller)
    except RequestRefusedError as refused:
        raise HTTPException(409 if refused.conflict else 403, str(refused)) from None


@router.post("/api/v1/webhooks/github")
def github_webhook(
    request: Request, body: Annotated[bytes, Depends(_raw_body)], context: Ctx
) -> JSONResponse:
    """Signed by GitHub rather than bearer-authenticated; nothing is parsed before the check."""
    if context.webhook_secret is None:
        raise HTTPException(403, "webhooks are disabled: set GITOPSD_WEBHOOK_SECRET")
    signature = request.headers.get(webhooks.SIGNATURE_HEADER)
    if not webhooks.verify_signature(context.webhook_secret, body, signature):
        raise HTTPException(401, f"missing or wrong {webhooks.SIGNATURE_HEADER} signature")
    event = request.headers.get(webhooks.EVENT_HEADER)
    reply = webhooks.respond_to(event, body, branch=context.control.branch)
    if reply.fetch_reason is not None:
        context.control.request_fetch(reply.fetch_reason)
    return JSONResponse(reply.body, status_code=reply.status)


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


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return _error(422, "; ".join(_describe_invalid(error) for error in exc.errors()))


async def _unknown_environment(request: Request, exc: Exception) -> JSONResponse:
    return _error(404, str(exc))


async def _refused(request: Request, exc: Exception) -> JSONResponse:
    """A run or drift check the daemon will not queue: invalid (422) or not now (409)."""
    assert isinstance(exc, RequestRefusedError)
    return _error(409 if exc.conflict else 422, str(exc))


async def _invalid_payload(request: Request, exc: Exception) -> JSONResponse:
    return _error(422, str(exc))


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


class BodyTooLargeError(HTTPException):
    """Raised while a body streams in; FastAPI lets an HTTPException from `receive` through."""

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


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None
