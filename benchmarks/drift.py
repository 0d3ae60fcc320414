"""Drift benchmark: a drift scan of N components whose checks are a small script, against xargs -P.

What it does
    1. Generates the layered DAG of `engine.py` (the DAG of `load.py`: same seed and layer
       shares) as a committed GitOps repo: `environments/bench.yaml` with `parallelism: P`, and
       N components whose `command` driver plans and applies `true` and checks with
       `checks/check.sh`, one script committed once (mode 755) and referenced from each
       component's folder by a relative path (`../../../checks/check.sh`). The script uses
       shell builtins only: it exits 0 (in sync) when the component's state folder, its inputs
       file and its `region` input are what gitopsd passes, 1 otherwise.
    2. Applies the environment once with the CLI (not timed), so every component is applied.
    3. From what that apply recorded (each component's revision, inputs and state folder) and
       the revision's read-only checkout it exported, writes the argument file of the yard
       stick: per component, `--chdir=<its folder in the checkout>`, the protocol variables
       gitopsd gives a check (`GITOPSD_ENVIRONMENT`, `_COMPONENT`, `_REVISION`, `_ACTION=check`,
       `_INPUTS` (a JSON file written beforehand), `_OUTPUTS`, `_STATE_DIR`, one
       `GITOPSD_INPUT_<NAME>` per input) and the check's argv, NUL-separated.
    4. `--repeat` rounds of, alternating:
       - **xargs**: `xargs -0 -a ARGS -P P -n K env`, a subprocess timed end to end: one
         `env` per component, which sets the variables, changes folder and execs the script in
         the same process (one fork and two execs per component; gitopsd forks and execs once).
         No shell per call (`sh -c` would add one process start per component);
       - **CLI**: `python -m gitopsd drift --env bench ... --output json`, timed end to end,
         checked for exit code 0 and N components in sync; it reads the revision the apply
         loaded from the data folder's revision cache, as a scheduled `gitopsd drift` does;
       - **CLI, cold**: the same with that cache emptied first (a fresh data folder, as on a
         new CI runner): the manifests are read from git and parsed again;
       - **in-process**: `drifting.check(workspace, "bench")` alone, on a workspace opened and
         loaded just before (the load is timed apart; `check` reuses it).
    5. Prints each figure with all its runs, the ratios to xargs, (gitopsd - xargs) / N in
       milliseconds per component, and the goal: at most 1.2x of xargs, judged on the drift
       scan (the in-process figure: what the daemon runs on each environment's schedule), with
       the CLI's own ratio beside it (the scan plus starting Python and importing gitopsd, its
       CLI library and pydantic: about 0.3 s on the 2-core machine of the README's figures,
       whatever the number of components).

Why `xargs -P` is the yard stick
    It is the leanest way to run N small commands P at a time: a C program that forks and
    execs, keeps nothing and records nothing. Both get the same script, the same working
    folders, the same variables and the same parallelism on the same machine in the same run,
    so the machine cancels out of the ratio. What gitopsd does on top (interpreter start,
    loading the manifests, the lease, an inputs file per call, capturing and redacting the
    output, storing every result and an event) is what the 1.2x budget is for.

Before measuring, gitopsd is byte-compiled (`python -m compileall`), as installing its wheel
does: an editable install under PYTHONDONTWRITEBYTECODE=1 (set on the machine the README's
figures come from) would otherwise compile every module from source at every start.

The script is a report, not a test: it exits 0 whatever the figures, and non-zero only if it
crashed. A command that fails (the apply, xargs, or a drift that is not all in sync) stops the
measurements and shows as ERROR with its stderr.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

BENCHMARKS = Path(__file__).resolve().parent
if str(BENCHMARKS) not in sys.path:  # engine.py is a sibling script, not a package
    sys.path.insert(0, str(BENCHMARKS))

import engine  # noqa: E402

if TYPE_CHECKING:
    from load import PlannedComponent  # the DAG comes from engine.plan_components (load.py's)

GOAL_RATIO = 1.2  # a drift scan / xargs -P; judged on the scan, the CLI's ratio shown beside
ENVIRONMENT = engine.ENVIRONMENT
CHECK_SCRIPT = PurePosixPath("checks/check.sh")
CHECK_TEXT = """\
#!/bin/sh
# Drift check of a benchmark component, shell builtins only: in sync (0) when gitopsd's
# protocol reached it (state folder, inputs file, action, region input), else an error (1).
[ -d "$GITOPSD_STATE_DIR" ] || exit 1
[ -f "$GITOPSD_INPUTS" ] || exit 1
[ "$GITOPSD_ACTION" = check ] || exit 1
[ "$GITOPSD_INPUT_REGION" = westeurope ] || exit 1
exit 0
"""
RUN_TIMEOUT = engine.RUN_TIMEOUT
ERROR_TAIL = 4000


class RunFailedError(engine.RunFailedError):
    """The apply, xargs or a drift check failed, or did not check every component."""


# --- command line ----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--components", type=int, default=1000, help="N (default 1000)")
    parser.add_argument(
        "--parallelism", type=int, default=16, help="P: xargs -P and the environment's (16)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs of each timing; best is kept")
    parser.add_argument("--keep", type=Path, help="generate the repo and data folder here; keep")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.components < 1 or args.parallelism < 1 or args.repeat < 1:
        parser.error("--components, --parallelism and --repeat must be at least 1")
    return args


def machine_facts(scratch: Path) -> dict[str, Any]:
    facts = engine.machine_facts(scratch)
    facts.pop("make", None)  # no make here
    facts["xargs"] = engine.first_line(["xargs", "--version"])
    facts["env"] = engine.first_line(["env", "--version"])
    facts["sh"] = os.path.realpath("/bin/sh")
    return facts


def gitopsd_location() -> str:
    spec = importlib.util.find_spec("gitopsd")
    if spec is None or spec.origin is None:
        return f"{engine.SOURCE_ROOT / 'gitopsd'} (added to PYTHONPATH)"
    return str(Path(spec.origin).parent)


# --- the repo --------------------------------------------------------------------------------


def component_folder(component: PlannedComponent) -> PurePosixPath:
    return PurePosixPath("components", component.layer, component.name)


def check_argv(component: PlannedComponent) -> str:
    """The script by a path relative to the component's folder: `../../../checks/check.sh`."""
    return os.path.relpath(CHECK_SCRIPT, component_folder(component))


