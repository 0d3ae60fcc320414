"""The README's walkthrough (its "Try it" and "Drift" commands), line by line, against the
daemon `make run` starts on a clone of the project, within the three minutes it promises.

Each line runs as a newcomer types it: in a shell that first ran the walkthrough's opening
line (`cd .run/example && PATH=...`). A line whose exit code differs from the one its comment
names ("exit N", else 0), or whose output lacks the text its comment quotes, runs again a
second later, as a newcomer re-runs `status` until the daemon got there; a line still
failing after a minute fails the test. The example's settings (10 s and 20 s soaks, a prod
window in force at every hour) make this pass at any hour of any day.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.daemon.harness import free_port
from tests.example.conftest import driver_env
from tests.gitrepos import PROJECT, git

README = PROJECT / "README.md"
PROMISED = 180.0  # seconds from a serving daemon to the drift report, as the README says
PER_LINE = 60.0
NEWCOMER = {
    "GIT_AUTHOR_NAME": "Newcomer",
    "GIT_AUTHOR_EMAIL": "newcomer@example.com",
    "GIT_COMMITTER_NAME": "Newcomer",
    "GIT_COMMITTER_EMAIL": "newcomer@example.com",
}


@dataclass(frozen=True)
class Line:
    """One command of the walkthrough and what its comment promises."""

    command: str
    exit_code: int
    quoted: tuple[str, ...]


def walkthrough(readme: str) -> list[Line]:
    """The first `sh` block of each section, commands with their comments' promises."""
    lines = []
    for section in ("## Try it", "## Drift"):
        block = readme.split(section, 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
        for text in block.splitlines():
            command, _, comment = text.partition(" # ")
            if not command.strip():
                continue  # a comment continued from the line above
            wanted = re.search(r"\bexit (\d+)", comment)
            quoted = tuple(re.findall(r'"([^"]+)"', comment))
            lines.append(Line(command.strip(), int(wanted.group(1)) if wanted else 0, quoted))
    return lines


@dataclass
class Served:
    """`make run` in a clone of the project: where it serves, and its process."""

    root: Path
    port: int
    process: subprocess.Popen[bytes]

    @property
    def example(self) -> Path:
        return self.root / ".run" / "example"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """A clone of the project (its own `.venv` is this interpreter's) running `make run`,
    installation skipped (`-o install`), on a free port, after its user edited the
    checkout's example without committing (`node_count: 3` in dev)."""
    root = tmp_path / "project"
    subprocess.run(["git", "clone", "-q", str(PROJECT), str(root)], check=True)
    dev = root / "environments" / "dev.yaml"
    dev.write_text(dev.read_text().replace("node_count: 1", "node_count: 3"))
    (root / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    port = free_port()
    log = (tmp_path / "make-run.log").open("wb")
    process = subprocess.Popen(
        ["make", "-o", "install", "run", f"LISTEN=127.0.0.1:{port}"],
        cwd=root,
        env=driver_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # make and the daemon it runs, stopped together
    )
    try:
        yield Served(root, port, process)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(60)
        log.close()


def wait_until_serving(served: Served) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert served.process.poll() is None, "make run exited"
        try:
            if httpx.get(f"http://127.0.0.1:{served.port}/healthz", timeout=2).is_success:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("make run did not serve within two minutes")


def run_line(served: Served, opening: str, line: Line) -> str:
    """Run `line` after the opening line, again until it does what its comment says."""
    command = line.command.replace("localhost:8080", f"localhost:{served.port}")
    env = driver_env(**NEWCOMER)
    deadline = time.monotonic() + PER_LINE
    while True:
        done = subprocess.run(
            ["bash", "-c", f"{opening}\n{command}"],
            cwd=served.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=PER_LINE,
        )
        said = done.stdout + done.stderr
        if done.returncode == line.exit_code and all(text in said for text in line.quoted):
            return said
        if time.monotonic() > deadline:
            raise AssertionError(f"{line.command!r} exited {done.returncode}:\n{said}")
        time.sleep(1)


@pytest.mark.timeout(PROMISED + 180)  # the promise, plus the start and the checks after it
def test_the_readme_walkthrough_reaches_prod_and_a_drift_report_in_three_minutes(
    served: Served,
) -> None:
    opening, *lines = walkthrough(README.read_text(encoding="utf-8"))
    assert opening.command.startswith("cd .run/example && ")
    wait_until_serving(served)
    started = time.monotonic()
    for line in lines:
        run_line(served, opening.command, line)
    elapsed = time.monotonic() - started
    print(f"walkthrough: {elapsed:.0f} s from a serving daemon to the drift report")
    assert elapsed < PROMISED

    example = served.example
    head = git(example, "rev-parse", "HEAD")
    assert git(example, "log", "-1", "--format=%an %s") == "Newcomer dev: two nodes"
    status = gitopsd(example, "status", "--output", "json")
    revisions = {e["name"]: (e["revision"], e["status"]) for e in status["environments"]}
    assert revisions == {env: (head, "verified") for env in ("dev", "staging", "prod")}
    history = gitopsd(example, "history", "--env", "prod", "--limit", "500", "--output", "json")
    kinds = [event["kind"] for event in history["events"]]
    assert {"approval.recorded", "promotion.waiting_window", "promotion.forced"} <= set(kinds)
    assert "Drifted and re-applied: `clusters`" in (example / "drift.md").read_text()
    # the checkout was left as its user had it: their edit, and no commit of the walkthrough's
    changed = git(served.root, "status", "--porcelain").splitlines()
    assert sorted(entry.strip() for entry in changed) == ["?? .venv", "M environments/dev.yaml"]
    assert git(served.root, "rev-parse", "HEAD") == git(PROJECT, "rev-parse", "HEAD")


def gitopsd(cwd: Path, *args: str) -> dict[str, list[dict[str, str]]]:
    done = subprocess.run(
        [str(Path(sys.prefix) / "bin" / "gitopsd"), *args],
        cwd=cwd,
        env=driver_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    found: dict[str, list[dict[str, str]]] = json.loads(done.stdout)
    return found
