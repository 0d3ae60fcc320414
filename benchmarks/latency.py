"""Latency benchmark: commit to start of apply under `gitopsd serve`, and its idle memory.

What it does
    Every scenario starts `python -m gitopsd serve` as a subprocess on a free loopback port,
    with a fresh data folder and SQLite state database, `--poll-interval 1h`, and its log in a
    file; waits for `GET /readyz` and for the first apply of the head to be verified; leaves
    it idle 2 s and notes the CPU time it uses meanwhile (an idle daemon should use next to
    none); measures; then stops the daemon with SIGTERM and checks that it exits 0.

    events
        A small GitOps repo (SPEC section 2): environment `bench` and three components in a
        chain whose command drivers run `true`; the last one's input reads `${{ vars.n }}`.
        The daemon watches the repo by local path (file-system events on its refs). `--commits`
        times: set `vars.n` to a new value in `environments/bench.yaml`, `git commit`, and take
        `time.time()` right after `git commit` returns (the ref has moved by then); poll
        `GET /api/v1/runs?env=bench` every 10 ms until a run of the new revision has a
        `started_at`; latency = `started_at` - commit time. The run is waited for to the end
        before the next commit, so no two commits coalesce into one run.
    webhook
        The same, with the daemon on `file://<repo>` (a mirror it fetches) and
        `GITOPSD_WEBHOOK_SECRET` set; the poll never fires within the run, so each commit is
        followed by a signed GitHub push delivery to `POST /api/v1/webhooks/github`, as GitHub
        would send it. Latency is again from the commit to the run's `started_at`: webhook,
        fetch and loading included.
    rss
        The layered DAG of `engine.py` (`--components`, default 1,000; command drivers `true`,
        parallelism 16). Once the first apply of every component is verified and the daemon has
        been idle 2 s, VmRSS and VmHWM of the daemon process are read from /proc/PID/status.
    large
        The same DAG, watched by local path, but for one leaf (`changed-leaf`) whose input
        reads `vars.n`, overridden for it alone, and whose apply appends its start time to a
        file. Up to 20 of `--commits` times: change that override, `git commit`, and read
        the file every 10 ms until the driver wrote its start: latency = that start - commit
        time; then wait (reading the state database read-only: the runs API answers with every
        step of a run, 1,000 here, and polling it would load the daemon being measured) for the
        run to finish. It measures what a run costs before its driver: loading the head,
        deciding 1,000 components, recording the run's steps, the checkout.

Goals (the issue): p50 at most 0.5 s by file-system events, at most 1 s by webhook on a
remote; p50 at most 0.2 s (p95 0.5 s) from commit to the driver in the large scenario;
idle VmRSS at most 80 MB with 1,000 components (Flux's controllers: 175 MiB for 1,000
Kustomizations). Memory is printed in MiB (2^20 bytes) with MB (10^6 bytes) beside it; the
goal is judged in MB, the stricter reading.

The script is a report, not a test: it exits 0 whatever the figures, and non-zero only if it
crashed. A scenario whose daemon fails, times out or answers wrongly stops and shows as ERROR,
with the tail of the daemon's log; the next scenario still runs. Every wait is bounded.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import importlib.metadata
import importlib.util
import json
import os
import secrets
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx

BENCHMARKS = Path(__file__).resolve().parent
if str(BENCHMARKS) not in sys.path:  # engine.py is a sibling script, not a package
    sys.path.insert(0, str(BENCHMARKS))

import engine  # noqa: E402

GOAL_EVENTS_P50 = 0.5  # seconds, commit to apply start by file-system events
GOAL_WEBHOOK_P50 = 1.0  # seconds, commit to apply start by webhook on a remote
GOAL_RSS_BYTES = 80 * 1000**2  # "80 MB", read strictly as decimal megabytes
GOAL_LARGE_P50 = 0.2  # seconds, commit to the changed component's driver start, 1,000 components
GOAL_LARGE_P95 = 0.5
MIB = 1024**2
SCENARIOS = ("events", "webhook", "large", "rss")
ENVIRONMENT = engine.ENVIRONMENT
BRANCH = "main"
RSS_PARALLELISM = 16
LEAF = "changed-leaf"  # the large scenario's one component that each commit changes
POLL_INTERVAL = 0.01  # how often the runs API is asked while waiting for a run to start
SLOW_POLL = 0.05  # other waits (ready, verified, finished)
HTTP_TIMEOUT = 5.0
READY_TIMEOUT = 120.0
FIRST_APPLY_TIMEOUT = 120.0  # events and webhook: three `true` steps
RSS_APPLY_TIMEOUT = 1800.0  # rss: N steps
RUN_START_TIMEOUT = 30.0
RUN_FINISH_TIMEOUT = 60.0
LARGE_COMMITS = 20  # the large scenario's commits at most: each waits for a 1,000-step run
IDLE_SECONDS = 2.0
STOP_TIMEOUT = 60.0  # the daemon's shutdown grace is 30 s; an idle daemon needs far less
LOG_TAIL_LINES = 40
FINISHED = ("succeeded", "failed", "cancelled")
MEMORY_FIELDS = ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem", "VmSize", "Threads")

T = TypeVar("T")


class BenchmarkError(Exception):
    """The daemon died, timed out or answered wrongly: the scenario stops and shows ERROR."""


# --- command line ----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--commits", type=int, default=50, help="commits per latency scenario (default 50)"
    )
    parser.add_argument(
        "--components",
        type=int,
        default=1000,
        help="components of the large and rss scenarios (default 1000)",
    )
    parser.add_argument(
        "--scenario",
        action="append",
        choices=SCENARIOS,
        help="events, webhook, large or rss; repeat to run several (default: all four)",
    )
    parser.add_argument(
        "--keep", type=Path, help="repos, data folders, daemon logs here; keep them"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.commits < 1 or args.components < 1:
        parser.error("--commits and --components must be at least 1")
    args.scenario = list(dict.fromkeys(args.scenario or SCENARIOS))
    return args


# --- machine facts ---------------------------------------------------------------------------


def machine_facts(scratch: Path) -> dict[str, Any]:
    facts = engine.machine_facts(scratch)
    facts.pop("make", None)  # no make here
    facts["daemon stack"] = package_versions("uvicorn", "fastapi", "watchdog", "GitPython")
    facts["fs events"] = file_system_observer()
    return facts


def package_versions(*names: str) -> str:
    found = []
    for name in names:
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{name} missing")
    return ", ".join(found)


def file_system_observer() -> str:
    """watchdog's observer on this machine: inotify on Linux; polling would be much slower."""
    try:
        from watchdog.observers import Observer
    except ImportError:
        return "watchdog not importable"
    return f"watchdog {getattr(Observer, '__name__', Observer)}"


