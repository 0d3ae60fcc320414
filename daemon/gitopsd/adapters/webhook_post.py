"""One POST of a JSON body to a notification's webhook, over httpx, with a short timeout.

Pipeline: announce -> render -> **post**. The URL of a webhook is a secret (a Slack incoming
webhook URL is all it takes to post to the channel), so nothing this module raises or logs
contains it: errors name the HTTP status or the kind of transport failure, with the URL cut
out of any library message. Whether to try again is decided here, from the answer: transport
failures, 408, 429 and 5xx are worth another try (with the receiver's `Retry-After`, when it
gives one); other 4xx answers mean the request itself is wrong, and repeating it cannot help.
Redirects are not followed: a webhook that moved is a configuration to fix. httpx is
imported at the first delivery: a daemon without notifications does not carry it in its idle
memory (benchmarks/README.md).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from gitopsd import __version__
from gitopsd.errors import DeliveryFailedError, DeliveryRefusedError

RETRYABLE_STATUSES = frozenset({408, 425, 429})
USER_AGENT = f"gitopsd/{__version__}"


def post_json(url: str, body: dict[str, Any], *, timeout: float) -> None:
    """POST `body` as JSON to `url`; a DeliveryError (gitopsd.errors) unless the answer is
    2xx: DeliveryFailedError when trying again may help, DeliveryRefusedError when not."""
    import httpx  # on first use: see the module docstring

    try:
        response = httpx.post(
            url,
            json=body,
            timeout=timeout,
            headers={"User-Agent": USER_AGENT},
            follow_redirects=False,
        )
    except httpx.TimeoutException:
        raise DeliveryFailedError(f"no answer within {timeout:g}s") from None
    except httpx.HTTPError as error:
        reason = redact(f"{type(error).__name__}: {error}", url)
        raise DeliveryFailedError(reason) from None
    except httpx.InvalidURL as error:  # not an HTTPError: no request was made
        reason = redact(f"invalid URL: {error}", url)
        raise DeliveryRefusedError(reason) from None
    if response.is_success:
        return
    code = response.status_code
    retryable = code >= 500 or code in RETRYABLE_STATUSES
    kind = DeliveryFailedError if retryable else DeliveryRefusedError
    raise kind(
        f"HTTP {code} {response.reason_phrase}".rstrip(),
        retry_after=_retry_after(response.headers.get("retry-after")),
    )


def redact(text: str, url: str) -> str:
    """`text` without `url`, or its path and query (where a webhook keeps its secret)."""
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    for part in (url, path):
        if part and part != "/":
            text = text.replace(part, "[redacted]")
    return text


def _retry_after(value: str | None) -> float | None:
    """Seconds from a `Retry-After: <seconds>` header (the HTTP-date form is ignored)."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
