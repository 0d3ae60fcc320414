"""Tokens scoped to environments (a tokens file entry's `environments`): outside them a read
answers 404 as for an unknown environment, an action 403, and lists keep only the token's
environments; a token without `environments` reaches every one. The tokens file is a real
file, loaded as the daemon loads it."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from gitopsd.api.auth import Tokens, hash_token
from gitopsd.errors import TokensFileError
from tests.api.conftest import MakeClient, TestClient
from tests.api.fake_control import FakeControl

DEV_ONLY = {"Authorization": "Bearer dev-team-token"}
EVERYWHERE = {"Authorization": "Bearer platform-token"}

TOKENS_FILE = f"""
- name: dev-team
  email: dev@example.com
  roles: [read, operate, approve]
  token_sha256: {hash_token("dev-team-token")}
  environments: [dev]
- name: platform
  email: platform@example.com
  roles: [read, operate, approve]
  token_sha256: {hash_token("platform-token")}
"""

# routes that read prod: each answers as for an environment nobody knows
READS_OF_PROD = [
    "/api/v1/environments/prod",
    "/api/v1/runs?env=prod",
    "/api/v1/events?env=prod",
    "/api/v1/environments/prod/diff",
    "/api/v1/environments/dev/diff?environment=prod",  # prod read as the other side
]
# routes that act on prod, with the body each takes
ACTIONS_ON_PROD: list[tuple[str, str, dict[str, Any] | None]] = [
    ("POST", "/api/v1/environments/prod/runs", {"action": "apply"}),
    ("POST", "/api/v1/environments/prod/drift", None),
    ("POST", "/api/v1/environments/prod/approvals", {"revision": "abc"}),
    ("POST", "/api/v1/environments/prod/suspension", {"reason": "freeze"}),
    ("DELETE", "/api/v1/environments/prod/suspension", None),
    ("POST", "/api/v1/environments/prod/promotions", {}),
    ("POST", "/api/v1/environments/prod/rollbacks", {"revision": "abc"}),
    ("POST", "/api/v1/runs/run-2/cancel", None),  # run-2 is a run of prod
]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tokens.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


@pytest.fixture
def scoped(make_client: MakeClient, tmp_path: Path) -> TestClient:
    return make_client(tokens=Tokens.load(write(tmp_path, TOKENS_FILE)))


@pytest.mark.parametrize("path", READS_OF_PROD)
def test_a_read_outside_the_scope_is_an_unknown_environment(
    scoped: TestClient, fake: FakeControl, path: str
) -> None:
    answer = scoped.get(path, headers=DEV_ONLY)
    assert answer.status_code == 404
    assert all("prod" not in call.args for call in fake.calls)  # the daemon was not asked
    assert answer.json() == {"error": "unknown environment 'prod'"}


@pytest.mark.parametrize(("method", "path", "body"), ACTIONS_ON_PROD, ids=lambda p: str(p))
def test_an_action_outside_the_scope_is_forbidden_and_never_reaches_the_daemon(
    scoped: TestClient, fake: FakeControl, method: str, path: str, body: dict[str, Any] | None
) -> None:
    before = [call.method for call in fake.calls]
    answer = scoped.request(method, path, json=body, headers=DEV_ONLY)
    assert answer.status_code == 403
    assert answer.json()["error"] == (
        "'dev-team' may not act on environment 'prod': it is not among the token's environments"
    )
    asked = [call.method for call in fake.calls][len(before) :]
    assert set(asked) <= {"run"}  # at most the look-up of the run's environment


def test_a_run_of_another_environment_is_unknown_to_the_token(scoped: TestClient) -> None:
    assert scoped.get("/api/v1/runs/run-2", headers=DEV_ONLY).status_code == 404
    assert scoped.get("/api/v1/runs/run-2", headers=DEV_ONLY).json() == {
        "error": "unknown run 'run-2'"
    }
    assert scoped.get("/api/v1/runs/run-1", headers=DEV_ONLY).status_code == 200
    assert scoped.get("/api/v1/runs/run-2", headers=EVERYWHERE).status_code == 200


def test_the_output_of_a_run_of_another_environment_is_unknown_to_the_token(
    scoped: TestClient,
) -> None:
    logs = {"Accept": "text/plain"}
    answer = scoped.get("/api/v1/runs/run-2/logs", headers=DEV_ONLY | logs)
    assert (answer.status_code, answer.json()) == (404, {"error": "unknown run 'run-2'"})
    assert scoped.get("/api/v1/runs/run-2/logs", headers=EVERYWHERE | logs).status_code == 200


def test_inside_the_scope_reads_and_actions_work(scoped: TestClient, fake: FakeControl) -> None:
    assert scoped.get("/api/v1/environments/dev", headers=DEV_ONLY).json()["name"] == "dev"
    answer = scoped.post("/api/v1/environments/dev/runs", json={"action": "plan"}, headers=DEV_ONLY)
    assert answer.status_code == 202
    assert fake.calls_to("submit_run")[-1].kwargs["identity"].name == "dev-team"


def test_lists_show_only_the_environments_of_the_token(
    scoped: TestClient, fake: FakeControl
) -> None:
    fake.stored_events = [
        {"id": 3, "environment": "prod", "kind": "run.started"},
        {"id": 2, "environment": "dev", "kind": "run.started"},
        {"id": 1, "environment": None, "kind": "daemon.started"},
    ]
    environments = scoped.get("/api/v1/environments", headers=DEV_ONLY).json()["environments"]
    runs = scoped.get("/api/v1/runs", headers=DEV_ONLY).json()["runs"]
    events = scoped.get("/api/v1/events", headers=DEV_ONLY).json()["events"]
    assert [e["name"] for e in environments] == ["dev"]
    assert [r["id"] for r in runs] == ["run-1"]
    assert [e["id"] for e in events] == [2]
    everything = scoped.get("/api/v1/environments", headers=EVERYWHERE).json()["environments"]
    assert [e["name"] for e in everything] == ["dev", "prod"]
    assert len(scoped.get("/api/v1/events", headers=EVERYWHERE).json()["events"]) == 3


def test_a_token_without_environments_reaches_every_one(scoped: TestClient) -> None:
    answer = scoped.post("/api/v1/environments/prod/drift", headers=EVERYWHERE, content=b"{}")
    assert answer.status_code == 202
    assert scoped.get("/api/v1/runs?env=prod", headers=EVERYWHERE).status_code == 200


def test_the_scope_is_loaded_from_the_file(tmp_path: Path) -> None:
    tokens = Tokens.load(write(tmp_path, TOKENS_FILE))
    dev_team = tokens.authenticate("Bearer dev-team-token")
    platform = tokens.authenticate("Bearer platform-token")
    assert dev_team is not None and platform is not None
    assert dev_team.reaches("dev") and not dev_team.reaches("prod")
    assert platform.reaches("prod") and platform.environments is None
    assert tokens.unknown_environments({"prod", "staging"}) == ["dev-team: dev"]


@pytest.mark.parametrize(
    ("environments", "expected"),
    [
        ("[]", "tokens.yaml:4: environments: lists no environment: leave it out for every"),
        ("[Prod]", "tokens.yaml:4: environments[0]: Value error, invalid name 'Prod'"),
        ("prod", "tokens.yaml:4: environments: Input should be a valid tuple"),
    ],
)
def test_a_bad_environments_field_names_the_file_line_and_field(
    tmp_path: Path, environments: str, expected: str
) -> None:
    text = f"""
    - name: dev-team
      email: dev@example.com
      roles: [read]
      environments: {environments}
      token_sha256: {hash_token("dev-team-token")}
    """
    with pytest.raises(TokensFileError) as raised:
        Tokens.load(write(tmp_path, text))
    assert str(raised.value).startswith(f"{tmp_path / expected}")
