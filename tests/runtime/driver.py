#!/usr/bin/env python3
"""A test driver: journals every call, writes outputs, fails or sleeps on demand.

Controlled by the JSON file named in TEST_CONTROL:
  {"fail": {"k8s:apply": 2}}  fail the first 2 tries (-1: always);
                              "k8s:apply@<sha>" fails only at that revision
  {"sleep": {"net:apply": 0.3}}  sleep before answering
  {"plan": {"net": 0}}  exit code of plan/check
  {"kill_parent": {"k8s:apply": "before"}}  SIGKILL gitopsd once, before or after the work
"""

import json
import os
import signal
import sys
import time
from pathlib import Path


def work(seconds: float) -> None:
    """Sleep in slices, so that time spent stopped (SIGSTOP) does not count as work done."""
    for _ in range(int(seconds / 0.05)):
        time.sleep(0.05)
    time.sleep(seconds % 0.05)


def main() -> int:
    action = sys.argv[1]
    component = os.environ["GITOPSD_COMPONENT"]
    control = json.loads(Path(os.environ["TEST_CONTROL"]).read_text() or "{}")
    inputs = json.loads(Path(os.environ["GITOPSD_INPUTS"]).read_text())
    key = f"{component}:{action}"
    journal = Path(os.environ["TEST_JOURNAL"])
    started = time.time()
    kill = control.get("kill_parent", {}).get(key)
    marker = journal.with_name(f"killed-{key}")
    if kill == "before" and not marker.exists():
        marker.write_text("")
        os.kill(os.getppid(), signal.SIGKILL)  # gitopsd dies with this step recorded running
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
    if kill == "after" and not marker.exists():
        marker.write_text("")
        os.kill(os.getppid(), signal.SIGKILL)  # the work is done; gitopsd never hears of it
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
    print(f"{key} exit {code}")
    return code


if __name__ == "__main__":
    sys.exit(main())
