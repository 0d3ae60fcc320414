"""Who leads the daemons sharing one PostgreSQL database: an advisory lock and an epoch.

Pipeline: this sits beside the state store. Any number of `gitopsd serve` processes may share
one database; `runtime.service.leadership` campaigns here until one of them holds the lock, and only
that one runs work. The pieces:

- the lock is `pg_try_advisory_lock` on a connection of its own, never pooled, so it lives
  exactly as long as that session: a process that dies (its socket closed by the kernel) frees
  it at once;
- that session sets `idle_session_timeout`, and a leader confirms its lead well within it,
  so a leader that stops answering (paused, its host gone, a network partition) has its
  session ended by the server, and its lock freed, `timeout` seconds after it last spoke;
  TCP keepalives bound how long the leader itself takes to notice a dead server;
- winning the lock bumps the epoch in the `leadership` row; the store's fenced writes check
  that epoch (see `postgres_store`), so a deposed leader that wakes up records nothing.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from typing import Any

import psycopg

from gitopsd.adapters.postgres_store import (
    LEADER_LOCK,
    LEADERSHIP_ROW,
    LOCK_SPACE,
    connection_options,
    session_timeout,
)
from gitopsd.adapters.urls import redacted
from gitopsd.engine.ports import Term

log = logging.getLogger(__name__)
Connection = psycopg.Connection[tuple[Any, ...]]


class PostgresElection:
    """`ports.Election`: `holder`'s campaign to lead the daemons sharing the database `url`."""

    def __init__(self, url: str, *, holder: str, timeout: float) -> None:
        self.holder = holder
        self._url = url
        self._timeout = timeout
        self._connection: Connection | None = None
        # the campaign's thread and the API's (asking who leads) share the one session: never
        # two sessions, or the lock could stay with one the campaign no longer looks at
        self._lock = threading.RLock()

    def campaign(self) -> Term | None:
        """Try once to lead: the lock, then a new epoch. None while another process leads
        or the database does not answer."""
        with self._lock:
            return self._campaign()

    def _campaign(self) -> Term | None:
        try:
            connection = self._connect()
            won = connection.execute(
                "SELECT pg_try_advisory_lock(%s, %s)", (LOCK_SPACE, LEADER_LOCK)
            ).fetchone()
            if won is None or not won[0]:
                return None
            return self._new_epoch(connection)
        except psycopg.Error as error:
            log.warning("cannot campaign for the lead: %s", error)
            self.resign()
            return None

    def confirm(self, epoch: int) -> bool:
        """Whether this process still leads at `epoch`: its lock session answers and no newer
        epoch exists. Called often enough, it also keeps the session from timing out."""
        with self._lock:
            return self._confirm(epoch)

    def _confirm(self, epoch: int) -> bool:
        if self._connection is None:
            return False
        try:
            row = self._connection.execute(
                "SELECT epoch FROM leadership WHERE name = %s", (LEADERSHIP_ROW,)
            ).fetchone()
        except psycopg.Error as error:
            log.warning("the leader's session to the database is gone: %s", error)
            self.resign()
            return False
        return row is not None and int(row[0]) == epoch

    def leader(self) -> str | None:
        """Who leads now: the holder elected last, while some session holds the lock."""
        with self._lock:
            return self._leader()

    def _leader(self) -> str | None:
        try:
            row = self._connect().execute(_LEADER, (LEADERSHIP_ROW, LOCK_SPACE, LEADER_LOCK))
            found = row.fetchone()
        except psycopg.Error:
            self.resign()
            return None
        return None if found is None else str(found[0])

    def resign(self) -> None:
        """End the session (and so the lock, if held)."""
        with self._lock:
            connection, self._connection = self._connection, None
            if connection is not None:
                try:
                    connection.close()
                except psycopg.Error as error:
                    log.debug("closing the election session: %s", error)

    def _connect(self) -> Connection:
        if self._connection is not None and not self._connection.closed:
            return self._connection
        options = connection_options(application="gitopsd-leader", keepalive=self._timeout / 2)
        options["options"] = session_timeout("idle", self._timeout)
        try:
            connection: Connection = psycopg.connect(self._url, autocommit=True, **options)
        except psycopg.Error as error:
            raise psycopg.OperationalError(f"{redacted(self._url)}: {error}") from error
        self._connection = connection
        return connection

    def _new_epoch(self, connection: Connection) -> Term:
        """Bump the epoch; the update waits for fenced writes of the old epoch in flight."""
        with connection.transaction():
            row = connection.execute(
                "SELECT epoch, holder FROM leadership WHERE name = %s FOR UPDATE",
                (LEADERSHIP_ROW,),
            ).fetchone()
            previous, holder = (int(row[0]), str(row[1])) if row else (0, None)
            connection.execute(
                "INSERT INTO leadership (name, epoch, holder, elected_at) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (name) DO UPDATE SET epoch = excluded.epoch,"
                " holder = excluded.holder, elected_at = excluded.elected_at",
                (LEADERSHIP_ROW, previous + 1, self.holder, datetime.now(UTC).isoformat()),
            )
        return Term(epoch=previous + 1, previous=holder)


_LEADER = (
    "SELECT holder FROM leadership WHERE name = %s AND EXISTS ("
    " SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
    " AND classid::bigint = %s::bigint AND objid::bigint = %s::bigint AND objsubid = 2)"
)