def render_component(component: PlannedComponent, true: str) -> str:
    """engine.py's manifest (`plan` and `apply` run `true`) with a `check` added to its
    driver, which is the manifest's last block."""
    text = engine.render_component(component, [true], true)
    if not text.endswith("\n") or "\n  driver:\n" not in text:
        raise RuntimeError("engine.render_component no longer ends with the driver block")
    return text + f"    check: {json.dumps([check_argv(component)])}\n"


def generate(folder: Path, components: Sequence[PlannedComponent], parallelism: int) -> Path:
    """`folder/repo`, committed, the check script executable in git."""
    repo = folder / "repo"
    repo.mkdir(parents=True)
    engine.run_git(repo, "-c", "init.defaultBranch=main", "init", "-q")
    engine.write_text(repo / "gitopsd.yaml", engine.render_settings())
    environment = engine.render_environment(parallelism)
    engine.write_text(repo / "environments" / f"{ENVIRONMENT}.yaml", environment)
    script = repo / CHECK_SCRIPT
    engine.write_text(script, CHECK_TEXT)
    script.chmod(0o755)
    true = engine.command_for("true")[0]
    for component in components:
        path = repo / component_folder(component) / "component.yaml"
        engine.write_text(path, render_component(component, true))
    engine.run_git(repo, "add", "-A")
    engine.run_git(repo, "update-index", "--chmod=+x", str(CHECK_SCRIPT))  # 100755 in the commit
    message = f"benchmark: {len(components)} components with a drift check"
    engine.run_git(repo, *engine.GIT_IDENTITY, "commit", "-q", "-m", message)
    return repo


# --- xargs -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class XargsPlan:
    argument_file: Path  # NUL-separated: `per_call` arguments of `env` per component
    per_call: int
    calls: int

    def argv(self, parallelism: int) -> list[str]:
        argv = ["xargs", "-0", "-a", str(self.argument_file), "-P", str(parallelism)]
        return [*argv, "-n", str(self.per_call), "env"]


def env_arguments(cwd: Path, variables: dict[str, str], argv: Sequence[str]) -> list[str]:
    return [f"--chdir={cwd}", *(f"{name}={value}" for name, value in variables.items()), *argv]


