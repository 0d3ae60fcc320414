"""Secret values for `${{ secrets.NAME }}`: read at each driver call, put in that call only.

Pipeline: execute -> **secrets** -> driver. A value comes from the secrets folder
(`--secrets-dir`, GITOPSD_SECRETS_DIR: one file per secret named NAME, its trailing newline
dropped, the layout of Kubernetes' and Docker's mounted secrets) or else from the variable
`GITOPSD_SECRET_<NAME>` of gitopsd's own environment, which drivers never inherit
(adapters/driver_environment.py). Values are read again at every call, so a rotated secret
is used at once, and never kept: `Resolving` hands a call its values and adds them to what
the call's output has redacted. A missing secret fails the call, naming the secret and where
it was looked for, and is not retried.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from gitopsd.engine import secret_references
from gitopsd.engine.ports import (
    CancelSignal,
    DriverCall,
    DriverResult,
    DriverRunner,
    OnStarted,
    SecretSource,
)
from gitopsd.engine.references import SECRET_NAME
from gitopsd.errors import MissingSecretError

VARIABLE_PREFIX = "GITOPSD_SECRET_"


class SecretFiles:
    """`SecretSource` over a secrets folder (optional), then `GITOPSD_SECRET_<NAME>`."""

    def __init__(self, folder: Path | None, environ: Mapping[str, str] | None = None) -> None:
        self.folder = folder
        self._environ = os.environ if environ is None else environ

    def value(self, name: str) -> str:
        if not SECRET_NAME.match(name):  # parsed references hold no other: never a path
            raise MissingSecretError(f"{name!r} is not a secret name (letters, digits and '_')")
        found = self._from_file(name) if self.folder is not None else None
        if found is None:
            found = self._environ.get(VARIABLE_PREFIX + name)
        if found is None:
            raise MissingSecretError(f"secret {name!r} is not set: {self._places(name)}")
        return found

    def _from_file(self, name: str) -> str | None:
        assert self.folder is not None
        path = self.folder / name
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as error:
            why = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
            raise MissingSecretError(f"secret {name!r}: cannot read {path}: {why}") from None
        return text.removesuffix("\n").removesuffix("\r")

    def _places(self, name: str) -> str:
        variable = f"no environment variable {VARIABLE_PREFIX}{name}"
        if self.folder is None:
            return f"{variable} (and no --secrets-dir)"
        return f"no file {self.folder / name} and {variable}"


def resolved(call: DriverCall, source: SecretSource) -> DriverCall:
    """`call` with the values of the secrets its component references in its inputs and its
    driver's `env`, which its output then has redacted; MissingSecretError for one not set."""
    if not call.secret_names:
        return call
    values = {name: source.value(name) for name in sorted(call.secret_names)}
    driver = call.driver
    env = secret_references.driver_env_of(driver)
    if driver is not None and env:
        rendered = secret_references.rendered_env(env)
        driver = driver.model_copy(update={"env": secret_references.substitute(rendered, values)})
    return dataclasses.replace(
        call,
        inputs=secret_references.substitute(call.inputs, values),
        driver=driver,
        env=secret_references.substitute(call.env, values),
        secrets=call.secrets | frozenset(values.values()),
    )


class Resolving:
    """`ports.DriverRunner` that gives each call its secrets (`resolved`) before `inner` runs
    it; a call whose secret is missing ends at once, failed, without starting."""

    def __init__(self, inner: DriverRunner, source: SecretSource) -> None:
        self.inner = inner
        self.source = source

    def run(
        self,
        call: DriverCall,
        *,
        cancel: CancelSignal | None = None,
        on_started: OnStarted | None = None,
    ) -> DriverResult:
        try:
            call = resolved(call, self.source)
        except MissingSecretError as error:
            return _missing(call, error)
        return self.inner.run(call, cancel=cancel, on_started=on_started)

    def run_many(
        self,
        calls: Sequence[DriverCall],
        *,
        parallelism: int,
        cancel: CancelSignal | None = None,
        on_done: Callable[[int, DriverResult], None] | None = None,
    ) -> list[DriverResult]:
        """The calls whose secrets are all there run together; the others fail at once."""
        results: dict[int, DriverResult] = {}
        ready: list[tuple[int, DriverCall]] = []
        for index, call in enumerate(calls):
            try:
                ready.append((index, resolved(call, self.source)))
            except MissingSecretError as error:
                results[index] = failed = _missing(call, error)
                if on_done is not None:
                    on_done(index, failed)
        positions = [index for index, _ in ready]

        def done(position: int, result: DriverResult) -> None:
            if on_done is not None:
                on_done(positions[position], result)

        ran = self.inner.run_many(
            [call for _, call in ready], parallelism=parallelism, cancel=cancel, on_done=done
        )
        for index, result in zip(positions, ran, strict=True):
            results[index] = result
        return [results[index] for index in range(len(calls))]


def _missing(call: DriverCall, error: MissingSecretError) -> DriverResult:
    return DriverResult(None, error=f"{call.component}: {error}", final=True)
