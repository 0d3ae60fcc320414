"""The rules every request obeys before a route sees it, with or without tokens (SPEC 6).

A browser is the caller to fear: any page the operator opens can send requests to
`127.0.0.1:8080`, and a name the attacker controls can be pointed at that address (DNS
rebinding), which makes the page's own origin reach the daemon. So, in this order:

0. The head must be at most `MAX_HEAD` bytes and unambiguous, else 400. (The HTTP server
   bounds only a head that arrives in pieces, so one sent at once is measured here.) No
   `Origin`, `Sec-Fetch-Site` or `Content-Type` given twice with different values (the
   rules below would read one, a proxy in front perhaps the other; h11 refuses two `Host`
   itself), nor a GitHub webhook's `X-Hub-Signature-256`, `X-GitHub-Delivery` or
   `X-GitHub-Event` (the route reads the first, a proxy that logs or checks deliveries
   perhaps the last, and the signature covers the body only), nor both `Content-Length`
   and `Transfer-Encoding` (RFC 9112 6.3: the framing a proxy used may not be ours, the way
   requests are smuggled).
1. `Host` must name the listen address or an `--allowed-hosts` entry, else 421. A rebinding
   page can only send its own name. `/healthz`, `/readyz` and `/metrics` (GET) also answer a
   bare IP address, which is what Kubernetes probes and Prometheus send (`Host: <pod IP>`) and
   which a rebinding page cannot send, and a request without `Host` (HTTP/1.0).
2. A request that changes anything (POST, PUT, PATCH, DELETE) must not come from another
   site: `Sec-Fetch-Site: cross-site` or `same-site`, or an `Origin` that is neither the
   request's own host nor an allowed one, is refused with 403. No `Origin` (curl, scripts) is
   fine: browsers always send one with such requests.
3. A request to the API (`/api/...`) must say `Content-Type: application/json`, else 415:
   an HTML form or a "simple" fetch cannot send that type without a preflight the daemon
   never grants. The dashboard's own forms (outside `/api/`) are form-encoded; rule 2 and
   their session's CSRF token (`gitopsd.dashboard.access`) protect them instead.

The GitHub webhook is exempt from 2 and 3 (its HMAC signature protects it), not from 1. The
decision (`RequestRules.refusal`) is a pure function of the method, path and headers, so
the dashboard's routes, served by the API app, are guarded by the same `GuardRequests`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from gitopsd.api import auth, deliveries, webhooks
from gitopsd.api.numbers import whole_number
from gitopsd.errors import AllowedHostsError

CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
PROBES = frozenset({"/healthz", "/readyz", "/metrics"})
SIGNED = frozenset({"/api/v1/webhooks/github"})
API_PREFIX = "/api/"  # the dashboard's forms post application/x-www-form-urlencoded
CROSS_SITE = frozenset({"cross-site", "same-site"})
# read once by a rule or a route, so a second, different value is refused (rule 0)
SINGLE = (
    "Host",
    "Origin",
    "Sec-Fetch-Site",
    "Content-Type",
    webhooks.SIGNATURE_HEADER,
    deliveries.HEADER,
    webhooks.EVENT_HEADER,
)
MAX_HEAD = 16 * 1024
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
WILDCARDS = ("0.0.0.0", "::", "")  # noqa: S104 - names to recognise, not to bind

_HOST_NAME = re.compile(r"[A-Za-z0-9_.-]+")  # a DNS name or an IPv4 address
Authority = tuple[str, int | None]  # (host in lower case without brackets, port or None)


@dataclass(frozen=True)
class Refusal:
    """Why a request is refused, as its status code and the `{"error"}` message."""

    status: int
    message: str


@dataclass(frozen=True)
class RequestRules:
    """The hosts a request may name: `(host, port)` pairs, a port of None meaning any."""

    hosts: frozenset[Authority]
    any_host: bool = False

    @classmethod
    def for_listen(cls, host: str, port: int, allowed: Iterable[str] = ()) -> RequestRules:
        """The listen address (all loopback names when it is loopback or a wildcard, since
        a local client may use any of them) and each `allowed` entry."""
        names = [host] if host not in WILDCARDS else []
        if host in WILDCARDS or auth.is_loopback(host):
            names = [*names, *LOOPBACK_NAMES]
        hosts: set[Authority] = {(_normal(name), port) for name in names}
        entries = [entry.strip() for entry in allowed if entry.strip()]
        for entry in entries:
            if entry != "*":
                hosts.add(_allowed_entry(entry))
        return cls(frozenset(hosts), any_host="*" in entries)

    def refusal(self, method: str, path: str, headers: Mapping[str, str]) -> Refusal | None:
        """The first rule the request breaks (see the module docstring), or None."""
        host = headers.get("host")
        if not self._allows_host(host, probe=method in ("GET", "HEAD") and path in PROBES):
            shown = "no Host header" if host is None else f"Host {host!r}"
            return Refusal(421, f"{shown} is not an address of this server: see --allowed-hosts")
        if method not in CHANGING or path in SIGNED:
            return None
        refused = self._cross_site(headers)
        if refused is None and path.startswith(API_PREFIX):
            return _not_json(headers.get("content-type"))
        return refused

    def _allows_host(self, value: str | None, *, probe: bool) -> bool:
        if value is None and probe:
            return True  # HTTP/1.0 names no host: a probe, which no browser page can send
        authority = None if value is None else parse_authority(value)
        if authority is None:
            return False
        if self.any_host or self._names(authority):
            return True
        return probe and _is_ip_address(authority[0])

    def _names(self, authority: Authority) -> bool:
        host, port = authority
        return (host, None) in self.hosts or (host, port or 80) in self.hosts

    def _cross_site(self, headers: Mapping[str, str]) -> Refusal | None:
        # a list: a proxy may fold two header lines into one (`same-origin, cross-site`)
        sites = {site.strip().lower() for site in headers.get("sec-fetch-site", "").split(",")}
        crossing = sorted(sites & CROSS_SITE)
        if crossing:
            refused = crossing[0]
            return Refusal(
                403, f"refused a {refused} request (Sec-Fetch-Site): use the API directly"
            )
        origin = headers.get("origin")
        if origin is None or self._same_origin(origin, headers.get("host", "")):
            return None
        return Refusal(403, f"refused a request from another site (Origin {origin!r})")

    def _same_origin(self, origin: str, host: str) -> bool:
        """The page's origin is this server: its authority is the request's `Host` (as a
        browser writes both), or an allowed host (a proxy may rewrite `Host`)."""
        parts = urlsplit(origin.strip())
        if parts.scheme not in ("http", "https"):
            return False  # "null" (a sandboxed frame, a file) or another scheme
        authority = parse_authority(parts.netloc)
        if authority is None:
            return False
        if authority == parse_authority(host):
            return True
        default = 443 if parts.scheme == "https" else 80
        name, port = authority
        return (name, None) in self.hosts or (name, port or default) in self.hosts


class GuardRequests:
    """Pure ASGI middleware answering `{"error"}` with the status of the rule a request breaks."""

    def __init__(self, app: ASGIApp, *, rules: RequestRules) -> None:
        self.app = app
        self.rules = rules

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = Headers(scope=scope)
            refused = (
                oversized(scope)
                or ambiguity(headers)
                or self.rules.refusal(scope["method"], scope["path"], headers)
            )
            if refused is not None:
                response = JSONResponse({"error": refused.message}, status_code=refused.status)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def oversized(scope: Scope) -> Refusal | None:
    """Rule 0's size: the request line and headers as sent, over `MAX_HEAD` bytes."""
    target = len(scope.get("raw_path") or b"") + len(scope["query_string"])
    line = len(scope["method"]) + target + len(" ? HTTP/1.1\r\n\r\n")
    fields = sum(len(name) + len(b": \r\n") + len(value) for name, value in scope["headers"])
    if line + fields > MAX_HEAD:
        return Refusal(400, f"request head is over {MAX_HEAD // 1024} KiB")
    return None


