"""What gitopsd sends a dispatched workflow (its inputs) and reads back (the result artifact).

Pipeline: execute -> `github_actions_driver`. This is the github-actions counterpart of the
command protocol (SPEC section 4), documented in docs/github-actions.md:

- inputs: each rendered input as its own workflow input, strings as they are and other values
  as compact JSON (dispatch inputs are strings), plus `environment`, `component`, `action`,
  `revision` and `correlation_id`; within GitHub's limits (`engine.workflow_inputs`);
- result: an optional artifact named `gitopsd-result`, a zip holding `result.json` =
  `{"exit_code": N, "outputs": {...}}`, so `plan`/`check` can report 2 (changes, drift) and
  `apply` can return outputs. Problems with it are `ResultError`s naming the artifact.
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

from gitopsd.engine import json_limits, workflow_inputs
from gitopsd.engine.ports import DriverCall
from gitopsd.errors import JsonLimitError

RESULT_ARTIFACT = "gitopsd-result"
RESULT_FILE = "result.json"
MAX_RESULT_ZIP = 10 * 1024 * 1024
MAX_RESULT_JSON = 1024 * 1024


# not in gitopsd.errors: the GitHub driver records it as the step's failure
class ResultError(ValueError):
    """The result artifact is there but unusable."""


def correlation_id(call: DriverCall, fresh: str) -> str:
    """The id a dispatch's run is found by: `fresh` (unique per call), after the mark of the
    step the call is a try of (`step_mark`), by which the runs of its earlier tries are found."""
    return fresh if call.step is None else step_mark(call.step.key) + fresh


def step_mark(key: str) -> str:
    """What the correlation id of every try of step `key` begins with: the key and a '-', so
    that step 3's mark is not found in step 31's ids."""
    return f"{key}-"


def dispatch_inputs(call: DriverCall, *, correlation_id: str) -> dict[str, str]:
    """The `inputs` of the dispatch; ValueError when they exceed GitHub's limits."""
    workflow_inputs.check_input_names(call.inputs)
    inputs = {name: _as_text(value) for name, value in call.inputs.items()}
    inputs.update(
        environment=call.environment,
        component=call.component,
        action=call.action,
        revision=call.revision,
        correlation_id=correlation_id,
    )
    size = len(json.dumps(inputs, separators=(",", ":"), ensure_ascii=False))
    if size > workflow_inputs.MAX_PAYLOAD_CHARS:
        largest = max(call.inputs, key=lambda name: len(inputs[name]), default="")
        detail = f" (the largest is {largest!r}, {len(inputs[largest])} characters)"
        raise ValueError(
            f"the workflow inputs are {size} characters as JSON, GitHub accepts at most "
            f"{workflow_inputs.MAX_PAYLOAD_CHARS}" + (detail if largest else "")
        )
    return inputs


def parse_result(archive: bytes) -> tuple[int, dict[str, Any]]:
    """(exit code, outputs) from the artifact's zip."""
    try:
        with zipfile.ZipFile(io.BytesIO(archive)) as files:
            raw = _read_result_file(files)
    except zipfile.BadZipFile:
        raise ResultError(f"{RESULT_ARTIFACT} artifact: not a zip archive") from None
    try:
        document = json_limits.parse(raw.decode("utf-8"))  # as a command's outputs file
    except (UnicodeDecodeError, JsonLimitError) as error:
        raise ResultError(
            f"{RESULT_ARTIFACT} artifact: {RESULT_FILE} is not JSON: {error}"
        ) from None
    return _exit_code_and_outputs(document)


def _read_result_file(files: zipfile.ZipFile) -> bytes:
    try:
        info = files.getinfo(RESULT_FILE)
    except KeyError:
        listed = ", ".join(files.namelist()[:5]) or "nothing"
        raise ResultError(
            f"{RESULT_ARTIFACT} artifact: no {RESULT_FILE} at its top (it holds {listed})"
        ) from None
    if info.file_size > MAX_RESULT_JSON:
        raise ResultError(f"{RESULT_ARTIFACT} artifact: {RESULT_FILE} is larger than 1 MiB")
    return files.read(info)


def _exit_code_and_outputs(document: Any) -> tuple[int, dict[str, Any]]:
    where = f"{RESULT_ARTIFACT} artifact: {RESULT_FILE}"
    if not isinstance(document, dict):
        raise ResultError(f"{where}: expected a JSON object")
    code = document.get("exit_code")
    if isinstance(code, bool) or not isinstance(code, int):
        raise ResultError(f"{where}: exit_code must be a whole number, got {code!r}")
    outputs = document.get("outputs", {})
    if not isinstance(outputs, dict):
        raise ResultError(f"{where}: outputs must be a JSON object")
    return code, outputs


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
