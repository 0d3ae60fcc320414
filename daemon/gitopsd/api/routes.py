"""The routes of the HTTP API (SPEC section 6): each one thin over the daemon's `Control`.

Each route checks its caller (`calls.caller`), calls one `Control` method and shapes the
answer; the daemon's queues and workers stay behind the protocol. Calls into `Control` run in
the threadpool, because the daemon answers from SQLite and would otherwise stall the event loop.
"""

from __future__ import annotations

from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gitopsd.api import calls, deliveries, log_stream, openapi, scopes, webhooks
from gitopsd.api.bodies import (
    ApprovalRequest,
    DriftRequest,
    NoFields,
    PromotionRequest,
    RollbackRequest,
    RunRequest,
    SuspensionRequest,
)
from gitopsd.runtime.control import Identity


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    control = calls.context(request).control
    ready, reason = await run_in_threadpool(control.is_ready)
    role = await run_in_threadpool(control.leadership)
    if ready:
        return JSONResponse({"ready": True, **role})
    return JSONResponse({"ready": False, "reason": reason, **role}, status_code=503)


async def metrics(request: Request) -> Response:
    body, content_type = await run_in_threadpool(calls.context(request).control.metrics)
    return Response(body, media_type=content_type)


async def openapi_document(request: Request) -> Response:
    """The API's OpenAPI document; no token needed, as for the probes."""
    return Response(openapi.body(), media_type="application/json")


async def list_environments(request: Request) -> Response:
    caller = calls.caller(request, "read")
    report = await run_in_threadpool(calls.context(request).control.status)
    return JSONResponse(scopes.within(caller, report, "environments"))


async def show_environment(request: Request) -> Response:
    calls.caller(request, "read")
    env = request.path_params["env"]
    report = await run_in_threadpool(calls.context(request).control.status, env)
    return JSONResponse(report["environments"][0])


async def list_runs(request: Request) -> Response:
    """Run summaries (no steps), newest first: `{"runs": [...], "next_cursor": ...}`, of one
    environment (`env`), status and action when asked."""
    caller = calls.caller(request, "read")
    limit = calls.limit(request, 50)
    query = request.query_params
    env, cursor = query.get("env"), query.get("cursor")
    # an empty `status=` is a value like any other (422), not "no filter": the dashboard's
    # form, where "any" sends it empty, reads its filters itself
    status, action = query.get("status"), query.get("action")
    runs = calls.context(request).control.runs
    page = await run_in_threadpool(
        lambda: runs(env, limit=limit, cursor=cursor, status=status, action=action)
    )
    return JSONResponse(scopes.within(caller, page, "runs"))


async def show_run(request: Request) -> Response:
    """The run with a page of its steps (`steps_limit`, `steps_cursor`)."""
    caller = calls.caller(request, "read")
    run_id = request.path_params["run_id"]
    await calls.check_run_reached(request, caller, run_id, "read")
    steps_limit = calls.limit(request, 100, name="steps_limit")
    steps_cursor = request.query_params.get("steps_cursor")
    show = calls.context(request).control.run
    run = await run_in_threadpool(
        lambda: show(run_id, steps_limit=steps_limit, steps_cursor=steps_cursor)
    )
    if run is None:
        raise HTTPException(404, f"unknown run {run_id!r}")
    return JSONResponse(run)


async def run_logs(request: Request) -> Response:
    """The run's driver output: events while it goes, text after (`log_stream`)."""
    caller = calls.caller(request, "read")
    run_id = request.path_params["run_id"]
    await calls.check_run_reached(request, caller, run_id, "read")
    return await log_stream.run_logs_response(calls.context(request).control, run_id, request)


async def list_events(request: Request) -> Response:
    """The audit trail, newest first: `{"events": [...], "next_cursor": ...}`."""
    caller = calls.caller(request, "read")
    limit = calls.limit(request, 100)
    env, cursor = request.query_params.get("env"), request.query_params.get("cursor")
    events = calls.context(request).control.events
    page = await run_in_threadpool(lambda: events(env, limit=limit, cursor=cursor))
    return JSONResponse(scopes.within(caller, page, "events"))


