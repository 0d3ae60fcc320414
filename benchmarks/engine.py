"""Engine benchmark: one layered DAG of N components run by gitopsd and by GNU `make -j`.

What it does
    1. Generates the same DAG as `load.py` (fixed seed; layers network -> clusters -> addons ->
       platform; every component depends on 1-3 components of earlier layers) twice over, once
       per scenario, as
       - a GitOps repo (SPEC section 2) committed to a fresh git repository: `gitopsd.yaml`,
         `environments/bench.yaml` with `parallelism: P`, and one `component.yaml` per
         component whose `command` driver applies the scenario's command;
       - a Makefile: one `.PHONY` target per component, its dependencies as prerequisites and
         the same command as its only recipe line, and `all` depending on every component.
    2. For each scenario (`sleep`: `sleep 0.05`, `true`: `true`), `--repeat` times, alternating:
       - `make -j P -f Makefile all`, a subprocess timed end to end;
       - `python -m gitopsd apply --env bench` on a fresh data folder and state database (so
         every component runs), a subprocess timed end to end, interpreter start, loading and
         the durable SQLite bookkeeping included;
       - the same apply in this process through the Python API (`Workspace.apply`), on a
         fresh data folder, with loading the manifests and exporting the revision's checkout
         timed apart just before: the time of the `apply` call (which loads once more but
         reuses the checkout), and the steps' makespan (first step start to last step end,
         from the steps' records), which leaves out interpreter start, loading and the run's
         first and last records. The CLI's steps' makespan is read back from its database.
    3. Prints the best of each, and the two figures the issue sets goals for, judged on the CLI
       (end to end, like make):
       - `sleep`: gitopsd / make, goal at most 1.05x (parallelism is what is measured);
       - `true`: (gitopsd - make) / N in milliseconds, goal at most 3 ms per step (what each
         step costs gitopsd beyond a fork and exec, durable bookkeeping included).

Why make is the yard stick
    GNU make is the leanest widely used DAG executor: a C program that forks and execs each
    recipe (a recipe without shell syntax is exec'd directly, without `/bin/sh`), keeps its
    bookkeeping in memory and persists nothing. Both tools get the same graph, the same
    commands and the same parallelism on the same machine in the same run, so the machine
    cancels out of the ratio. What gitopsd does on top (render inputs, fingerprint, write
    the inputs file, record every step before and after it runs) is what the budgets are for.

The script is a report, not a test: it exits 0 whatever the figures, and non-zero only if it
crashed; a make or gitopsd run that fails stops its scenario and is reported as ERROR.
`--profile` runs the in-process apply once more under cProfile, every thread of it, and prints
the top 30 functions by cumulative time (and the top 20 by own time).
"""

from __future__ import annotations

import argparse
import cProfile
import heapq
import importlib.util
import io
import json
import os
import platform
import pstats
import shutil
import sqlite3
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

BENCHMARKS = Path(__file__).resolve().parent
if str(BENCHMARKS) not in sys.path:  # load.py is a sibling script, not a package
    sys.path.insert(0, str(BENCHMARKS))

# the DAG of load.py (same seed and layer shares): the same components at the same N
from load import LAYERS, PlannedComponent, cpu_model, plan_components  # noqa: E402

if TYPE_CHECKING:
    from gitopsd.adapters.gitrepo import GitSource
    from gitopsd.engine.ports import StateStore
    from gitopsd.model.state import Run, Step
    from gitopsd.runtime.runs.workspace import Workspace

GOAL_RATIO = 1.05  # sleep scenario: gitopsd / make
GOAL_OVERHEAD_MS = 3.0  # true scenario: (gitopsd - make) per step
ENVIRONMENT = "bench"
SLEEP_SECONDS = "0.05"
SCENARIOS = ("sleep", "true")
SOURCE_ROOT = Path(__file__).resolve().parents[1] / "daemon"
RUN_TIMEOUT = 1800.0
PROFILE_LINES = 30
PROFILE_SELF_LINES = 20
GIT_IDENTITY = ("-c", "user.name=bench", "-c", "user.email=bench@example.invalid")
MAKE_VARIABLES = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEFILES", "GNUMAKEFLAGS")


