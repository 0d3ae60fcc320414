"""The commands that act on an environment, through a real `gitopsd serve` (`--server` /
GITOPSD_SERVER with GITOPSD_TOKEN and a real tokens file): the token's identity acts, an
environment with `approvals.authenticated` takes such approvals and refuses a self-declared
`--as`, and every failure is exit 1 with a clear message, never a traceback."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.daemon.harness import DaemonProcess, free_port, outward_address
from tests.runtime.test_apply_runs import layered
from tests.runtime.world import World, environment

PEOPLE = {
    "alice": ["read", "approve"],
    "bob": ["read", "approve"],
    "ops": ["read", "operate"],
    "reader": ["read"],
}


def token(name: str) -> str:
    return f"{name}-secret-token"


def tokens_file(root: Path) -> Path:
    path = root / "tokens.yaml"
    entries = [
        {"name": name, "email": f"{name}@example.com", "roles": roles,
         "token_sha256": hashlib.sha256(token(name).encode()).hexdigest()}
        for name, roles in PEOPLE.items()
    ]  # fmt: skip
    path.write_text(yaml.safe_dump(entries))
    return path


def pipeline(size: int = 3) -> dict[str, str]:
    """dev tracks the branch; staging is promoted by hand; prod needs two approvals made
    with tokens."""
    sized = {"size": size}
    staging = environment("staging", variables=sized, promotion={"from": "dev", "auto": False})
    prod = environment(
        "prod",
        variables=sized,
        promotion={"from": "staging", "auto": True},
        approvals={"required": 2, "authenticated": True},
    )
    return layered(
        **{
            "environments/dev.yaml": environment("dev", variables=sized),
            "environments/staging.yaml": staging,
            "environments/prod.yaml": prod,
        }
    )


@pytest.fixture
def served(world: World) -> Iterator[DaemonProcess]:
    world.commit(pipeline())
    daemon = DaemonProcess(world, GITOPSD_TOKENS_FILE=str(tokens_file(world.root)))
    daemon.start("--poll-interval", "1h")
    daemon.wait_for(lambda: state(daemon, "dev")["status"] == "verified", what="dev applied")
    yield daemon
    daemon.stop()


def state(daemon: DaemonProcess, name: str) -> dict[str, Any]:
    response = daemon.get(f"/api/v1/environments/{name}", headers=as_("reader"))
    found: dict[str, Any] = response.json() if response.status_code == 200 else {}
    return found


def as_(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(name)}"}


def remote(
    world: World, daemon: DaemonProcess, who: str | None, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """`gitopsd ARGS --server URL` as `who` (GITOPSD_TOKEN; None: no token)."""
    more = {"GITOPSD_TOKEN": token(who)} if who else {}
    done = world.gitopsd(*args, "--server", daemon.url, env={**more, **env})
    assert "Traceback" not in done.stderr, done.stderr
    return done


def events(daemon: DaemonProcess, name: str, kind: str) -> list[dict[str, Any]]:
    page = daemon.get("/api/v1/events", params={"env": name}, headers=as_("reader")).json()
    return [e for e in reversed(page["events"]) if e["kind"] == kind]


def test_promote_and_approve_through_the_daemon_as_the_tokens_identity(
    world: World, served: DaemonProcess
) -> None:
    sha = state(served, "dev")["revision"]
    promoted = remote(world, served, "ops", "promote", "--to", "staging")
    assert promoted.returncode == 0, promoted.stderr
    assert f"staging: {promoted.stderr.split()[2]} succeeded" in promoted.stdout
    assert state(served, "staging")["revision"] == sha
    assert [e["actor"] for e in events(served, "staging", "promotion.started")] == ["ops"]
    served.wait_for(
        lambda: state(served, "prod")["status"] == "waiting_approval", what="prod waits"
    )

    declared = world.gitopsd("approve", "--env", "prod", "--as", "alice")
    assert declared.returncode == 1
    assert "approval refused: this environment takes only authenticated approvals" in (
        declared.stderr
    )
    first = remote(world, served, "alice", "approve", "--env", "prod")
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == f"alice approved {sha[:12]} for prod (1 more needed)"
    again = remote(world, served, "alice", "approve", "--env", "prod")
    assert again.returncode == 1
    assert "approval refused: alice has approved this revision already" in again.stderr

    env_server = world.gitopsd(
        "approve", "--env", "prod", "--output", "json",
        env={"GITOPSD_SERVER": served.url, "GITOPSD_TOKEN": token("bob")},
    )  # fmt: skip
    assert env_server.returncode == 0, env_server.stderr
    answer = json.loads(env_server.stdout)
    assert (answer["approver"], answer["authenticated"], answer["token"]) == ("bob", True, "bob")
    served.wait_for(lambda: state(served, "prod")["status"] == "verified", what="prod promoted")

    history = world.gitopsd("history", "--env", "prod", "--output", "json")
    assert history.returncode == 0, history.stderr
    recorded = [e for e in json.loads(history.stdout)["events"] if e["kind"] == "approval.recorded"]
    assert sorted(
        (e["actor"], e["data"]["authenticated"], e["data"]["token"]) for e in recorded
    ) == [
        ("alice", True, "alice"),
        ("bob", True, "bob"),
    ]
    assert all("with token" in e["message"] for e in recorded)


def test_as_with_server_is_a_usage_error(world: World, served: DaemonProcess) -> None:
    for args in (
        ("approve", "--env", "prod", "--as", "bob"),
        ("approve", "--env", "prod", "--email", "bob@example.com"),
        ("promote", "--to", "staging", "--as", "bob"),
        ("suspend", "--env", "dev", "--as", "bob"),
    ):
        done = remote(world, served, "alice", *args)
        assert done.returncode == 64, args
        assert "cannot be used with --server: the daemon acts as the identity" in done.stderr
    assert events(served, "prod", "approval.recorded") == []


def test_suspend_resume_rollback_and_cancel_through_the_daemon(
    world: World, served: DaemonProcess
) -> None:
    first = state(served, "dev")["revision"]
    suspended = remote(world, served, "ops", "suspend", "--env", "dev", "--reason", "freeze")
    assert suspended.returncode == 0, suspended.stderr
    assert suspended.stdout.strip() == (
        "dev suspended (freeze): automatic work waits for gitopsd resume"
    )
    assert state(served, "dev")["suspension"]["actor"] == "ops"
    twice = remote(world, served, "ops", "suspend", "--env", "dev")
    assert twice.returncode == 1 and "suspended already" in twice.stderr
    resumed = remote(world, served, "ops", "resume", "--env", "dev")
    assert resumed.returncode == 0 and "dev resumed (suspended by ops)" in resumed.stdout

    second = world.commit(pipeline(size=5))
    served.wait_for(lambda: state(served, "dev")["revision"] == second, what="dev at the second")
    served.wait_for(lambda: state(served, "dev")["status"] == "verified", what="dev verified")
    back = remote(world, served, "ops", "rollback", "--env", "dev", "--to", first)
    assert back.returncode == 0, back.stderr
    assert state(served, "dev")["revision"] == first
    held = state(served, "dev")["suspension"]  # the next commit would undo the rollback
    assert held["actor"] == "ops" and held["reason"].startswith(f"rolled back from {second[:12]}")
    assert f"dev suspended: {held['reason']} (gitopsd resume --env dev)" in back.stderr
    assert remote(world, served, "ops", "resume", "--env", "dev").returncode == 0
    refused = remote(world, served, "ops", "rollback", "--env", "staging", "--to", first)
    assert refused.returncode == 1
    assert f"staging never verified {first[:12]}" in refused.stderr

    world.control(sleep={"k8s:apply": 60})
    world.commit(pipeline(size=7))
    served.wait_for(lambda: running_run(served) is not None, what="a run in progress")
    run_id = running_run(served)
    assert run_id is not None
    cancelled = remote(world, served, "ops", "cancel", run_id)
    assert cancelled.returncode == 0, cancelled.stderr
    served.wait_for(lambda: run_status(served, run_id) == "cancelled", what="the run cancelled")
    unknown = remote(world, served, "ops", "cancel", "no-such-run")
    assert unknown.returncode == 1 and "unknown run 'no-such-run'" in unknown.stderr


def running_run(daemon: DaemonProcess) -> str | None:
    """The dev run with a step under way (its request has become a run)."""
    runs = daemon.get("/api/v1/runs", params={"env": "dev"}, headers=as_("reader")).json()
    for summary in runs["runs"]:
        if summary["status"] == "running":
            run = daemon.get(f"/api/v1/runs/{summary['id']}", headers=as_("reader")).json()
            if any(step["status"] == "running" for step in run["steps"]):
                return str(summary["id"])
    return None


def step_running(daemon: DaemonProcess, run_id: str) -> bool:
    run = daemon.get(f"/api/v1/runs/{run_id}", headers=as_("reader")).json()
    return any(step["status"] == "running" for step in run["steps"])


def run_status(daemon: DaemonProcess, run_id: str) -> str:
    return str(daemon.get(f"/api/v1/runs/{run_id}", headers=as_("reader")).json()["status"])


def test_failures_are_exit_1_with_a_clear_message(world: World, served: DaemonProcess) -> None:
    wrong = world.gitopsd(
        "promote", "--to", "staging", "--server", served.url, env={"GITOPSD_TOKEN": "nope"}
    )
    assert wrong.returncode == 1
    assert "invalid bearer token: set GITOPSD_TOKEN to a token the daemon at" in wrong.stderr
    missing = remote(world, served, None, "resume", "--env", "dev")
    assert missing.returncode == 1 and "missing bearer token" in missing.stderr
    lacking = remote(world, served, "reader", "promote", "--to", "staging")
    assert lacking.returncode == 1
    assert "'reader' does not have the 'operate' role" in lacking.stderr
    unknown = remote(world, served, "ops", "promote", "--to", "qa")
    assert unknown.returncode == 1 and "unknown environment 'qa'" in unknown.stderr
    nothing = remote(world, served, "ops", "promote", "--to", "dev")
    assert nothing.returncode == 1 and "dev follows the branch head" in nothing.stderr

    nobody = f"http://127.0.0.1:{free_port()}"
    gone = world.gitopsd("suspend", "--env", "dev", "--server", nobody, env=as_env("ops"))
    assert gone.returncode == 1
    assert f"cannot reach the gitopsd daemon at {nobody}" in gone.stderr
    assert "Traceback" not in gone.stderr
    as_json = world.gitopsd(
        "approve", "--env", "prod", "--server", nobody, "--output", "json", env=as_env("alice")
    )
    assert as_json.returncode == 1
    assert json.loads(as_json.stdout)["error"].startswith("cannot reach the gitopsd daemon")


@pytest.mark.parametrize("server", [None, ""])
def test_approve_on_the_store_still_needs_as(world: World, server: str | None) -> None:
    """Without --server (or with an empty GITOPSD_SERVER) the store is used, and it needs a
    name."""
    env = {} if server is None else {"GITOPSD_SERVER": server}
    done = world.gitopsd("approve", "--env", "prod", env=env)
    assert done.returncode == 64
    assert "Missing option '--as'" in done.stderr and "Traceback" not in done.stderr


# Run a command with SIGINT at its default, as a terminal starts it: a test suite started in the
# background by a script inherits SIGINT ignored, and Python then never raises KeyboardInterrupt.
AS_FROM_A_TERMINAL = [
    sys.executable,
    "-c",
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL);"
    " os.execv(sys.argv[1], sys.argv[1:])",
]


def test_ctrl_c_stops_following_not_the_run(world: World, served: DaemonProcess) -> None:
    world.control(sleep={"k8s:apply": 60})
    follower = subprocess.Popen(
        [
            *AS_FROM_A_TERMINAL,
            *world.command("promote", "--to", "staging"),
            "--server",
            served.url,
        ],
        cwd=world.root,
        env=world.env(**as_env("ops")),
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert follower.stderr is not None
    queued = follower.stderr.readline()
    assert queued.startswith("queued as ")
    run_id = queued.split()[2]
    served.wait_for(lambda: step_running(served, run_id), what="the promotion's first step")
    follower.send_signal(signal.SIGINT)
    _, rest = follower.communicate(timeout=30)
    assert follower.returncode == 130
    assert f"stopped following {run_id}; it goes on in the daemon" in rest
    assert "Traceback" not in rest
    assert run_status(served, run_id) == "running"
    assert remote(world, served, "ops", "cancel", run_id).returncode == 0
    served.wait_for(lambda: run_status(served, run_id) == "cancelled", what="the run cancelled")


def as_env(name: str) -> dict[str, str]:
    return {"GITOPSD_TOKEN": token(name)}


def test_a_token_sent_unencrypted_over_a_network_is_warned_of(world: World) -> None:
    """http:// to another host: the token crosses the network in clear text (warned of on
    stderr); to loopback, over https://, or without a token, nothing is said."""
    warning = "warning: GITOPSD_TOKEN is sent to"
    elsewhere = f"http://{outward_address()}:{free_port()}"
    told = world.gitopsd("resume", "--env", "dev", "--server", elsewhere, env=as_env("ops"))
    assert told.returncode == 1 and "Traceback" not in told.stderr
    assert f"{warning} {elsewhere} unencrypted (http://)" in told.stderr
    quiet = [
        world.gitopsd("resume", "--env", "dev", "--server", server, env=env)
        for server, env in (
            (f"http://127.0.0.1:{free_port()}", as_env("ops")),
            (f"https://{outward_address()}:{free_port()}", as_env("ops")),
            (elsewhere, {"GITOPSD_TOKEN": ""}),
        )
    ]
    assert [done.returncode for done in quiet] == [1, 1, 1]
    assert all(warning not in done.stderr for done in quiet)
