"""What refusing an oversized manifest costs: `gitopsd validate` of a 50 MB environment file.

Issue 17, finding 5: a 50 MB environment file with 3 million variables passed `validate`
after 30 s at 3.1 GB of memory. The limits of `gitopsd.yaml` (`limits.max_file_bytes`, 1 MiB
by default) are checked from git's sizes before anything is read, so the file is refused
unread. This commits such a file to a fresh repository, runs `python -m gitopsd validate` as
a subprocess, and prints its exit code, wall time and peak memory (the child's maximum RSS).

A report, not a test: it exits 0 whatever the figures.

    python benchmarks/oversized.py [--variables 3000000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEAD = "apiVersion: gitopsd.io/v1\nkind: Environment\nmetadata: {name: dev}\nspec:\n  variables:\n"
COMPONENT = (
    "apiVersion: gitopsd.io/v1\nkind: Component\nmetadata: {name: net, layer: network}\n"
    "spec:\n  driver: {type: command, plan: ./plan.sh, apply: ./apply.sh}\n"
)


def make_repo(folder: Path, variables: int) -> int:
    """A committed repo whose environments/dev.yaml has `variables` variables; its size."""
    (folder / "environments").mkdir(parents=True)
    (folder / "components" / "net").mkdir(parents=True)
    with (folder / "environments" / "dev.yaml").open("w") as file:  # in slices: this
        file.write(HEAD)  # process's peak memory would be the measured child's (fork)
        for start in range(0, variables, 100_000):
            stop = min(start + 100_000, variables)
            file.write("".join(f"    v{i:08d}: xx\n" for i in range(start, stop)))
    (folder / "components" / "net" / "component.yaml").write_text(COMPONENT)
    identity = ["-c", "user.name=bench", "-c", "user.email=bench@example.com"]
    for command in (["init", "-q"], ["add", "-A"], [*identity, "commit", "-qm", "big"]):
        subprocess.run(["git", *command], cwd=folder, check=True)
    return (folder / "environments" / "dev.yaml").stat().st_size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variables", type=int, default=3_000_000)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        repo = Path(scratch) / "repo"
        size = make_repo(repo, options.variables)
        started = time.perf_counter()
        child = subprocess.Popen(
            [sys.executable, "-m", "gitopsd", "validate", "--repo", str(repo)],
            cwd=scratch,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        # wait4: this child's usage (and its git commands'), not the repo's `git add` of 50 MB
        _, status, usage = os.wait4(child.pid, 0)
        elapsed = time.perf_counter() - started
        assert child.stdout is not None
        output = child.stdout.read().decode()
        code = os.waitstatus_to_exitcode(status)
    peak_kib = usage.ru_maxrss
    print(f"environments/dev.yaml: {size:,} bytes, {options.variables:,} variables")
    print(f"validate: exit {code} in {elapsed:.2f} s, peak RSS {peak_kib / 1024:.0f} MB")
    print(output.strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