def gitopsd_location() -> str:
    spec = importlib.util.find_spec("gitopsd")
    if spec is None or spec.origin is None:
        return f"{engine.SOURCE_ROOT / 'gitopsd'} (added to PYTHONPATH)"
    return str(Path(spec.origin).parent)


# --- the repos -------------------------------------------------------------------------------


def manifest(kind: str, metadata: dict[str, str], spec: dict[str, Any]) -> str:
    """A manifest as JSON, which is YAML too."""
    document = {"apiVersion": "gitopsd.io/v1", "kind": kind, "metadata": metadata, "spec": spec}
    return json.dumps(document, indent=2) + "\n"


def small_environment(n: int) -> str:
    variables = {"region": "westeurope", "n": n}
    return manifest("Environment", {"name": ENVIRONMENT}, {"variables": variables})


def small_components(true: str) -> dict[str, str]:
    """Three components in a chain, one per layer; only the last one reads `vars.n`."""
    files: dict[str, str] = {}
    previous: list[str] = []
    for index, layer in enumerate(engine.LAYERS[:3]):
        name = f"c{index}"
        inputs = {"region": "${{ vars.region }}"}
        if index == 2:
            inputs["n"] = "${{ vars.n }}"
        spec = {
            "depends_on": previous,
            "inputs": inputs,
            "driver": {"type": "command", "plan": [true], "apply": [true]},
        }
        path = f"components/{layer}/{name}/component.yaml"
        files[path] = manifest("Component", {"name": name, "layer": layer}, spec)
        previous = [name]
    return files


