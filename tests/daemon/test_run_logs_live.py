"""`GET /api/v1/runs/{id}/logs` on a real `gitopsd serve`: a command driver's output arrives as
it prints it (Server-Sent Events), redacted and capped as stored, and after the run the text
is the stored output.

The drivers here print, then wait for a file the test creates: what arrived before the file
exists arrived while the step was running, with no timing involved.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.daemon.conftest import StartDaemon
from tests.daemon.harness import DaemonProcess
from tests.runtime.world import World, environment
from tests.server_events import events

SECRET = "hunter2-not-for-logs"
CAP = 65536  # the command driver's output cap
LINE = 100  # bytes per line of the big driver's output
BIG_LINES = 2000  # 200,000 bytes: three times the cap

PRINTER = """
import json, os, sys, time
from pathlib import Path

inputs = json.loads(Path(os.environ["GITOPSD_INPUTS"]).read_text())
component = os.environ["GITOPSD_COMPONENT"]
if sys.argv[1] != "apply":
    sys.exit(2 if sys.argv[1] in ("plan", "check") else 0)
if inputs.get("big"):
    for n in range(inputs["big"]):
        sys.stdout.write(f"line {n:06d} ".ljust(99, ".") + "\\n")
else:
    print(f"{component} starts with token {inputs['api_token']}")
    sys.stdout.write("a line not ended yet")
sys.stdout.flush()
gate = Path(os.environ["TEST_GATES"]) / component
while not gate.exists():
    time.sleep(0.02)
print(f" ... {component} done")
"""


def printing(name: str, *, deps: tuple[str, ...] = (), **inputs: Any) -> str:
    python = sys.executable
    commands = {action: [python, "../../printer.py", action] for action in ("plan", "apply")}
    return json.dumps(
        {
            "apiVersion": "gitopsd.io/v1",
            "kind": "Component",
            "metadata": {"name": name, "layer": "network" if not deps else "platform"},
            "spec": {
                "depends_on": list(deps),
                "inputs": inputs,
                "driver": {"type": "command", **commands},
            },
        }
    )


@pytest.fixture
def world(tmp_path: Path) -> World:
    files = {
        "environments/dev.yaml": environment("dev"),
        "printer.py": PRINTER,
        "components/net/component.yaml": printing("net", api_token=SECRET),
        "components/big/component.yaml": printing("big", deps=("net",), big=BIG_LINES),
    }
    return World.committed(tmp_path, files)


def serve(world: World, daemon: StartDaemon, **env: str) -> DaemonProcess:
    gates = world.root / "gates"
    gates.mkdir()
    return daemon("--poll-interval", "1h", TEST_GATES=str(gates), **env)


def release(world: World, component: str) -> None:
    (world.root / "gates" / component).write_text("")


def running_run(served: DaemonProcess, component: str, **headers: str) -> str:
    """The id of the run whose `component` step is running."""
    found: list[str] = []

    def started() -> bool:
        runs = served.get("/api/v1/runs", params={"env": "dev"}, headers=headers).json()["runs"]
        for run in runs:
            steps = served.get(f"/api/v1/runs/{run['id']}", headers=headers).json()["steps"]
            if any(s["component"] == component and s["status"] == "running" for s in steps):
                found.append(run["id"])
        return bool(found)

    served.wait_for(started, what=f"{component}'s driver to run")
    return found[0]


@contextlib.contextmanager
def stream(served: DaemonProcess, run_id: str, **headers: str) -> Iterator[httpx.Response]:
    """The run's logs as an EventSource asks for them; the connection is closed after."""
    headers = {"Accept": "text/event-stream", **headers}
    with (
        httpx.Client(timeout=30) as client,
        client.stream("GET", f"{served.url}/api/v1/runs/{run_id}/logs", headers=headers) as sent,
    ):
        assert sent.status_code == 200, sent.read()
        assert sent.headers["content-type"].startswith("text/event-stream")
        yield sent


def stored_text(served: DaemonProcess, run_id: str) -> str:
    """The stored outputs of the run's steps under their headers, as the logs route says."""
    run = served.get(f"/api/v1/runs/{run_id}").json()
    text = ""
    for step in run["steps"]:
        if step["status"] not in ("pending", "skipped"):
            output = step["output"]
            ending = "" if not output or output.endswith("\n") else "\n"
            text += f"==> {step['action']} {step['component']}\n{output}{ending}"
    return text


def finished(served: DaemonProcess, run_id: str) -> bool:
    return bool(served.get(f"/api/v1/runs/{run_id}").json()["status"] == "succeeded")


