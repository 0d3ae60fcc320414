"""What open run-log streams cost the daemon: `GET /api/v1/runs/{id}/logs` followed live.

What it does
    Two scenarios, each on a fresh `python -m gitopsd serve` (latency.py's `Daemon`: a free
    loopback port, its own data folder and SQLite store) over the same repository: environment
    `bench` and `--steps` components in a chain (default 20), each of whose apply prints a line
    every 50 ms for a second (`sh`, `echo`, `sleep`). The daemon applies the head on its own.

    quiet
        Nobody follows the run. Measured: the run's duration (its `finished_at - started_at`),
        the daemon's CPU time over the run, and its peak VmHWM.
    followed
        As soon as the run is listed, `--streams` clients (default 50) open its log stream
        (`Accept: text/event-stream`, as a browser's EventSource) and read it to its `end`
        event, on one thread with asyncio. The same figures, plus: whether every client got
        exactly the run's stored output (`Accept: text/plain` after the run), and the time
        from the run's end to the last client's `end` event.

    The differences between the two say what the streams cost: they must not delay the run
    (issue 20: 50 open dashboards do not delay a run and add at most 10 MB to the daemon's RSS).

The script is a report, not a test: it exits 0 whatever the figures, non-zero only if it
crashed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx

BENCHMARKS = Path(__file__).resolve().parent
if str(BENCHMARKS) not in sys.path:  # latency.py and engine.py are sibling scripts
    sys.path.insert(0, str(BENCHMARKS))

import engine  # noqa: E402
import latency  # noqa: E402

PRINTER = (
    'i=0; while [ $i -lt 20 ]; do echo "$GITOPSD_COMPONENT line $i"; sleep 0.05; i=$((i+1)); done'
)
GOAL_MB = 10


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20, help="components in the chain")
    parser.add_argument("--streams", type=int, default=50, help="clients following the run")
    return parser.parse_args()


def repository(steps: int) -> dict[str, str]:
    shell = engine.command_for("sh")[0]
    files = {"environments/bench.yaml": latency.small_environment(1)}
    previous: list[str] = []
    for n in range(steps):
        name = f"c{n:03d}"
        spec = {
            "depends_on": previous,
            "driver": {
                "type": "command",
                "plan": [shell, "-c", "true"],
                "apply": [shell, "-c", PRINTER],
            },
        }
        files[f"components/network/{name}/component.yaml"] = latency.manifest(
            "Component", {"name": name, "layer": "network"}, spec
        )
        previous = [name]
    return files


@dataclass
class Figures:
    name: str
    run_seconds: float = 0.0
    cpu_seconds: float = 0.0
    peak_kb: int = 0
    streams: int = 0
    complete: int = 0
    last_end_after_run: float | None = None
    notes: list[str] = field(default_factory=list)


async def follow(url: str, ends: list[float]) -> str:
    """Read one log stream to its `end` event; the text its `output` events carried."""
    text: list[str] = []
    data: list[str] = []
    kind = ""
    headers = {"Accept": "text/event-stream"}
    async with (
        httpx.AsyncClient(timeout=120) as client,
        client.stream("GET", url, headers=headers) as answer,
    ):
        async for line in answer.aiter_lines():
            if line.startswith("event: "):
                kind = line[len("event: ") :]
            elif line.startswith("data: "):
                data.append(line[len("data: ") :])
            elif not line and data:
                if kind == "end":
                    ends.append(time.time())
                    return "".join(text)
                text.append("\n".join(data))
                data, kind = [], ""
    return "".join(text)


def followers(url: str, count: int, results: list[str], ends: list[float]) -> threading.Thread:
    async def all_of_them() -> None:
        results.extend(await asyncio.gather(*(follow(url, ends) for _ in range(count))))

    thread = threading.Thread(target=asyncio.run, args=(all_of_them(),), daemon=True)
    thread.start()
    return thread


def scenario(name: str, files: dict[str, str], streams: int, root: Path) -> Figures:
    folder = root / name
    folder.mkdir()
    head = latency.create_repo(folder / "repo", files)
    daemon = latency.Daemon(str(folder / "repo"), folder)
    figures = Figures(name, streams=streams)
    try:
        daemon.wait_ready()
        run = daemon.wait_started(head)
        cpu = daemon.cpu_seconds()
        results: list[str] = []
        ends: list[float] = []
        url = f"http://127.0.0.1:{daemon.port}/api/v1/runs/{run['id']}/logs"
        thread = followers(url, streams, results, ends) if streams else None
        finished = daemon.wait_finished(run["id"])
        figures.cpu_seconds = daemon.cpu_seconds() - cpu
        figures.peak_kb = daemon.memory().get("VmHWM", 0)
        if thread is not None:
            thread.join(120)
        path = f"/api/v1/runs/{run['id']}/logs"
        stored = daemon.client.get(path, headers={"Accept": "text/plain"}).text
        figures.complete = sum(1 for text in results if text == stored)
        figures.run_seconds = seconds_between(finished["started_at"], finished["finished_at"])
        if ends:
            figures.last_end_after_run = max(ends) - iso_time(finished["finished_at"])
    finally:
        code, how = daemon.stop()
        if code != 0:
            figures.notes.append(how)
    return figures


def iso_time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def seconds_between(start: str, end: str) -> float:
    return iso_time(end) - iso_time(start)


def report(quiet: Figures, followed: Figures) -> None:
    print(f"run of {followed.streams} followers vs none (seconds, CPU seconds, peak VmHWM MB):")
    for figures in (quiet, followed):
        print(
            f"  {figures.name:9} run {figures.run_seconds:6.2f} s  cpu {figures.cpu_seconds:6.2f} s"
            f"  peak {figures.peak_kb * 1024 / 1e6:6.1f} MB  {' '.join(figures.notes)}"
        )
    grown = (followed.peak_kb - quiet.peak_kb) * 1024 / 1e6
    print(f"  streams added {grown:.1f} MB to the peak (goal: at most {GOAL_MB} MB)")
    print(f"  delay of the run: {followed.run_seconds - quiet.run_seconds:+.2f} s")
    print(
        f"  clients that got exactly the stored output: {followed.complete} of {followed.streams}"
    )
    if followed.last_end_after_run is not None:
        print(f"  last `end` event {followed.last_end_after_run:.2f} s after the run ended")


def main() -> int:
    args = parse_args()
    files = repository(args.steps)
    with tempfile.TemporaryDirectory(prefix="gitopsd-log-streams-") as scratch:
        root = Path(scratch)
        quiet = scenario("quiet", files, 0, root)
        followed = scenario("followed", files, args.streams, root)
    report(quiet, followed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