def dag_components(count: int, true: str) -> dict[str, str]:
    """engine.py's layered DAG of `count` components, every step `true`."""
    return {
        f"components/{c.layer}/{c.name}/component.yaml": engine.render_component(c, [true], true)
        for c in engine.plan_components(count)
    }


def create_repo(repo: Path, files: Mapping[str, str]) -> str:
    """A git repository on branch main with `files` committed; the commit's sha."""
    repo.mkdir(parents=True)
    engine.run_git(repo, "-c", f"init.defaultBranch={BRANCH}", "init", "-q")
    engine.write_text(repo / "gitopsd.yaml", engine.render_settings())
    for path, text in files.items():
        engine.write_text(repo / path, text)
    commit(repo, f"benchmark: {len(files)} files")
    return head_of(repo)


def commit(repo: Path, message: str) -> tuple[float, float]:
    """`git add -A` and `git commit`: (how long the commit took, time.time() right after)."""
    engine.run_git(repo, "add", "-A")
    started = time.perf_counter()
    engine.run_git(repo, *engine.GIT_IDENTITY, "commit", "-q", "-m", message)
    committed = time.time()
    return time.perf_counter() - started, committed


def head_of(repo: Path) -> str:
    result = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def true_program() -> str:
    """`true` by absolute path (engine.py exits with a message when there is none)."""
    return engine.command_for("true")[0]


