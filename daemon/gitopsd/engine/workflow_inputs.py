"""GitHub's limits on `workflow_dispatch` inputs, and the inputs gitopsd adds to every dispatch.

Shared by validation (a component's input names and count are known when it loads) and the
`github-actions` driver (the rendered payload's size is known only when it is called). The
numbers are GitHub's, from "Workflow syntax: on.workflow_dispatch.inputs": at most 25 top-level
inputs and at most 65,535 characters of inputs payload.
"""

from __future__ import annotations

from collections.abc import Iterable

MAX_INPUTS = 25
MAX_PAYLOAD_CHARS = 65535
# Sent with every dispatch, besides the component's rendered inputs; GitHub lower-cases input
# ids, so a component input that equals one of these in any case would collide with it.
PROTOCOL_INPUTS = ("environment", "component", "action", "revision", "correlation_id")


def check_input_names(names: Iterable[str]) -> None:
    """Raise ValueError when a github-actions component's inputs cannot all be dispatched."""
    names = list(names)
    taken = sorted(name for name in names if name.lower() in PROTOCOL_INPUTS)
    if taken:
        listed = ", ".join(repr(name) for name in taken)
        raise ValueError(
            f"input {listed}: the github-actions driver sends {', '.join(PROTOCOL_INPUTS)} "
            "itself; rename the input"
        )
    total = len(names) + len(PROTOCOL_INPUTS)
    if total > MAX_INPUTS:
        raise ValueError(
            f"{len(names)} inputs: the github-actions driver would dispatch {total} workflow "
            f"inputs ({len(names)} of the component's + {len(PROTOCOL_INPUTS)} of gitopsd's), "
            f"GitHub accepts at most {MAX_INPUTS}; keep it to "
            f"{MAX_INPUTS - len(PROTOCOL_INPUTS)} or pass a JSON object in one input"
        )
