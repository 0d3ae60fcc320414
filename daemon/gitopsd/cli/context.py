"""What every command shares: the common flags, errors, and opening the workspace they name.

SPEC section 5: every command takes --repo, --branch, --state and --output, each with a
GITOPSD_* environment variable; `--data-dir` (GITOPSD_DATA_DIR) says where state, checkouts
and work files live. The state store follows the data folder (`<data dir>/state.db`) unless
`--state` names another: a second data folder must never share the first one's database by
accident. A SQLite `--state` given by hand must name an existing folder (a typo would
otherwise start an empty store silently); the data folder itself is created on first use.

The run machinery (`runtime.application`, which assembles stores, drivers and runs) is imported
by the methods that open a store or a workspace, not at the top: `validate`, `graph` and
`schema` never use it, and importing it would be a large share of their start-up
(benchmarks/README.md, `startup.py`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from gitopsd import answers
from gitopsd.adapters import data_folder
from gitopsd.adapters.gitrepo import GitSource
from gitopsd.engine.ports import StateStore
from gitopsd.errors import GitopsdError
from gitopsd.model.state import escape_unsafe
from gitopsd.runtime.runs import revisions

if TYPE_CHECKING:
    from gitopsd.runtime.runs.workspace import Workspace

Command = TypeVar("Command", bound=Callable[..., Any])

EXIT_OK = 0
EXIT_FAILED = answers.EXIT_FAILED
EXIT_CHANGES = 2  # plan, diff, drift: something differs

# A count or id given on the command line goes into SQL: past a signed 64-bit integer, SQLite
# (and PostgreSQL's bigint) cannot take it, so a larger one is a usage error, not a traceback.
LARGEST_SQL_INTEGER = 2**63 - 1
POSITIVE_INTEGER = click.IntRange(min=1, max=LARGEST_SQL_INTEGER)


class _Revision(click.types.StringParamType):
    """A commit, as git names it: an empty one names none (it was taken for the default, the
    branch head, by `apply --revision ""`, or said "never verified no revision")."""

    name = "revision"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = super().convert(value, param, ctx)
        if not text.strip():
            self.fail("an empty revision names no commit", param, ctx)
        return text


REVISION = _Revision()


@dataclass(frozen=True)
class Context:
    """The flags every command takes (SPEC section 5)."""

    repo: str
    branch: str | None
    given_state: str | None  # --state / GITOPSD_STATE; None: the data folder's state.db
    output: str
    data_dir: Path
    secrets_dir: Path | None = None  # --secrets-dir: `${{ secrets.NAME }}` files (adapters/secrets)
    trust_file: Path | None = None  # --trust-file, on the commands that apply (SPEC 9)
    # seconds a PostgreSQL store's session may idle inside a transaction (serve: its
    # leader_timeout); None: the store's default (adapters/postgres_store.py)
    idle_transaction_timeout: float | None = None

    @property
    def state(self) -> str:
        """The state store URL: the one given, else `sqlite:///<data dir>/state.db`."""
        return self.given_state or f"sqlite:///{self.data_dir / 'state.db'}"

    def open_source(self) -> GitSource:
        return revisions.open_source(self.repo, branch=self.branch, data_dir=self.data_dir)

    @property
    def as_json(self) -> bool:
        return self.output == "json"

    @contextlib.contextmanager
    def store(self, *, read_only: bool = False) -> Iterator[StateStore]:
        """Only the state store, for commands that read or flag runs. `read_only`: for those
        that only read, which must work while the data folder is full or read-only (an
        incident is when the operator needs `status`): nothing is written to open it."""
        from gitopsd.runtime import application  # the run machinery: see the module docstring

        store = (read_only and self._store_to_read()) or self._open_store()
        try:
            yield application.sealed(store, data_dir=self.data_dir, key=_key())
        finally:
            store.close()

    def _store_to_read(self) -> StateStore | None:
        """The SQLite store opened to read only; None if it cannot be (not made yet, an
        older schema, another kind of store): then opened as usual."""
        from gitopsd.runtime import application  # the run machinery: see the module docstring

        if not self.state.startswith("sqlite:"):
            return None
        try:
            return application.open_store(self.state, base=Path.cwd(), read_only=True)
        except application.StoreError:
            return None

    def _open_store(self, stopping: threading.Event | None = None) -> StateStore:
        """The state store; the data folder is created first when it holds the store, and
        blamed when the store cannot be opened because the folder cannot be written.
        `stopping`: see `application.open_store`."""
        from gitopsd.runtime import application  # the run machinery: see the module docstring

        idle = self.idle_transaction_timeout
        if self.given_state:
            return application.open_store(
                self.state,
                base=Path.cwd(),
                create_folder=False,
                stopping=stopping,
                idle_transaction_timeout=idle,
            )
        data_folder.prepare(self.data_dir)
        try:
            return application.open_store(self.state, base=Path.cwd(), stopping=stopping)
        except application.StoreError:
            data_folder.probe(self.data_dir)  # "disk I/O error" from a full disk: say so
            raise

    @contextlib.contextmanager
    def workspace(self, *, read_only: bool = False) -> Iterator[Workspace]:
        """The repository, state store and data folder these flags name, closed afterwards.
        `read_only`: for `diff`, which only reads: no probe write, the store opened to read."""
        from gitopsd.runtime import application  # the run machinery: see the module docstring

        if not read_only:
            data_folder.probe(self.data_dir)  # made if missing; full or read-only: said now
        interrupted = threading.Event()  # set by a stop signal (cli/stopping.py) or serve
        with self.open_source() as source:
            store = (read_only and self._store_to_read()) or self._open_store(interrupted)
            try:
                opened = application.workspace(
                    source,
                    store,
                    data_dir=self.data_dir,
                    key=_key(),
                    secrets_dir=self.secrets_dir,
                    trust=self.trust_file,
                    interrupted=interrupted,
                )
                try:
                    yield opened
                finally:
                    opened.close()
            finally:
                store.close()


def _key() -> str | None:
    """GITOPSD_ENCRYPTION_KEY: read here, never a flag, so the key stays off command lines."""
    return os.environ.get("GITOPSD_ENCRYPTION_KEY")


def common_options(command: Command) -> Command:
    """Add --repo, --branch, --state, --output, --data-dir and --secrets-dir (and their
    GITOPSD_* variables) to a command."""

    @click.option(
        "--repo",
        envvar="GITOPSD_REPO",
        default=".",
        show_default=True,
        help="Path or URL of the GitOps repository.",
    )
    @click.option(
        "--branch",
        envvar="GITOPSD_BRANCH",
        default=None,
        help="Branch to track (default: the repository's current branch).",
    )
    @click.option(
        "--state",
        envvar="GITOPSD_STATE",
        default=None,
        help="State store URL [default: sqlite:///DATA_DIR/state.db].",
    )
    @click.option(
        "--output",
        envvar="GITOPSD_OUTPUT",
        type=click.Choice(["text", "json"]),
        default="text",
        show_default=True,
        help="Output format.",
    )
    @click.option(
        "--data-dir",
        envvar="GITOPSD_DATA_DIR",
        default=".gitopsd",
        show_default=True,
        type=click.Path(path_type=Path),
        help="Folder for state, checkouts and reports.",
    )
    @click.option(
        "--secrets-dir",
        envvar="GITOPSD_SECRETS_DIR",
        default=None,
        type=click.Path(path_type=Path, file_okay=False),
        help="Folder of secrets, one file per ${{ secrets.NAME }} (else GITOPSD_SECRET_NAME).",
    )
    @functools.wraps(command)
    def wrapper(
        repo: str,
        branch: str | None,
        state: str | None,
        output: str,
        data_dir: Path,
        secrets_dir: Path | None,
        **kwargs: Any,
    ) -> Any:
        context = Context(repo, branch, state, output, data_dir, secrets_dir)
        try:
            data_folder.claim(data_dir)
            return command(context, **kwargs)
        except GitopsdError as error:  # every error of the tree: one line, its exit code
            fail(str(error), as_json=context.output == "json", code=answers.exit_code(error))
        except OSError as error:
            if not data_folder.is_unwritable(error):
                raise
            fail(_unwritable(data_dir, error), as_json=context.output == "json")

    return wrapper  # type: ignore[return-value]


def trust_option(command: Command) -> Command:
    """Add --trust-file (GITOPSD_TRUST_FILE) to a command that applies revisions: with it,
    environments the file names take only commits signed by its signers (SPEC 9). Put it
    below `common_options`, which hands it the context."""

    @click.option(
        "--trust-file",
        envvar="GITOPSD_TRUST_FILE",
        default=None,
        type=click.Path(path_type=Path, dir_okay=False),
        help="YAML file of trusted commit signers and the environments that require signed"
        " commits; keep it outside the repository [env GITOPSD_TRUST_FILE; none].",
    )
    @functools.wraps(command)
    def wrapper(context: Context, trust_file: Path | None, **kwargs: Any) -> Any:
        return command(dataclasses.replace(context, trust_file=trust_file), **kwargs)

    return wrapper  # type: ignore[return-value]


def _unwritable(data_dir: Path, error: OSError) -> str:
    """A write refused after the start (the disk filled, turned read-only): one line naming
    the data folder, or the file outside it (a report path given by the user)."""
    name = os.fsdecode(error.filename) if error.filename is not None else None
    if name is None or Path(name).resolve().is_relative_to(data_dir.resolve()):
        return str(data_folder.cannot_write(data_dir, error))
    return f"cannot write {name}: {error.strerror}"


def fail(message: str, *, as_json: bool = False, code: int = EXIT_FAILED) -> None:
    """Stop with exit code `code` (1); scripts asking for JSON get the error as JSON on
    stdout too."""
    if as_json:
        click.echo(json.dumps({"error": message}))
    # an error may quote stored text (a suspension's reason): its escape sequences and
    # bidirectional marks are shown escaped; its own line breaks are kept
    shown = "\n".join(map(escape_unsafe, message.split("\n")))
    click.echo(f"gitopsd: error: {shown}", err=True)
    sys.exit(code)


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
