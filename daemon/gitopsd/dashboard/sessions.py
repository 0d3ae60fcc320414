"""Browser sessions: a token typed once on the login page becomes a random session id.

Sessions live in the daemon's memory, bounded in number (the oldest goes first) and in age,
so a forgotten browser or a flood of logins cannot grow the daemon. A restart logs everyone
out, which is the price of never writing a session to disk. Each session carries its own
CSRF token, which every form repeats and every POST must send back.

Without a tokens file there is no login, and every browser is `local`: its session is not
kept at all but made from its cookie (`local`), the CSRF token an HMAC of the session id
under a key of this process. Any web page can make the browser load a dashboard page without
the cookie (an image, SameSite cookies are not sent), and each such load opened a session:
a thousand of them ended the operator's, whose next form was refused.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta

from gitopsd.engine.ports import Clock
from gitopsd.runtime.control import Identity

COOKIE = "gitopsd_session"
MAX_SESSIONS = 1000
LIFETIME = timedelta(hours=12)
_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{43}")  # what secrets.token_urlsafe(32) makes


@dataclass(frozen=True)
class Session:
    """Who is logged in, the CSRF token their forms carry, and when the session ends."""

    id: str
    identity: Identity
    csrf: str
    expires: datetime

    def accepts(self, csrf: str | None) -> bool:
        """Whether a form's `csrf` field is this session's token (compared in constant time)."""
        return csrf is not None and hmac.compare_digest(self.csrf.encode(), csrf.encode())


class Sessions:
    """The open sessions, oldest first; safe to use from any thread."""

    def __init__(self, clock: Clock, *, limit: int = MAX_SESSIONS) -> None:
        self._clock = clock
        self._limit = limit
        self._open: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()
        self._local_key = secrets.token_bytes(32)  # signs the local sessions' CSRF tokens

    def open(self, identity: Identity) -> Session:
        """A new session for `identity`; past the limit the oldest session ends."""
        session = Session(
            id=secrets.token_urlsafe(32),
            identity=identity,
            csrf=secrets.token_urlsafe(32),
            expires=self._clock.now() + LIFETIME,
        )
        with self._lock:
            self._open[session.id] = session
            while len(self._open) > self._limit:
                self._open.popitem(last=False)
        return session

    def local(self, identity: Identity, session_id: str | None) -> tuple[Session, bool]:
        """The session of a browser without a login (no tokens file), made from its cookie's
        `session_id`, and whether it is new (a missing or malformed id: a new one). Nothing
        is kept, so no number of them ends another."""
        if session_id is not None and _SESSION_ID.fullmatch(session_id):
            chosen, fresh = session_id, False
        else:
            chosen, fresh = secrets.token_urlsafe(32), True
        csrf = hmac.new(self._local_key, chosen.encode(), hashlib.sha256).hexdigest()
        session = Session(chosen, identity, csrf, expires=self._clock.now() + LIFETIME)
        return session, fresh

    def find(self, session_id: str | None) -> Session | None:
        """The session of a cookie's value; None when unknown or expired."""
        if not session_id:
            return None
        with self._lock:
            session = self._open.get(session_id)
            if session is not None and session.expires <= self._clock.now():
                del self._open[session_id]
                return None
        return session

    def close(self, session_id: str | None) -> None:
        """End a session (logout); an unknown id is ignored."""
        with self._lock:
            self._open.pop(session_id or "", None)