# --- command line ----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--components", type=int, default=1000, help="N (default 1000)")
    parser.add_argument("--parallelism", type=int, default=16, help="P: make -jP (default 16)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each timing; best is kept")
    parser.add_argument(
        "--scenario", choices=(*SCENARIOS, "both"), default="both", help="default both"
    )
    parser.add_argument(
        "--store",
        choices=("sqlite", "memory"),
        default="sqlite",
        help="state store of the in-process runs (memory: no durability, to see what it costs)",
    )
    parser.add_argument("--keep", type=Path, help="generate repos and Makefiles here; keep them")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="profile one more in-process apply (every thread); print the top 30 cumulative",
    )
    args = parser.parse_args(argv)
    if args.components < 1 or args.parallelism < 1 or args.repeat < 1:
        parser.error("--components, --parallelism and --repeat must be at least 1")
    return args


# --- machine facts ---------------------------------------------------------------------------


def first_line(argv: Sequence[str]) -> str:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
    except OSError:
        return "not found"
    lines = (result.stdout or result.stderr).strip().splitlines()
    return lines[0] if lines else "unknown"


def file_system(path: Path) -> str:
    """The file system type of `path` (tmpfs and ext4 differ a lot in what a commit costs)."""
    result = subprocess.run(
        ["stat", "-f", "-c", "%T", str(path)], capture_output=True, text=True, check=False
    )
    return result.stdout.strip() or "unknown"


def machine_facts(scratch: Path) -> dict[str, Any]:
    sqlite_cli = shutil.which("sqlite3")
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "python_executable": sys.executable,
        "git": first_line(["git", "--version"]).removeprefix("git version "),
        "make": first_line(["make", "--version"]),
        "sqlite3": f"{sqlite3.sqlite_version} (Python's library)"
        + (f"; CLI {first_line([sqlite_cli, '--version']).split()[0]}" if sqlite_cli else ""),
        "os": platform.platform(),
        "scratch": f"{scratch} ({file_system(scratch)})",
    }


# --- the DAG ---------------------------------------------------------------------------------


def ideal_makespan(components: Sequence[PlannedComponent], slots: int, duration: float) -> float:
    """Makespan of a zero-overhead executor: `slots` workers, every step `duration` long,
    ready steps started in order of readiness (gitopsd's walk; make's order differs a little)."""
    needs = {c.name: set(c.depends_on) for c in components}
    dependents: dict[str, list[str]] = {c.name: [] for c in components}
    for component in components:
        for dependency in component.depends_on:
            dependents[dependency].append(component.name)
    ready = [c.name for c in components if not c.depends_on]
    running: list[tuple[float, int, str]] = []  # (end, tie breaker, name)
    now, order = 0.0, 0
    while ready or running:
        while ready and len(running) < slots:
            heapq.heappush(running, (now + duration, order, ready.pop(0)))
            order += 1
        now, _, name = heapq.heappop(running)
        for dependent in dependents[name]:
            needs[dependent].discard(name)
            if not needs[dependent]:
                ready.append(dependent)
    return now


# --- what is generated -----------------------------------------------------------------------


def command_for(scenario: str) -> tuple[str, ...]:
    """The scenario's command, with an absolute program path (same for gitopsd and make)."""
    program = shutil.which(scenario)
    if program is None:
        raise SystemExit(f"`{scenario}` not found on PATH")
    return (program, SLEEP_SECONDS) if scenario == "sleep" else (program,)


def render_component(component: PlannedComponent, apply: Sequence[str], plan: str) -> str:
    return (
        "apiVersion: gitopsd.io/v1\n"
        "kind: Component\n"
        "metadata:\n"
        f"  name: {component.name}\n"
        f"  layer: {component.layer}\n"
        "spec:\n"
        f"  depends_on: [{', '.join(component.depends_on)}]\n"
        "  inputs:\n"
        '    region: "${{ vars.region }}"\n'
        f'    label: "{component.name}-{component.layer}"\n'
        "  driver:\n"
        "    type: command\n"
        f"    plan: {json.dumps([plan])}\n"
        f"    apply: {json.dumps(list(apply))}\n"
    )


