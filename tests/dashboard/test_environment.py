"""An environment's page in a real browser: components in dependency order, the graph,
the history, and rolling back to a revision it verified."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.select import Select

from gitopsd.adapters.sqlite_store import SqliteStore
from gitopsd.model.state import Suspension
from tests.daemon.harness import DaemonProcess
from tests.dashboard.conftest import (
    FormClient,
    log_in,
    pick,
    screenshot,
    text,
    texts,
    wait,
    write_tokens,
)
from tests.runtime.test_apply_runs import DNS, layered
from tests.runtime.world import World, component

ALICE = {"Authorization": "Bearer alice-token"}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """dev of `layered()`, dns's `id` output declared sensitive."""
    dns = json.loads(component("dns"))
    dns["spec"]["sensitive_outputs"] = ["id"]
    files = layered(**{DNS: json.dumps(dns)})
    return World.committed(tmp_path_factory.mktemp("environment"), files)


@pytest.fixture(scope="module")
def two_revisions(world: World) -> Iterator[tuple[DaemonProcess, str, str]]:
    """dev verified a first and then a second commit: (daemon, first, second)."""
    daemon = DaemonProcess(world, GITOPSD_TOKENS_FILE=str(write_tokens(world.root)))
    daemon.start()
    first = _revision_when_verified(daemon, None)
    world.commit({"README.md": "second\n"}, message="second change")
    second = _revision_when_verified(daemon, first)
    yield daemon, first, second
    daemon.stop()


def _revision_when_verified(daemon: DaemonProcess, after: str | None) -> str:
    def verified() -> bool:
        dev = daemon.environment("dev", headers=ALICE)
        return dev["status"] == "verified" and dev["revision"] not in (None, after)

    daemon.wait_for(verified, what="dev to verify a new revision")
    return str(daemon.environment("dev", headers=ALICE)["revision"])


def rows(page: WebDriver, css: str) -> list[str]:
    found: list[str] = wait(page).until(
        lambda p: [r.get_attribute("data-component") for r in p.find_elements(By.CSS_SELECTOR, css)]
    )
    return found


def test_the_page_shows_components_in_dependency_order_the_graph_and_the_history(
    page: WebDriver, two_revisions: tuple[DaemonProcess, str, str]
) -> None:
    served, first, second = two_revisions
    assert served.environment("dev", headers=ALICE)["verified"] == [second, first]  # newest first
    log_in(page, served, "carol", path="/environments/dev")
    order = rows(page, "tr[data-component]")
    assert order.index("net") < order.index("k8s") < order.index("app")
    assert order.index("dns") < order.index("app")
    assert text(page, "tr[data-component=dns] td:last-child") == "id=*** seen={}"
    assert "dns-dev" not in page.page_source  # the sensitive value is nowhere on the page
    assert 'seen={"vnet": "net-dev", "size": 3}' in text(page, "tr[data-component=k8s]")
    assert second[:12] in text(page, "[data-testid=revision]")
    assert "second change" in text(page, "[data-testid=revision]")
    assert sorted(texts(page, "svg.graph text")) == ["app", "dns", "k8s", "net"]
    assert len(texts(page, "svg.graph path[marker-end]")) == 3
    assert page.find_elements(By.XPATH, "//button[text()='Roll back']") == []  # read only
    pick(page, "kind", "run.finished")
    page.find_element(By.XPATH, "//button[text()='Filter']").click()
    kinds = wait(page).until(
        lambda p: {
            r.text for r in p.find_elements(By.CSS_SELECTOR, "table.history td:nth-child(2)")
        }
    )
    assert kinds == {"run.finished"}


def test_an_operator_rolls_back_to_a_revision_it_verified(
    page: WebDriver, two_revisions: tuple[DaemonProcess, str, str], tmp_path: Path
) -> None:
    served, first, second = two_revisions
    log_in(page, served, "alice", path="/environments/dev")
    choices = Select(page.find_element(By.ID, "rollback-revision"))
    assert [o.get_attribute("value") for o in choices.options] == [first]  # not the current one
    screenshot(page, "dashboard-environment.png", tmp_path)
    page.find_element(By.XPATH, "//button[text()='Roll back']").click()
    assert "Rollback queued as run" in text(page, "p.notice")
    assert "the rollback suspends that automatic work" in text(page, "p.notice")
    wait(page).until(lambda p: "rolled back from" in text(p, "dl.facts"))  # Suspended, live
    wait(page).until(lambda p: first[:12] in text(p, "[data-testid=revision]"))
    assert served.environment("dev", headers=ALICE)["revision"] == first
    history = text(page, "table.history")
    assert "alice rolls dev back to " + first[:12] in history
    assert f"alice suspended dev: rolled back from {second[:12]}" in history
    alice = FormClient(served).log_in("alice")  # the next test suspends dev itself
    resumed = alice.post("/environments/dev/resume", {"csrf": alice.csrf(path="/environments/dev")})
    assert resumed.status_code == 303
    alice.close()


