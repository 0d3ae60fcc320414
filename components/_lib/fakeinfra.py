#!/usr/bin/env python3
"""fakeinfra: the simulated cloud behind gitopsd's example components (a SPEC section 4 driver).

Components call it by a path relative to their folder: `python3 ../_lib/fakeinfra.py ACTION`.
The "infrastructure" is `$GITOPSD_STATE_DIR/resources.json` (the attributes last applied);
the desired state is the JSON object in `$GITOPSD_INPUTS`.

    plan, check   print the diff desired vs actual; exit 0 no changes, 2 changes, 1 error
    apply         write the state (temp file + rename) and the outputs to `$GITOPSD_OUTPUTS`
    destroy       remove the state;  health: exit 0 if the state exists and matches, else 1
    tamper --state-dir DIR [--key K --value V]   edit the state so the next check sees drift

Outputs are the names in `FAKEINFRA_OUTPUTS` (set in the component's `driver.env`), derived
from environment, component, name and the `region` input (a new region means a new resource).
By suffix: `_id`, `_ids` (one per item of the list input `<stem>s`), `_ip`, `_url`,
`_endpoint`, `_host`, `_ref`; any other name echoes the input of that name.

Demo switches, from the process environment that drivers inherit from gitopsd:
    FAKEINFRA_FAIL=clusters:apply,staging/platform:health   [ENV/]COMPONENT:ACTION, `*` = any
        (an apply that would change nothing still succeeds: a rollback of the failed one)
    FAKEINFRA_DELAY=0.5                                      seconds to sleep in every call

It writes only to the state folder and the outputs path, never to its working directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

STATE_FILE = "resources.json"
DRIVER_ACTIONS = ("plan", "check", "apply", "destroy", "health")
Attributes = dict[str, Any]


class FakeInfraError(Exception):
    """Anything that should end the call with exit code 1 and this message."""


class Call(NamedTuple):
    """One driver call, as gitopsd describes it in the environment (SPEC section 4)."""

    environment: str
    component: str
    revision: str
    inputs: Attributes
    state_dir: Path

    @classmethod
    def from_environment(cls) -> Call:
        return cls(
            environment=required_env("GITOPSD_ENVIRONMENT"),
            component=required_env("GITOPSD_COMPONENT"),
            revision=os.environ.get("GITOPSD_REVISION", "unknown"),
            inputs=read_json_object(Path(required_env("GITOPSD_INPUTS")), "inputs"),
            state_dir=Path(required_env("GITOPSD_STATE_DIR")),
        )

    @property
    def label(self) -> str:
        return f"{self.component} ({self.environment})"


# --- files -------------------------------------------------------------------------------------


def required_env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise FakeInfraError(f"{name} is not set: run me as a gitopsd command driver")
    return value


def read_json_object(path: Path, what: str) -> Attributes:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise FakeInfraError(f"cannot read {what} {path}: {error}") from None
    if not isinstance(data, dict):
        raise FakeInfraError(f"{what} {path} is not a JSON object")
    return data


def write_json_atomically(path: Path, data: Any) -> None:
    """Readers see the old file or the new one, never half of one (temp file + rename)."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with temp.open("w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def load_state(state_dir: Path) -> Attributes | None:
    path = state_dir / STATE_FILE
    return read_json_object(path, "state") if path.exists() else None


# --- desired vs actual -------------------------------------------------------------------------


def show(value: Any) -> str:
    """Plain strings bare, everything else (and strings like `5` or `true`) as JSON."""
    if isinstance(value, str) and value:
        try:
            json.loads(value)
        except ValueError:
            return value
    return json.dumps(value, sort_keys=True)


def diff(desired: Attributes, actual: Attributes) -> list[str]:
    lines = []
    for key in sorted(desired.keys() | actual.keys()):
        if key not in actual:
            lines.append(f"+ {key}: {show(desired[key])}")
        elif key not in desired:
            lines.append(f"- {key}: {show(actual[key])}")
        elif json.dumps(desired[key], sort_keys=True) != json.dumps(actual[key], sort_keys=True):
            lines.append(f"~ {key}: {show(actual[key])} -> {show(desired[key])}")
    return lines


def print_lines(lines: list[str]) -> None:
    for line in lines:
        print(f"  {line}")


def compare(call: Call) -> tuple[Attributes | None, list[str]]:
    """The current state and the diff lines that would take it to the inputs."""
    state = load_state(call.state_dir)
    actual = state.get("attributes", {}) if state is not None else {}
    return state, diff(call.inputs, actual)


# --- outputs -----------------------------------------------------------------------------------


def fingerprint(call: Call, *parts: str) -> str:
    seed = json.dumps([call.environment, call.component, call.inputs.get("region"), *parts])
    return hashlib.sha256(seed.encode()).hexdigest()[:10]


def item_names(value: Any, default: str) -> list[str]:
    """Names of a list input's items: strings, or objects with a `name`."""
    if not isinstance(value, list):
        return [default]
    return [
        str(item.get("name", i)) if isinstance(item, dict) else str(item)
        for i, item in enumerate(value)
    ]


def output_value(call: Call, name: str) -> Any:
    stem, _, kind = name.rpartition("_")
    stem = stem or name
    digest = fingerprint(call, name)
    host = f"{stem.replace('_', '-')}-{digest[:6]}.{call.environment}.example.test"
    url = f"https://{host}"
    if kind == "ids":
        names = item_names(call.inputs.get(f"{stem}s"), stem)
        return {item: f"{stem}-{fingerprint(call, name, item)}" for item in names}
    formats = {
        "id": f"{stem}-{digest}",
        "ip": f"203.0.113.{int(digest, 16) % 254 + 1}",
        "url": url,
        "endpoint": url,
        "host": host,
        "ref": f"secret://{call.environment}/{call.component}/{stem}",
    }
    return formats.get(kind, call.inputs.get(name, f"{name}-{digest}"))