def render_environment(parallelism: int) -> str:
    return (
        "apiVersion: gitopsd.io/v1\n"
        "kind: Environment\n"
        "metadata:\n"
        f"  name: {ENVIRONMENT}\n"
        "spec:\n"
        "  variables:\n"
        "    region: westeurope\n"
        f"  parallelism: {parallelism}\n"
    )


def render_settings() -> str:
    return f"apiVersion: gitopsd.io/v1\nkind: Settings\nlayers: [{', '.join(LAYERS)}]\n"


def render_makefile(components: Sequence[PlannedComponent], command: Sequence[str]) -> str:
    """Phony targets only: make runs every recipe every time and touches no file, as gitopsd.

    The recipe has no shell syntax, so make execs it directly, like gitopsd (no `/bin/sh`);
    `@` only keeps make from echoing it.
    """
    recipe = "\t@" + " ".join(command) + "\n"
    lines = [
        f"# generated by benchmarks/engine.py: {len(components)} components, `{' '.join(command)}`",
        "all: " + " ".join(c.name for c in components),
        "",
    ]
    lines += [f".PHONY: {c.name}" for c in components]
    lines.append(".PHONY: all")
    text = "\n".join(lines) + "\n"
    for component in components:
        text += f"\n{component.name}: {' '.join(component.depends_on)}".rstrip() + "\n" + recipe
    return text


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def run_git(repo: Path, *args: str) -> None:
    result = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=False)
    if result.returncode != 0:
        message = result.stderr.decode(errors="replace").strip()
        raise RuntimeError(f"git {' '.join(args)} failed ({result.returncode}): {message}")


def generate(
    folder: Path, components: Sequence[PlannedComponent], command: Sequence[str], parallelism: int
) -> tuple[Path, Path]:
    """`folder/repo` (committed) and `folder/Makefile`, for one scenario."""
    repo = folder / "repo"
    repo.mkdir(parents=True)
    run_git(repo, "-c", "init.defaultBranch=main", "init", "-q")
    write_text(repo / "gitopsd.yaml", render_settings())
    write_text(repo / "environments" / f"{ENVIRONMENT}.yaml", render_environment(parallelism))
    plan = shutil.which("true") or "true"
    for component in components:
        text = render_component(component, command, plan)
        write_text(repo / "components" / component.layer / component.name / "component.yaml", text)
    run_git(repo, "add", "-A")
    run_git(repo, *GIT_IDENTITY, "commit", "-q", "-m", f"benchmark: {len(components)} components")
    makefile = folder / "Makefile"
    write_text(makefile, render_makefile(components, command))
    return repo, makefile


class RunFailedError(Exception):
    """make or gitopsd exited non-zero, or a run did not apply every component."""


# --- make ------------------------------------------------------------------------------------


def make_once(makefile: Path, parallelism: int) -> float:
    env = {k: v for k, v in os.environ.items() if k not in MAKE_VARIABLES}
    argv = ["make", f"-j{parallelism}", "-f", makefile.name, "all"]
    started = time.perf_counter()
    result = subprocess.run(
        argv, cwd=makefile.parent, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RunFailedError(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stderr}")
    return elapsed


# --- gitopsd ---------------------------------------------------------------------------------


def has_sqlite_store() -> bool:
    return importlib.util.find_spec("gitopsd.adapters.sqlite_store") is not None


def state_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / 'state.db'}"  # data_dir is absolute: sqlite:////abs/state.db


