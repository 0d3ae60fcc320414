"""What a user is told of an error: the CLI's exit code and the API's HTTP answer, decided here.

The CLI and the API both call these rather than catching classes one by one, so that a new
error class is answered the same way by both as soon as it joins the tree (`gitopsd.errors`).
Every error is exit code 1 (the command line's codes 2 and 3 mean "changes" and "waiting", 64 a
usage error); over HTTP, the kind of error picks the status, and a few classes their own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from gitopsd.errors import (
    BusyError,
    ConflictError,
    ForbiddenError,
    GitopsdError,
    InvalidDeliveryIdError,
    InvalidRequestError,
    NotFoundError,
    StandbyError,
    TemporaryError,
)

EXIT_FAILED = 1

# the first class of an error's MRO found here gives its status; errors of no class here (a
# store that cannot be opened, a key that does not fit) are the server's fault: a logged 500
HTTP_STATUSES: dict[type[GitopsdError], int] = {
    InvalidDeliveryIdError: 400,
    ForbiddenError: 403,
    NotFoundError: 404,
    ConflictError: 409,
    BusyError: 409,  # "busy" is a refusal of the request (a run holds the environment)
    InvalidRequestError: 422,
    TemporaryError: 503,
}
DEFAULT_RETRY_AFTER = 5.0


@dataclass(frozen=True)
class HttpAnswer:
    """An error as the API answers it: `{"error": message}` with a status and headers."""

    status: int
    body: dict[str, str]
    headers: dict[str, str] = field(default_factory=dict)


def exit_code(error: GitopsdError) -> int:
    """The CLI's exit code for `error`: 1, whatever its kind."""
    del error  # every error a command meets is a failure of that command
    return EXIT_FAILED


def http_status(error: GitopsdError) -> int | None:
    """The HTTP status for `error`; None for an error the server must not blame on the client."""
    for kind in type(error).__mro__:
        status = HTTP_STATUSES.get(kind)
        if status is not None:
            return status
    return None


def http_answer(error: GitopsdError) -> HttpAnswer | None:
    """The API's answer to `error`; a 503 tells when to try again (`Retry-After`), and says
    "try again shortly" unless the message itself says where to go (a standby's)."""
    status = http_status(error)
    if status is None:
        return None
    message = str(error)
    if status != 503:
        return HttpAnswer(status, {"error": message})
    if not isinstance(error, StandbyError):
        message = f"try again shortly: {message}"
    known = error.retry_after if isinstance(error, TemporaryError) else None
    retry_after = known or DEFAULT_RETRY_AFTER
    return HttpAnswer(status, {"error": message}, {"Retry-After": str(math.ceil(retry_after))})
