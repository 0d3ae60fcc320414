"""API benchmark: a run of 1,000 `sleep 0.05` steps asked of `gitopsd serve` over HTTP,
against GNU `make -j16` running the same DAG in the same round.

What it does
    Generates `engine.py`'s layered DAG (same seed; each component's apply is `sleep 0.05`, its
    destroy `true`) as a committed GitOps repo and as a Makefile, starts `python -m gitopsd
    serve` on it (fresh data folder, SQLite, `--poll-interval 1h`) and waits until the head is
    verified. Then `--repeat` rounds of, in this order:
    - **make**: `make -jP -f Makefile all`, timed end to end;
    - **destroy**: `POST /api/v1/environments/bench/runs {"action": "destroy"}`, waited for
      (not timed: it only empties the environment so that the next apply runs every step);
      each run's id must be known to `GET /api/v1/runs/{id}` at once; its end is read from
      the state database (read-only), rather than by asking the runs API again and again;
    - **apply**: `POST /api/v1/environments/bench/runs {"action": "apply"}`; the figure is from
      just before the POST to the run's recorded `finished_at`, so queueing, admission, the
      run's records and every step are in it. The steps' own makespan (first step start to
      last step end, as recorded) is printed beside it.

Goal (issue 16): the API run's makespan at most 1.05x make's, in the same round; the best
round of each is compared. The script is a report: it exits 0 whatever the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sqlite3
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

BENCHMARKS = Path(__file__).resolve().parent
if str(BENCHMARKS) not in sys.path:  # sibling scripts, not a package
    sys.path.insert(0, str(BENCHMARKS))

import engine  # noqa: E402
import latency  # noqa: E402

GOAL_RATIO = 1.05
APPLY_TIMEOUT = 1800.0


@dataclass
class Round:
    make: float
    api: float  # just before the POST to the run's recorded finished_at
    steps: float | None  # first step start to last step end, as recorded


@dataclass
class Report:
    machine: dict[str, Any]
    components: int
    parallelism: int
    rounds: list[Round] = field(default_factory=list)
    error: str | None = None

    @property
    def ratio(self) -> float | None:
        if not self.rounds:
            return None
        return min(r.api for r in self.rounds) / min(r.make for r in self.rounds)

    @property
    def verdict(self) -> str:
        ratio = self.ratio
        if self.error or ratio is None:
            return "ERROR"
        return "PASS" if ratio <= GOAL_RATIO else "FAIL"

    def as_json(self) -> dict[str, Any]:
        return asdict(self) | {"ratio": self.ratio, "goal": GOAL_RATIO, "verdict": self.verdict}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--components", type=int, default=1000, help="N (default 1000)")
    parser.add_argument("--parallelism", type=int, default=16, help="P: make -jP (default 16)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--keep", type=Path, help="repo, Makefile, data folder here; keep them")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if min(args.components, args.parallelism, args.repeat) < 1:
        parser.error("--components, --parallelism and --repeat must be at least 1")
    return args


def generate(folder: Path, components: int, parallelism: int) -> tuple[Path, Path, str]:
    """engine.py's repo and Makefile, each component with a `true` destroy; the head."""
    planned = engine.plan_components(components)
    repo, makefile = engine.generate(folder, planned, engine.command_for("sleep"), parallelism)
    destroy = f"    destroy: {json.dumps(list(engine.command_for('true')))}\n"
    for manifest in (repo / "components").glob("*/*/component.yaml"):
        manifest.write_text(manifest.read_text(encoding="utf-8") + destroy, encoding="utf-8")
    engine.run_git(repo, "add", "-A")
    engine.run_git(repo, *engine.GIT_IDENTITY, "commit", "-q", "-m", "destroy: true")
    return repo, makefile, latency.head_of(repo)


def ask_for_run(daemon: latency.Daemon, action: str) -> str:
    response = daemon.client.post(
        f"/api/v1/environments/{engine.ENVIRONMENT}/runs",
        json={"action": action},
        headers={"Content-Type": "application/json"},
    )
    if response.status_code != 202:
        raise latency.BenchmarkError(f"POST {action}: {response.status_code} {response.text}")
    run_id: str = response.json()["id"]
    return run_id