def cli_environment() -> dict[str, str]:
    """This environment, with `daemon/` on PYTHONPATH when gitopsd is not installed; no
    GITOPSD_* variable leaks in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITOPSD_")}
    if importlib.util.find_spec("gitopsd") is None:
        env["PYTHONPATH"] = os.pathsep.join(
            part for part in (str(SOURCE_ROOT), env.get("PYTHONPATH", "")) if part
        )
    return env


@dataclass
class CliRun:
    seconds: float
    makespan: float | None  # from the steps the run recorded in its state database


def cli_once(repo: Path, data_dir: Path, cwd: Path) -> CliRun:
    argv = [sys.executable, "-m", "gitopsd", "apply", "--env", ENVIRONMENT]
    argv += ["--repo", str(repo), "--data-dir", str(data_dir), "--state", state_url(data_dir)]
    started = time.perf_counter()
    result = subprocess.run(
        argv,
        cwd=cwd,
        env=cli_environment(),
        capture_output=True,
        text=True,
        check=False,
        timeout=RUN_TIMEOUT,
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        output = (result.stderr.strip() or result.stdout.strip())[-4000:]
        raise RunFailedError(f"gitopsd apply exited {result.returncode}:\n{output}")
    return CliRun(elapsed, recorded_makespan(data_dir))


def recorded_makespan(data_dir: Path) -> float | None:
    """Makespan of the one run in `data_dir`'s state database."""
    from gitopsd.runtime import application

    store = application.open_store(state_url(data_dir), base=data_dir)
    try:
        runs = store.list_runs(ENVIRONMENT, limit=1)
        return makespan(store.list_steps(runs[0].id)) if runs else None
    finally:
        store.close()


def makespan(steps: Sequence[Step]) -> float | None:
    starts = [s.started_at for s in steps if s.started_at is not None]
    ends = [s.finished_at for s in steps if s.finished_at is not None]
    if not starts or not ends:
        return None
    return (max(ends) - min(starts)).total_seconds()


@dataclass
class InProcessRun:
    load_seconds: float  # read, parse and validate the revision's manifests (revisions.load)
    export_seconds: float  # export the revision's read-only checkout (CheckoutCache.path)
    apply_seconds: float  # Workspace.apply, checkout already exported
    makespan: float | None  # first step start to last step end
    steps: int


def open_state(kind: str, data_dir: Path) -> StateStore:
    if kind == "memory":
        from gitopsd.adapters.memory_store import MemoryStore

        return MemoryStore()
    from gitopsd.runtime import application

    return application.open_store(state_url(data_dir), base=data_dir)


def make_workspace(source: GitSource, store: StateStore, data_dir: Path) -> Workspace:
    """`stores.workspace` when it can be imported (it imports the SQLite store), else the same
    wiring by hand."""
    if has_sqlite_store():
        from gitopsd.runtime import application

        return application.workspace(source, store, data_dir=data_dir)
    from gitopsd.adapters.checkouts import CheckoutCache
    from gitopsd.adapters.clock import SystemClock
    from gitopsd.adapters.command_driver import CommandDriverRunner
    from gitopsd.runtime.runs.leases import holder_id
    from gitopsd.runtime.runs.workspace import Workspace

    return Workspace(
        source=source,
        store=store,
        drivers=CommandDriverRunner(data_dir / "work"),
        checkouts=CheckoutCache(source, data_dir / "checkouts"),
        clock=SystemClock(),
        data_dir=data_dir,
        holder=holder_id(),
    )


@contextmanager
def opened_workspace(repo: Path, data_dir: Path, store_kind: str) -> Iterator[Workspace]:
    from gitopsd.adapters.gitrepo import GitSource

    source = GitSource.open(str(repo), branch=None, data_dir=data_dir)
    try:
        store = open_state(store_kind, data_dir)
        try:
            yield make_workspace(source, store, data_dir)
        finally:
            store.close()
    finally:
        source.close()


def check_run(run: Run, steps: Sequence[Step], expected: int) -> None:
    if run.status.value != "succeeded" or len(steps) != expected:
        failed = [f"{s.component}: {s.error}" for s in steps if s.status.value != "succeeded"]
        raise RunFailedError(
            f"in-process apply ended {run.status.value} ({run.error}) with {len(steps)} steps "
            f"of {expected}; first failures: {failed[:5]}"
        )


