"""Foreground runs stop on SIGTERM and SIGINT the way the daemon does.

A cancelled CI job sends gitopsd SIGTERM (or SIGINT), and SIGKILL a few seconds later. Left
to Python's defaults, SIGTERM killed gitopsd at once and its driver ran on as an orphan, and
SIGINT raised KeyboardInterrupt with a traceback. Here the first signal stops the run as the
daemon's shutdown does when its grace is over: no new step starts, the running drivers get
SIGTERM (SIGKILL after their grace), and the run is left exactly as a crash leaves it, for the
next command or the daemon to resume (`runtime.runs.steps.Interrupted`). The command then exits
128 + the signal's number, with one line saying so.

A state store another process keeps locked is not waited for once the first signal came: the
write that was waiting fails, and the command says so and exits as above. A second signal
ends the process at once, as the system's default does: the operator who presses Ctrl-C
again will not wait, and the first may be waiting on something that does not end soon (a
driver that ignores SIGTERM for its grace). That is a crash, which a run survives: the
reaper ends the drivers (adapters/reaper.py) and the next command resumes the run.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType

import click

from gitopsd.errors import GitopsdError
from gitopsd.runtime.runs.steps import Interrupted
from gitopsd.runtime.runs.workspace import Workspace

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextlib.contextmanager
def stopping(workspace: Workspace) -> Iterator[None]:
    """While the block runs, SIGTERM and SIGINT stop `workspace`'s run and drivers."""

    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set signal handlers; such callers handle stopping
        return
    received: list[int] = []

    def on_signal(signum: int, _: FrameType | None) -> None:
        received.append(signum)
        workspace.draining.set()
        workspace.interrupted.set()
        for stop in STOP_SIGNALS:  # a second one ends the process at once (the module doc)
            signal.signal(stop, signal.SIG_DFL)

    previous = {signum: signal.signal(signum, on_signal) for signum in STOP_SIGNALS}
    try:
        yield
    except Interrupted:
        signum = received[0] if received else signal.SIGTERM
        click.echo(
            f"gitopsd: error: stopped by {signal.Signals(signum).name}: the drivers were "
            "stopped and the run is left to resume with the next apply or destroy",
            err=True,
        )
        sys.exit(128 + signum)
    except GitopsdError as error:
        if not received:
            raise
        # what the stop cut short: a state store another process keeps locked, which a
        # stopping process no longer waits for (adapters/sqlite_store.py)
        click.echo(
            f"gitopsd: error: stopped by {signal.Signals(received[0]).name}: {error}", err=True
        )
        sys.exit(128 + received[0])
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