def test_output_arrives_as_printed_redacted_and_a_reconnect_gets_no_duplicates(
    world: World, daemon: StartDaemon
) -> None:
    served = serve(world, daemon)
    run_id = running_run(served, "net")
    seen, last_id = "", ""
    with stream(served, run_id) as live:
        for event_id, kind, data in events(live.iter_lines()):
            assert kind == "output"
            seen, last_id = seen + data, event_id
            if "starts with token" in seen:
                break
    # the driver waits for its gate: all of this came while its step was running
    assert seen == "==> apply net\nnet starts with token ***\n"  # the open line is held back
    assert SECRET not in seen

    release(world, "net")
    release(world, "big")
    with stream(served, run_id, **{"Last-Event-ID": last_id}) as resumed:
        received = list(events(resumed.iter_lines()))
    assert received[-1][1] == "end" and all(kind == "output" for _, kind, _ in received[:-1])
    seen += "".join(data for _, kind, data in received[:-1])

    assert finished(served, run_id)
    text = served.get(f"/api/v1/runs/{run_id}/logs")  # httpx accepts */*; the run has ended
    assert text.status_code == 200 and text.headers["content-type"].startswith("text/plain")
    assert text.text == stored_text(served, run_id) == seen
    assert seen.count("net starts with token") == 1
    assert "net starts with token ***\na line not ended yet ... net done\n" in seen
    assert SECRET not in text.text


def test_live_output_is_capped_as_the_stored_output_is(world: World, daemon: StartDaemon) -> None:
    served = serve(world, daemon)
    release(world, "net")
    run_id = running_run(served, "big")
    head_lines = CAP // 2 // LINE  # whole lines within the head kept when output is cut
    last_in_head = f"line {head_lines - 1:06d} "
    plain = {"Accept": "text/plain"}

    def shown() -> str:
        return served.get(f"/api/v1/runs/{run_id}/logs", headers=plain).text

    served.wait_for(lambda: last_in_head in shown(), what="the head of big's output")
    live = shown()  # big's driver has printed all its lines and waits for its gate
    assert f"line {head_lines:06d} " not in live  # past the head: only known when it ends
    assert live.endswith(last_in_head.ljust(LINE - 1, ".") + "\n")

    release(world, "big")
    served.wait_for(lambda: finished(served, run_id), what="the run to end")
    after = shown()
    assert after == stored_text(served, run_id)
    assert after.startswith(live)  # what was live is what is stored
    assert "bytes omitted ..." in after and f"line {BIG_LINES - 1:06d} " in after
    assert len(after.split("==> apply big\n")[1]) <= CAP + 100  # the cap and its marker


def test_unknown_runs_are_404_and_reading_needs_the_read_role(
    world: World, daemon: StartDaemon
) -> None:
    tokens = world.root / "tokens.yaml"
    entries = [
        {
            "name": name,
            "email": f"{name}@example.com",
            "roles": roles,
            "token_sha256": hashlib.sha256(name.encode()).hexdigest(),
        }
        for name, roles in (("reader", ["read"]), ("operator", ["operate"]))
    ]
    tokens.write_text(yaml.safe_dump(entries))
    served = serve(world, daemon, GITOPSD_TOKENS_FILE=str(tokens))
    reader = {"Authorization": "Bearer reader"}
    run_id = running_run(served, "net", **reader)
    path = f"/api/v1/runs/{run_id}/logs"

    assert served.get(path, headers={"Accept": "text/plain"}).status_code == 401
    assert served.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
    refused = served.get(path, headers={"Authorization": "Bearer operator"})
    assert refused.status_code == 403 and "read" in refused.json()["error"]
    answer = served.get(path, headers={"Accept": "text/plain", **reader})
    assert answer.status_code == 200 and answer.text.startswith("==> apply net\n")
    unknown = served.get("/api/v1/runs/no-such-run/logs", headers=reader)
    assert unknown.status_code == 404 and "no-such-run" in unknown.json()["error"]


def test_an_open_stream_does_not_hold_up_the_daemons_stop(
    world: World, daemon: StartDaemon
) -> None:
    served = serve(world, daemon, GITOPSD_SHUTDOWN_GRACE="0.5")
    run_id = running_run(served, "net")
    with stream(served, run_id) as live:
        received = events(live.iter_lines())
        assert next(received)[1] == "output"
        assert served.terminate() == 0
        with pytest.raises(httpx.RemoteProtocolError):  # ended by the server, with no `end`
            list(received)
    assert "graceful shutdown exceeded" not in served.logs()
