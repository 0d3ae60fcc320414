"""The environment a command driver runs with (SPEC section 4).

The inherited environment without gitopsd's own settings and secrets (`WITHHELD`), plus the
driver's `env` setting,
plus the protocol variables (`GITOPSD_ENVIRONMENT`, `_COMPONENT`, `_REVISION`, `_ACTION`,
`_INPUTS`, `_OUTPUTS`, `_STATE_DIR`, and `GITOPSD_INPUT_<NAME>` per input). What is derived
from the inherited part (the copy without `GITOPSD_*`, its secrets, whether `execve` can carry
it) is worked out once per distinct snapshot of it (`Inherited`), not once per call.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gitopsd.adapters.driver_output import (
    cached_input_variable,
    call_named_values,
    given_secrets,
    longest_first,
    secrets_in,
)
from gitopsd.engine.ports import DriverCall

PROTOCOL_PREFIX = "GITOPSD_"
# gitopsd's own settings and secrets, never inherited by a driver (a component's `env` may
# pass one explicitly, as `${{ secrets.NAME }}`): every GITOPSD_* variable (the API and
# encryption keys, GITOPSD_SECRET_*, the webhook secret, GITOPSD_GITHUB_TOKEN...), the
# GitHub tokens the github-actions driver reads by default, and PGPASSWORD, where the docs
# keep the PostgreSQL state store's password: with it a driver could rewrite the store
# (approvals, verified revisions) behind every rule
WITHHELD = frozenset({"GITHUB_TOKEN", "GH_TOKEN", "PGPASSWORD"})


def is_withheld(name: str) -> bool:
    """Whether an inherited variable of this name is kept from drivers."""
    return name.startswith(PROTOCOL_PREFIX) or name in WITHHELD


# what json.dumps(value, **options) uses, made once (encoders keep no state between calls)
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str)

_JSON_CONSTANTS = {None: "null", True: "true", False: "false"}

# Linux's MAX_ARG_STRLEN: the longest one `NAME=value` string of an environment may be, its
# terminating NUL included (32 pages); exec fails with E2BIG ("Argument list too long") past it
MAX_VARIABLE_BYTES = 128 * 1024
_POINTER_BYTES = 8  # execve also counts a pointer per string (64-bit)


@dataclass(frozen=True)
class Inherited:
    """What calls take from one snapshot of the inherited environment."""

    snapshot: dict[Any, Any]  # as read: os.environb's bytes, or a copy of `base_env`
    env: dict[str, str]  # without the `WITHHELD` variables; copied, never changed
    secrets: frozenset[bytes]  # of every variable, `GITOPSD_*` ones included
    ordered_secrets: tuple[bytes, ...]  # the same, longest first
    passable: bool  # whether `execve` can carry every variable of `env`

    @classmethod
    def derive(cls, snapshot: dict[Any, Any], named: Mapping[str, str]) -> Inherited:
        env = {name: value for name, value in named.items() if not is_withheld(name)}
        secrets = secrets_in(named.items())
        return cls(
            snapshot=snapshot,
            env=env,
            secrets=secrets,
            ordered_secrets=longest_first(secrets),
            passable=all(is_passable(name, value) for name, value in env.items()),
        )

    def secrets_with(self, call: DriverCall) -> Sequence[bytes]:
        """`secret_values(base_env, call)`, reusing the inherited part."""
        own = secrets_in(call_named_values(call), sensitive=call.sensitive_inputs)
        own |= given_secrets(call)
        if own <= self.secrets:
            return self.ordered_secrets
        return longest_first(self.secrets | own)


def protocol_environment(
    call: DriverCall, *, inputs_file: str, outputs_file: str
) -> dict[str, str]:
    """What a call adds to the inherited environment (minus `GITOPSD_*`): the driver's `env`,
    then the protocol variables, which win."""
    env = dict(call.env)
    env.update(
        GITOPSD_ENVIRONMENT=call.environment,
        GITOPSD_COMPONENT=call.component,
        GITOPSD_REVISION=call.revision,
        GITOPSD_ACTION=call.action,
        GITOPSD_INPUTS=inputs_file,
        GITOPSD_OUTPUTS=outputs_file,
        GITOPSD_STATE_DIR=str(call.state_dir),
    )
    for name, value in call.inputs.items():
        env[cached_input_variable(name)] = value if isinstance(value, str) else compact_json(value)
    return env


def compact_json(value: Any) -> str:
    """`json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)`."""
    if value is None or value is True or value is False:
        return _JSON_CONSTANTS[value]
    if type(value) is int:  # json's own spelling of an int, without building an encoder
        return int.__repr__(value)
    return _COMPACT_JSON.encode(value)


def unpassable(
    call: DriverCall, env: Mapping[str, str], inherited: Inherited, own: Mapping[str, str]
) -> str | None:
    """Why the call cannot be made before trying (an env value with NUL, an empty argv).

    `env` is `inherited.env` updated with `own`: when the inherited part is known to be
    passable, only `own` is checked; a problem is then named as a full scan names it."""
    if not call.argv:
        return "driver command is empty"
    if inherited.passable and all(is_passable(name, value) for name, value in own.items()):
        return over_the_total(call, env)
    for name, value in env.items():
        if not is_passable(name, value):
            return _why_unpassable(call, name, value)
    return over_the_total(call, env)


def over_the_total(call: DriverCall, env: Mapping[str, str]) -> str | None:
    """Why `execve` would refuse the call's arguments and environment together (each part
    may be short enough and the whole still over the kernel's limit, ARG_MAX: about 2 MiB
    with the usual 8 MiB stack), naming the largest inputs, which are what can be moved."""
    limit = os.sysconf("SC_ARG_MAX")
    size = exec_size(call.argv, env)
    if size <= limit:
        return None
    return (
        f"cannot pass the driver's arguments and environment: {size:,} bytes together, over "
        f"the kernel's limit of {limit:,} (ARG_MAX); {largest_inputs(call)}"
    )


def exec_size(argv: Sequence[str], env: Mapping[str, str]) -> int:
    """What `execve` counts against ARG_MAX: each argument and `NAME=value` string with its
    NUL, and a pointer to each."""
    strings = [*argv, *(f"{name}={value}" for name, value in env.items())]
    return sum(_encoded_size(text) + 1 + _POINTER_BYTES for text in strings) + _POINTER_BYTES


def largest_inputs(call: DriverCall) -> str:
    """The three largest inputs, as GITOPSD_INPUT_* variables carry them: what to shrink."""
    sizes = sorted(
        ((_encoded_size(_as_text(value)), name) for name, value in call.inputs.items()),
        reverse=True,
    )
    named = ", ".join(f"{name!r} ({size:,} bytes)" for size, name in sizes[:3])
    return f"largest inputs: {named}" if named else "no inputs"


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else compact_json(value)


def _encoded_size(text: str) -> int:
    """Bytes of `text` as the kernel gets it (the file system encoding)."""
    return len(text) if text.isascii() else len(os.fsencode(text))


def _why_unpassable(call: DriverCall, name: str, value: str) -> str:
    """The step's error: which variable (and input, when it is one) and why."""
    inputs = [each for each in call.inputs if cached_input_variable(each) == name]
    what = f"input {inputs[0]!r} as {name!r}" if inputs else f"environment variable {name!r}"
    if _is_carried(name, value):  # so: too long
        size = len(os.fsencode(value))
        return (
            f"cannot pass {what}: its value is {size:,} bytes, and one environment variable "
            f"holds less than {MAX_VARIABLE_BYTES // 1024} KiB (the kernel's MAX_ARG_STRLEN)"
        )
    return f"cannot pass {what}: a NUL character, a lone surrogate or an '=' in the name"


def is_passable(name: str, value: str) -> bool:
    """Whether `execve` can carry `name=value` (C strings: no NUL; names: no `=`; the whole
    string with its NUL within the kernel's MAX_ARG_STRLEN, else "Argument list too long")."""
    if name.isascii() and value.isascii():  # the usual case: nothing to encode
        return _is_carried(name, value) and len(name) + len(value) + 2 <= MAX_VARIABLE_BYTES
    try:
        size = len(os.fsencode(name)) + len(os.fsencode(value))
    except UnicodeEncodeError:
        return False
    return _is_carried(name, value) and size + 2 <= MAX_VARIABLE_BYTES


def _is_carried(name: str, value: str) -> bool:
    """Whether C strings can hold `name=value` at all, whatever its length."""
    if name.isascii() and value.isascii():
        return bool(name) and "\0" not in name and "\0" not in value and "=" not in name
    try:
        encoded = os.fsencode(name) + os.fsencode(value)
    except UnicodeEncodeError:
        return False
    return bool(name) and b"\0" not in encoded and "=" not in name