def inprocess_once(repo: Path, data_dir: Path, store_kind: str, expected: int) -> InProcessRun:
    from gitopsd.runtime.runs import revisions

    with opened_workspace(repo, data_dir, store_kind) as workspace:
        load_seconds = timed(lambda: revisions.load(workspace.source))
        export_seconds = timed(lambda: workspace.checkouts.path(workspace.source.head()))
        started = time.perf_counter()
        run = workspace.apply(ENVIRONMENT)
        apply_seconds = time.perf_counter() - started
        steps = workspace.store.list_steps(run.id)
    check_run(run, steps, expected)
    return InProcessRun(load_seconds, export_seconds, apply_seconds, makespan(steps), len(steps))


# --- profile ---------------------------------------------------------------------------------


class ThreadProfiles:
    """cProfile of this thread and of every thread started while it is active (the apply's
    worker pool, lease renewer and cancel watcher), merged into one table.

    Times of the worker threads add up: cumulative figures are thread-seconds, not wall time.
    """

    def __init__(self) -> None:
        self.main = cProfile.Profile()
        self.others: list[cProfile.Profile] = []
        self._lock = threading.Lock()

    def _start_in_thread(self, _frame: FrameType, _event: str, _arg: Any) -> None:
        profile = cProfile.Profile()
        with self._lock:
            self.others.append(profile)
        profile.enable()  # replaces this hook for the rest of the thread

    def __enter__(self) -> ThreadProfiles:
        threading.setprofile(self._start_in_thread)
        self.main.enable()
        return self

    def __exit__(self, *_: object) -> None:
        self.main.disable()
        threading.setprofile(None)

    def table(self, sort: str, lines: int) -> list[str]:
        stream = io.StringIO()
        stats = pstats.Stats(self.main, stream=stream)
        for profile in self.others:
            stats.add(profile)
        stats.sort_stats(sort).print_stats(lines)
        return [shorten(line) for line in stream.getvalue().splitlines() if line.strip()]


def shorten(line: str) -> str:
    for prefix in (
        sysconfig.get_path("purelib"),
        sysconfig.get_path("platlib"),
        sysconfig.get_path("stdlib"),
        str(SOURCE_ROOT),
    ):
        line = line.replace(prefix + os.sep, "")
    return line


def profile_apply(repo: Path, data_dir: Path, store_kind: str) -> list[str]:
    with opened_workspace(repo, data_dir, store_kind) as workspace:
        workspace.load()
        with ThreadProfiles() as profiles:
            run = workspace.apply(ENVIRONMENT)
    threads = 1 + len(profiles.others)
    header = [
        f"(run {run.status.value}; {threads} threads profiled and merged, so times are "
        "thread-seconds; the checkout was exported beforehand)",
        "",
        f"top {PROFILE_LINES} by cumulative time:",
    ]
    cumulative = profiles.table("cumulative", PROFILE_LINES)
    own = profiles.table("tottime", PROFILE_SELF_LINES)
    return [
        *header,
        *_table_only(cumulative),
        "",
        f"top {PROFILE_SELF_LINES} by own time:",
        *_table_only(own),
    ]


def _table_only(lines: list[str]) -> list[str]:
    """The pstats table from its header row on (drops the totals and ordering preamble)."""
    for index, line in enumerate(lines):
        if line.lstrip().startswith("ncalls"):
            return [lines[max(0, index - 3)], *lines[index:]]
    return lines


# --- report ----------------------------------------------------------------------------------


