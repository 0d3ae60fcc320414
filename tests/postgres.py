"""A real PostgreSQL server for the tests of the shared store, started on a temporary data folder.

The session starts at most one server (only when a test asks for it): `initdb` into a folder
under /tmp, then `pg_ctl start` on a free loopback port, with its unix socket in that folder and
every durability setting off (fsync, synchronous commit, full page writes), since a test database
never has to survive a power cut. Each test gets a database of its own (`CREATE DATABASE`, then
`DROP ... WITH (FORCE)` afterwards), so nothing leaks between tests and no reset is needed.

PostgreSQL refuses to run as root, and the tests run as root here and in CI: when they do, the
server binaries run as the `postgres` user (Debian's package creates it) through `runuser`, in a
folder chowned to it. Where the binaries are absent the tests skip with a message saying what to
install, except in CI (`CI=true`), where `.ci/run` installs them, so absent binaries fail.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

SERVER_USER = "postgres"
_BIN_GLOB = "/usr/lib/postgresql/*/bin"
_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "300",
    "shared_buffers": "32MB",
    "log_min_messages": "warning",
    "log_line_prefix": "'%m [%p] '",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def find_binaries() -> Path | None:
    """The folder of `initdb` and `pg_ctl`: $GITOPSD_TEST_PG_BIN, Debian's newest, or PATH."""
    wanted = os.environ.get("GITOPSD_TEST_PG_BIN")
    candidates = [Path(wanted)] if wanted else []
    by_version = sorted(glob.glob(_BIN_GLOB), key=_major_version, reverse=True)
    candidates += [Path(folder) for folder in by_version]
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).parent)
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    return None


def _major_version(folder: str) -> int:
    found = re.search(r"/postgresql/(\d+)/", folder)
    return int(found.group(1)) if found else 0


class PostgresServer:
    """One server on 127.0.0.1:`port`, as the superuser `postgres` with trust authentication."""

    def __init__(self, bindir: Path, root: Path, *, port: int) -> None:
        self.bindir = bindir
        self.root = root
        self.port = port
        self.data = root / "data"
        self.log = root / "server.log"
        self._names = itertools.count(1)

    @classmethod
    def create(cls, bindir: Path) -> PostgresServer:
        root = Path(tempfile.mkdtemp(prefix="gitopsd-pg-"))
        server = cls(bindir, root, port=free_port())
        try:
            server._initdb()
            server.start()
        except BaseException:
            server.destroy()
            raise
        return server

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        self._pg_ctl("start", "-l", str(self.log))

    def stop(self, *, mode: str = "fast") -> None:
        self._pg_ctl("stop", "-m", mode)

    def restart(self) -> None:
        """Stop (ending every session, as an operator's restart does) and start again."""
        self._pg_ctl("restart", "-m", "fast", "-l", str(self.log))

    def is_running(self) -> bool:
        done = self._run(self.bindir / "pg_ctl", "-D", str(self.data), "status", check=False)
        return done.returncode == 0

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError, OSError):
            if self.data.is_dir() and self.is_running():
                self.stop(mode="immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    # --- databases --------------------------------------------------------------------------

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SERVER_USER}@127.0.0.1:{self.port}/{database}"

    def admin(self, database: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.url(database), autocommit=True, connect_timeout=10)

    def create_database(self) -> str:
        name = f"test_{os.getpid()}_{next(self._names)}"
        with self.admin() as connection:
            connection.execute(f'CREATE DATABASE "{name}" STRATEGY FILE_COPY')
        return name

    def drop_database(self, name: str) -> None:
        with self.admin() as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    # --- plumbing ---------------------------------------------------------------------------

    def _initdb(self) -> None:
        self._give_to_server_user(self.root)
        self._run(
            self.bindir / "initdb",
            *("-D", str(self.data), "-U", SERVER_USER, "-A", "trust", "-E", "UTF8"),
            *("--locale=C", "--no-sync", "--no-instructions"),
        )
        sockets = f"'{self.root}'"
        settings = {**_SETTINGS, "port": str(self.port), "unix_socket_directories": sockets}
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{name} = {value}\n" for name, value in settings.items())

    def _pg_ctl(self, command: str, *options: str) -> None:
        self._run(self.bindir / "pg_ctl", "-D", str(self.data), "-w", "-t", "60", command, *options)

    def _run(self, *argv: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(part) for part in argv]
        if os.geteuid() == 0:  # initdb and postgres refuse root
            command = ["runuser", "-u", SERVER_USER, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if check and done.returncode != 0:
            log = self.log.read_text(errors="replace") if self.log.exists() else ""
            raise RuntimeError(
                f"{' '.join(command)} exited with {done.returncode}:\n{done.stdout}{done.stderr}"
                f"\n--- server log ---\n{log[-4000:]}"
            )
        return done

    @staticmethod
    def _give_to_server_user(root: Path) -> None:
        if os.geteuid() != 0:
            return
        user = pwd.getpwnam(SERVER_USER)
        os.chown(root, user.pw_uid, user.pw_gid)
        root.chmod(0o755)  # readable by the tests' user too (the socket, the log)


def missing_binaries() -> None:
    message = (
        "PostgreSQL server binaries (initdb, pg_ctl) not found: install Debian's `postgresql`"
        " package (or set GITOPSD_TEST_PG_BIN) to run the shared-store tests"
    )
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI must never skip them", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The session's server, started on first use and destroyed at the end."""
    bindir = find_binaries()
    if bindir is None:
        missing_binaries()
        raise AssertionError("unreachable")
    server = PostgresServer.create(bindir)
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A URL of an empty database of this test's own, dropped afterwards."""
    name = postgres_server.create_database()
    yield postgres_server.url(name)
    if not postgres_server.is_running():  # a test that stopped the server starts it again
        postgres_server.start()
    postgres_server.drop_database(name)