def plan_xargs(repo: Path, data_dir: Path, folder: Path) -> XargsPlan:
    """The argument file of the xargs runs: the calls gitopsd's drift check makes, built from
    what the apply recorded (revision, inputs, state folder), in gitopsd's order."""
    from gitopsd.engine import selection
    from gitopsd.model.fields import input_variable
    from gitopsd.model.state import ComponentStatus

    folder.mkdir(parents=True, exist_ok=True)
    calls: list[list[str]] = []
    with engine.opened_workspace(repo, data_dir, "sqlite") as workspace:
        target = workspace.load()
        applied = {
            s.name: s
            for s in workspace.store.list_components(ENVIRONMENT)
            if s.status is ComponentStatus.APPLIED
        }
        for entry in selection.select(target.repository, ENVIRONMENT).components:
            state = applied.get(entry.manifest.name)
            if state is None:
                continue
            inputs = folder / f"{state.name}.inputs.json"
            inputs.write_text(json.dumps(state.inputs, indent=2) + "\n", encoding="ascii")
            variables = {
                "GITOPSD_ENVIRONMENT": state.environment,
                "GITOPSD_COMPONENT": state.name,
                "GITOPSD_REVISION": state.revision,
                "GITOPSD_ACTION": "check",
                "GITOPSD_INPUTS": str(inputs),
                "GITOPSD_OUTPUTS": str(folder / f"{state.name}.outputs.json"),
                "GITOPSD_STATE_DIR": str(workspace.state_root / state.environment / state.name),
            }
            for name, value in state.inputs.items():
                text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
                variables[input_variable(name)] = text
            cwd = target.checkout / entry.folder
            command = entry.manifest.spec.driver.command("check")  # command drivers only
            calls.append(env_arguments(cwd, variables, list(command or ())))
    sizes = {len(call) for call in calls}
    if len(sizes) != 1:
        raise RuntimeError(f"`xargs -n` needs as many arguments per call; got sizes {sizes}")
    argument_file = folder / "arguments"
    argument_file.write_bytes(b"".join(os.fsencode(a) + b"\0" for call in calls for a in call))
    return XargsPlan(argument_file, sizes.pop(), len(calls))


def run_xargs(plan: XargsPlan, parallelism: int, *, trace: bool = False) -> tuple[float, str]:
    """One xargs run, timed end to end; its stderr (the commands, with `trace`)."""
    argv = plan.argv(parallelism)
    if trace:
        argv.insert(1, "-t")
    elapsed, result = timed(argv, what=" ".join(argv))
    return elapsed, result.stderr