def finished(daemon: latency.Daemon, database: Path, run_id: str) -> dict[str, Any]:
    """The run once it has finished, with its steps. Its id must be known to the API at
    once; its end is then read from the state database, read-only: the runs API answers with
    1,000 steps
    (a page at a time), and asking it every 50 ms would slow the daemon being measured."""
    daemon.get(f"/api/v1/runs/{run_id}")  # a 404 here is a finding: BenchmarkError

    def probe() -> dict[str, Any] | None:
        with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
            row = db.execute("SELECT record FROM runs WHERE id = ?", (run_id,)).fetchone()
        run: dict[str, Any] | None = json.loads(row[0]) if row else None
        return run if run is not None and run["status"] in latency.FINISHED else None

    run = daemon.wait_for(f"run {run_id} to finish", APPLY_TIMEOUT, probe, latency.SLOW_POLL)
    if run["status"] != "succeeded":
        raise latency.BenchmarkError(f"run {run_id} {run['status']}: {run.get('error')}")
    return with_all_steps(daemon, run_id)


def with_all_steps(daemon: latency.Daemon, run_id: str) -> dict[str, Any]:
    """The run with every step, paging through them as the API hands them out."""
    run = daemon.get(f"/api/v1/runs/{run_id}", steps_limit=1000)
    steps = list(run.get("steps", []))
    while run.get("next_steps_cursor"):
        page = daemon.get(
            f"/api/v1/runs/{run_id}", steps_limit=1000, steps_cursor=run["next_steps_cursor"]
        )
        steps += page.get("steps", [])
        run["next_steps_cursor"] = page.get("next_steps_cursor")
    return run | {"steps": steps}


def steps_makespan(run: dict[str, Any]) -> float | None:
    starts = [s["started_at"] for s in run.get("steps", []) if s.get("started_at")]
    ends = [s["finished_at"] for s in run.get("steps", []) if s.get("finished_at")]
    if not starts or not ends:
        return None
    return (datetime.fromisoformat(max(ends)) - datetime.fromisoformat(min(starts))).total_seconds()


def one_round(daemon: latency.Daemon, makefile: Path, parallelism: int, database: Path) -> Round:
    make = engine.make_once(makefile, parallelism)
    finished(daemon, database, ask_for_run(daemon, "destroy"))
    asked = time.time()
    run = finished(daemon, database, ask_for_run(daemon, "apply"))
    api = datetime.fromisoformat(run["finished_at"]).timestamp() - asked
    return Round(make, api, steps_makespan(run))


def benchmark(args: argparse.Namespace, root: Path) -> Report:
    report = Report(latency.machine_facts(root), args.components, args.parallelism)
    repo, makefile, head = generate(root / "api", args.components, args.parallelism)
    daemon = latency.Daemon(str(repo), root / "api")
    try:
        daemon.wait_ready()
        daemon.wait_verified(head, APPLY_TIMEOUT)
        for _ in range(args.repeat):
            database = root / "api" / "data" / "state.db"
            report.rounds.append(one_round(daemon, makefile, args.parallelism, database))
    except (latency.BenchmarkError, engine.RunFailedError, OSError) as error:
        report.error = f"{type(error).__name__}: {error}\n" + "\n".join(daemon.log_tail())
    finally:
        daemon.stop()
    return report


def print_text(report: Report) -> None:
    for key, value in report.machine.items():
        print(f"{key + ':':<20}{value}")
    print(f"\n== {report.components:,} x sleep 0.05, parallelism {report.parallelism} ==")
    for number, done in enumerate(report.rounds, 1):
        steps = "-" if done.steps is None else f"{done.steps:.3f} s"
        print(
            f"round {number}: make {done.make:.3f} s   API run {done.api:.3f} s "
            f"({done.api / done.make:.2f}x)   its steps {steps}"
        )
    if report.ratio is not None:
        print(f"best API run / best make: {report.ratio:.2f}x (goal <= {GOAL_RATIO}x)")
    print(f"verdict: {report.verdict}")
    if report.error:
        print(f"\nERROR: {report.error}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with engine.scratch_root(args.keep, prefix="gitopsd-api-") as root:
        report = benchmark(args, root)
    if args.json:
        print(json.dumps(report.as_json(), indent=2))
    else:
        print_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