@dataclass
class ScenarioReport:
    name: str
    command: list[str]
    components: int
    parallelism: int
    ideal_seconds: float  # zero-overhead schedule of the DAG on P slots
    make_seconds: list[float] = field(default_factory=list)
    cli_seconds: list[float] = field(default_factory=list)
    cli_makespans: list[float] = field(default_factory=list)
    inprocess: list[InProcessRun] = field(default_factory=list)
    cli_skipped: str | None = None
    error: str | None = None  # a make or gitopsd run that failed; the scenario stopped there

    @property
    def make_best(self) -> float | None:
        return min(self.make_seconds) if self.make_seconds else None

    @property
    def cli_best(self) -> float | None:
        return min(self.cli_seconds) if self.cli_seconds else None

    @property
    def cli_makespan_best(self) -> float | None:
        return min(self.cli_makespans) if self.cli_makespans else None

    @property
    def apply_best(self) -> float | None:
        return min((r.apply_seconds for r in self.inprocess), default=None)

    @property
    def load_best(self) -> float | None:
        return min((r.load_seconds for r in self.inprocess), default=None)

    @property
    def export_best(self) -> float | None:
        return min((r.export_seconds for r in self.inprocess), default=None)

    @property
    def cli_outside_steps(self) -> float | None:
        """What the CLI spends before its first step and after its last: interpreter start,
        imports, loading, the checkout export, opening the store, the run's records."""
        spans = [s - m for s, m in zip(self.cli_seconds, self.cli_makespans, strict=False)]
        return min(spans) if spans and len(self.cli_makespans) == len(self.cli_seconds) else None

    @property
    def makespan_best(self) -> float | None:
        spans = [r.makespan for r in self.inprocess if r.makespan is not None]
        return min(spans) if spans else None

    def ratio(self, gitopsd: float | None) -> float | None:
        make = self.make_best
        return None if gitopsd is None or make is None else gitopsd / make

    def overhead_ms(self, gitopsd: float | None) -> float | None:
        """(gitopsd - make) per component, in milliseconds."""
        make = self.make_best
        return (
            None if gitopsd is None or make is None else (gitopsd - make) / self.components * 1000
        )

    def figures(self) -> dict[str, dict[str, float | None]]:
        """Ratio and per-step overhead of each gitopsd figure against make."""
        measured = {
            "cli": self.cli_best,
            "cli_makespan": self.cli_makespan_best,
            "inprocess_apply": self.apply_best,
            "inprocess_makespan": self.makespan_best,
        }
        return {
            key: {"seconds": value, "ratio": self.ratio(value), "ms": self.overhead_ms(value)}
            for key, value in measured.items()
        }

    @property
    def headline(self) -> float | None:
        """The gitopsd figure the goal is judged on: the CLI end to end, like make."""
        return self.cli_best if self.cli_best is not None else self.apply_best

    @property
    def verdict(self) -> str:
        if self.error:
            return "ERROR"
        if self.name == "sleep":
            ratio = self.ratio(self.headline)
            return "N/A" if ratio is None else ("PASS" if ratio <= GOAL_RATIO else "FAIL")
        overhead = self.overhead_ms(self.headline)
        return "N/A" if overhead is None else ("PASS" if overhead <= GOAL_OVERHEAD_MS else "FAIL")

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data |= {
            "make_best": self.make_best,
            "cli_best": self.cli_best,
            "cli_makespan_best": self.cli_makespan_best,
            "inprocess_apply_best": self.apply_best,
            "inprocess_load_best": self.load_best,
            "inprocess_export_best": self.export_best,
            "cli_outside_steps_best": self.cli_outside_steps,
            "inprocess_makespan_best": self.makespan_best,
            "against_make": self.figures(),
            "goal": (
                {"ratio_at_most": GOAL_RATIO}
                if self.name == "sleep"
                else {"overhead_ms_at_most": GOAL_OVERHEAD_MS}
            ),
            "verdict": self.verdict,
        }
        return data


@dataclass
class Report:
    machine: dict[str, Any]
    components: int
    parallelism: int
    repeat: int
    store: str
    gitopsd: str
    scenarios: list[ScenarioReport] = field(default_factory=list)
    profile: list[str] | None = None

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["scenarios"] = [s.as_json() for s in self.scenarios]
        return data


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f} s"


def runs_of(values: Sequence[float | None]) -> str:
    return ", ".join("-" if v is None else f"{v:.3f}" for v in values) or "-"


