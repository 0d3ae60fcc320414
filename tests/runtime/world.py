"""A GitOps repo whose components run tests/runtime/driver.py, and a workspace on it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitopsd.adapters.checkouts import CheckoutCache
from gitopsd.adapters.clock import SystemClock
from gitopsd.adapters.command_driver import CommandDriverRunner
from gitopsd.adapters.gitrepo import GitSource
from gitopsd.engine.ports import StateStore
from gitopsd.runtime.runs.leases import holder_id
from gitopsd.runtime.runs.workspace import Workspace
from tests.gitrepos import commit_files

DRIVER = Path(__file__).with_name("driver.py")


def component(
    name: str,
    *,
    layer: str = "network",
    deps: tuple[str, ...] = (),
    inputs: dict[str, Any] | None = None,
    on_failure: str = "rollback",
    attempts: int = 1,
    health: bool = False,
    timeout: str = "30s",
    when: str | None = None,
) -> str:
    python = sys.executable
    commands = {a: [python, "../../driver.py", a] for a in ("plan", "apply", "destroy")}
    if health:
        commands["health"] = [python, "../../driver.py", "health"]
    spec = {
        "depends_on": list(deps),
        "inputs": inputs or {},
        "driver": {"type": "command", **commands},
        "timeout": timeout,
        "retry": {"attempts": attempts, "backoff": "1s", "max_backoff": "1s"},
        "on_failure": on_failure,
        **({"when": when} if when else {}),
    }
    return json.dumps(  # ensure_ascii=False: PyYAML rejects JSON surrogate escapes
        ensure_ascii=False,
        obj={
            "apiVersion": "gitopsd.io/v1",
            "kind": "Component",
            "metadata": {"name": name, "layer": layer},
            "spec": spec,
        },
    )


def environment(
    name: str, *, variables: dict[str, Any] | None = None, parallelism: int = 4, **spec: Any
) -> str:
    return json.dumps(  # ensure_ascii=False: PyYAML rejects JSON surrogate escapes
        ensure_ascii=False,
        obj={
            "apiVersion": "gitopsd.io/v1",
            "kind": "Environment",
            "metadata": {"name": name},
            "spec": {"variables": variables or {}, "parallelism": parallelism, **spec},
        },
    )


@dataclass
class World:
    root: Path

    @classmethod
    def committed(cls, root: Path, files: dict[str, str], **control: Any) -> World:
        """A world whose repo has `files` committed, the test driver's control file written."""
        made = cls(root)
        made.control(**control)
        made.commit(files)
        return made

    @property
    def repo(self) -> Path:
        return self.root / "repo"

    @property
    def journal_path(self) -> Path:
        return self.root / "journal.jsonl"

    @property
    def control_path(self) -> Path:
        return self.root / "control.json"

    def commit(
        self, files: dict[str, str], *, replace: bool = False, message: str = "change"
    ) -> str:
        files = {**files, "driver.py": DRIVER.read_text()}
        return commit_files(self.repo, files, replace=replace, message=message)

    def control(self, **settings: Any) -> None:
        self.control_path.write_text(json.dumps(settings))

    def journal(self) -> list[dict[str, Any]]:
        if not self.journal_path.exists():
            return []
        return [json.loads(line) for line in self.journal_path.read_text().splitlines()]

    def calls(self, action: str = "apply") -> list[str]:
        return [entry["component"] for entry in self.journal() if entry["action"] == action]

    def command(self, *args: str, data: Path | None = None, state: str | None = None) -> list[str]:
        """`gitopsd ARGS` on this world's repo, its data in `data` (default `root/data`) and
        its state at `state` (default: the data folder's own, which gitopsd picks itself)."""
        folder = data or self.root / "data"
        command = [sys.executable, "-m", "gitopsd", *args, "--repo", str(self.repo)]
        command += ["--data-dir", str(folder)]
        return command + (["--state", state] if state else [])

    def env(self, **more: str) -> dict[str, str]:
        """The environment a gitopsd process needs for the test driver to find its files."""
        own = {"TEST_JOURNAL": str(self.journal_path), "TEST_CONTROL": str(self.control_path)}
        return {**os.environ, **own, **more}

    def gitopsd(
        self, *args: str, env: dict[str, str] | None = None, **where: Any
    ) -> subprocess.CompletedProcess[str]:
        """Run `gitopsd ARGS` to its end (see `command` for `where`)."""
        return subprocess.run(
            self.command(*args, **where),
            cwd=self.root,
            env=self.env(**(env or {})),
            capture_output=True,
            text=True,
            timeout=60,
        )

    def start_gitopsd(
        self, *args: str, env: dict[str, str] | None = None, **where: Any
    ) -> subprocess.Popen[str]:
        """Start `gitopsd ARGS` without waiting for it (see `command` for `where`)."""
        return subprocess.Popen(
            self.command(*args, **where),
            cwd=self.root,
            env=self.env(**(env or {})),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def workspace(self, store: StateStore) -> Workspace:
        source = GitSource.open(str(self.repo), branch=None, data_dir=self.root / "data")
        env = {
            "TEST_JOURNAL": str(self.journal_path),
            "TEST_CONTROL": str(self.control_path),
            "PATH": "/usr/bin:/bin",
        }
        return Workspace(
            source=source,
            store=store,
            drivers=CommandDriverRunner(self.root / "data" / "work", base_env=env, kill_grace=1.0),
            checkouts=CheckoutCache(source, self.root / "data" / "checkouts"),
            clock=SystemClock(),
            data_dir=self.root / "data",
            holder=holder_id(),
        )

    def cleanup(self) -> None:
        shutil.rmtree(self.root / "data" / "checkouts", ignore_errors=True)