# --- the daemon ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Daemon:
    """`python -m gitopsd serve` on a free loopback port; its output in `folder/daemon.log`."""

    def __init__(self, location: str, folder: Path, env: Mapping[str, str] | None = None) -> None:
        self.log_path = folder / "daemon.log"
        data_dir = folder / "data"
        self.port = free_port()
        argv = [sys.executable, "-m", "gitopsd", "serve", "--listen", f"127.0.0.1:{self.port}"]
        argv += ["--repo", location, "--data-dir", str(data_dir)]
        argv += ["--state", engine.state_url(data_dir), "--poll-interval", "1h"]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                argv,
                cwd=folder,
                env=engine.cli_environment() | dict(env or {}),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.launched = time.perf_counter()
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=HTTP_TIMEOUT)

    def since_launch(self) -> float:
        return time.perf_counter() - self.launched

    # --- waiting -----------------------------------------------------------------------------

    def wait_for(
        self, what: str, timeout: float, probe: Callable[[], T | None], interval: float
    ) -> T:
        """`probe()` every `interval` s until it returns something; bounded by `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            found = probe()
            if found is not None:
                return found
            code = self.process.poll()
            if code is not None:
                raise BenchmarkError(f"the daemon exited ({code}) while waiting for {what}")
            if time.monotonic() > deadline:
                raise BenchmarkError(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(interval)

    def wait_ready(self) -> None:
        self.wait_for("GET /readyz to answer 200", READY_TIMEOUT, self._ready, SLOW_POLL)

    def wait_verified(self, revision: str, timeout: float) -> dict[str, Any]:
        return self.wait_for(
            f"{ENVIRONMENT} to be verified at {revision[:12]}",
            timeout,
            lambda: self._verified(revision),
            SLOW_POLL,
        )

    def wait_started(self, revision: str) -> dict[str, Any]:
        return self.wait_for(
            f"a run of {revision[:12]} to start",
            RUN_START_TIMEOUT,
            lambda: self._started(revision),
            POLL_INTERVAL,
        )

    def wait_finished(self, run_id: str) -> dict[str, Any]:
        run = self.wait_for(
            f"run {run_id} to finish", RUN_FINISH_TIMEOUT, lambda: self._finished(run_id), SLOW_POLL
        )
        if run["status"] != "succeeded":
            raise BenchmarkError(f"{ENVIRONMENT} failed: {self.why_failed()}")
        return run

    # --- probes ------------------------------------------------------------------------------

    def get(self, path: str, **params: str | int) -> dict[str, Any]:
        response = self.client.get(path, params=params)
        if response.status_code != httpx.codes.OK:
            raise BenchmarkError(f"GET {path}: {response.status_code} {response.text[:500]}")
        body: dict[str, Any] = response.json()
        return body

    def _ready(self) -> bool | None:
        try:
            return True if self.client.get("/readyz").status_code == httpx.codes.OK else None
        except httpx.TransportError:  # not listening yet
            return None

    def _verified(self, revision: str) -> dict[str, Any] | None:
        state = self.get(f"/api/v1/environments/{ENVIRONMENT}")
        if state.get("status") == "failed":
            raise BenchmarkError(f"{ENVIRONMENT} failed: {self.why_failed()}")
        verified = state.get("revision") == revision and state.get("status") == "verified"
        return state if verified else None

    def why_failed(self) -> str:
        """The newest run's error and its first failed step's, as the API reports them."""
        runs = self.get("/api/v1/runs", env=ENVIRONMENT, limit=1)["runs"]
        if not runs:
            return "no run recorded"
        run = runs[0]
        failed = [s for s in run.get("steps", []) if s.get("status") == "failed"]
        step = f"; first failed step {failed[0]['component']}: {failed[0].get('error')}"
        return f"run {run['id']} {run['status']}: {run.get('error')}" + (step if failed else "")

    def _started(self, revision: str) -> dict[str, Any] | None:
        runs = self.get("/api/v1/runs", env=ENVIRONMENT, limit=5)["runs"]
        return next((r for r in runs if r["revision"] == revision and r.get("started_at")), None)

    def _finished(self, run_id: str) -> dict[str, Any] | None:
        run = self.get(f"/api/v1/runs/{run_id}")
        return run if run.get("status") in FINISHED else None

    # --- acting ------------------------------------------------------------------------------

    def push_webhook(self, secret: bytes, revision: str) -> float:
        """Deliver a signed GitHub push of `revision` to the tracked branch; seconds taken."""
        body = json.dumps({"ref": f"refs/heads/{BRANCH}", "after": revision}).encode()
        signature = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
        headers = {
            "Content-Type": "application/json",
            "X-GitHub-Event": "push",
            "X-Hub-Signature-256": signature,
        }
        started = time.perf_counter()
        response = self.client.post("/api/v1/webhooks/github", content=body, headers=headers)
        elapsed = time.perf_counter() - started
        if response.status_code != httpx.codes.ACCEPTED or not response.json().get("accepted"):
            raise BenchmarkError(f"webhook: {response.status_code} {response.text[:500]}")
        return elapsed

    def memory(self) -> dict[str, int]:
        """VmRSS, VmHWM, ... of the daemon process (kB), Threads (a count)."""
        found: dict[str, int] = {}
        status = Path(f"/proc/{self.process.pid}/status").read_text(encoding="utf-8")
        for line in status.splitlines():
            key, _, value = line.partition(":")
            if key in MEMORY_FIELDS:
                found[key] = int(value.split()[0])
        return found

    def cpu_seconds(self) -> float:
        """User + system CPU time the daemon process has used so far (its threads included)."""
        stat = Path(f"/proc/{self.process.pid}/stat").read_text(encoding="utf-8")
        fields = stat.rpartition(")")[2].split()  # after the command name, which may hold spaces
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> tuple[int | None, str]:
        """SIGTERM and wait; (exit code, what happened)."""
        self.client.close()
        code = self.process.poll()
        if code is not None:
            return code, f"exited by itself with {code} before SIGTERM"
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return None, f"still running {STOP_TIMEOUT:.0f} s after SIGTERM: killed"
        return code, f"exit {code} after SIGTERM" + ("" if code == 0 else " (expected 0)")

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> list[str]:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError as error:
            return [f"(no log: {error})"]
        return text.splitlines()[-lines:]


# --- reports ---------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: int) -> float | None:
    """The q-th percentile, linear between the closest ranks (numpy's default)."""
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


@dataclass
class Sample:
    revision: str
    latency: float  # the run's started_at (large: the driver's start) - time after `git commit`
    git_commit: float  # seconds `git commit` took
    webhook: float | None  # seconds the webhook POST took to answer (webhook scenario)
    run_id: str


@dataclass
class Scenario:
    """What every scenario has: the daemon's start, stop and any error."""

    name: str
    description: str
    ready_seconds: float | None = None  # launch to /readyz 200
    first_apply_seconds: float | None = None  # launch to the head verified
    idle_seconds: float = IDLE_SECONDS  # left idle after the first apply, before measuring
    idle_cpu_seconds: float | None = None  # CPU time the daemon used meanwhile
    exit_code: int | None = None
    stop: str = "not started"
    error: str | None = None
    log_tail: list[str] = field(default_factory=list)


@dataclass
class LatencyScenario(Scenario):
    commits: int = 0
    goal_p50: float = 0.0
    goal_p95: float | None = None
    samples: list[Sample] = field(default_factory=list)

    def summary(self, key: str = "latency") -> dict[str, float | None]:
        values = [getattr(sample, key) for sample in self.samples]
        values = [v for v in values if v is not None]
        return {
            "p50": percentile(values, 50),
            "p95": percentile(values, 95),
            "max": max(values, default=None),
            "min": min(values, default=None),
            "count": len(values),
        }

    @property
    def verdict(self) -> str:
        if self.error:
            return "ERROR"
        summary = self.summary()
        p50, p95 = summary["p50"], summary["p95"]
        if p50 is None or p95 is None:
            return "N/A"
        met = p50 <= self.goal_p50 and (self.goal_p95 is None or p95 <= self.goal_p95)
        return "PASS" if met else "FAIL"

    def as_json(self) -> dict[str, Any]:
        return asdict(self) | {
            "latency": self.summary(),
            "git_commit": self.summary("git_commit"),
            "webhook_answer": self.summary("webhook"),
            "goal": {"p50_at_most": self.goal_p50, "p95_at_most": self.goal_p95},
            "verdict": self.verdict,
        }


@dataclass
class MemoryScenario(Scenario):
    components: int = 0
    components_reported: int | None = None  # by GET /api/v1/environments/bench once verified
    memory_kb: dict[str, int] = field(default_factory=dict)  # /proc/PID/status, kB

    @property
    def rss_bytes(self) -> int | None:
        rss = self.memory_kb.get("VmRSS")
        return None if rss is None else rss * 1024

    @property
    def verdict(self) -> str:
        if self.error:
            return "ERROR"
        rss = self.rss_bytes
        return "N/A" if rss is None else ("PASS" if rss <= GOAL_RSS_BYTES else "FAIL")

    def as_json(self) -> dict[str, Any]:
        return asdict(self) | {
            "rss_mib": None if self.rss_bytes is None else self.rss_bytes / MIB,
            "goal": {"rss_bytes_at_most": GOAL_RSS_BYTES},
            "verdict": self.verdict,
        }


@dataclass
class Report:
    machine: dict[str, Any]
    gitopsd: str
    commits: int
    components: int
    scenarios: list[LatencyScenario | MemoryScenario] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["scenarios"] = [s.as_json() for s in self.scenarios]
        return data


# --- scenarios -------------------------------------------------------------------------------


def run_daemon(scenario: Scenario, daemon: Daemon, measure: Callable[[], None]) -> None:
    """`measure()`, then stop the daemon; any failure becomes the scenario's error."""
    try:
        measure()
    except (BenchmarkError, httpx.HTTPError, OSError, subprocess.CalledProcessError) as error:
        scenario.error = f"{type(error).__name__}: {error}"
    except Exception:  # a crash of the measuring itself: report it and go on
        scenario.error = traceback.format_exc(limit=-8)
    finally:
        scenario.exit_code, scenario.stop = daemon.stop()
    if scenario.error or scenario.exit_code != 0:
        scenario.log_tail = daemon.log_tail()


def start(scenario: Scenario, daemon: Daemon, head: str, timeout: float) -> dict[str, Any]:
    """Wait for ready and for the first apply of `head`, then leave the daemon idle for
    IDLE_SECONDS and note the CPU it uses meanwhile; the environment's state."""
    daemon.wait_ready()
    scenario.ready_seconds = daemon.since_launch()
    state = daemon.wait_verified(head, timeout)
    scenario.first_apply_seconds = daemon.since_launch()
    before = daemon.cpu_seconds()
    time.sleep(IDLE_SECONDS)
    scenario.idle_cpu_seconds = daemon.cpu_seconds() - before
    return state


def new_scenario(name: str, args: argparse.Namespace) -> LatencyScenario | MemoryScenario:
    if name == "rss":
        return MemoryScenario(
            name=name,
            description=f"idle daemon with {args.components:,} components applied",
            components=args.components,
        )
    if name == "large":
        return LatencyScenario(
            name=name,
            description=f"{args.components:,} components, one changed: commit -> its driver starts",
            commits=min(args.commits, LARGE_COMMITS),
            goal_p50=GOAL_LARGE_P50,
            goal_p95=GOAL_LARGE_P95,
        )
    if name == "webhook":
        return LatencyScenario(
            name=name,
            description="file:// remote, fetched on a signed GitHub push webhook (poll 1h)",
            commits=args.commits,
            goal_p50=GOAL_WEBHOOK_P50,
        )
    return LatencyScenario(
        name=name,
        description="local path, refs watched by file-system events",
        commits=args.commits,
        goal_p50=GOAL_EVENTS_P50,
    )


def latency_scenario(scenario: LatencyScenario, root: Path) -> None:
    name, commits = scenario.name, scenario.commits
    webhook = name == "webhook"
    folder = root / name
    repo = folder / "repo"
    files = {f"environments/{ENVIRONMENT}.yaml": small_environment(0)}
    head = create_repo(repo, files | small_components(true_program()))
    secret = secrets.token_hex(16)
    env = {"GITOPSD_WEBHOOK_SECRET": secret} if webhook else {}
    daemon = Daemon(repo.as_uri() if webhook else str(repo), folder, env)

    def measure() -> None:
        start(scenario, daemon, head, FIRST_APPLY_TIMEOUT)
        for n in range(1, commits + 1):
            scenario.samples.append(
                one_commit(daemon, repo, n, secret.encode() if webhook else None)
            )

    run_daemon(scenario, daemon, measure)


def one_commit(daemon: Daemon, repo: Path, n: int, secret: bytes | None) -> Sample:
    """Commit `vars.n = n`, optionally deliver the webhook, time the run's start, await its end."""
    engine.write_text(repo / "environments" / f"{ENVIRONMENT}.yaml", small_environment(n))
    git_commit, committed = commit(repo, f"n = {n}")
    revision = head_of(repo)
    answered = None if secret is None else daemon.push_webhook(secret, revision)
    run = daemon.wait_started(revision)
    started = datetime.fromisoformat(run["started_at"]).timestamp()
    daemon.wait_finished(run["id"])
    return Sample(revision, started - committed, git_commit, answered, run["id"])


def large_environment(n: int) -> str:
    return engine.render_environment(RSS_PARALLELISM) + f"  overrides:\n    {LEAF}: {{n: {n}}}\n"


def large_components(count: int, marks: Path) -> dict[str, str]:
    """engine.py's DAG, every step `true`, but for one leaf that reads `vars.n` (overridden
    for it alone) and whose apply appends the time it started to `marks`."""
    files = dag_components(count - 1, true_program())
    mark = ["/bin/sh", "-c", f"date +%s.%N >> {marks}"]
    spec = {
        "inputs": {"n": "${{ vars.n }}"},
        "driver": {"type": "command", "plan": [true_program()], "apply": mark},
    }
    path = f"components/platform/{LEAF}/component.yaml"
    files[path] = manifest("Component", {"name": LEAF, "layer": "platform"}, spec)
    return files


def large_scenario(scenario: LatencyScenario, root: Path, components: int) -> None:
    """Commit to the start of the one changed component's driver, among `components`."""
    folder = root / scenario.name
    repo = folder / "repo"
    marks = folder / "driver-starts"
    files = {f"environments/{ENVIRONMENT}.yaml": large_environment(0)}
    head = create_repo(repo, files | large_components(components, marks))
    daemon = Daemon(str(repo), folder)

    def measure() -> None:
        start(scenario, daemon, head, RSS_APPLY_TIMEOUT)
        database = folder / "data" / "state.db"
        for n in range(1, scenario.commits + 1):
            engine.write_text(repo / "environments" / f"{ENVIRONMENT}.yaml", large_environment(n))
            git_commit, committed = commit(repo, f"{LEAF}: n = {n}")
            revision = head_of(repo)
            started = daemon.wait_for(
                f"{LEAF}'s driver of {revision[:12]} to start",
                RUN_START_TIMEOUT,
                lambda: driver_start(marks, n + 1),  # noqa: B023 - called at once
                POLL_INTERVAL,
            )
            run_id = daemon.wait_for(
                f"the run of {revision[:12]} to finish",
                RUN_FINISH_TIMEOUT,
                lambda: finished_run(database, revision),  # noqa: B023 - called at once
                SLOW_POLL,
            )
            scenario.samples.append(Sample(revision, started - committed, git_commit, None, run_id))

    run_daemon(scenario, daemon, measure)


def driver_start(marks: Path, count: int) -> float | None:
    """The `count`th start time the changed leaf's driver wrote, once it has."""
    try:
        lines = marks.read_text(encoding="utf-8").split()
    except FileNotFoundError:
        return None
    return float(lines[count - 1]) if len(lines) >= count else None


def finished_run(database: Path, revision: str) -> str | None:
    """The id of the run of `revision` once it has finished; read from the state database,
    read-only: the runs API answers with every run's 1,000 steps, and asking it while the
    run goes would measure the API (and slow the daemon), not the run."""
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        rows = db.execute("SELECT record FROM runs ORDER BY created_at DESC LIMIT 3").fetchall()
    runs = [json.loads(record) for (record,) in rows]
    done = [r for r in runs if r["revision"] == revision and r["status"] in FINISHED]
    if done and done[0]["status"] != "succeeded":
        raise BenchmarkError(f"run {done[0]['id']} {done[0]['status']}: {done[0].get('error')}")
    return done[0]["id"] if done else None


def memory_scenario(scenario: MemoryScenario, root: Path) -> None:
    components = scenario.components
    folder = root / scenario.name
    repo = folder / "repo"
    files = {f"environments/{ENVIRONMENT}.yaml": engine.render_environment(RSS_PARALLELISM)}
    head = create_repo(repo, files | dag_components(components, true_program()))
    daemon = Daemon(str(repo), folder)

    def measure() -> None:
        state = start(scenario, daemon, head, RSS_APPLY_TIMEOUT)
        scenario.components_reported = len(state.get("components", []))
        if scenario.components_reported != components:
            raise BenchmarkError(
                f"{ENVIRONMENT} verified with {scenario.components_reported} components of "
                f"{components}"
            )
        scenario.memory_kb = daemon.memory()

    run_daemon(scenario, daemon, measure)


# --- printing --------------------------------------------------------------------------------


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f} s"


