"""A command driver's output handed on as it prints it (`DriverCall.on_output`): redacted with
no secret split between two pieces, whole lines, and the start of the output the call stores.

The driver prints a part, then waits until the test has received a piece of output (each piece
received opens the next gate), so the pieces are what a reader sees while the driver runs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gitopsd.adapters.command_driver import CommandDriverRunner
from tests.adapters.test_command_driver import make_call, python

DRIVER = """
import json, os, time
from pathlib import Path

inputs = json.loads(Path(os.environ["GITOPSD_INPUTS"]).read_text())
gates = Path(inputs["gates"])
for n, part in enumerate(inputs["parts"]):
    os.write(1, part.encode())
    while n < len(inputs["parts"]) - 1 and not (gates / str(n)).exists():
        time.sleep(0.01)
"""


@pytest.fixture(autouse=True)
def component(tmp_path: Path) -> None:
    (tmp_path / "checkout" / "components" / "network").mkdir(parents=True)


KEY = "-----BEGIN KEY-----\nabcdef\n-----END KEY-----"


def printed(tmp_path: Path, parts: list[str], **inputs: str) -> tuple[list[str], str]:
    """The pieces handed on while the driver printed `parts`, and the output it stored."""
    runner = CommandDriverRunner(tmp_path / "work", base_env={"PATH": "/usr/bin:/bin"})
    gates = tmp_path / "gates"
    gates.mkdir()
    pieces: list[str] = []

    def on_output(text: str) -> None:
        pieces.append(text)
        (gates / str(len(pieces) - 1)).write_text("")  # the driver prints its next part

    every = {"gates": str(gates), "parts": parts, **inputs}
    call = make_call(tmp_path, python(DRIVER), inputs=every, on_output=on_output)
    result = runner.run(call)
    assert result.exit_code == 0, result.output
    return pieces, result.output


@pytest.mark.parametrize(
    ("parts", "secret", "pieces"),
    [
        (
            ["first\nhunter2-", "secret-rest\nlast\n"],
            "hunter2-secret-rest",
            ["first\n", "***\nlast\n"],
        ),
        (
            ["key:\n-----BEGIN KEY-----\n", "abcdef\n-----END KEY-----\nok\n"],
            KEY,
            ["key:\n", "***\nok\n"],
        ),
        (["one\nhalf a ", "line\nnot ended"], "unprinted", ["one\n", "half a line\n", "not ended"]),
    ],
    ids=["a secret printed in two parts", "a secret of several lines", "lines held until ended"],
)
def test_pieces_are_whole_lines_redacted_with_no_part_of_a_secret(
    tmp_path: Path, parts: list[str], secret: str, pieces: list[str]
) -> None:
    handed_on, stored = printed(tmp_path, parts, api_token=secret, private_key=KEY)
    assert handed_on == pieces
    assert "".join(handed_on) == stored


def test_a_line_too_long_to_hold_is_handed_on_in_pieces(tmp_path: Path) -> None:
    long_line = "é" + "x" * 20000  # never cut inside a character
    handed_on, stored = printed(tmp_path, [long_line, "é\n"])
    assert handed_on == [long_line, "é\n"]
    assert stored == long_line + "é\n"


def test_only_the_head_the_cap_keeps_is_handed_on(tmp_path: Path) -> None:
    runner = CommandDriverRunner(tmp_path / "work", base_env={}, max_output=1000)
    pieces: list[str] = []
    lines = "".join(f"line {n:03d}".ljust(99, ".") + "\n" for n in range(30))
    call = make_call(tmp_path, python(f"print({lines!r}, end='')"), on_output=pieces.append)
    stored = runner.run(call).output
    assert "".join(pieces) == lines[:500]  # the 500 bytes the stored output starts with
    assert stored.startswith(lines[:500]) and "bytes omitted" in stored