async def start_run(request: Request) -> Response:
    caller = calls.caller(request, "operate")
    body = await calls.body(request, RunRequest, required=True)
    assert body is not None
    env = request.path_params["env"]
    if body.plan is not None:
        return await _apply_plan(request, env, body, caller)
    run_id = await run_in_threadpool(
        lambda: calls.context(request).control.submit_run(
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
        problem = "plan: only with action apply, without revision or components"
        raise calls.RequestInvalidError([problem])
    plan = body.plan or ""
    control = calls.context(request).control
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
    caller = calls.caller(request, "operate")
    await calls.body(request, NoFields, required=False)
    run_id = request.path_params["run_id"]
    await calls.check_run_reached(request, caller, run_id, "operate")
    control = calls.context(request).control
    cancelled = await run_in_threadpool(lambda: control.cancel(run_id, identity=caller))
    if cancelled is None:
        raise HTTPException(404, f"unknown run {run_id!r}")
    return JSONResponse(cancelled, status_code=202)


async def check_drift(request: Request) -> Response:
    caller = calls.caller(request, "operate")
    body = await calls.body(request, DriftRequest, required=False)
    remediate = body is not None and body.remediate
    env = request.path_params["env"]
    control = calls.context(request).control
    check_id = await run_in_threadpool(
        lambda: control.submit_drift_check(env, identity=caller, remediate=remediate)
    )
    return JSONResponse({"id": check_id}, status_code=202)


async def approve(request: Request) -> Response:
    """A refusal is the caller's (403: not an approver) unless it is the state's (409)."""
    caller = calls.caller(request, "approve")
    body = await calls.body(request, ApprovalRequest, required=False)
    revision = None if body is None else body.revision
    env = request.path_params["env"]
    control = calls.context(request).control
    approved = await run_in_threadpool(
        lambda: control.approve(env, revision=revision, identity=caller)
    )
    return JSONResponse(approved)


async def suspend(request: Request) -> Response:
    """200 with the suspension (it is in force at once); 409 when suspended already."""
    caller = calls.caller(request, "operate")
    body = await calls.body(request, SuspensionRequest, required=False)
    reason = "" if body is None else body.reason
    env = request.path_params["env"]
    control = calls.context(request).control
    done = await run_in_threadpool(lambda: control.suspend(env, reason=reason, identity=caller))
    return JSONResponse(done)


async def resume(request: Request) -> Response:
    """200 with the suspension it ended; 409 when the environment is not suspended."""
    caller = calls.caller(request, "operate")
    await calls.body(request, NoFields, required=False)
    env = request.path_params["env"]
    control = calls.context(request).control
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
    caller = calls.caller(request, "operate")
    body = await calls.body(request, PromotionRequest, required=False) or PromotionRequest()
    env = request.path_params["env"]
    control = calls.context(request).control
    run_id = await run_in_threadpool(
        lambda: control.promote(env, revision=body.revision, force=body.force, identity=caller)
    )
    return _queued(run_id)


async def roll_back(request: Request) -> Response:
    """202 once queued; 409 unless the environment verified the revision before."""
    caller = calls.caller(request, "operate")
    body = await calls.body(request, RollbackRequest, required=True)
    assert body is not None
    env = request.path_params["env"]
    control = calls.context(request).control
    run_id = await run_in_threadpool(
        lambda: control.rollback(env, revision=body.revision, identity=caller)
    )
    return _queued(run_id)


async def show_diff(request: Request) -> Response:
    """`gitopsd diff` as JSON: `from`/`to` revisions (default: current -> next), or
    `environment=OTHER` for what this environment lacks that OTHER has."""
    caller = calls.caller(request, "read")
    env, query = request.path_params["env"], request.query_params
    old, new, other = query.get("from"), query.get("to"), query.get("environment")
    scopes.check_read(caller, other or None)  # OTHER is read too: the same scope
    control = calls.context(request).control
    found = await run_in_threadpool(
        lambda: control.diff(env, old=old or None, new=new or None, other=other or None)
    )
    return JSONResponse(found)


async def github_webhook(request: Request) -> Response:
    """Signed by GitHub rather than bearer-authenticated; nothing is parsed before the check,
    and a delivery acted on already (same `X-GitHub-Delivery`) answers 200 and does nothing."""
    context = calls.context(request)
    body = await request.body()
    if context.webhook_secret is None:
        raise HTTPException(403, "webhooks are disabled: set GITOPSD_WEBHOOK_SECRET")
    signature = request.headers.get(webhooks.SIGNATURE_HEADER)
    if not webhooks.verify_signature(context.webhook_secret, body, signature):
        raise HTTPException(401, f"missing or wrong {webhooks.SIGNATURE_HEADER} signature")
    delivery = deliveries.delivery_id(request.headers.get(deliveries.HEADER))
    # claimed before the fetch is asked for, so that copies arriving meanwhile do nothing
    if delivery and not context.recent_deliveries.claim(delivery):
        return JSONResponse({"status": "duplicate", "delivery": delivery})
    try:
        event = request.headers.get(webhooks.EVENT_HEADER)
        reply = webhooks.respond_to(event, body, branch=context.control.branch)
        if reply.fetch_reason is not None:
            await run_in_threadpool(context.control.request_fetch, reply.fetch_reason)
    except BaseException:
        if delivery:
            context.recent_deliveries.release(delivery)  # not acted on: it may be redelivered
        raise
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