def mib(kb: int | None) -> str:
    return "-" if kb is None else f"{kb / 1024:.1f} MiB = {kb * 1024 / 1000**2:.1f} MB"


def label(text: str) -> str:
    return f"{text + ':':<24}"


def print_common(scenario: Scenario) -> None:
    print(f"\n== {scenario.name}: {scenario.description} ==")
    if scenario.ready_seconds is None:
        return  # it stopped before the daemon was ready: the error says why
    print(
        label("start")
        + f"ready after {seconds(scenario.ready_seconds)}, first apply verified after "
        f"{seconds(scenario.first_apply_seconds)} (from launch)"
    )
    cpu = scenario.idle_cpu_seconds
    if cpu is not None:
        share = cpu / scenario.idle_seconds * 100
        print(
            label("idle CPU")
            + f"{cpu:.2f} s in {scenario.idle_seconds:.0f} s idle after the first apply "
            f"({share:.0f}% of one core)"
        )


def print_end(scenario: Scenario) -> None:
    print(label("daemon stop") + scenario.stop)
    if scenario.error:
        print(f"\nERROR: {scenario.error.strip()}")
    if scenario.log_tail:
        print(f"daemon log, last {len(scenario.log_tail)} lines:")
        print("\n".join(f"  | {line}" for line in scenario.log_tail))


