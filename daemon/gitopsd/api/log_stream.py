"""A run's driver output over HTTP: Server-Sent Events while the run goes, plain text after.

`run_logs_response` serves `GET /api/v1/runs/{id}/logs` and the dashboard's run page alike.
While the run goes, it answers `text/event-stream`: an `output` event for each piece of output
as the drivers print it (its `id` is the offset after it, which a reconnecting EventSource
sends back as `Last-Event-ID`, so nothing comes twice), an `end` event once the run has ended,
and a comment every `KEEP_ALIVE` seconds so that proxies keep a quiet stream open. Once the run
has ended, or for a client that asks for `text/plain`, it answers the whole output as text.

A stream holds no thread: it asks `Control.run_logs` in a worker thread every `POLL` seconds,
only for what came after its offset, and sleeps on the event loop in between; it stops when
the client goes away (Starlette cancels it on the disconnect).
"""

from __future__ import annotations

import dataclasses
import functools
import re
import time
from collections.abc import AsyncIterator, Callable

import anyio
import anyio.to_thread
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from gitopsd.api import streams
from gitopsd.api.numbers import whole_number
from gitopsd.errors import TemporaryError
from gitopsd.runtime.control import Control, RunLogs

POLL = 0.3  # seconds between two looks at the run's output
KEEP_ALIVE = 15.0  # seconds of silence before a comment keeps the connection open
POLLING_THREADS = 4  # polls of all streams at once (each takes a millisecond or so)
EVENT_STREAM = "text/event-stream"
# SSE ends a line at CR, LF or CRLF: each becomes a `data:` line, and LF for the client
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # no proxy buffering
_POLLING = anyio.CapacityLimiter(POLLING_THREADS)  # shared by every stream of the process


async def run_logs_response(control: Control, run_id: str, request: Request) -> Response:
    """The run's output as events while it goes (or to a reconnecting stream), else as text;
    404 for an unknown run. The caller has checked that the client may read it."""
    resumed = _last_event_id(request)
    streaming = _wants_events(request)
    offset = resumed if streaming and resumed is not None else 0
    logs = await _polled(functools.partial(control.run_logs, run_id, offset=offset))
    if logs is None:
        raise HTTPException(404, f"unknown run {run_id!r}")
    if not streaming or (logs.finished and resumed is None):
        return PlainTextResponse(logs.text)  # from offset 0: no Last-Event-ID was honoured
    return streams.of(request).response(_events(control, run_id, logs), headers=_HEADERS)


async def _events(control: Control, run_id: str, logs: RunLogs | None) -> AsyncIterator[str]:
    """The events from `logs` on, until the run has ended (or the run is gone)."""
    quiet_since = time.monotonic()
    while logs is not None:
        if logs.text:
            yield output_event(logs.text, logs.offset)
            quiet_since = time.monotonic()
        if logs.finished:
            yield f"id: {logs.offset}\nevent: end\ndata: finished\n\n"
            return
        if time.monotonic() - quiet_since >= KEEP_ALIVE:
            yield ": keep-alive\n\n"
            quiet_since = time.monotonic()
        await anyio.sleep(POLL)
        logs = await _next(control, run_id, logs)


async def _next(control: Control, run_id: str, logs: RunLogs) -> RunLogs | None:
    """What came after `logs`; nothing new while a fault that passes by itself lasts (the
    store busy or unreachable): the stream stays open and asks again at the next poll."""
    try:
        return await _polled(functools.partial(control.run_logs, run_id, offset=logs.offset))
    except TemporaryError:
        return dataclasses.replace(logs, text="")


async def _polled(ask: Callable[[], RunLogs | None]) -> RunLogs | None:
    """`ask()` in a worker thread, `POLLING_THREADS` of all the streams' at most at once:
    fifty streams opened together would otherwise grow the threadpool to its limit (threads
    the daemon keeps, and their memory) and leave the other routes waiting for a thread."""
    return await anyio.to_thread.run_sync(ask, limiter=_POLLING)


def output_event(text: str, offset: int) -> str:
    """One `output` event carrying `text`, a `data:` line per line; `offset` is its id."""
    data = "".join(f"data: {line}\n" for line in _LINE_BREAK.split(text))
    return f"id: {offset}\nevent: output\n{data}\n"


def _wants_events(request: Request) -> bool:
    """An event stream unless the client asks for plain text (and not for events)."""
    accept = request.headers.get("accept", "")
    return EVENT_STREAM in accept or "text/plain" not in accept


def _last_event_id(request: Request) -> int | None:
    """The offset a reconnecting EventSource sends back; None when absent or not ours."""
    value = request.headers.get("last-event-id", "").strip()
    return whole_number(value) if len(value) < 19 else None
