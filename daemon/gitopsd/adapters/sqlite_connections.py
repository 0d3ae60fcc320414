"""The SQLite store's connections: lent to one thread at a time, a few kept between loans.

A connection of its own for every thread that touched the store kept one open per
long-lived thread of the daemon, each with its page cache, schema and compiled statements,
and opened and closed one for every worker thread of every run (sixteen a run, three runs a
commit). The store's statements are short and the interpreter runs one thread at a time, so
a few connections serve them all: here a statement, or a transaction, borrows a connection
and gives it back; the `keep` most recently returned wait for the next loan (their caches
still warm), and one returned beyond those is closed. What that saves and how few are opened
is measured in benchmarks/README.md (memory; design choices).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator


class Connections:
    """Connections made by `open_connection`, each lent to one thread at a time; at most
    `keep` of them kept open while no one borrows them."""

    def __init__(self, open_connection: Callable[[], sqlite3.Connection], *, keep: int) -> None:
        self._open = open_connection
        self._keep = keep
        self._idle: list[sqlite3.Connection] = []  # the most recently returned last
        self._lock = threading.Lock()
        self._closed = False

    @contextlib.contextmanager
    def borrowed(self) -> Iterator[sqlite3.Connection]:
        """A connection for this thread alone until the block ends."""
        connection = self._take()
        try:
            yield connection
        finally:
            self._give_back(connection)

    def close(self) -> None:
        """Close the idle connections now, and each lent one when it comes back."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def _take(self) -> sqlite3.Connection:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return self._open()

    def _give_back(self, connection: sqlite3.Connection) -> None:
        # a transaction left open (a rollback that failed) must not reach the next borrower
        reusable = not connection.in_transaction
        with self._lock:
            if reusable and not self._closed and len(self._idle) < self._keep:
                self._idle.append(connection)
                return
        connection.close()
