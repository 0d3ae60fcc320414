"""The C allocator's arena cap, seen from glibc's own report of a process's arenas
(`malloc_stats`, one "Arena N:" section each) while eight threads that allocated are alive."""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's arenas")

THREADS = 8

SCRIPT = textwrap.dedent(
    f"""
    import ctypes, sys, threading
    from gitopsd.adapters import allocator

    if sys.argv[1] == "cap":
        print(allocator.cap_arenas(), flush=True)
    elif sys.argv[1] == "command line":  # what `gitopsd --version` does before it exits
        from gitopsd.cli.main import main
        sys.argv = ["gitopsd", "--version"]
        try:
            main()
        except SystemExit:
            pass
    allocated = threading.Barrier({THREADS} + 1)
    done = threading.Event()

    def work():
        kept = [bytearray(100_000) for _ in range(4)]  # above pymalloc's sizes: C's malloc
        allocated.wait()
        done.wait()

    threads = [threading.Thread(target=work) for _ in range({THREADS})]
    for thread in threads:
        thread.start()
    allocated.wait()
    ctypes.CDLL(None).malloc_stats()  # to stderr
    done.set()
    for thread in threads:
        thread.join()
    """
)


def arenas(mode: str, **env: str) -> tuple[str, int]:
    """What the script printed, and how many arenas glibc reported."""
    environment = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"} | env
    ran = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
        check=True,
    )
    return ran.stdout.strip(), len(re.findall(r"^Arena \d+:", ran.stderr, re.MULTILINE))


def test_threads_share_two_arenas_once_capped() -> None:
    assert arenas("cap") == ("True", 2)


def test_every_gitopsd_command_caps_them_at_its_entry() -> None:
    printed, count = arenas("command line")
    assert printed.startswith("gitopsd") and count == 2


def test_without_the_cap_each_thread_takes_an_arena_of_its_own() -> None:
    _, count = arenas("leave")
    assert count > 2  # what the cap is for; on two cores glibc allows up to 16


def test_an_operators_own_setting_wins() -> None:
    assert arenas("cap", MALLOC_ARENA_MAX="3") == ("False", 3)
    assert arenas("cap", GLIBC_TUNABLES="glibc.malloc.arena_max=1") == ("False", 1)
