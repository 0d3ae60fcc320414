"""Open the state store a `--state` URL names, and the workspace commands run in.

`sqlite:///relative/path.db` and `sqlite:////absolute/path.db` are the embedded store;
`postgresql://` (or `postgres://`) URLs the shared store several daemons and hosts use. The
PostgreSQL driver is imported only when such a URL is opened.
"""

from __future__ import annotations

import threading
from pathlib import Path

from gitopsd.adapters import trust_file
from gitopsd.adapters.call_folder import call_files_folder
from gitopsd.adapters.checkouts import CheckoutCache
from gitopsd.adapters.clock import SystemClock
from gitopsd.adapters.commit_signatures import CommitSignatures
from gitopsd.adapters.driver_registry import installed_drivers
from gitopsd.adapters.drivers import DriverRouter
from gitopsd.adapters.encryption import Sealer
from gitopsd.adapters.gitrepo import GitSource
from gitopsd.adapters.sealed_store import SealedStore, holds_sealed
from gitopsd.adapters.secrets import Resolving, SecretFiles
from gitopsd.adapters.sqlite_store import SqliteStore
from gitopsd.engine.drivers import DriverSetup
from gitopsd.engine.ports import StateStore
from gitopsd.errors import GitopsdError, StoreError
from gitopsd.runtime.runs.leases import holder_id
from gitopsd.runtime.runs.workspace import Workspace

__all__ = ["StoreError", "open_store", "sealed", "workspace"]


def open_store(
    url: str,
    *,
    base: Path,
    create_folder: bool = True,
    read_only: bool = False,
    stopping: threading.Event | None = None,
    idle_transaction_timeout: float | None = None,
) -> StateStore:
    """The store `url` names; a SQLite file's folder is created unless `create_folder` is
    False (a URL typed by hand into a missing folder is a mistake, not a new store).
    `read_only`: an existing SQLite file opened without writing (adapters/sqlite_store.py).
    `stopping`: set when the process stops; a SQLite store then no longer waits for a
    database another process keeps locked (the workspace's `interrupted`).
    `idle_transaction_timeout`: see `PostgresStore`; None: its default."""
    if url.startswith("sqlite:"):
        return SqliteStore.from_url(
            url,
            base=base,
            synchronous="NORMAL",
            stopping=stopping,
            create_folder=create_folder,
            read_only=read_only,
        )
    if url.startswith(("postgresql:", "postgres:")):
        from gitopsd.adapters.postgres_store import PostgresStore  # psycopg: heavy, optional

        if idle_transaction_timeout is None:
            return PostgresStore.from_url(url)
        return PostgresStore.from_url(url, idle_transaction_timeout=idle_transaction_timeout)
    raise StoreError(
        f"unsupported state URL {url!r}: use sqlite:///path/to/state.db"
        " or postgresql://user@host/database"
    )


def sealed(store: StateStore, *, data_dir: Path, key: str | None) -> StateStore:
    """`store` with sensitive values encrypted at rest (adapters/sealed_store.py), keyed by
    `key` (GITOPSD_ENCRYPTION_KEY) or the data folder's key file, read when a value must be
    opened: commands that only read (status, history) work whatever the key."""
    return SealedStore(store, _sealer(store, data_dir=data_dir, key=key))


def _sealer(store: StateStore, *, data_dir: Path, key: str | None) -> Sealer:
    """The sealer of `store`'s values; it makes a key file only while nothing is sealed."""
    return Sealer(key=key, data_dir=data_dir, sealed_exist=lambda: holds_sealed(store))


def workspace(
    source: GitSource,
    store: StateStore,
    *,
    data_dir: Path,
    key: str | None = None,
    secrets_dir: Path | None = None,
    trust: Path | None = None,
    interrupted: threading.Event | None = None,
) -> Workspace:
    """Everything a run needs, wired to the real adapters.

    The data folder is made absolute: drivers run in a checkout, not where gitopsd started,
    and every path they are given must still point to the right place. The drivers' inputs
    files go to memory where the machine allows (`call_folder`); those a killed process left
    there are removed (the command driver's runner, made now, does it). Sensitive values are
    sealed with `key` (`sealed`), loaded now: a command that runs drivers fails up front on
    an unusable key, not after an apply. Every driver call gets the `${{ secrets.NAME }}`
    values its component references from `secrets_dir` or GITOPSD_SECRET_* (adapters/secrets).
    The trust file (`trust`, SPEC 9) is read and its keys built into a verifier now too: a
    bad one stops the start (TrustFileError). `interrupted`: the event that stops the
    workspace's runs now, shared with the store opened with it (`open_store`'s `stopping`).
    """
    sealer = _sealer(store, data_dir=data_dir, key=key)
    sealer.load()
    data_dir = data_dir.resolve()
    drivers = DriverRouter(installed_drivers(), DriverSetup(call_files_folder(data_dir / "work")))
    drivers.runner("command")
    secrets = SecretFiles(secrets_dir.resolve() if secrets_dir else None)
    signatures = _signatures(trust, source, data_dir) if trust is not None else None
    made = Workspace(
        source=source,
        store=SealedStore(store, sealer),
        drivers=Resolving(drivers, secrets),
        checkouts=CheckoutCache(source, data_dir / "checkouts"),
        clock=SystemClock(),
        data_dir=data_dir,
        holder=holder_id(),
        digest=sealer.digest,
        secrets=secrets,
        signatures=signatures,
        interrupted=interrupted or threading.Event(),
    )
    if signatures is not None:
        _check_trusted_environments(made, signatures)
    return made


def _signatures(path: Path, source: GitSource, data_dir: Path) -> CommitSignatures:
    return CommitSignatures.build(trust_file.load(path), git_dir=source.git_dir, data_dir=data_dir)


def _check_trusted_environments(made: Workspace, signatures: CommitSignatures) -> None:
    """The trust file may name only environments the head's manifests have (a typo would
    leave the one meant unprotected); unreadable manifests are the run's to refuse."""
    try:
        known = list(made.manifests().environments)
    except GitopsdError:
        return
    signatures.trust.check_environments(known)
