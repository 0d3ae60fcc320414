"""Start-up benchmark: how long short `gitopsd` commands take on the bundled example repo.

What it does
    1. Copies the example GitOps repo of this checkout (`gitopsd.yaml`, `environments/`,
       `components/`) into a fresh git repository and commits it.
    2. Applies `dev` once with `gitopsd apply` on a fresh data folder (not timed), so that
       `gitopsd drift` has applied components to check, as a scheduled drift check after an
       apply does.
    3. `--repeat` rounds of, one after the other, each a subprocess timed end to end:
       `gitopsd --help`, `gitopsd validate --repo R` and
       `gitopsd drift --env dev --repo R --data-dir D --state sqlite:///D/state.db`.
       Each is reported as its best wall-clock time and its best CPU time (user + system,
       git's processes included): on a busy machine the CPU time moves less.
    4. Judges the start-up budget: each command's best wall-clock time at most 0.5 s.

Before measuring, gitopsd is byte-compiled (`python -m compileall`), as installing its wheel
does: an editable install under PYTHONDONTWRITEBYTECODE=1 would otherwise compile every module
from source at every start, which no installed gitopsd does.

Why
    A scheduler or a CI step starts gitopsd for one short command; what it waits for is mostly
    the interpreter starting and gitopsd importing what the command needs. The example repo is
    small on purpose: the figures are start-up, not loading (`load.py` measures that).

The script is a report, not a test: it exits 0 whatever the figures, and non-zero only if it
crashed. A command that exits with another code than expected (0; drift 0 when in sync) is
printed with its stderr and stops the benchmark.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ("gitopsd.yaml", "environments", "components")
GIT_IDENTITY = ("-c", "user.name=bench", "-c", "user.email=bench@example.invalid")
TIMEOUT = 300.0
GOAL_SECONDS = 0.5  # the start-up budget: each command's best wall-clock time, on a quiet machine


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs of each command; best is kept")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def gitopsd_environment() -> dict[str, str]:
    """The caller's environment without `GITOPSD_*`, with `daemon/` on PYTHONPATH when the
    interpreter cannot import gitopsd by itself."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("GITOPSD_")}
    probe = [sys.executable, "-c", "import gitopsd"]
    if subprocess.run(probe, env=env, capture_output=True, check=False).returncode != 0:
        env["PYTHONPATH"] = os.pathsep.join(
            part for part in (str(ROOT / "daemon"), env.get("PYTHONPATH", "")) if part
        )
    return env


def byte_compile(env: dict[str, str]) -> None:
    """Write the bytecode of the gitopsd that `env` imports (see the module docstring)."""
    probe = [sys.executable, "-c", "import gitopsd; print(gitopsd.__path__[0])"]
    package = subprocess.run(probe, env=env, capture_output=True, text=True, check=True)
    compile_all = [sys.executable, "-m", "compileall", "-q", package.stdout.strip()]
    subprocess.run(compile_all, env=env, capture_output=True, check=True)


def make_repo(repo: Path) -> None:
    """The example repo, committed in a repository of its own."""
    repo.mkdir()
    for name in EXAMPLE:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, repo / name)
    git = ["git", *GIT_IDENTITY, "-C", str(repo)]
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "example"], check=True)


def commands(repo: Path, data: Path) -> dict[str, list[str]]:
    gitopsd = [sys.executable, "-m", "gitopsd"]
    state = ["--data-dir", str(data), "--state", f"sqlite:///{data}/state.db"]
    return {
        "--help": [*gitopsd, "--help"],
        "validate": [*gitopsd, "validate", "--repo", str(repo)],
        "drift": [*gitopsd, "drift", "--env", "dev", "--repo", str(repo), *state],
        "apply": [*gitopsd, "apply", "--env", "dev", "--repo", str(repo), *state],
    }


def run(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """Seconds `argv` took, wall clock and CPU (user + system, its children included); a
    failure is an error with the command's stderr."""
    before = _children_cpu()
    started = time.perf_counter()
    done = subprocess.run(
        argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}:\n{done.stderr}")
    return seconds, _children_cpu() - before


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(repeat: int, scratch: Path) -> dict[str, list[tuple[float, float]]]:
    """Each command's (wall, CPU) seconds, one pair per round."""
    repo, data = scratch / "repo", scratch / "data"
    make_repo(repo)
    env = gitopsd_environment()
    byte_compile(env)
    argvs = commands(repo, data)
    run(argvs.pop("apply"), env, scratch)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in argvs}
    for _ in range(repeat):
        for name, argv in argvs.items():
            times[name].append(run(argv, env, scratch))
    return times


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="gitopsd-startup-") as scratch:
        times = measure(args.repeat, Path(scratch))
    if args.json:
        print(json.dumps({"python": platform.python_version(), "wall_and_cpu_seconds": times}))
        return 0
    print(f"python {platform.python_version()}, {os.cpu_count()} cores, best of {args.repeat}")
    for name, pairs in times.items():
        walls, cpus = [wall for wall, _ in pairs], [cpu for _, cpu in pairs]
        every = " ".join(f"{value:.3f}" for value in walls)
        print(f"gitopsd {name:<9} {min(walls):.3f} s, CPU {min(cpus):.3f} s   (every run: {every})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