def timed(
    argv: list[str], *, what: str, cwd: Path | None = None
) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Run `argv` to the end, timed; RunFailedError with its output tail if it fails."""
    started = time.perf_counter()
    result = subprocess.run(
        argv,
        cwd=cwd,
        env=engine.cli_environment(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
        timeout=RUN_TIMEOUT,
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        output = (result.stderr.strip() or result.stdout.strip())[-ERROR_TAIL:]
        raise RunFailedError(f"{what} exited {result.returncode}:\n{output}")
    return elapsed, result


def verify_xargs(plan: XargsPlan, parallelism: int, expected: int) -> None:
    """Once, not timed: xargs makes exactly one call per component, and every check passes."""
    if plan.calls != expected:
        raise RunFailedError(f"the apply left {plan.calls} applied components of {expected}")
    _, trace = run_xargs(plan, parallelism, trace=True)
    made = sum(1 for line in trace.splitlines() if line.startswith("env "))
    if made != expected:
        raise RunFailedError(f"xargs made {made} calls for {expected} components:\n{trace[-800:]}")


# --- gitopsd ---------------------------------------------------------------------------------


def apply_once(repo: Path, data_dir: Path, cwd: Path) -> None:
    try:
        engine.cli_once(repo, data_dir, cwd)
    except engine.RunFailedError as error:
        raise RunFailedError(f"the apply before the drift checks failed: {error}") from error


def all_in_sync(components: Sequence[dict[str, Any]], expected: int, who: str) -> None:
    wrong = [c for c in components if c.get("drift") != "in_sync"]
    if len(components) != expected or wrong:
        shown = "; ".join(f"{c.get('name')}: {c.get('summary')}" for c in wrong[:5])
        raise RunFailedError(
            f"{who} checked {len(components)} components of {expected}, "
            f"{len(wrong)} not in sync: {shown}"
        )


def cli_once(repo: Path, data_dir: Path, cwd: Path, expected: int) -> float:
    argv = [sys.executable, "-m", "gitopsd", "drift", "--env", ENVIRONMENT, "--repo", str(repo)]
    argv += ["--data-dir", str(data_dir), "--state", engine.state_url(data_dir)]
    argv += ["--output", "json"]
    elapsed, result = timed(argv, what="gitopsd drift", cwd=cwd)
    all_in_sync(json.loads(result.stdout)["components"], expected, "gitopsd drift")
    return elapsed


@dataclass
class InProcessRun:
    load_seconds: float  # Workspace.load just before: manifests and checkout, cached for check
    check_seconds: float  # drifting.check alone


def inprocess_once(repo: Path, data_dir: Path, expected: int) -> InProcessRun:
    from gitopsd.runtime.drift import drifting

    with engine.opened_workspace(repo, data_dir, "sqlite") as workspace:
        load_seconds = engine.timed(workspace.load)
        started = time.perf_counter()
        report = drifting.check(workspace, ENVIRONMENT)
        check_seconds = time.perf_counter() - started
    found = [
        {"name": c.name, "drift": c.drift.value, "summary": c.summary} for c in report.components
    ]
    all_in_sync(found, expected, "drifting.check")
    return InProcessRun(load_seconds, check_seconds)


# --- report ----------------------------------------------------------------------------------


@dataclass
class Report:
    machine: dict[str, Any]
    gitopsd: str
    components: int
    parallelism: int
    repeat: int
    check: str = ""
    xargs_command: str = ""
    xargs_seconds: list[float] = field(default_factory=list)
    cli_seconds: list[float] = field(default_factory=list)
    cli_cold_seconds: list[float] = field(default_factory=list)
    inprocess: list[InProcessRun] = field(default_factory=list)
    error: str | None = None  # a command that failed; the measurements stopped there

    @property
    def xargs_best(self) -> float | None:
        return min(self.xargs_seconds, default=None)

    @property
    def cli_best(self) -> float | None:
        return min(self.cli_seconds, default=None)

    @property
    def cli_cold_best(self) -> float | None:
        return min(self.cli_cold_seconds, default=None)

    @property
    def check_best(self) -> float | None:
        return min((r.check_seconds for r in self.inprocess), default=None)

    @property
    def load_best(self) -> float | None:
        return min((r.load_seconds for r in self.inprocess), default=None)

    def ratio(self, gitopsd: float | None) -> float | None:
        xargs = self.xargs_best
        return None if gitopsd is None or xargs is None else gitopsd / xargs

    def overhead_ms(self, gitopsd: float | None) -> float | None:
        """(gitopsd - xargs) per component, in milliseconds."""
        xargs = self.xargs_best
        return (
            None if gitopsd is None or xargs is None else (gitopsd - xargs) / self.components * 1e3
        )

    @property
    def paired_cli_ratios(self) -> list[float]:
        """Each round's CLI time over the xargs time measured just before it: on a machine
        whose speed drifts, a pair taken together cancels more of the drift than two bests."""
        return [
            cli / xargs for xargs, cli in zip(self.xargs_seconds, self.cli_seconds, strict=False)
        ]

    @property
    def verdict(self) -> str:
        """The goal, judged on the drift scan itself (`drifting.check`, the daemon's scan)."""
        return self._judged(self.check_best)

    @property
    def cli_verdict(self) -> str:
        """The same bound, for `gitopsd drift` end to end: the scan plus a process start."""
        return self._judged(self.cli_best)

    def _judged(self, gitopsd: float | None) -> str:
        ratio = self.ratio(gitopsd)
        if ratio is None:
            return "ERROR" if self.error else "N/A"
        return "PASS" if ratio <= GOAL_RATIO else "FAIL"

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data |= {
            "xargs_best": self.xargs_best,
            "cli_best": self.cli_best,
            "cli_cold_best": self.cli_cold_best,
            "inprocess_check_best": self.check_best,
            "inprocess_load_best": self.load_best,
            "against_xargs": {
                key: {"seconds": value, "ratio": self.ratio(value), "ms": self.overhead_ms(value)}
                for key, value in (
                    ("cli", self.cli_best),
                    ("cli_cold", self.cli_cold_best),
                    ("inprocess_check", self.check_best),
                )
            },
            "paired_cli_ratios": self.paired_cli_ratios,
            "goal": {"ratio_at_most": GOAL_RATIO, "judged_on": "inprocess_check"},
            "verdict": self.verdict,
            "cli_verdict": self.cli_verdict,
        }
        return data


def print_text(report: Report) -> None:
    for key, value in report.machine.items():
        print(f"{key + ':':<20}{value}")
    print(f"{'gitopsd:':<20}{report.gitopsd}")
    print(f"{'components (N):':<20}{report.components}")
    print(f"{'parallelism (P):':<20}{report.parallelism}")
    print(f"{'repeat:':<20}{report.repeat} (best kept)")
    print(f"{'check:':<20}{report.check}")
    print()
    seconds, runs_of = engine.seconds, engine.runs_of
    print(
        f"{'xargs:':<22}{seconds(report.xargs_best)}  (best of {runs_of(report.xargs_seconds)}; "
        f"`{report.xargs_command}`)"
    )
    print(
        f"{'gitopsd drift (CLI):':<22}{seconds(report.cli_best)}  "
        f"(best of {runs_of(report.cli_seconds)}; end to end)"
    )
    print(
        f"{'  cold revision cache:':<22}{seconds(report.cli_cold_best)}  "
        f"(best of {runs_of(report.cli_cold_seconds)}; the manifests read from git again)"
    )
    print(
        f"{'gitopsd in-process:':<22}{seconds(report.check_best)}  "
        f"(best of {runs_of([r.check_seconds for r in report.inprocess])}; drifting.check)"
    )
    print(
        f"{'  before it, load:':<22}{seconds(report.load_best)}  "
        f"(best of {runs_of([r.load_seconds for r in report.inprocess])}; Workspace.load, "
        "which check reuses)"
    )
    print(f"{'':<22}{'vs xargs:':<14}{'ratio':>8}{'ms/comp':>10}")
    rows = (
        ("CLI", report.cli_best),
        ("CLI, cold", report.cli_cold_best),
        ("in-process", report.check_best),
    )
    for label, value in rows:
        ratio, ms = report.ratio(value), report.overhead_ms(value)
        if ratio is not None and ms is not None:
            print(f"{'':<22}{label:<14}{ratio:>7.3f}x{ms:>+10.2f}")
    paired = sorted(report.paired_cli_ratios)
    if paired:
        each = ", ".join(f"{r:.2f}x" for r in report.paired_cli_ratios)
        print(f"{'':<22}{'CLI, paired':<14}{statistics.median(paired):>7.3f}x  median of ({each})")
    for label, value, verdict, what in (
        ("goal:", report.check_best, report.verdict, "the drift scan"),
        ("  CLI:", report.cli_best, report.cli_verdict, "gitopsd drift, its start-up included"),
    ):
        ratio = report.ratio(value)
        shown = "-" if ratio is None else f"{ratio:.3f}x"
        print(f"{label:<22}{shown}  ({what} / xargs <= {GOAL_RATIO}x)  {verdict}")
    if report.error:
        print(f"\nERROR: {report.error.strip()}")


# --- main ------------------------------------------------------------------------------------


def measure(args: argparse.Namespace, report: Report, root: Path) -> None:
    components = engine.plan_components(args.components)
    repo = generate(root, components, args.parallelism)
    report.check = (
        f"{CHECK_SCRIPT} (/bin/sh, builtins only), run as {check_argv(components[0])} "
        "from each component's folder"
    )
    byte_compile()
    data_dir = engine.fresh(root / "data")
    apply_once(repo, data_dir, root)
    plan = plan_xargs(repo, data_dir, root / "xargs")
    report.xargs_command = " ".join(plan.argv(args.parallelism)).replace(str(root), "<root>")
    verify_xargs(plan, args.parallelism, args.components)
    for _ in range(args.repeat):
        report.xargs_seconds.append(run_xargs(plan, args.parallelism)[0])
        report.cli_seconds.append(cli_once(repo, data_dir, root, args.components))
        shutil.rmtree(data_dir / "cache" / "revisions", ignore_errors=True)
        report.cli_cold_seconds.append(cli_once(repo, data_dir, root, args.components))
        report.inprocess.append(inprocess_once(repo, data_dir, args.components))


def byte_compile() -> None:
    """Write gitopsd's bytecode, as installing its wheel does (see the module docstring)."""
    package = Path(gitopsd_location().split(" ")[0])
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(package)],
        check=True,
        capture_output=True,
        env=engine.cli_environment(),
    )


def benchmark(args: argparse.Namespace, root: Path) -> Report:
    report = Report(
        machine=machine_facts(root),
        gitopsd=gitopsd_location(),
        components=args.components,
        parallelism=args.parallelism,
        repeat=args.repeat,
    )
    try:
        measure(args, report, root)
    except engine.RunFailedError as error:
        report.error = str(error)
    except Exception:  # gitopsd refused or broke: report it, as a failed run
        report.error = traceback.format_exc(limit=-8)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("xargs") is None or shutil.which("env") is None:
        raise SystemExit("`xargs` and `env` (GNU findutils, coreutils) are needed")
    with engine.scratch_root(args.keep, prefix="gitopsd-drift-") as root:
        report = benchmark(args, root)
    if args.json:
        print(json.dumps(report.as_json(), indent=2))
    else:
        print_text(report)
    if args.keep:
        print(f"repo, data folder and xargs arguments kept under {root}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    if importlib.util.find_spec("gitopsd") is None:  # run from a checkout without installing
        sys.path.insert(0, str(engine.SOURCE_ROOT))
    sys.exit(main())
