"""List benchmark: what listing runs costs the daemon's memory when runs have many steps.

What it does
    Fills a fresh SQLite state database with `--runs` finished runs of `--steps` steps each
    (every step with `--output` bytes of driver output, as a real run leaves), commits a
    one-component GitOps repo, starts `python -m gitopsd serve` on both (`--poll-interval 1h`)
    and waits until the head is verified. Then it reads the daemon's resident memory
    (`VmRSS`) and its peak (`VmHWM`) from /proc before and after
    `GET /api/v1/runs?limit=100`, and after `GET /api/v1/runs/{id}` of one of the big runs,
    printing each figure with the response's size and time.

Goal (issue 17 item 12): the list answers with summaries and does not raise the peak; before
the change the list inlined every step and raised the peak RSS to about 200 MB. The script
is a report: it exits 0 whatever the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from gitopsd.adapters.sqlite_store import SqliteStore
from gitopsd.model.state import Run, RunAction, RunStatus, Step, StepAction, StepStatus

REVISION = "0" * 40
MANIFESTS = {
    "environments/bench.yaml": {
        "apiVersion": "gitopsd.io/v1",
        "kind": "Environment",
        "metadata": {"name": "bench"},
        "spec": {"variables": {}},
    },
    "components/app/component.yaml": {
        "apiVersion": "gitopsd.io/v1",
        "kind": "Component",
        "metadata": {"name": "app", "layer": "platform"},
        "spec": {
            "driver": {"type": "command", **{key: ["true"] for key in ("plan", "apply", "destroy")}}
        },
    },
}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--output", type=int, default=200, help="bytes of output per step")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    return parser.parse_args(argv)


def fill(path: Path, *, runs: int, steps: int, output: int) -> str:
    """The runs and steps, newest last; returns the newest run's id."""
    store = SqliteStore(path, synchronous="OFF")
    start = datetime.now(UTC) - timedelta(hours=1)
    run_id = ""
    for number in range(runs):
        run_id = f"bench-{number:04}"
        at = start + timedelta(seconds=number)
        run = Run(
            id=run_id,
            environment="bench",
            revision=REVISION,
            action=RunAction.APPLY,
            status=RunStatus.SUCCEEDED,
            created_at=at,
            started_at=at,
            finished_at=at,
        )
        store.save_run(run)
        store.save_steps([step(run_id, index, output) for index in range(steps)])
    store.close()
    return run_id


def step(run_id: str, index: int, output: int) -> Step:
    return Step(
        run_id=run_id,
        index=index,
        component=f"component-{index:04}",
        action=StepAction.APPLY,
        status=StepStatus.SUCCEEDED,
        attempts=1,
        revision=REVISION,
        exit_code=0,
        output=f"applied component {index}\n".ljust(output, "."),
    )


def commit(repo: Path) -> None:
    for name, manifest in MANIFESTS.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(json.dumps(manifest))
    git = ["git", "-C", str(repo), "-c", "user.name=bench", "-c", "user.email=bench@example.com"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "bench"], check=True)


def memory(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of `pid`, in MB."""
    found: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) / 1024
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def timed_get(url: str) -> tuple[httpx.Response, float]:
    began = time.perf_counter()
    response = httpx.get(url, timeout=600)
    return response, time.perf_counter() - began


def wait_verified(base: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the daemon exited with {process.returncode}")
        try:
            found = httpx.get(f"{base}/api/v1/environments/bench", timeout=5)
            if found.status_code == 200 and found.json()["status"] == "verified":
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the head was not verified in time")


def tail(log: Path) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[:15])


def measure(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    repo, data = root / "repo", root / "data"
    repo.mkdir()
    commit(repo)
    began = time.perf_counter()
    big = fill(data / "state.db", runs=args.runs, steps=args.steps, output=args.output)
    figures: dict[str, Any] = {"fill_seconds": round(time.perf_counter() - began, 1)}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [
        sys.executable, "-m", "gitopsd", "serve", "--repo", str(repo), "--data-dir", str(data),
        "--state", f"sqlite:///{data / 'state.db'}", "--listen", f"127.0.0.1:{port}",
        "--poll-interval", "1h",
    ]  # fmt: skip
    with (root / "daemon.log").open("wb") as log:
        process = subprocess.Popen(command, cwd=root, stdout=log, stderr=subprocess.STDOUT)
    try:
        try:
            wait_verified(base, process, timeout=60)
        except RuntimeError as error:
            raise RuntimeError(f"{error}:\n{tail(root / 'daemon.log')}") from None
        time.sleep(1.0)  # let the first run's threads wind down
        figures["idle"] = memory(process.pid)
        listed, seconds = timed_get(f"{base}/api/v1/runs?limit=100")
        figures["list"] = {
            "status": listed.status_code,
            "bytes": len(listed.content),
            "seconds": round(seconds, 3),
            **memory(process.pid),
        }
        shown, seconds = timed_get(f"{base}/api/v1/runs/{big}")
        figures["one_run"] = {
            "status": shown.status_code,
            "bytes": len(shown.content),
            "seconds": round(seconds, 3),
            **memory(process.pid),
        }
    finally:
        process.terminate()
        process.wait(60)
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="gitopsd-lists-") as folder:
        figures = measure(args, Path(folder))
    figures["shape"] = {"runs": args.runs, "steps": args.steps, "output_bytes": args.output}
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(f"{args.runs} runs x {args.steps} steps ({args.output} B of output each)")
    idle = figures["idle"]
    print(f"idle after the first run: RSS {idle['VmRSS']:.0f} MB, peak {idle['VmHWM']:.0f} MB")
    for name in ("list", "one_run"):
        got = figures[name]
        print(
            f"after {name}: HTTP {got['status']}, {got['bytes'] / 1e6:.2f} MB in"
            f" {got['seconds']:.2f}s; RSS {got['VmRSS']:.0f} MB, peak {got['VmHWM']:.0f} MB"
        )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("GITOPSD_LOG_FORMAT", "text")
    sys.exit(main())