def print_scenario(scenario: ScenarioReport) -> None:
    print(f"\n== {scenario.name}: `{' '.join(scenario.command)}` per step ==")
    if scenario.ideal_seconds:
        print(f"{'ideal:':<22}{seconds(scenario.ideal_seconds)}  (zero overhead, P slots)")
    print(f"{'make:':<22}{seconds(scenario.make_best)}  (best of {runs_of(scenario.make_seconds)})")
    if scenario.cli_skipped:
        print(f"{'gitopsd apply (CLI):':<22}skipped: {scenario.cli_skipped}")
    else:
        print(
            f"{'gitopsd apply (CLI):':<22}{seconds(scenario.cli_best)}  "
            f"(best of {runs_of(scenario.cli_seconds)}; end to end)"
        )
        print(
            f"{'  its steps:':<22}{seconds(scenario.cli_makespan_best)}  "
            f"(best of {runs_of(scenario.cli_makespans)}; first step start to last step end)"
        )
        print(
            f"{'  outside the steps:':<22}{seconds(scenario.cli_outside_steps)}  "
            "(start, imports, load, checkout export, store, run records)"
        )
    print(
        f"{'gitopsd in-process:':<22}{seconds(scenario.apply_best)}  "
        f"(best of {runs_of([r.apply_seconds for r in scenario.inprocess])}; Workspace.apply)"
    )
    print(
        f"{'  its steps:':<22}{seconds(scenario.makespan_best)}  "
        f"(best of {runs_of([r.makespan for r in scenario.inprocess])})"
    )
    print(
        f"{'  before it, load:':<22}{seconds(scenario.load_best)}  "
        "(read, parse, validate the manifests; apply does it once more)"
    )
    print(
        f"{'  before it, export:':<22}{seconds(scenario.export_best)}  "
        "(the revision's read-only checkout; apply reuses it)"
    )
    print(f"{'':<22}{'vs make:':<14}{'ratio':>8}{'ms/step':>10}")
    labels = {
        "cli": "CLI",
        "cli_makespan": "CLI steps",
        "inprocess_apply": "in-process",
        "inprocess_makespan": "in-proc steps",
    }
    for key, figure in scenario.figures().items():
        ratio, ms = figure["ratio"], figure["ms"]
        if ratio is None or ms is None:
            continue
        print(f"{'':<22}{labels[key]:<14}{ratio:>7.3f}x{ms:>+10.2f}")
    if scenario.name == "sleep":
        ratio = scenario.ratio(scenario.headline)
        shown = "-" if ratio is None else f"{ratio:.3f}x"
        print(f"{'goal:':<22}{shown}  (gitopsd / make <= {GOAL_RATIO}x)  {scenario.verdict}")
    else:
        overhead = scenario.overhead_ms(scenario.headline)
        shown = "-" if overhead is None else f"{overhead:+.2f} ms"
        print(
            f"{'goal:':<22}{shown}  ((gitopsd - make) / N <= {GOAL_OVERHEAD_MS:.0f} ms per step)  "
            f"{scenario.verdict}"
        )
    if scenario.error:
        print(f"\nthe scenario stopped: {scenario.error.strip()}")


def print_text(report: Report) -> None:
    for key, value in report.machine.items():
        print(f"{key + ':':<20}{value}")
    print(f"{'gitopsd:':<20}{report.gitopsd}")
    print(f"{'components (N):':<20}{report.components}")
    print(f"{'parallelism (P):':<20}{report.parallelism}")
    print(f"{'repeat:':<20}{report.repeat} (best kept)")
    print(f"{'in-process store:':<20}{report.store}")
    for scenario in report.scenarios:
        print_scenario(scenario)
    print("\n(goals judged on the CLI figure, end to end like make; in-process otherwise)")
    if report.profile:
        print("\nprofile of one in-process apply:")
        print("\n".join(report.profile))


# --- main ------------------------------------------------------------------------------------


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def fresh(folder: Path) -> Path:
    """An absolute folder that does not exist yet (a fresh data folder every run)."""
    shutil.rmtree(folder, ignore_errors=True)
    return folder.resolve()


