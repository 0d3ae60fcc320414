"""Pages of the API's lists: runs, a run's steps and events, each read with a cursor.

A cursor is where the previous page ended, handed out opaque (base64url of a small JSON
value) so that clients pass it back as is and the positions can change shape later:
- runs: the last run's creation time and id (the store's keyset; a run that starts between
  two pages lands before the first one and shifts nothing); the requests not started yet
  come first, oldest first, over as many pages as they fill: `["request", time, id, since]`
  is "those after that one, then the runs", where `since` is when the first page was read,
  so that a request made since, or a run started since (one of those requests, maybe,
  already shown), is left for the next first page as a new run is; `[]` (handed out
  before) is the runs from the top;
- steps: `["step", index]`, the last step's index; events: `["event", id]`, the last event's
  id. The name keeps one list's cursor from being taken by the other, where the bare number
  would page from the wrong place without a word.
A cursor that does not decode, or names another list, is the request's fault
(InvalidRequestError, HTTP 422).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gitopsd.engine.ports import StateStore
from gitopsd.errors import InvalidRequestError
from gitopsd.model.state import Request, Run
from gitopsd.runtime.control import RUN_ACTIONS, RUN_STATUSES
from gitopsd.runtime.records import reports

TOP = "W10"  # base64url of `[]`: the runs from the newest, without the requests
REQUEST = "request"  # `[REQUEST, created_at, id, since]`: the requests after that one first
STEP = "step"  # `[STEP, index]`: the steps after that one
EVENT = "event"  # `[EVENT, id]`: the events before that one


def encode(value: Any) -> str:
    text = json.dumps(value, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(text).decode().rstrip("=")


def decode(cursor: str, name: str) -> Any:
    """The value inside `cursor`; InvalidRequestError naming the parameter if it is not one."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, UnicodeError, binascii.Error):
        raise InvalidRequestError(f"{name}: not a cursor this API handed out") from None


def after_run(run: Run) -> str:
    return encode([run.created_at.isoformat(), run.id])


def after_request(request: Request, since: datetime) -> str:
    return encode([REQUEST, request.created_at.isoformat(), request.id, since.isoformat()])


def before_moment(since: datetime) -> str:
    """The runs created before `since` (no run id sorts before ``)."""
    return encode([since.isoformat(), ""])


@dataclass(frozen=True)
class RunsCursor:
    """Where a page of the runs list starts: with the requests not started yet (`requests`)
    made by `since`, after the one at `after` (all of them when None), then the runs before
    `before` (the newest when None)."""

    requests: bool
    since: datetime
    after: tuple[datetime, str] | None = None
    before: tuple[datetime, str] | None = None


def runs_cursor(cursor: str | None, now: datetime) -> RunsCursor:
    """The start a runs cursor names (None: the first page's, read `now`)."""
    if cursor is None:
        return RunsCursor(requests=True, since=now)
    value = decode(cursor, "cursor")
    if value == []:
        return RunsCursor(requests=False, since=now)
    if isinstance(value, list) and len(value) == 4 and value[0] == REQUEST:
        since = _position([value[3], ""])
        return RunsCursor(requests=True, since=since[0], after=_position(value[1:3]), before=since)
    return RunsCursor(requests=False, since=now, before=_position(value))


def _position(value: Any) -> tuple[datetime, str]:
    """The (created_at, id) a runs cursor's value names."""
    try:
        created, run_id = value
        moment = datetime.fromisoformat(created)
    except (TypeError, ValueError):
        raise InvalidRequestError("cursor: not a cursor this API handed out") from None
    if moment.utcoffset() is None or not isinstance(run_id, str) or not _storable(moment, run_id):
        raise InvalidRequestError("cursor: not a cursor this API handed out")
    return moment, run_id


def _storable(moment: datetime, run_id: str) -> bool:
    """Whether the store can compare runs with this position: a time still within years 1
    to 9999 in UTC (a forged offset pushes one past them), an id in UTF-8 (a `\\ud800`
    escape decodes to a lone surrogate, which no store binds). Either would fail in the
    query, a 500."""
    try:
        moment.astimezone(UTC)
        run_id.encode()
    except (OverflowError, UnicodeEncodeError):
        return False
    return True


def numbered(kind: str, position: int) -> str:
    """The cursor of a step (`STEP`) or event (`EVENT`) list after `position`."""
    return encode([kind, position])


