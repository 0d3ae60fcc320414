"""A driver cannot read gitopsd's own environment through /proc.

Drivers run as gitopsd's user, and a process may read `/proc/PID/environ` of another process
of its user: gitopsd's, which holds every secret withheld from the driver's environment.
gitopsd makes itself not dumpable, so its /proc files are root's. A real driver looks for
its parent's environment; under root (which reads everything) the daemon and its driver run
as `nobody`, as gitopsd runs under its own user in production."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gitrepos import commit_files
from tests.secrets.stand import component, stand

NOBODY = 65534
SECRET = "hidden-secret-9d41"
PEEK = """\
import json, os
def peek(path):
    try:
        with open(path, "rb") as file:
            return "read " + ("with" if b"GITOPSD_SECRET_HIDDEN" in file.read() else "without")
    except OSError as error:
        return type(error).__name__
seen = {"parent": peek(f"/proc/{os.getppid()}/environ"), "own": peek("/proc/self/environ")}
with open(os.path.join(os.environ["DUMP"], "peek.json"), "w") as file:
    json.dump(seen, file)
"""


@pytest.fixture
def root() -> Iterator[Path]:
    """A folder the user gitopsd runs as (`nobody` under root) owns."""
    folder = Path(tempfile.mkdtemp(prefix="gitopsd-hidden-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def driver_python() -> str:
    """A Python any user may start (the driver needs only its standard library)."""
    return shutil.which("python3", path="/usr/bin:/bin") or sys.executable


def as_gitopsd_user(root: Path, command: list[str]) -> list[str]:
    """`command` as `nobody` when the tests run as root, else as it is."""
    if os.geteuid() != 0:
        return command
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot run gitopsd as another user")
    subprocess.run(["chown", "-R", f"{NOBODY}:{NOBODY}", str(root)], check=True)
    ids = [f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    return [setpriv, *ids, *command]


def test_a_driver_cannot_read_gitopsds_environment(root: Path) -> None:
    dump = root / "dumps"
    manifest = json.loads(component("peek", dump, inputs={}))
    manifest["spec"]["driver"]["apply"] = [driver_python(), "peek.py"]
    repo = stand(root, {"peek": json.dumps(manifest)})
    commit_files(
        repo,
        {"components/peek/component.yaml": json.dumps(manifest), "components/peek/peek.py": PEEK},
    )
    dump.chmod(0o777)
    command = [sys.executable, "-m", "gitopsd", "apply", "--env", "dev",
               "--repo", str(repo), "--data-dir", str(root / "data")]  # fmt: skip
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GITOPSD_")}
    env = {**clean, "HOME": str(root), "GITOPSD_SECRET_HIDDEN": SECRET}
    done = subprocess.run(
        as_gitopsd_user(root, command), cwd=root, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip

    assert done.returncode == 0, done.stdout + done.stderr
    seen = json.loads((dump / "peek.json").read_text())
    assert seen["own"] == "read without"  # the driver reads /proc, and has no such variable
    assert seen["parent"] == "PermissionError"