def test_an_operator_suspends_and_resumes_and_a_reader_may_not(
    two_revisions: tuple[DaemonProcess, str, str],
) -> None:
    served = two_revisions[0]
    carol, alice = FormClient(served).log_in("carol"), FormClient(served).log_in("alice")
    path = "/environments/dev/suspend"
    refused = carol.post(path, {"csrf": carol.csrf(path="/environments/dev")})
    assert refused.status_code == 403
    forged = "freeze\n2026-12-07 INFO alice resumed dev"  # a second line in logs and history
    lined = alice.post(path, {"csrf": alice.csrf(path="/environments/dev"), "reason": forged})
    assert lined.status_code == 422 and "U+000A" in lined.text
    assert served.environment("dev", headers=ALICE)["suspension"] is None
    done = alice.post(path, {"csrf": alice.csrf(path="/environments/dev"), "reason": "freeze"})
    assert done.status_code == 303 and done.headers["location"].endswith("done=suspend")
    suspended = served.environment("dev", headers=ALICE)["suspension"]
    assert suspended["actor"] == "alice" and suspended["reason"] == "freeze"
    again = alice.post(path, {"csrf": alice.csrf(path="/environments/dev")})
    assert again.status_code == 409 and "suspended" in again.text
    resumed = alice.post("/environments/dev/resume", {"csrf": alice.csrf(path="/environments/dev")})
    assert resumed.status_code == 303
    assert served.environment("dev", headers=ALICE)["suspension"] is None
    carol.close()
    alice.close()


def test_a_stored_reason_s_control_characters_and_bidi_marks_are_shown_escaped(
    two_revisions: tuple[DaemonProcess, str, str],
) -> None:
    """A suspension reason an older gitopsd stored as it was given (written straight into the
    store): the page shows U+202E and the line break as escapes, not as marks that turn the
    rest of the line around."""
    served = two_revisions[0]
    store = SqliteStore(served.data / "state.db")
    hostile = "freeze\nforged\u202eevil"
    try:
        state = store.get_environment("dev")
        assert state is not None
        suspension = Suspension(actor="oncall", since=datetime.now(UTC), reason=hostile)
        store.save_environment(state.model_copy(update={"suspension": suspension}))
        reader = FormClient(served).log_in("carol")
        for path in ("/environments/dev", "/"):
            page = reader.http.get(path)
            assert page.status_code == 200
            assert "freeze\\nforged\\u202eevil" in page.text, path
            assert "\u202e" not in page.text, path
        reader.close()
    finally:
        state = store.get_environment("dev")
        assert state is not None
        store.save_environment(state.model_copy(update={"suspension": None}))
        store.close()


def test_a_run_s_and_a_step_s_error_are_shown_escaped_on_its_page(
    two_revisions: tuple[DaemonProcess, str, str],
) -> None:
    """A run's and a step's error may quote what a driver or GitHub answered: the run's page
    shows a bidirectional override in them as an escape."""
    served = two_revisions[0]
    store = SqliteStore(served.data / "state.db")
    hostile = "k8s failed\u202elive si lla"
    # a finished run: the daemon writes a running one again when it ends, over the error
    last = next(run for run in store.list_runs("dev", limit=20) if run.finished_at is not None)
    step = store.list_steps(last.id)[0]
    try:
        store.save_run(last.model_copy(update={"error": hostile}))
        store.save_step(step.model_copy(update={"error": hostile}))
        reader = FormClient(served).log_in("carol")
        page = reader.http.get(f"/runs/{last.id}")
        assert page.status_code == 200
        assert page.text.count("k8s failed\\u202elive si lla") == 2
        assert "\u202e" not in page.text
        reader.close()
    finally:
        store.save_run(last)
        store.save_step(step)
        store.close()


def test_the_diff_page_shows_what_changed_between_two_revisions_and_the_commits(
    two_revisions: tuple[DaemonProcess, str, str],
) -> None:
    served, first, second = two_revisions
    reader = FormClient(served).log_in("carol")
    same = reader.http.get(f"/environments/dev/diff?from={first}&to={second}")
    assert same.status_code == 200  # only the README changed: no component differs
    assert "The rendered desired state is the same at both revisions." in same.text
    assert "second change" in same.text and f"{first[:12]}</code> → <code>{second[:12]}" in (
        same.text
    )
    unknown = reader.http.get("/environments/dev/diff?from=no-such-revision")
    assert unknown.status_code == 404 and "no-such-revision" in unknown.text
    reader.close()
