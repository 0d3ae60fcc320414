"""The API of a real `gitopsd serve` under the whole auth matrix (SPEC section 6)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from gitopsd.runtime.service import paging
from tests.daemon.harness import DaemonProcess
from tests.runtime.test_apply_runs import layered
from tests.runtime.world import World

ROLES = {"reader": ["read"], "operator": ["operate"], "approver": ["approve"]}
WRONG = "not-a-token"


def token_of(name: str) -> str:
    return f"{name}-secret-token"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    """One daemon for the module: every request below is read-only or refused."""
    world = World(tmp_path_factory.mktemp("api"))
    world.control()
    world.commit(layered())
    tokens = world.root / "tokens.yaml"
    entries = [
        {
            "name": name,
            "email": f"{name}@example.com",
            "roles": roles,
            "token_sha256": hashlib.sha256(token_of(name).encode()).hexdigest(),
        }
        for name, roles in ROLES.items()
    ]
    tokens.write_text(yaml.safe_dump(entries))
    daemon = DaemonProcess(world, GITOPSD_TOKENS_FILE=str(tokens)).start("--poll-interval", "1h")
    admin = {"Authorization": f"Bearer {token_of('reader')}"}
    daemon.wait_for(
        lambda: daemon.environment("dev", headers=admin)["status"] == "verified", what="apply"
    )
    yield daemon
    daemon.stop()


def first_run_id(served: DaemonProcess) -> str:
    headers = {"Authorization": f"Bearer {token_of('reader')}"}
    runs = served.get("/api/v1/runs", params={"env": "dev"}, headers=headers).json()["runs"]
    return str(runs[-1]["id"])


# (method, path, body, role it needs, status when allowed)
ENDPOINTS = [
    ("GET", "/api/v1/environments", None, "read", 200),
    ("GET", "/api/v1/environments/dev", None, "read", 200),
    ("GET", "/api/v1/runs?env=dev&limit=5", None, "read", 200),
    ("GET", "/api/v1/runs/{run}", None, "read", 200),
    ("GET", "/api/v1/events?env=dev&limit=5", None, "read", 200),
    ("POST", "/api/v1/environments/dev/runs", {"action": "plan"}, "operate", 202),
    ("POST", "/api/v1/environments/dev/drift", None, "operate", 202),
    ("POST", "/api/v1/environments/dev/approvals", {}, "approve", 409),  # nothing pending
]
HOLDER = {"read": "reader", "operate": "operator", "approve": "approver"}
LACKING = {"read": "approver", "operate": "reader", "approve": "operator"}


def call(served: DaemonProcess, method: str, path: str, body: object, token: str | None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    url = path.replace("{run}", first_run_id(served))
    if method == "GET":
        return served.get(url, headers=headers).status_code
    return served.post(url, headers=headers, json=body).status_code


@pytest.mark.parametrize(("method", "path", "body", "role", "allowed"), ENDPOINTS)
@pytest.mark.parametrize("caller", ["nobody", "wrong", "lacking", "holder"])
def test_every_endpoint_under_every_kind_of_caller(
    served: DaemonProcess,
    method: str,
    path: str,
    body: object,
    role: str,
    allowed: int,
    caller: str,
) -> None:
    token = {
        "nobody": None,
        "wrong": WRONG,
        "lacking": token_of(LACKING[role]),
        "holder": token_of(HOLDER[role]),
    }[caller]
    expected = {"nobody": 401, "wrong": 401, "lacking": 403, "holder": allowed}[caller]
    assert call(served, method, path, body, token) == expected


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
def test_probes_and_metrics_need_no_token(served: DaemonProcess, path: str) -> None:
    assert served.get(path).status_code == 200


def test_errors_are_json_with_the_right_codes(served: DaemonProcess) -> None:
    reader = {"Authorization": f"Bearer {token_of('reader')}"}
    operator = {"Authorization": f"Bearer {token_of('operator')}"}
    missing = served.get("/api/v1/environments/nope", headers=reader)
    assert missing.status_code == 404 and "nope" in missing.json()["error"]
    unknown_run = served.get("/api/v1/runs/nope", headers=reader)
    assert unknown_run.status_code == 404
    malformed = served.post("/api/v1/environments/dev/runs", headers=operator, json={"action": "x"})
    assert malformed.status_code == 422 and "action" in malformed.json()["error"]
    unknown_revision = served.post(
        "/api/v1/environments/dev/runs",
        headers=operator,
        json={"action": "apply", "revision": "nosuch"},
    )
    assert unknown_revision.status_code == 422
    where = str(served.world.repo)
    error = f"no commit named 'nosuch' in the repository {where!r}"
    assert unknown_revision.json() == {"error": error}
    huge = served.post(
        "/api/v1/environments/dev/runs", headers=operator, content=b"{" + b" " * 2_000_000 + b"}"
    )
    assert huge.status_code == 413
    unauthorized = served.get("/api/v1/environments")
    assert unauthorized.json() == {"error": "missing bearer token"}
    assert unauthorized.headers["www-authenticate"] == "Bearer"
    assert served.ready()  # none of that hurt the daemon


@pytest.mark.parametrize("number", [10**22, 2**63, -(2**63) - 1])
@pytest.mark.parametrize(
    "path", ["/api/v1/events?cursor={c}", "/api/v1/runs/{run}?steps_cursor={c}"]
)
def test_a_cursor_with_a_number_past_64_bits_is_422(
    served: DaemonProcess, path: str, number: int
) -> None:
    reader = {"Authorization": f"Bearer {token_of('reader')}"}
    url = path.replace("{run}", first_run_id(served)).replace("{c}", paging.encode(number))
    response = served.get(url, headers=reader)
    assert response.status_code == 422
    assert response.json()["error"].endswith("cursor: not a cursor this API handed out")


@pytest.mark.parametrize("path", ["/api/v1/runs?env=nope", "/api/v1/events?env=nope"])
def test_a_list_of_an_unknown_environment_is_404(served: DaemonProcess, path: str) -> None:
    reader = {"Authorization": f"Bearer {token_of('reader')}"}
    response = served.get(path, headers=reader)
    assert response.status_code == 404
    assert response.json() == {"error": "unknown environment 'nope'"}


def test_without_a_tokens_file_only_loopback_is_served(tmp_path: Path) -> None:
    world = World.committed(tmp_path, layered())
    env = {k: v for k, v in os.environ.items() if k != "GITOPSD_TOKENS_FILE"}
    done = subprocess.run(
        [sys.executable, "-m", "gitopsd", "serve", "--listen", "0.0.0.0:8080",
         "--repo", str(world.repo), "--data-dir", str(tmp_path / "data")],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    assert "loopback" in done.stderr and "GITOPSD_TOKENS_FILE" in done.stderr


def serve_fails(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    world = World.committed(tmp_path, layered())
    environment = {k: v for k, v in os.environ.items() if not k.startswith("GITOPSD_")}
    return subprocess.run(
        [sys.executable, "-m", "gitopsd", "serve", "--repo", str(world.repo),
         "--data-dir", str(tmp_path / "data")],
        env={**environment, **env}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_a_broken_tokens_file_stops_serve_with_its_line_and_field(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(
        "- name: alice\n  email: alice@example.com\n  roles: [read, admin]\n"
        f"  token_sha256: {'a' * 64}\n"
    )
    done = serve_fails(tmp_path, GITOPSD_TOKENS_FILE=str(tokens))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"{tokens}:3: roles[1]" in done.stderr


def test_a_bad_setting_stops_serve_naming_the_variable(tmp_path: Path) -> None:
    done = serve_fails(tmp_path, GITOPSD_POLL_INTERVAL="soon")
    assert done.returncode == 64 and "Traceback" not in done.stderr
    assert "poll_interval (GITOPSD_POLL_INTERVAL)" in done.stderr and "soon" in done.stderr


def test_a_setting_of_the_wrong_kind_is_said_in_a_users_words(tmp_path: Path) -> None:
    """It was pydantic's: `Input should be a valid integer, unable to parse string as an
    integer`."""
    done = serve_fails(tmp_path, GITOPSD_MAX_BODY="1.5MB")
    assert done.returncode == 64 and "Traceback" not in done.stderr
    assert "max_body (GITOPSD_MAX_BODY): expected a whole number, got a string ('1.5MB')" in (
        done.stderr
    )


def test_a_poll_interval_under_a_tenth_of_a_second_is_refused(tmp_path: Path) -> None:
    """0.0001 s was accepted, and the scheduler logged about 1,600 skipped polls a second."""
    done = serve_fails(tmp_path, GITOPSD_POLL_INTERVAL="0.0001")
    assert done.returncode == 64 and "Traceback" not in done.stderr
    assert "poll_interval (GITOPSD_POLL_INTERVAL)" in done.stderr
    assert "greater than or equal to 0.1" in done.stderr


def test_a_bad_github_repository_stops_serve_naming_the_variable(tmp_path: Path) -> None:
    done = serve_fails(tmp_path, GITOPSD_GITHUB_REPOSITORY="octo-org")
    assert done.returncode == 64 and "Traceback" not in done.stderr
    assert "github_repository (GITOPSD_GITHUB_REPOSITORY)" in done.stderr