def make_outputs(call: Call) -> Attributes:
    names = os.environ.get("FAKEINFRA_OUTPUTS", "").replace(",", " ").split()
    return {name: output_value(call, name) for name in names}


# --- driver actions ----------------------------------------------------------------------------

IN_SYNC = {"plan": "no changes", "check": "in sync", "health": "healthy"}
DIFFERS = {"plan": "would update in place", "check": "drifted", "health": "unhealthy, drifted"}


def compare_action(call: Call, action: str) -> int:
    """plan, check and health: one comparison, reported three ways."""
    state, lines = compare(call)
    if state is not None and not lines:
        print(f"{call.label}: {IN_SYNC[action]}")
        return 0
    print(f"{call.label}: {'not created yet' if state is None else DIFFERS[action]}")
    print_lines(lines)
    return 1 if action == "health" else 2


def apply(call: Call) -> int:
    state, lines = compare(call)
    outputs = make_outputs(call)
    record = {"attributes": call.inputs, "outputs": outputs, "revision": call.revision}
    call.state_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomically(call.state_dir / STATE_FILE, record)
    if outputs_path := os.environ.get("GITOPSD_OUTPUTS"):
        write_json_atomically(Path(outputs_path), outputs)
    verb = "created" if state is None else ("updated" if lines else "unchanged")
    print(f"{call.label}: {verb} at revision {call.revision[:12]}")
    print_lines([*lines, *(f"=> {key}: {show(value)}" for key, value in outputs.items())])
    return 0


def destroy(call: Call) -> int:
    path = call.state_dir / STATE_FILE
    print(f"{call.label}: {'destroyed' if path.exists() else 'nothing to destroy'}")
    path.unlink(missing_ok=True)
    return 0


# --- demo switches -----------------------------------------------------------------------------


def is_failure_injected(call: Call, action: str) -> bool:
    scopes, components, actions = ("", f"{call.environment}/"), (call.component, "*"), (action, "*")
    targets = {f"{s}{c}:{a}" for s in scopes for c in components for a in actions}
    entries = os.environ.get("FAKEINFRA_FAIL", "").split(",")
    return any(entry.strip() in targets for entry in entries)


def is_apply_of_what_is_there(call: Call, action: str) -> bool:
    """An apply that would change nothing is never failed on purpose: a failed apply changed
    nothing (it fails before writing), so gitopsd's rollback of that component re-applies
    what is already there, and it succeeds, as it would on a real cloud."""
    if action != "apply":
        return False
    state, lines = compare(call)
    return state is not None and not lines


def sleep_if_asked() -> None:
    raw = os.environ.get("FAKEINFRA_DELAY", "").strip()
    try:
        seconds = float(raw or 0)
    except ValueError:
        raise FakeInfraError(f"FAKEINFRA_DELAY={raw!r} is not a number of seconds") from None
    time.sleep(max(seconds, 0.0))


def tamper(state_dir: Path, key: str, value: str) -> int:
    state = load_state(state_dir)
    if state is None:
        raise FakeInfraError(f"no {STATE_FILE} in {state_dir}: apply the component first")
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = value
    attributes = state.setdefault("attributes", {})
    before = show(attributes[key]) if key in attributes else "(absent)"
    attributes[key] = parsed
    write_json_atomically(state_dir / STATE_FILE, state)
    print(f"tampered {state_dir / STATE_FILE}: {key}: {before} -> {show(parsed)}")
    return 0


# --- command line ------------------------------------------------------------------------------


USAGE = (
    "usage: fakeinfra.py {plan,check,apply,destroy,health}\n"
    "       fakeinfra.py tamper --state-dir DIR [--key K] [--value JSON_OR_TEXT]"
)


def parse_tamper_options(args: list[str]) -> dict[str, str]:
    options = {"--state-dir": "", "--key": "manual_edit", "--value": "changed by hand"}
    flags, values = args[::2], args[1::2]
    if len(flags) != len(values) or not set(flags) <= options.keys():
        raise FakeInfraError(f"bad tamper options {args}\n{USAGE}")
    options |= dict(zip(flags, values, strict=True))
    if not options["--state-dir"]:
        raise FakeInfraError(f"tamper needs --state-dir\n{USAGE}")
    return options


def run_driver_action(action: str) -> int:
    call = Call.from_environment()
    sleep_if_asked()
    if is_failure_injected(call, action) and not is_apply_of_what_is_there(call, action):
        print(f"{call.label}: {action} fails on purpose (FAKEINFRA_FAIL)", file=sys.stderr)
        return 1
    if action == "apply":
        return apply(call)
    return destroy(call) if action == "destroy" else compare_action(call, action)


def main(argv: list[str]) -> int:
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__)
        return 0
    try:
        if argv[:1] == ["tamper"]:
            options = parse_tamper_options(argv[1:])
            return tamper(Path(options["--state-dir"]), options["--key"], options["--value"])
        if len(argv) != 1 or argv[0] not in DRIVER_ACTIONS:
            raise FakeInfraError(USAGE)
        return run_driver_action(argv[0])
    except (FakeInfraError, OSError) as error:
        print(f"fakeinfra: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