def distribution(summary: Mapping[str, float | None]) -> str:
    return (
        f"p50 {seconds(summary['p50'])}  p95 {seconds(summary['p95'])}  "
        f"max {seconds(summary['max'])}  min {seconds(summary['min'])}"
    )


def print_latency(scenario: LatencyScenario) -> None:
    print_common(scenario)
    latency = scenario.summary()
    if not scenario.samples:
        print(label("goal") + goal_text(scenario))
        print_end(scenario)
        return
    print(
        label("commit -> driver start" if scenario.name == "large" else "commit -> apply start")
        + f"{distribution(latency)}  ({latency['count']} of {scenario.commits} commits)"
    )
    print(label("  git commit took") + distribution(scenario.summary("git_commit")))
    if scenario.name == "webhook":
        print(label("  webhook answered in") + distribution(scenario.summary("webhook")))
    print(label("goal") + goal_text(scenario))
    print_end(scenario)


def goal_text(scenario: LatencyScenario) -> str:
    p95 = "" if scenario.goal_p95 is None else f", p95 <= {scenario.goal_p95} s"
    return f"p50 <= {scenario.goal_p50} s{p95}  {scenario.verdict}"


def print_memory(scenario: MemoryScenario) -> None:
    print_common(scenario)
    kb = scenario.memory_kb
    goal = f"VmRSS <= 80 MB ({GOAL_RSS_BYTES / MIB:.1f} MiB)  {scenario.verdict}"
    if not kb:
        print(label("goal") + goal)
        print_end(scenario)
        return
    print(
        label("VmRSS")
        + f"{mib(kb.get('VmRSS'))}  ({scenario.idle_seconds:.0f} s idle after the first apply)"
    )
    print(
        label("  of it") + f"anon {mib(kb.get('RssAnon'))}, file {mib(kb.get('RssFile'))}, "
        f"shmem {mib(kb.get('RssShmem'))}"
    )
    print(label("VmHWM") + f"{mib(kb.get('VmHWM'))}  (peak resident, start and first apply)")
    print(label("VmSize, threads") + f"{mib(kb.get('VmSize'))}, {kb.get('Threads', '-')} threads")
    print(label("goal") + goal)
    print_end(scenario)