def run_scenario(
    args: argparse.Namespace, name: str, root: Path, components: list[PlannedComponent]
) -> tuple[ScenarioReport, Path]:
    command = command_for(name)
    repo, makefile = generate(root / name, components, command, args.parallelism)
    duration = float(SLEEP_SECONDS) if name == "sleep" else 0.0
    report = ScenarioReport(
        name=name,
        command=list(command),
        components=len(components),
        parallelism=args.parallelism,
        ideal_seconds=ideal_makespan(components, args.parallelism, duration),
    )
    if not has_sqlite_store():
        report.cli_skipped = "gitopsd.adapters.sqlite_store is not there yet"
    for attempt in range(args.repeat):
        try:
            measure_round(args, report, repo, makefile, root, attempt)
        except RunFailedError as error:
            report.error = str(error)
            break
        except Exception:  # gitopsd refused or broke: report it, as a failed run
            report.error = traceback.format_exc(limit=-8)
            break
    return report, repo


def measure_round(
    args: argparse.Namespace,
    report: ScenarioReport,
    repo: Path,
    makefile: Path,
    root: Path,
    attempt: int,
) -> None:
    """make, the CLI and the in-process apply once each, in that order."""
    data = root / report.name / "data"
    report.make_seconds.append(make_once(makefile, args.parallelism))
    if report.cli_skipped is None:
        run = cli_once(repo, fresh(data / f"cli-{attempt}"), root)
        report.cli_seconds.append(run.seconds)
        if run.makespan is not None:
            report.cli_makespans.append(run.makespan)
    target = fresh(data / f"inprocess-{attempt}")
    report.inprocess.append(inprocess_once(repo, target, args.store, report.components))


def benchmark(args: argparse.Namespace, root: Path) -> Report:
    store = args.store if has_sqlite_store() else "memory"
    if store != args.store:
        print(
            "gitopsd.adapters.sqlite_store is missing: in-process runs use MemoryStore; "
            "CLI runs skipped",
            file=sys.stderr,
        )
    args.store = store
    import gitopsd

    report = Report(
        machine=machine_facts(root),
        components=args.components,
        parallelism=args.parallelism,
        repeat=args.repeat,
        store=store,
        gitopsd=str(Path(gitopsd.__file__).parent),
    )
    components = plan_components(args.components)
    names = SCENARIOS if args.scenario == "both" else (args.scenario,)
    repos: dict[str, Path] = {}
    for name in names:
        scenario, repos[name] = run_scenario(args, name, root, components)
        report.scenarios.append(scenario)
    if args.profile:
        chosen = "true" if "true" in repos else names[0]
        try:
            lines = profile_apply(repos[chosen], fresh(root / chosen / "data" / "profile"), store)
        except Exception:  # the figures above stand without it
            lines = ["profiled apply failed:", traceback.format_exc(limit=-8)]
        report.profile = [f"scenario {chosen}, store {store}", *lines]
    return report


@contextmanager
def scratch_root(keep: Path | None, *, prefix: str) -> Iterator[Path]:
    """The benchmark's working folder: `--keep DIR` (new or empty, kept), else a temporary
    one removed afterwards."""
    if keep is None:
        root = Path(tempfile.mkdtemp(prefix=prefix)).resolve()
        try:
            yield root
        finally:
            remove_tree(root)
        return
    root = keep.resolve()
    if root.exists() and any(root.iterdir()):
        raise SystemExit(f"--keep {root}: directory exists and is not empty")
    root.mkdir(parents=True, exist_ok=True)
    yield root


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with scratch_root(args.keep, prefix="gitopsd-engine-") as root:
        report = benchmark(args, root)
    if args.json:
        print(json.dumps(report.as_json(), indent=2, default=_json_default))
    else:
        print_text(report)
    if args.keep:
        print(f"repos, Makefiles and data folders kept under {root}", file=sys.stderr)
    return 0


def remove_tree(root: Path) -> None:
    """Remove `root`, read-only checkouts included."""
    for folder, _, _ in os.walk(root):
        os.chmod(folder, 0o700)
    shutil.rmtree(root, ignore_errors=True)


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


if __name__ == "__main__":
    if importlib.util.find_spec("gitopsd") is None:  # run from a checkout without installing
        sys.path.insert(0, str(SOURCE_ROOT))
    sys.exit(main())