def number(cursor: str, name: str, kind: str) -> int:
    """The step index or event id a cursor of that `kind` names."""
    value = decode(cursor, name)
    if not isinstance(value, list) or len(value) != 2 or value[0] != kind:
        raise InvalidRequestError(f"{name}: not a cursor this API handed out")
    found = value[1]
    if not isinstance(found, int) or isinstance(found, bool) or not _fits_int64(found):
        raise InvalidRequestError(f"{name}: not a cursor this API handed out")
    return found


def _fits_int64(value: int) -> bool:
    """Whether the store can bind `value` (SQLite and PostgreSQL integers are 64-bit): a
    forged cursor's huge number would otherwise fail in the query, a 500."""
    return -(2**63) <= value < 2**63


def runs_page(
    store: StateStore,
    waiting: Sequence[Request],
    environment: str | None,
    *,
    limit: int,
    start: RunsCursor,
    status: str | None = None,
    action: str | None = None,
) -> dict[str, Any]:
    """`{"runs": [...], "next_cursor": ...}` from `start` (`runs_cursor`): first the requests
    not started yet (`waiting`, oldest first, over as many pages as they fill), then run
    summaries (no steps), newest first, each with that `status` and `action` when given;
    the store reads one more run than it shows, to know whether another page follows."""
    _check_choice("status", status, RUN_STATUSES)
    _check_choice("action", action, RUN_ACTIONS)
    stored = store.list_runs(
        environment, limit=limit + 1, before=start.before, status=status, action=action
    )
    requests = _requests(waiting, start, known={run.id for run in stored})
    requests = [r for r in requests if status in (None, r.status) and action in (None, r.action)]
    if len(requests) > limit:  # the requests fill this page, and some are left for the next
        page = [_request_summary(r) for r in requests[:limit]]
        return {"runs": page, "next_cursor": after_request(requests[limit - 1], start.since)}
    shown = [_request_summary(r) for r in requests]
    runs = stored[: limit - len(shown)]
    shown += [reports.run_summary(run) for run in runs]
    more = len(stored) > len(runs)
    following = (after_run(runs[-1]) if runs else before_moment(start.since)) if more else None
    return {"runs": shown, "next_cursor": following}


def _requests(waiting: Sequence[Request], start: RunsCursor, *, known: set[str]) -> list[Request]:
    """The requests a page starting at `start` lists: those made by `start.since`, after
    `start.after`, none that has a run among the page's (`known`)."""
    if not start.requests:
        return []
    listed = [r for r in waiting if r.id not in known and r.created_at <= start.since]
    return [r for r in listed if start.after is None or (r.created_at, r.id) > start.after]


def _check_choice(name: str, value: str | None, choices: Sequence[str]) -> None:
    """InvalidRequestError naming the parameter and its choices for a value not among them:
    a misspelt filter would otherwise list nothing, as if there were no such runs."""
    if value is not None and value not in choices:
        listed = ", ".join(choices)
        raise InvalidRequestError(f"{name}: {value!r} is not one of {listed}")


def _request_summary(request: Request) -> dict[str, Any]:
    """A request as run lists show it: like a run summary, without steps."""
    report = reports.request_report(request)
    del report["steps"]
    return report


def run_report(
    store: StateStore, run: Run, *, steps_limit: int, steps_cursor: str | None
) -> dict[str, Any]:
    """The run with a page of its steps (output included) and `next_steps_cursor`."""
    after = number(steps_cursor, "steps_cursor", STEP) if steps_cursor is not None else None
    steps = store.list_steps(run.id, after=after, limit=steps_limit + 1)
    report = reports.run_report(run, steps[:steps_limit])
    more = len(steps) > steps_limit
    report["next_steps_cursor"] = numbered(STEP, steps[steps_limit - 1].index) if more else None
    return report


def events_page(
    store: StateStore, environment: str | None, *, limit: int, cursor: str | None
) -> dict[str, Any]:
    """`{"events": [...], "next_cursor": ...}`, newest first."""
    before = number(cursor, "cursor", EVENT) if cursor is not None else None
    found = store.list_events(environment, limit=limit + 1, before=before)
    shown = found[:limit]
    last = shown[-1].id if len(found) > limit else None  # a stored event always has its id
    return {
        "events": [reports.event_report(event) for event in shown],
        "next_cursor": None if last is None else numbered(EVENT, last),
    }
