"""Memory benchmark: the resident memory of `gitopsd serve` over a long life.

What it does
    Generates the layered DAG of `engine.py` (`--components`, default 1,000; command drivers
    `true`, parallelism 16) in three environments, dev -> staging -> prod, staging and prod
    promoted from the one before with no soak (by a person: `auto: false`; with
    `--auto-promotion`, automatically), and starts `python -m gitopsd serve` on it (a real
    daemon: free loopback port, fresh data folder and SQLite state database, the repo
    watched by local path, `--poll-interval 1h`; latency.py's `Daemon`).

    idle
        Once all three environments are verified at the first head (promoted through the
        API, `POST /api/v1/environments/{env}/promotions`, unless `--auto-promotion`; every
        component applied three times) and no run or request is open, the daemon is left
        idle 2 s and VmRSS, VmHWM, RssAnon and RssFile are read from /proc/PID/status.
    long life
        Then `--commits` commits (default 1,000), each changing one component (its `label`
        input, so exactly one component of dev's run changes). After each commit the script
        waits until dev has verified it, so every commit gets a dev run of its own. Every
        `--commits / --promotions` commits (default 100 promotions) it promotes the head to
        staging and then to prod through the API, waiting for each to verify it, and notes
        VmRSS there (the growth curve): the issue's "1,000 commits and 100 promotions",
        1,200 runs. With `--auto-promotion` every commit goes down the chain by itself and
        the script only waits for prod every `--commits / --promotions` commits: 3,000 runs,
        the heavier life the figures before 2026-12-07 07:00 measured. At the end, settled
        and idle 2 s as above, it measures again.

Goals (the issue): idle VmRSS at most 80 MB at 1,000 components (3 environments), at most
150 MB at 10,000; after 1,000 commits and 100 promotions within 10% of the idle figure.
Memory is printed in MiB (2^20 bytes) and MB (10^6 bytes); goals are judged in MB.

The script reads the daemon's state database read-only to wait (the API answers with every
component of an environment, and polling it would measure the API); it is a report, not a
test: it exits 0 whatever the figures, non-zero only if it crashed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sqlite3
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BENCHMARKS = Path(__file__).resolve().parent
if str(BENCHMARKS) not in sys.path:  # latency.py and engine.py are sibling scripts
    sys.path.insert(0, str(BENCHMARKS))

import engine  # noqa: E402
import latency  # noqa: E402

ENVIRONMENTS = ("dev", "staging", "prod")
PARALLELISM = 16
MIB = 1024**2
MB = 1000**2
GOAL_IDLE_MB = {1000: 80, 10000: 150}  # components -> idle VmRSS at most (MB)
GOAL_GROWTH = 0.10  # after the long life: within 10% of the idle figure
FIRST_APPLY_TIMEOUT = 3600.0  # three applies of every component
COMMIT_TIMEOUT = 120.0  # dev verifies one commit
PROMOTION_TIMEOUT = 600.0  # prod verifies the head
SETTLE_TIMEOUT = 120.0  # no run or request open
POLL = 0.05
IDLE_SECONDS = latency.IDLE_SECONDS


class BenchmarkError(latency.BenchmarkError):
    """The daemon died, timed out or a run failed: the benchmark stops and shows ERROR."""


# --- command line ----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--components", type=int, default=1000, help="components (default 1000)")
    parser.add_argument(
        "--commits",
        type=int,
        default=1000,
        help="commits of the long life (default 1000; 0: idle only)",
    )
    parser.add_argument(
        "--promotions",
        type=int,
        default=100,
        help="times the head is promoted to staging and prod during the long life (default 100)",
    )
    parser.add_argument(
        "--auto-promotion",
        action="store_true",
        help="staging and prod promote every commit themselves (3 runs a commit)",
    )
    parser.add_argument("--keep", type=Path, help="keep the repo, data folder and daemon log here")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.components < 1 or args.commits < 0 or args.promotions < 1:
        parser.error("--components and --promotions must be at least 1, --commits at least 0")
    args.promotions = min(args.promotions, max(args.commits, 1))
    return args


# --- the repo ----------------------------------------------------------------------------------


def render_environment(name: str, upstream: str | None, *, auto: bool) -> str:
    automatic = "true" if auto else "false"
    promotion = f"  promotion:\n    from: {upstream}\n    auto: {automatic}\n" if upstream else ""
    return (
        f"apiVersion: gitopsd.io/v1\nkind: Environment\nmetadata:\n  name: {name}\nspec:\n"
        f"{promotion}  variables:\n    region: westeurope\n  parallelism: {PARALLELISM}\n"
    )


def environment_files(*, auto: bool) -> dict[str, str]:
    upstreams = (None, *ENVIRONMENTS[:-1])
    return {
        f"environments/{name}.yaml": render_environment(name, upstream, auto=auto)
        for name, upstream in zip(ENVIRONMENTS, upstreams, strict=True)
    }


def component_file(component: engine.PlannedComponent, generation: int) -> tuple[str, str]:
    """(path, text) of `component`; `generation` > 0 changes its `label` input."""
    true = latency.true_program()
    text = engine.render_component(component, [true], true)
    if generation:
        label = f'label: "{component.name}-{component.layer}"'
        text = text.replace(label, f'label: "{component.name}-{component.layer}-{generation}"')
    return f"components/{component.layer}/{component.name}/component.yaml", text


# --- waiting on the state database (read-only) --------------------------------------------------


def environments(database: Path) -> dict[str, dict[str, Any]]:
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        rows = db.execute("SELECT name, record FROM environments").fetchall()
    return {name: json.loads(record) for name, record in rows}


def open_work(database: Path) -> int:
    """Runs not finished and requests still open."""
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        runs = db.execute("SELECT COUNT(*) FROM runs WHERE is_finished = 0").fetchone()[0]
        requests = db.execute("SELECT COUNT(*) FROM requests WHERE is_open = 1").fetchone()[0]
    return int(runs) + int(requests)


def runs_per_environment(database: Path) -> dict[str, int]:
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        rows = db.execute("SELECT environment, COUNT(*) FROM runs GROUP BY environment").fetchall()
    return {name: int(count) for name, count in rows}


def verified_at(database: Path, names: Sequence[str], revision: str) -> bool | None:
    """True once every one of `names` is verified at `revision`; failure stops the benchmark."""
    try:
        found = environments(database)
    except sqlite3.OperationalError:  # not created yet, or busy: look again
        return None
    for name in names:
        state = found.get(name, {})
        if state.get("status") == "failed":
            raise BenchmarkError(f"{name} failed at {str(state.get('revision'))[:12]}")
    done = all(
        found.get(n, {}).get("revision") == revision and found[n].get("status") == "verified"
        for n in names
    )
    return True if done else None


# --- the measurements ----------------------------------------------------------------------------


@dataclass
class Point:
    commits: int
    rss_kb: int
    seconds: float  # since the long life started


@dataclass
class Report:
    machine: dict[str, Any]
    components: int
    commits: int
    promotions: int
    auto_promotion: bool
    first_apply_seconds: float | None = None
    idle_kb: dict[str, int] = field(default_factory=dict)
    after_kb: dict[str, int] = field(default_factory=dict)
    curve: list[Point] = field(default_factory=list)
    life_seconds: float | None = None
    runs: dict[str, int] = field(default_factory=dict)
    stop: str = "not started"
    error: str | None = None
    log_tail: list[str] = field(default_factory=list)

    def idle_goal_mb(self) -> int | None:
        return GOAL_IDLE_MB.get(self.components)

    def verdicts(self) -> dict[str, str]:
        found: dict[str, str] = {}
        idle, after, goal = (
            self.idle_kb.get("VmRSS"),
            self.after_kb.get("VmRSS"),
            self.idle_goal_mb(),
        )
        if idle is not None and goal is not None:
            found["idle"] = "PASS" if idle * 1024 <= goal * MB else "FAIL"
        if idle is not None and after is not None:
            found["long life"] = "PASS" if after <= idle * (1 + GOAL_GROWTH) else "FAIL"
        return found


class Bench:
    """One daemon's life: first reconcile, idle figure, commits and promotions, final figure."""

    def __init__(self, args: argparse.Namespace, root: Path, report: Report) -> None:
        self.args = args
        self.report = report
        self.repo = root / "repo"
        self.database = root / "data" / "state.db"
        self.planned = engine.plan_components(args.components)
        files = environment_files(auto=args.auto_promotion)
        files.update(component_file(c, 0) for c in self.planned)
        self.head = latency.create_repo(self.repo, files)
        self.daemon = latency.Daemon(str(self.repo), root)

    def wait(self, what: str, names: Sequence[str], revision: str, timeout: float) -> None:
        self.daemon.wait_for(
            what, timeout, lambda: verified_at(self.database, names, revision), POLL
        )

    def settled_memory(self) -> dict[str, int]:
        """/proc/PID/status once nothing is open and the daemon has been idle a while."""
        self.daemon.wait_for(
            "no open run or request",
            SETTLE_TIMEOUT,
            lambda: True if open_work(self.database) == 0 else None,
            POLL,
        )
        time.sleep(IDLE_SECONDS)
        return self.daemon.memory()

    def promote(self, revision: str, timeout: float) -> None:
        """`revision`, verified in dev, promoted to staging and then prod, each verified;
        with --auto-promotion the daemon does that itself and this only waits for prod."""
        if self.args.auto_promotion:
            self.wait(f"prod to verify {revision[:12]}", ENVIRONMENTS, revision, timeout)
            return
        for name in ENVIRONMENTS[1:]:
            response = self.daemon.client.post(
                f"/api/v1/environments/{name}/promotions",
                json={"revision": revision},
                headers={"Content-Type": "application/json"},
            )
            if response.status_code != 202:
                raise BenchmarkError(f"promote to {name}: {response.status_code} {response.text}")
            self.wait(f"{name} to verify {revision[:12]}", [name], revision, timeout)

    def first_reconcile(self) -> None:
        self.daemon.wait_ready()
        self.wait("dev to verify the first head", ENVIRONMENTS[:1], self.head, FIRST_APPLY_TIMEOUT)
        self.promote(self.head, FIRST_APPLY_TIMEOUT)
        self.report.first_apply_seconds = self.daemon.since_launch()
        self.report.idle_kb = self.settled_memory()

    def commit(self, n: int) -> str:
        component = self.planned[(n - 1) % len(self.planned)]
        path, text = component_file(component, n)
        engine.write_text(self.repo / path, text)
        latency.commit(self.repo, f"{component.name}: label {n}")
        return latency.head_of(self.repo)

    def long_life(self) -> None:
        commits, promotions = self.args.commits, self.args.promotions
        every = max(1, commits // promotions)
        started = time.monotonic()
        for n in range(1, commits + 1):
            revision = self.commit(n)
            self.wait(f"dev to verify commit {n}", ENVIRONMENTS[:1], revision, COMMIT_TIMEOUT)
            if n % every == 0 or n == commits:
                self.promote(revision, PROMOTION_TIMEOUT)
                rss = self.daemon.memory()["VmRSS"]
                self.report.curve.append(Point(n, rss, time.monotonic() - started))
        self.report.life_seconds = time.monotonic() - started
        if commits:
            self.report.after_kb = self.settled_memory()
        self.report.runs = runs_per_environment(self.database)

    def run(self) -> None:
        try:
            self.first_reconcile()
            self.long_life()
        except (latency.BenchmarkError, OSError, sqlite3.Error) as error:
            self.report.error = f"{type(error).__name__}: {error}"
        except Exception:  # a crash of the measuring itself: report it
            self.report.error = traceback.format_exc(limit=-8)
        finally:
            _, self.report.stop = self.daemon.stop()
        if self.report.error:
            self.report.log_tail = self.daemon.log_tail()


# --- printing ------------------------------------------------------------------------------------


def mb(kb: int | None) -> str:
    return "-" if kb is None else f"{kb / 1024:.1f} MiB = {kb * 1024 / MB:.1f} MB"


def label(text: str) -> str:
    return f"{text + ':':<22}"


def print_memory(title: str, kb: dict[str, int]) -> None:
    if not kb:
        return
    print(label(title) + f"VmRSS {mb(kb.get('VmRSS'))}")
    print(label("  of it") + f"anon {mb(kb.get('RssAnon'))}, file {mb(kb.get('RssFile'))}")
    print(label("  VmHWM, threads") + f"{mb(kb.get('VmHWM'))}, {kb.get('Threads', '-')} threads")


def print_curve(curve: Sequence[Point]) -> None:
    if not curve:
        return
    step = max(1, len(curve) // 10)
    shown = [p for i, p in enumerate(curve) if i % step == 0 or p is curve[-1]]
    print(label("VmRSS along the way"))
    for point in shown:
        print(f"  after {point.commits:>5} commits ({point.seconds:7.1f} s): {mb(point.rss_kb)}")


def print_text(report: Report) -> None:
    for key, value in report.machine.items():
        print(f"{key + ':':<20}{value}")
    print(
        f"\n== {report.components:,} components x {len(ENVIRONMENTS)} environments "
        f"({' -> '.join(ENVIRONMENTS)}); {report.commits:,} commits, "
        f"{report.promotions} promotions"
        f"{' (every commit promoted automatically)' if report.auto_promotion else ''} =="
    )
    if report.first_apply_seconds is not None:
        print(label("first reconcile") + f"{report.first_apply_seconds:.1f} s from launch")
    print_memory("idle", report.idle_kb)
    print_curve(report.curve)
    if report.life_seconds is not None:
        print(label("long life took") + f"{report.life_seconds:.1f} s; runs {report.runs}")
    print_memory("after the long life", report.after_kb)
    idle, after = report.idle_kb.get("VmRSS"), report.after_kb.get("VmRSS")
    if idle and after:
        print(label("growth") + f"{(after - idle) / idle * 100:+.1f}% (goal at most +10%)")
    goal = report.idle_goal_mb()
    goals = f"idle <= {goal} MB, " if goal else ""
    print(label("goal") + f"{goals}after <= idle +10%  {report.verdicts() or 'N/A'}")
    print(label("daemon stop") + report.stop)
    if report.error:
        print(f"\nERROR: {report.error.strip()}")
        print("\n".join(f"  | {line}" for line in report.log_tail))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with engine.scratch_root(args.keep, prefix="gitopsd-memory-") as root:
        report = Report(
            machine=latency.machine_facts(root),
            components=args.components,
            commits=args.commits,
            promotions=args.promotions,
            auto_promotion=args.auto_promotion,
        )
        Bench(args, root, report).run()
    if args.json:
        print(json.dumps(asdict(report) | {"verdicts": report.verdicts()}, indent=2))
    else:
        print_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
