#!/usr/bin/env python3
"""A test driver: journals every call, writes outputs, fails or sleeps on demand.

Controlled by the JSON file named in TEST_CONTROL:
  {"fail": {"k8s:apply": 2}}  fail the first 2 tries (-1: always);
                              "k8s:apply@<sha>" fails only at that revision
  {"sleep": {"net:apply": 0.3}}  sleep before answering
  {"plan": {"net": 0}}  exit code of plan/check
  {"kill_parent": {"k8s:apply": "before"}}  SIGKILL gitopsd once, before or after the work
  {"orphan": {"k8s:apply": 5}}  once: do the call in a child process of the driver's group
                                (as a shell running a tool would), which SIGKILLs gitopsd and
                                its reaper helper and then works 5 s more, an orphan, unless
                                it is stopped

Every process doing a call's work also appends to `spans.jsonl` next to TEST_JOURNAL: a
"start" line when it begins and an "end" line when it ends (done, or stopped by SIGTERM), each
with its pid and the time, so tests can tell whether two calls of one component overlapped.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def work(seconds: float) -> None:
    """Sleep in slices, so that time spent stopped (SIGSTOP) does not count as work done."""
    for _ in range(int(seconds / 0.05)):
        time.sleep(0.05)
    time.sleep(seconds % 0.05)


def span(journal: Path, key: str, event: str, **more: Any) -> None:
    """One line of spans.jsonl; a single short append, so lines of processes do not mix."""
    line = {"key": key, "pid": os.getpid(), "event": event, "at": time.time(), **more}
    with journal.with_name("spans.jsonl").open("a") as handle:
        handle.write(json.dumps(line) + "\n")


def orphaned(journal: Path, key: str, action: str, seconds: float) -> int:
    """Do the call in a child of this process's group, which kills gitopsd, then go on."""
    marker = journal.with_name(f"orphaned-{key}")
    marker.write_text("")
    child = {**os.environ, "TEST_ORPHAN_WORK": str(seconds), "TEST_GITOPSD": str(os.getppid())}
    return subprocess.call([sys.executable, __file__, action], env=child)


def kill_with_reaper(gitopsd: int) -> None:
    """SIGKILL gitopsd and the helper that would end its drivers when it dies (as when both
    are killed), so only the next command can end this orphan."""
    for name in os.listdir("/proc"):
        try:
            stat = Path(f"/proc/{name}/stat").read_bytes()
            command = Path(f"/proc/{name}/cmdline").read_bytes()
        except OSError:
            continue
        parent = int(stat[stat.rfind(b")") + 2 :].split()[1])
        if parent == gitopsd and b"gitopsd-reaper" in command:
            os.kill(int(name), signal.SIGKILL)
    os.kill(gitopsd, signal.SIGKILL)


def stopped(journal: Path, key: str) -> None:
    def handler(signum: int, _: object) -> None:
        span(journal, key, "end", signal=signum)
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def main() -> int:
    action = sys.argv[1]
    component = os.environ["GITOPSD_COMPONENT"]
    control = json.loads(Path(os.environ["TEST_CONTROL"]).read_text() or "{}")
    inputs = json.loads(Path(os.environ["GITOPSD_INPUTS"]).read_text())
    key = f"{component}:{action}"
    journal = Path(os.environ["TEST_JOURNAL"])
    orphan = control.get("orphan", {}).get(key)
    if orphan is not None and not journal.with_name(f"orphaned-{key}").exists():
        return orphaned(journal, key, action, orphan)
    started = time.time()
    span(journal, key, "start")
    stopped(journal, key)
    if "TEST_GITOPSD" in os.environ:  # the orphan: gitopsd dies now, the work goes on
        kill_with_reaper(int(os.environ["TEST_GITOPSD"]))
        work(float(os.environ["TEST_ORPHAN_WORK"]))
    kill = control.get("kill_parent", {}).get(key)
    marker = journal.with_name(f"killed-{key}")
    if kill == "before" and not marker.exists():
        marker.write_text("")
        os.kill(os.getppid(), signal.SIGKILL)  # gitopsd dies with this step recorded running
        span(journal, key, "end", code=1)
        return 1
    work(control.get("sleep", {}).get(key, 0))
    tries = (
        sum(1 for line in journal.read_text().splitlines() if json.loads(line)["key"] == key)
        if journal.exists()
        else 0
    )
    fails = control.get("fail", {})
    failing = fails.get(f"{key}@{os.environ['GITOPSD_REVISION']}", fails.get(key, 0))
    code = 1 if failing == -1 or tries < failing else 0
    if action in ("plan", "check") and code == 0:
        code = control.get("plan", {}).get(component, 2)
    if action == "apply" and code == 0:
        outputs = {"id": f"{component}-{os.environ['GITOPSD_ENVIRONMENT']}", "seen": inputs}
        Path(os.environ["GITOPSD_OUTPUTS"]).write_text(json.dumps(outputs))
        state = Path(os.environ["GITOPSD_STATE_DIR"]) / "applied"
        state.write_text(os.environ["GITOPSD_REVISION"])
    if action == "destroy" and code == 0:
        (Path(os.environ["GITOPSD_STATE_DIR"]) / "applied").unlink(missing_ok=True)
    record = {
        "key": key,
        "component": component,
        "action": action,
        "code": code,
        "environment": os.environ["GITOPSD_ENVIRONMENT"],
        "revision": os.environ["GITOPSD_REVISION"],
        "inputs": inputs,
        "started": started,
        "ended": time.time(),
        "cwd": os.getcwd(),
    }
    with journal.open("a") as handle:
        handle.write(json.dumps(record) + "\n")
    span(journal, key, "end", code=code)
    if kill == "after" and not marker.exists():
        marker.write_text("")
        os.kill(os.getppid(), signal.SIGKILL)  # the work is done; gitopsd never hears of it
    print(f"{key} exit {code}")
    return code


if __name__ == "__main__":
    sys.exit(main())
