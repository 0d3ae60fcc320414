"""A git command's output read as it comes: a listing a record at a time, blobs one by one.

A daemon watching a repo of thousands of components lists and reads all of their manifests
on its first load. Taken whole (`capture_output`), the listing and the content of every
manifest were buffers of megabytes each. glibc serves a buffer that large from a mapping of
its own and, once it is freed, raises its thresholds to that size for the life of the
process: every thread's heap then keeps that much freed memory rather than returning it
(benchmarks/README.md). Read as it comes, no buffer is larger than one read of the pipe.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from gitopsd.errors import GitSourceError

READ_SIZE = 64 * 1024  # bytes of the pipe read at once


def records(command: list[str], *, cwd: Path, failure: str) -> Iterator[str]:
    """The NUL-separated records `command` prints (git's `-z`), each as soon as it is
    complete; GitSourceError (`failure`: what went wrong, git's message added) when the
    command fails."""
    with _started(command, cwd, stdin=subprocess.DEVNULL, buffered=False) as process:
        stdout = process.stdout
        assert stdout is not None
        pending = b""
        for chunk in iter(lambda: stdout.read(READ_SIZE), b""):  # one read of the pipe each
            *complete, pending = (pending + chunk).split(b"\0")
            yield from (_text(record) for record in complete if record)
        if pending:
            yield _text(pending)
        _check_exit(process, failure)


def _text(record: bytes) -> str:
    """A record as text; bytes that are not UTF-8 (a file named in Latin-1) kept as escapes
    that turn back into the same bytes when the name is given to git or the file system."""
    return record.decode(errors="surrogateescape")


def blobs(command: list[str], shas: list[str], *, cwd: Path, failure: str) -> list[bytes]:
    """The content of each of `shas`, in their order, from `git cat-file --batch`: the
    names are written by a thread of their own while the blobs are read, so neither side
    waits for the other's pipe to drain."""
    with _started(command, cwd, stdin=subprocess.PIPE) as process:
        assert process.stdin is not None and process.stdout is not None
        feeder = threading.Thread(target=_feed, args=(process.stdin, shas), daemon=True)
        feeder.start()
        try:
            found = [_blob(process.stdout, process, failure) for _ in shas]
        except GitSourceError:
            process.kill()
            raise
        finally:
            feeder.join()
        _check_exit(process, failure)
        return found


def _started(
    command: list[str], cwd: Path, *, stdin: int, buffered: bool = True
) -> subprocess.Popen[bytes]:
    """`command` started in `cwd`; a folder gone or a git that cannot start is a
    GitSourceError, as for every git command (`gitrepo._run`)."""
    try:
        return subprocess.Popen(
            command,
            cwd=cwd,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=-1 if buffered else 0,
        )
    except OSError as error:
        raise GitSourceError(f"{cwd}: cannot run git there: {error.strerror or error}") from None


def _feed(pipe: IO[bytes], shas: Iterable[str]) -> None:
    with contextlib.suppress(BrokenPipeError), pipe:  # git stopped early: its exit says why
        for sha in shas:
            pipe.write(f"{sha}\n".encode())


def _blob(stdout: IO[bytes], process: subprocess.Popen[bytes], failure: str) -> bytes:
    """The next blob `cat-file --batch` prints: a header `<sha> <type> <size>`, the
    content, a newline."""
    header = stdout.readline()
    if not header:  # git stopped before answering every name
        process.wait()
        _check_exit(process, failure)
    fields = header.split()
    if len(fields) != 3:
        raise GitSourceError(f"unexpected git cat-file output: {fields!r}")
    content = stdout.read(int(fields[2]))
    stdout.read(1)
    return content


def _check_exit(process: subprocess.Popen[bytes], failure: str) -> None:
    assert process.stderr is not None
    reason = process.stderr.read().decode(errors="replace").strip()
    if process.wait() != 0:
        raise GitSourceError(f"{failure}: {reason}")
