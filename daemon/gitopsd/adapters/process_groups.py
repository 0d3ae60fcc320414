"""Find and signal a driver's process group from its record, never a stranger's.

A driver runs as the leader of its own process group (its pid is the group's id). When the
process that started it dies, the group lives on; whoever takes the environment over finds it
from its record (`model.state.DriverProcess`) and ends it. A pid is reused once its process and
group are gone, so a record is trusted only while what it names still matches: the leader's
start time (/proc/<pid>/stat field 22, clock ticks since boot) must be the recorded one. A
leader that exited but left children in its group no longer has a start time; its group is
recognised by members that started no earlier than the leader did (the kernel does not hand
out a pid while a group of that id exists, so such members are the driver's children).

Zombies are gone: a process killed whose parent died waits for init to reap it, and a
container's init may never do so.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import Enum

PROC = "/proc"


class GroupState(Enum):
    GONE = "gone"  # nothing of the group runs any more
    RUNNING = "running"  # the recorded driver, or children it left in its group, still run
    STRANGER = "stranger"  # the pid is another process's now: never signal it


@dataclass(frozen=True)
class ProcessStat:
    """What /proc/<pid>/stat says of a process that matters here."""

    state: str  # R, S, D, Z...
    pgrp: int
    started: int  # clock ticks since boot

    @property
    def alive(self) -> bool:
        return self.state not in ("Z", "X")


def start_time(pid: int) -> int | None:
    """When process `pid` started, in clock ticks since boot; None without /proc or once it
    is gone."""
    stat = read_stat(pid)
    return None if stat is None else stat.started


def read_stat(pid: int) -> ProcessStat | None:
    """/proc/<pid>/stat, or None where there is none (the process is gone, or no /proc)."""
    try:
        with open(f"{PROC}/{pid}/stat", "rb") as file:
            text = file.read()
    except (FileNotFoundError, ProcessLookupError, NotADirectoryError, PermissionError):
        return None
    # the command name (field 2) is in parentheses and may hold spaces or parentheses itself
    fields = text[text.rfind(b")") + 2 :].split()
    return ProcessStat(fields[0].decode(), int(fields[2]), int(fields[19]))


def group_state(pid: int, started: int | None) -> GroupState:
    """Whether the group whose leader was process `pid`, started at `started`, still runs."""
    if not os.path.isdir(PROC) or started is None:
        return _without_proc(pid)
    leader = read_stat(pid)
    if leader is not None:
        if leader.started != started or leader.pgrp != pid:
            return GroupState.STRANGER if leader.alive else GroupState.GONE
        if leader.alive:
            return GroupState.RUNNING
    if _without_proc(pid) is GroupState.GONE:  # one system call: the usual answer
        return GroupState.GONE
    members = (stat for stat in _group_members(pid) if stat.alive and stat.started >= started)
    return GroupState.RUNNING if any(True for _ in members) else GroupState.GONE


def _group_members(pgid: int) -> list[ProcessStat]:
    """The processes of group `pgid` (a scan of /proc: only done when a record is checked)."""
    found = []
    for name in os.listdir(PROC):
        if name.isdigit() and (stat := read_stat(int(name))) is not None and stat.pgrp == pgid:
            found.append(stat)
    return found


def _without_proc(pid: int) -> GroupState:
    """Without a start time to compare, all that can be known is whether the group exists."""
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return GroupState.GONE
    except PermissionError:
        return GroupState.STRANGER
    return GroupState.RUNNING
