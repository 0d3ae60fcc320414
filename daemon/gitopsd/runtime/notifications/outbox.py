"""The outbox: every audit event, handed to subscribers on one thread, from a durable cursor.

Pipeline: run -> audit trail -> **outbox** -> announce -> commit statuses, notifications.
Runs only append to the audit trail (in the same transaction as the state they describe), so
nothing outside can slow a run down or lose an event: this thread is the only one that waits
on the network. It wakes every `interval` seconds or when woken, reads the events after its
cursor (a named position saved in the state store), hands each to every subscriber in order,
and saves the cursor after each batch.

Delivery is **at least once**:
- a daemon killed mid-batch delivers that batch again after its restart (receivers can
  deduplicate on the event id, which a redelivery repeats);
- a delivery cut short by a stopping daemon (`Stopping`) is given again after the restart;
- a daemon starting on a database without a cursor starts at the current end: it never
  replays history it was not running for.
Only the leading daemon runs an outbox (`runtime.service.leadership`); one deposed
mid-delivery finds its cursor write fenced and stops, and the new leader's outbox delivers
from the saved cursor.
A subscriber's own failure (a webhook down after its retries) is the subscriber's to log and
count; an exception escaping one is logged and the event passes on, so one broken subscriber
never stalls the others.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from gitopsd.engine.ports import FencedError, StateStore
from gitopsd.model.state import Event

log = logging.getLogger(__name__)

Subscriber = Callable[[Event], None]
CURSOR = "outbox"
BATCH = 100


# not in gitopsd.errors: a signal that the daemon stops, not an error
class Stopping(Exception):  # noqa: N818 - a signal, not an error
    """Raised by a subscriber that gives up waiting because the daemon stops: the event (and
    those after it) are delivered again after the next start."""


class Outbox:
    """`start()` it, `wake()` it when events were appended, `stop()` it on shutdown."""

    def __init__(
        self,
        store: StateStore,
        subscribers: Sequence[Subscriber],
        *,
        interval: float = 1.0,
        batch: int = BATCH,
        cursor: str = CURSOR,
        stopping: threading.Event | None = None,
    ) -> None:
        self._store = store
        self._subscribers = list(subscribers)
        self._interval = interval
        self._batch = batch
        self._cursor = cursor
        self._woken = threading.Event()
        # set by stop(); subscribers wait on it between retries, to give up in time
        self.stopping = stopping if stopping is not None else threading.Event()
        self._thread: threading.Thread | None = None
        self._position: int | None = None  # the saved cursor, read once, then kept here

    def start(self) -> None:
        """Take the saved cursor (or start at the current end), then deliver in the
        background. Call before anything appends events, or they count as history."""
        self.position()
        self._thread = threading.Thread(target=self._loop, name="outbox", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Deliver now rather than at the next tick (events were appended)."""
        self._woken.set()

    def stop(self, *, timeout: float = 10.0) -> None:
        """Deliver what is pending (first attempts only: waits for retries are cut short),
        then end the thread; what is left is delivered after the next start."""
        self.stopping.set()
        self._woken.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("the outbox is still delivering after %.0fs; leaving it", timeout)

    def position(self) -> int:
        """The id of the last event delivered; saved as the current end when there is none.
        Read from the store once: this outbox is the only writer of its cursor."""
        if self._position is not None:
            return self._position
        saved = self._store.get_cursor(self._cursor)
        if saved is not None:
            self._position = saved
            return saved
        newest = self._store.list_events(limit=1)
        end = (newest[0].id or 0) if newest else 0
        self._save(end)
        log.info("the outbox starts at event %d: earlier events are not delivered", end)
        return end

    def _save(self, position: int) -> None:
        self._store.save_cursor(self._cursor, position)
        self._position = position

    def deliver_pending(self) -> int:
        """Deliver every event after the cursor, batch by batch; return how many."""
        delivered = 0
        while True:
            events = self._store.list_events_after(self.position(), limit=self._batch)
            if not events:
                return delivered
            self._save(self._deliver(events))
            delivered += len(events)

    def _deliver(self, events: list[Event]) -> int:
        """Hand each event to each subscriber; the id of the last one delivered."""
        done = self.position()
        for event in events:
            for subscriber in self._subscribers:
                try:
                    subscriber(event)
                except Stopping:
                    self._save(done)
                    raise
                except Exception:  # one broken subscriber must not stall the others
                    log.exception("an outbox subscriber failed on event %s", event.id)
            done = event.id or done
        return done

    def _loop(self) -> None:
        while not self.stopping.is_set():
            self._woken.wait(self._interval)
            self._woken.clear()
            if not self._deliver_logged():
                return
        self._deliver_logged()  # what the last runs appended, before the daemon exits

    def _deliver_logged(self) -> bool:
        """Deliver what is pending; False if a subscriber stopped for the shutdown."""
        try:
            self.deliver_pending()
        except Stopping:
            log.info("the outbox stopped mid-delivery; the rest follows after the next start")
            return False
        except FencedError:  # another daemon leads now: its outbox goes on from the cursor
            log.info("the outbox stopped: this daemon no longer leads")
            return False
        except Exception:  # the store may be busy or closing: try again at the next tick
            log.exception("the outbox could not deliver")
        return True
