"""Dashboard benchmark: the pipeline page's server time at 3 x 1,000 components, and what
50 open dashboards (SSE connections) cost the daemon's memory.

What it does
    1. **Page**: a SQLite state store (gitopsd's own) is filled with three environments of
       `--components` component records each (outputs, one of them sensitive), through the
       store's public methods. The dashboard's routes are served by the API app in-process
       over a `Control` whose status is `runtime.records.reports.status_report` on that store
       (what the daemon answers with). `GET /` and `GET /environments/env-0` are called as
       ASGI requests, the time from the call to the response's last byte measured, best and
       median of `--repeat`. No HTTP client or socket is in the figure: it is the server's.
    2. **SSE**: `gitopsd serve` (open mode, loopback) on a small generated repository (5
       `true` components); its VmRSS is read from /proc after it applied the head and sat
       idle, then `--connections` raw sockets each open `GET /events` and keep it, and VmRSS
       is read again once every stream sent its first bytes and 3 s passed.
    3. **Runs beside open dashboards**: `gitopsd serve` on `--run-components` components whose
       apply is `sleep 0.05` (parallelism 4), all reading `vars.region`. Each round commits a
       new region (every component re-applies) and times the commit until the environment is
       verified at it, read through the API every 20 ms: `--rounds` rounds with no page open
       and as many with `--connections` open event streams, alternating, so a machine whose
       speed drifts affects both alike.

Goals (issue 20): the pipeline page in at most 100 ms of server time with 1,000 components
in each of three environments; 50 open dashboards add at most 10 MB to the daemon's RSS and
do not delay a run (judged on the median, within the rounds' spread).
The script is a report: it exits 0 whatever the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

BENCHMARKS = Path(__file__).resolve().parent
if str(BENCHMARKS) not in sys.path:  # sibling scripts, not a package
    sys.path.insert(0, str(BENCHMARKS))

import engine  # noqa: E402
from gitopsd.adapters.sqlite_store import SqliteStore  # noqa: E402
from gitopsd.api.app import create_app  # noqa: E402
from gitopsd.api.auth import Tokens  # noqa: E402
from gitopsd.api.guards import RequestRules  # noqa: E402
from gitopsd.dashboard import routing  # noqa: E402
from gitopsd.model.state import ComponentState, EnvironmentState, EnvironmentStatus  # noqa: E402
from gitopsd.runtime.records import reports  # noqa: E402
from load import plan_components  # noqa: E402

GOAL_PAGE_SECONDS = 0.100
GOAL_SSE_BYTES = 10 * 1000 * 1000
ENVIRONMENTS = ("env-0", "env-1", "env-2")
REVISION = "0123456789abcdef0123456789abcdef01234567"


class StoreControl:
    """The reads the dashboard makes, answered from a real store as the daemon does."""

    branch = "main"

    def __init__(self, store: SqliteStore, names: list[str]) -> None:
        self.store = store
        self.names = names

    def status(self, environment: str | None = None) -> dict[str, Any]:
        return reports.status_report(self.store, None, environment=environment)

    def runs(self, environment: str | None = None, **_: Any) -> dict[str, Any]:
        return {"runs": [], "next_cursor": None}

    def events(self, environment: str | None = None, **_: Any) -> dict[str, Any]:
        return {"events": [], "next_cursor": None}

    def commits(self, revisions: Sequence[str] = (), *, recent: int = 0) -> list[dict[str, Any]]:
        return [{"revision": REVISION, "subject": "change", "author": "bench", "date": None}]

    def graph(self, environment: str) -> dict[str, Any]:
        chain = [{"name": n, "layer": "l", "depends_on": []} for n in self.names]
        return {"environment": environment, "components": chain}


def fill(store: SqliteStore, components: int) -> list[str]:
    now = datetime.now(UTC)
    names = [f"component-{i:05d}" for i in range(components)]
    for env in ENVIRONMENTS:
        state = EnvironmentState(
            name=env, revision=REVISION, status=EnvironmentStatus.VERIFIED, updated_at=now
        )
        store.save_environment(state)
        store.save_components(
            [
                ComponentState(
                    environment=env, name=name, revision=REVISION, fingerprint="f",
                    outputs={"id": f"{name}-{env}", "endpoint": f"https://{name}.example",
                             "password": "sealed"},
                    sensitive_outputs=["password"], updated_at=now,
                )
                for name in names
            ]
        )  # fmt: skip
    return names


async def serve_once(app: Any, path: str) -> float:
    """One ASGI request; seconds from the call to the last body byte."""
    scope = {
        "type": "http", "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8080")], "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 8080),
    }  # fmt: skip
    done = asyncio.Event()

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start" and message["status"] != 200:
            raise RuntimeError(f"{path} answered {message['status']}")
        if message["type"] == "http.response.body" and not message.get("more_body"):
            done.set()

    start = time.perf_counter()
    await app(scope, receive, send)
    await done.wait()
    return time.perf_counter() - start


def page_times(components: int, repeat: int, folder: Path) -> dict[str, list[float]]:
    store = SqliteStore(folder / "state.db")
    names = fill(store, components)
    control = StoreControl(store, names)
    app = create_app(
        control,  # type: ignore[arg-type]
        tokens=Tokens.none(),
        webhook_secret=None,
        rules=RequestRules.for_listen("127.0.0.1", 8080),
        extra_routes=routing.dashboard(control, tokens=Tokens.none()).routes,  # type: ignore[arg-type]
    )

    async def measure() -> dict[str, list[float]]:
        found: dict[str, list[float]] = {}
        for path in ("/", "/environments/env-0"):
            await serve_once(app, path)  # warm: templates compiled, caches filled
            found[path] = [await serve_once(app, path) for _ in range(repeat)]
        return found

    return asyncio.run(measure())


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def sse_cost(connections: int, folder: Path) -> tuple[int, int]:
    """VmRSS of an idle daemon, then with `connections` open event streams."""
    repo, _ = engine.generate(folder, plan_components(5), (engine.command_for("true")), 4)
    port = free_port()
    command = [sys.executable, "-m", "gitopsd", "serve", "--listen", f"127.0.0.1:{port}",
               "--repo", str(repo), "--data-dir", str(folder / "data"),
               "--poll-interval", "1h"]  # fmt: skip
    log = (folder / "daemon.log").open("wb")
    daemon = subprocess.Popen(command, cwd=folder, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: verified(url), 120)
        httpx.get(url + "/", timeout=10)  # the dashboard's modules and templates loaded
        time.sleep(3)
        before = rss_bytes(daemon.pid)
        streams = [open_stream(port) for _ in range(connections)]
        for stream in streams:
            stream.recv(64)  # the stream's first bytes: its handler is running
        time.sleep(3)
        after = rss_bytes(daemon.pid)
        for stream in streams:
            stream.close()
        return before, after
    finally:
        daemon.terminate()
        daemon.wait(60)
        log.close()


def run_delay(
    connections: int, components: int, rounds: int, folder: Path
) -> dict[str, list[float]]:
    """Seconds from a commit to the environment verified at it, without and with open pages."""
    planned = plan_components(components)
    repo, _ = engine.generate(folder, planned, engine.command_for("sleep"), 4)
    port = free_port()
    command = [sys.executable, "-m", "gitopsd", "serve", "--listen", f"127.0.0.1:{port}",
               "--repo", str(repo), "--data-dir", str(folder / "data"),
               "--poll-interval", "1h"]  # fmt: skip
    log = (folder / "daemon.log").open("wb")
    daemon = subprocess.Popen(command, cwd=folder, stdout=log, stderr=subprocess.STDOUT)
    times: dict[str, list[float]] = {"without": [], "with": []}
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: verified(url), 300)
        for round_number in range(rounds * 2):
            opened = round_number % 2 == 1
            streams = [open_stream(port) for _ in range(connections if opened else 0)]
            for stream in streams:
                stream.recv(64)
            times["with" if opened else "without"].append(commit_and_wait(repo, url, round_number))
            for stream in streams:
                stream.close()
        return times
    finally:
        daemon.terminate()
        daemon.wait(60)
        log.close()


def commit_and_wait(repo: Path, url: str, number: int) -> float:
    """Commit a new `vars.region` and time it until the environment is verified at it."""
    environment = repo / "environments" / f"{engine.ENVIRONMENT}.yaml"
    text = environment.read_text(encoding="utf-8")
    region = text.split("region: ", 1)[1].split("\n", 1)[0]
    environment.write_text(text.replace(f"region: {region}", f"region: r{number}"), "utf-8")
    engine.run_git(repo, "add", "-A")
    started = time.perf_counter()
    engine.run_git(repo, *engine.GIT_IDENTITY, "commit", "-q", "-m", f"region r{number}")
    head = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    wait_until(lambda: verified(url, revision=head), 300, poll=0.02)
    return time.perf_counter() - started


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def verified(url: str, revision: str | None = None) -> bool:
    try:
        answer = httpx.get(f"{url}/api/v1/environments/{engine.ENVIRONMENT}", timeout=5)
    except httpx.TransportError:
        return False
    if answer.status_code != 200 or answer.json()["status"] != "verified":
        return False
    return revision is None or answer.json()["revision"] == revision


def wait_until(check: Any, timeout: float, *, poll: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError("the daemon did not verify its head in time")
        time.sleep(poll)


def open_stream(port: int) -> socket.socket:
    stream = socket.create_connection(("127.0.0.1", port), timeout=30)
    stream.sendall(f"GET /events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    return stream


def seconds(values: list[float]) -> str:
    shown = ", ".join(f"{v:.2f}" for v in values)
    return f"best {min(values):.2f} s, median {statistics.median(values):.2f} s ({shown})"


def milliseconds(values: list[float]) -> str:
    return f"best {min(values) * 1000:.1f} ms, median {statistics.median(values) * 1000:.1f} ms"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--components", type=int, default=1000, help="per environment")
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--run-components", type=int, default=40, help="of the timed runs")
    parser.add_argument("--rounds", type=int, default=5, help="timed runs without and with")
    args = parser.parse_args(argv)
    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory(prefix="gitopsd-dashboard-") as scratch:
        times = page_times(args.components, args.repeat, Path(scratch))
        best = min(times["/"])
        verdict = "PASS" if best <= GOAL_PAGE_SECONDS else "FAIL"
        print(f"pipeline page, 3 x {args.components} components: {milliseconds(times['/'])}"
              f"  (goal <= {GOAL_PAGE_SECONDS * 1000:.0f} ms: {verdict})")  # fmt: skip
        env = times["/environments/env-0"]
        print(f"environment page, {args.components} components: {milliseconds(env)}")
    with tempfile.TemporaryDirectory(prefix="gitopsd-sse-") as scratch:
        before, after = sse_cost(args.connections, Path(scratch))
        added = after - before
        verdict = "PASS" if added <= GOAL_SSE_BYTES else "FAIL"
        print(f"daemon VmRSS idle {before / 1e6:.1f} MB, with {args.connections} open event "
              f"streams {after / 1e6:.1f} MB: +{added / 1e6:.2f} MB"
              f"  (goal <= {GOAL_SSE_BYTES / 1e6:.0f} MB: {verdict})")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="gitopsd-runs-") as scratch:
        runs = run_delay(args.connections, args.run_components, args.rounds, Path(scratch))
        print(f"a run of {args.run_components} `sleep 0.05` steps, commit to verified:")
        print(f"  {'no page open:':<26}{seconds(runs['without'])}")
        print(f"  {f'{args.connections} open event streams:':<26}{seconds(runs['with'])}")
        delay = statistics.median(runs["with"]) - statistics.median(runs["without"])
        print(f"  median delay: {delay * 1000:+.0f} ms  (goal: no delay beyond the spread)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
