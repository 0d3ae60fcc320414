"""At most one run per environment: a lease in the state store, renewed while a run lasts.

The lease expires by itself (`TTL`) if its holder dies, and a holder on this machine whose
process is gone is taken over at once, so `kill -9` followed by another command resumes
without waiting; so is a deposed leader of daemons sharing the store (its writes are
fenced). A holder that fails to renew (it was paused, someone else took over, its renewal
was fenced) stops its run through the cancel flag rather than carrying on unfenced; so does
one whose renewals meet faults (the store locked, the disk full) or do not answer at all (a
write waiting minutes for another process's lock) for most of the TTL: 10 s before the
lease expires in the store, so that its drivers, stopped with SIGTERM and SIGKILL after
their grace, are gone before another process may take the environment.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Collection, Iterator
from dataclasses import dataclass

from gitopsd.adapters import process_groups
from gitopsd.engine.ports import Clock, FencedError, StateStore
from gitopsd.errors import BusyError, is_temporary
from gitopsd.runtime.runs.orphan_drivers import KILL_GRACE

log = logging.getLogger(__name__)

TTL = 30.0
BUSY_LOOKS = 3
BUSY_LOOK_PAUSE = 0.1


def holder_id() -> str:
    """Who holds a lease: this host and process, and a nonce against pid reuse."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def is_dead(holder: str) -> bool:
    """Whether `holder` is a process of this host that no longer exists: gone, or a zombie
    (killed, and not yet reaped by a parent that may never do so)."""
    host, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    stat = process_groups.read_stat(int(pid_text))
    if stat is not None:
        return not stat.alive
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def held_by_a_live_process(store: StateStore, environment: str, *, clock: Clock) -> bool:
    """Whether a process that still runs holds `environment`'s lease: its run is its own to
    end (a lease held by a gone process of this host is taken over, `held`)."""
    holder = store.lease_holder(environment, now=clock.now())
    return holder is not None and not is_dead(holder)


def busy_message(store: StateStore, environment: str, *, clock: Clock) -> str:
    """Says "dev is busy with run ID (pid PID, host HOST)": who holds the lease, and the run
    it is doing. A holder that took the lease an instant ago may not have recorded its run
    yet: it is looked for a few times (a drift check holds the lease without a run)."""
    for _ in range(BUSY_LOOKS):
        holder = store.lease_holder(environment, now=clock.now())
        unfinished = store.unfinished_runs(environment)
        if unfinished or holder is None:
            break
        clock.sleep(BUSY_LOOK_PAUSE)
    doing = f" with run {unfinished[-1].id}" if unfinished else ""
    return f"{environment} is busy{doing} ({_who(holder)})"


def _who(holder: str | None) -> str:
    if holder is None:
        return "its holder has just let it go"
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    return f"pid {pid}, host {host}" if pid.isdigit() else f"held by {holder}"


@contextlib.contextmanager
def held(
    store: StateStore,
    environment: str,
    *,
    holder: str,
    clock: Clock,
    lost: threading.Event,
    deposed: Collection[str] = (),
    ttl: float = TTL,
) -> Iterator[None]:
    """Hold `environment`'s lease for the duration; `lost` is set if it is ever lost (a
    renewal refused, or none succeeding within `ttl`: `_Lease.renew`). A lease of a dead
    local process, or of a holder in `deposed`, is taken over."""
    current = store.lease_holder(environment, now=clock.now())
    gone = current is not None and (current in deposed or is_dead(current))
    takeover = current if gone else None
    asked_at = time.monotonic()  # the lease expires `ttl` from here, however long taking it takes
    if not store.acquire_lease(environment, holder, now=clock.now(), ttl=ttl, takeover=takeover):
        raise BusyError(busy_message(store, environment, clock=clock))
    stop = threading.Event()
    lease = _Lease(store, environment, holder, clock, ttl)
    renewer = threading.Thread(target=lease.renew, args=(asked_at, stop, lost), daemon=True)
    renewer.start()
    give_back = True
    try:
        yield
    except BaseException as error:
        # the store could not be written (full, locked past its patience): giving the lease
        # back would wait out its patience again before the error is said. It expires after
        # `ttl`, a gone holder's is taken over at once, and this holder takes it again.
        give_back = not is_temporary(error)
        raise
    finally:
        stop.set()
        renewer.join()
        if give_back:
            store.release_lease(environment, holder)


@dataclass(frozen=True)
class _Lease:
    """One holder's lease of an environment, renewed by `renew` in a thread of its own."""

    store: StateStore
    environment: str
    holder: str
    clock: Clock
    ttl: float

    def renew(self, since: float, stop: threading.Event, lost: threading.Event) -> None:
        """Renew every third of the TTL until `stop`, the lease last taken by a call begun at
        `since` (`time.monotonic()`). Refused (another holder has it, or fenced): lost at
        once. A fault (any error: the store locked or full) is tried again every tenth of the
        TTL; a thread that died of it left the run going with nobody holding its lease, and a
        second command took the environment beside it. Lost, whatever the renewals do, before
        the lease expires in the store (`_expiry`, timed from the start of the last call that
        succeeded): a timer keeps that deadline, not this thread, which a renewal can hold for
        minutes without failing (SQLite's BEGIN waiting out another process's lock). Lost
        stays lost: a renewal that answers later stops the renewing, it does not undo the
        loss (the run is being cancelled)."""
        expiry = self._expiry(since, lost)
        wait = self.ttl / 3
        try:
            while not stop.wait(wait) and not lost.is_set():
                began = time.monotonic()
                try:
                    renewed = self._renewed()
                except Exception as error:  # any: a renewer that dies leaves the run unfenced
                    log.warning("renewing the lease of %s: %s", self.environment, error)
                    wait = self.ttl / 10
                    continue
                if not renewed or lost.is_set():
                    lost.set()
                    return
                expiry.cancel()
                expiry, wait = self._expiry(began, lost), self.ttl / 3
        finally:
            expiry.cancel()

    def _expiry(self, since: float, lost: threading.Event) -> threading.Timer:
        """A started timer that declares the lease lost before it expires, `ttl` after
        `since`: by the drivers' kill grace (a third of the TTL at most), so that the run's
        drivers, stopped with SIGTERM and SIGKILL after that grace, are gone before another
        process may take the environment. At once if that moment has passed; nothing if
        cancelled first."""
        margin = min(KILL_GRACE, self.ttl / 3)
        left = since + self.ttl - margin - time.monotonic()
        timer = threading.Timer(left, self._expired, args=(since, lost))
        timer.daemon = True
        timer.start()
        return timer

    def _expired(self, since: float, lost: threading.Event) -> None:
        log.error("lost the lease of %s: not renewed for %.0fs (the store failed or did not"
                  " answer)", self.environment, time.monotonic() - since)  # fmt: skip
        lost.set()

    def _renewed(self) -> bool:
        try:
            return self.store.acquire_lease(
                self.environment, self.holder, now=self.clock.now(), ttl=self.ttl
            )
        except FencedError:
            return False