def ambiguity(headers: Headers) -> Refusal | None:
    """Rule 0 (see the module docstring): a head that two readers could read two ways."""
    for name in SINGLE:
        if len(set(headers.getlist(name))) > 1:
            return Refusal(400, f"conflicting {name} headers: send one")
    if "content-length" in headers and "transfer-encoding" in headers:
        return Refusal(400, "both Content-Length and Transfer-Encoding: send one")
    return None


def parse_authority(value: str) -> Authority | None:
    """`host`, `host:port`, `[v6]` or `[v6]:port` as (host, port); None when malformed."""
    text = value.strip()
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
        port_text = rest[1:] if rest else None
    else:
        host, colon, port_text_found = text.partition(":")
        port_text = port_text_found if colon else None
        if ":" in port_text_found:
            return None  # an IPv6 address without brackets
    port = None if port_text is None else whole_number(port_text)
    if port_text is not None and (port is None or len(port_text) > 5):
        return None
    valid = _is_ip_address(host) if text.startswith("[") else _HOST_NAME.fullmatch(host)
    if not valid:
        return None
    return _normal(host), port


def _allowed_entry(entry: str) -> Authority:
    authority = parse_authority(entry)
    if authority is None or authority[1] == 0 or (authority[1] or 0) > 65535:
        raise AllowedHostsError(
            f"--allowed-hosts: {entry!r} is not HOST, HOST:PORT, [IPv6]:PORT or *"
            " (a port is 1 to 65535)"
        )
    return authority


def _not_json(content_type: str | None) -> Refusal | None:
    media_type = (content_type or "").partition(";")[0].strip().lower()
    if media_type == "application/json":
        return None
    shown = repr(content_type) if content_type else "none"
    return Refusal(415, f"Content-Type must be application/json (got {shown})")


def _normal(host: str) -> str:
    return host.strip("[]").rstrip(".").lower()


def _is_ip_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
