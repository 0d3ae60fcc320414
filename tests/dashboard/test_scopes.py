"""The dashboard follows a token's environment scope as the API does: a viewer whose token
reaches only dev sees only dev (cards, timeline, drift, runs, live updates), a page of
another environment or of its runs answers as for an unknown one (404), and every action on
another environment is refused (403). A token without `environments` sees everything.

A real `gitopsd serve` on dev -> staging -> prod (prod waiting for approvals) with a real
tokens file; pages over HTTP as a browser session sees them, and the pipeline in Chromium."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.daemon.harness import DaemonProcess
from tests.dashboard.conftest import FormClient, log_in, three_environments, token, wait
from tests.runtime.world import World

DEV_TEAM = "devteam"  # read, operate, approve; reaches dev only
STAGING_TEAM = "stagingteam"  # the same roles; reaches staging only
PLATFORM = "platform"  # the same roles everywhere
AS_PLATFORM = {"Authorization": f"Bearer {token(PLATFORM)}"}
LIVE_VERSION = re.compile(r'data-live="/events\?v=(\d+)"')
ENV_OPTION = re.compile(r'<option value="([^"]*)"')


def write_tokens(root: Path) -> Path:
    entries = [
        {"name": name, "email": f"{name}@example.com", "roles": ["read", "operate", "approve"],
         "token_sha256": hashlib.sha256(token(name).encode()).hexdigest(), **reach}
        for name, reach in (
            (DEV_TEAM, {"environments": ["dev"]}),
            (STAGING_TEAM, {"environments": ["staging"]}),
            (PLATFORM, {}),
        )
    ]  # fmt: skip
    path = root / "scoped-tokens.yaml"
    path.write_text(yaml.safe_dump(entries))
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return World.committed(tmp_path_factory.mktemp("scopes"), three_environments())


@pytest.fixture(scope="module")
def served(world: World) -> Iterator[DaemonProcess]:
    """The daemon once the first commit reached staging and prod waits for approvals."""
    daemon = DaemonProcess(world, GITOPSD_TOKENS_FILE=str(write_tokens(world.root)))
    daemon.start()
    daemon.wait_for(lambda: _status(daemon, "prod") == "waiting_approval", what="prod to wait")
    yield daemon
    daemon.stop()


def _status(served: DaemonProcess, env: str) -> str:
    return str(served.environment(env, headers=AS_PLATFORM)["status"])


@pytest.fixture
def dev_team(served: DaemonProcess) -> Iterator[FormClient]:
    client = FormClient(served).log_in(DEV_TEAM)
    yield client
    client.close()


@pytest.fixture
def platform(served: DaemonProcess) -> Iterator[FormClient]:
    client = FormClient(served).log_in(PLATFORM)
    yield client
    client.close()


def staging_run(served: DaemonProcess) -> str:
    runs = served.get("/api/v1/runs?env=staging", headers=AS_PLATFORM).json()["runs"]
    assert runs, "staging ran the first commit"
    return str(runs[0]["id"])


def test_the_pipeline_and_the_drift_page_show_only_the_reached_environments(
    dev_team: FormClient, platform: FormClient
) -> None:
    for path in ("/", "/drift"):
        scoped = dev_team.http.get(path)
        assert scoped.status_code == 200
        assert 'href="/environments/dev"' in scoped.text
        assert "staging" not in scoped.text and "prod" not in scoped.text  # nor in the timeline
        everything = platform.http.get(path).text
        assert 'href="/environments/staging"' in everything
        assert 'href="/environments/prod"' in everything
    timeline = dev_team.http.get("/").text.split('class="timeline"', 1)[1]
    assert "<td>dev</td>" in timeline  # dev runs the commit; who else does is not said


@pytest.mark.parametrize(
    "path",
    [
        "/environments/prod",
        "/environments/staging",
        "/environments/prod/diff",
        "/environments/dev/diff?other=staging",  # read as the other side of a diff
        "/environments/staging/diff?other=dev",
        "/runs?env=staging",
    ],
)
def test_a_page_of_another_environment_is_an_unknown_environment(
    dev_team: FormClient, platform: FormClient, path: str
) -> None:
    answer = dev_team.http.get(path)
    assert answer.status_code == 404
    assert "unknown environment" in answer.text
    env = "staging" if "staging" in path else "prod"
    nowhere = dev_team.http.get(path.replace(env, "nowhere"))  # the same words as for a name
    assert answer.text.replace(env, "nowhere") == nowhere.text  # nobody knows
    assert platform.http.get(path).status_code == 200


def test_the_environments_own_pages_stay_open_to_the_scoped_viewer(
    served: DaemonProcess, dev_team: FormClient
) -> None:
    runs = served.get("/api/v1/runs?env=dev", headers=AS_PLATFORM).json()["runs"]
    run = runs[0]["id"]
    for path in ("/environments/dev", "/environments/dev/diff", "/runs?env=dev", f"/runs/{run}"):
        assert dev_team.http.get(path).status_code == 200, path
    logs = dev_team.http.get(f"/runs/{run}/logs", headers={"Accept": "text/plain"})
    assert logs.status_code == 200


def test_the_upstream_is_named_but_not_linked_outside_the_scope(served: DaemonProcess) -> None:
    staging_team = FormClient(served).log_in(STAGING_TEAM)
    page = staging_team.http.get("/environments/staging").text
    staging_team.close()
    assert "<dt>Promoted from</dt><dd>dev</dd>" in page
    assert 'href="/environments/dev"' not in page  # a link to a page that answers 404


def test_the_runs_list_shows_and_offers_only_the_reached_environments(
    served: DaemonProcess, dev_team: FormClient, platform: FormClient
) -> None:
    hidden = staging_run(served)
    scoped = dev_team.http.get("/runs").text
    assert hidden not in scoped and "staging" not in scoped and "prod" not in scoped
    assert 'href="/runs/' in scoped  # dev's runs are listed
    assert set(ENV_OPTION.findall(scoped)) & {"dev", "staging", "prod"} == {"dev"}
    everything = platform.http.get("/runs").text
    assert hidden in everything
    assert {"dev", "staging", "prod"} <= set(ENV_OPTION.findall(everything))


def test_a_run_of_another_environment_is_unknown_and_cannot_be_cancelled(
    served: DaemonProcess, dev_team: FormClient, platform: FormClient
) -> None:
    hidden = staging_run(served)
    page = dev_team.http.get(f"/runs/{hidden}")
    assert page.status_code == 404 and "unknown run" in page.text
    nowhere = dev_team.http.get("/runs/run-that-never-was")
    assert page.text.replace(hidden, "run-that-never-was") == nowhere.text  # nothing learnt
    for accept in ("text/plain", "text/event-stream"):
        logs = dev_team.http.get(f"/runs/{hidden}/logs", headers={"Accept": accept})
        assert logs.status_code == 404
    refused = dev_team.post(f"/runs/{hidden}/cancel", {"csrf": dev_team.csrf()})
    assert refused.status_code == 403
    assert "may not act on environment &#39;staging&#39;" in refused.text
    assert platform.http.get(f"/runs/{hidden}").status_code == 200
    plain = platform.http.get(f"/runs/{hidden}/logs", headers={"Accept": "text/plain"})
    assert plain.status_code == 200


@pytest.mark.parametrize(
    ("path", "fields"),
    [
        ("/environments/prod/approve", {"back": "/"}),
        ("/environments/prod/rollback", {"revision": "HEAD"}),
        ("/environments/prod/suspend", {"reason": "freeze"}),
        ("/environments/staging/resume", {}),
        ("/environments/staging/drift-check", {}),
    ],
)
def test_an_action_on_another_environment_is_refused(
    served: DaemonProcess, dev_team: FormClient, path: str, fields: dict[str, str]
) -> None:
    before = served.get("/api/v1/events?limit=1", headers=AS_PLATFORM).json()["events"]
    env = path.split("/")[2]
    refused = dev_team.post(path, {"csrf": dev_team.csrf(), **fields})
    assert refused.status_code == 403
    assert f"may not act on environment &#39;{env}&#39;" in refused.text
    after = served.get("/api/v1/events?limit=1", headers=AS_PLATFORM).json()["events"]
    assert after == before  # nothing was recorded
    assert _status(served, "prod") == "waiting_approval"


def test_an_action_on_the_reached_environment_works(
    served: DaemonProcess, dev_team: FormClient
) -> None:
    csrf = dev_team.csrf()
    suspended = dev_team.post("/environments/dev/suspend", {"csrf": csrf, "reason": "look"})
    assert suspended.status_code == 303
    assert served.environment("dev", headers=AS_PLATFORM)["suspension"]["actor"] == DEV_TEAM
    assert dev_team.post("/environments/dev/resume", {"csrf": csrf}).status_code == 303
    assert served.environment("dev", headers=AS_PLATFORM)["suspension"] is None


def live_version(client: FormClient) -> int:
    """The version of what the viewer may see, as a page rendered now listens from."""
    found = LIVE_VERSION.search(client.http.get("/").text)
    assert found is not None
    return int(found.group(1))


def test_a_change_in_another_environment_never_wakes_a_scoped_viewers_pages(
    served: DaemonProcess, dev_team: FormClient, platform: FormClient
) -> None:
    with (
        dev_team.http.stream("GET", "/events") as scoped_stream,
        platform.http.stream("GET", "/events") as full_stream,
    ):
        for stream in (scoped_stream, full_stream):  # listening, from a first look on
            assert next(stream.iter_lines()) == "retry: 3000"
        # a change in dev wakes both (and shows both scopes are being watched)
        scoped, full = live_version(dev_team), live_version(platform)
        _suspend(dev_team, "dev")
        served.wait_for(lambda: live_version(dev_team) > scoped, what="dev's change: scoped")
        served.wait_for(lambda: live_version(platform) > full, what="dev's change: all")
        # a change in prod only: it wakes the viewer who sees prod, not the one limited to dev
        scoped, full = live_version(dev_team), live_version(platform)
        _api_suspend(served, "prod")
        served.wait_for(lambda: live_version(platform) > full, what="prod's change: all")
        assert live_version(dev_team) == scoped
        _api_resume(served, "prod")
        served.wait_for(lambda: live_version(platform) > full + 1, what="prod resumed")
        assert live_version(dev_team) == scoped
        assert dev_team.post("/environments/dev/resume", {"csrf": dev_team.csrf()}).is_redirect
        served.wait_for(lambda: live_version(dev_team) > scoped, what="dev resumed: scoped")


def _suspend(client: FormClient, env: str) -> None:
    answer = client.post(f"/environments/{env}/suspend", {"csrf": client.csrf(), "reason": "x"})
    assert answer.status_code == 303


def _api_suspend(served: DaemonProcess, env: str) -> None:
    path = f"/api/v1/environments/{env}/suspension"
    answer = served.post(path, json={"reason": "freeze"}, headers=AS_PLATFORM)
    assert answer.status_code < 300, answer.text


def _api_resume(served: DaemonProcess, env: str) -> None:
    path = f"{served.url}/api/v1/environments/{env}/suspension"
    answer = httpx.delete(path, headers=AS_PLATFORM | {"Content-Type": "application/json"})
    assert answer.status_code < 300, answer.text


def test_a_scoped_viewers_pipeline_shows_only_dev_in_a_browser(
    page: WebDriver, served: DaemonProcess
) -> None:
    log_in(page, served, DEV_TEAM)
    cards = wait(page).until(lambda p: p.find_elements(By.CSS_SELECTOR, "li.card"))
    assert [c.get_attribute("data-environment") for c in cards] == ["dev"]
    timeline = page.find_element(By.CSS_SELECTOR, "table.timeline tbody").text
    assert "dev" in timeline and "staging" not in timeline and "prod" not in timeline
    log_in(page, served, PLATFORM)
    cards = wait(page).until(lambda p: p.find_elements(By.CSS_SELECTOR, "li.card"))
    assert [c.get_attribute("data-environment") for c in cards] == ["dev", "staging", "prod"]