def print_text(report: Report) -> None:
    for key, value in report.machine.items():
        print(f"{key + ':':<20}{value}")
    print(f"{'gitopsd:':<20}{report.gitopsd}")
    print(f"{'commits:':<20}{report.commits} per latency scenario")
    print(f"{'components:':<20}{report.components} (rss scenario)")
    for scenario in report.scenarios:
        if isinstance(scenario, LatencyScenario):
            print_latency(scenario)
        else:
            print_memory(scenario)


# --- main ------------------------------------------------------------------------------------


def benchmark(args: argparse.Namespace, root: Path) -> Report:
    report = Report(
        machine=machine_facts(root),
        gitopsd=gitopsd_location(),
        commits=args.commits,
        components=args.components,
    )
    for name in args.scenario:
        scenario = new_scenario(name, args)
        report.scenarios.append(scenario)
        try:
            if isinstance(scenario, MemoryScenario):
                memory_scenario(scenario, root)
            elif name == "large":
                large_scenario(scenario, root, args.components)
            else:
                latency_scenario(scenario, root)
        except Exception:  # generating the repo or launching the daemon failed: go on
            scenario.error = traceback.format_exc(limit=-8)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with engine.scratch_root(args.keep, prefix="gitopsd-latency-") as root:
        report = benchmark(args, root)
    if args.json:
        print(json.dumps(report.as_json(), indent=2))
    else:
        print_text(report)
    if args.keep:
        print(f"repos, data folders and daemon logs kept under {root}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
