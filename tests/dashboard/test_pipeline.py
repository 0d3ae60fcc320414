"""The pipeline page in a real browser: cards in promotion order, approvals, live updates,
and what a user without the approve role sees and may do."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement

from tests.daemon.harness import DaemonProcess
from tests.dashboard.conftest import FormClient, log_in, screenshot, text, wait
from tests.runtime.world import World


@pytest.fixture(scope="module")
def waiting(served: DaemonProcess) -> DaemonProcess:
    """The daemon once the first commit reached staging and prod waits for approvals."""
    served.wait_for(lambda: _status(served, "prod") == "waiting_approval", what="prod to wait")
    return served


@pytest.fixture
def forms(waiting: DaemonProcess) -> Iterator[FormClient]:
    client = FormClient(waiting)
    yield client
    client.close()


def _status(served: DaemonProcess, env: str) -> str:
    answer = served.get(
        f"/api/v1/environments/{env}", headers={"Authorization": "Bearer alice-token"}
    )
    return str(answer.json()["status"])


def card(page: WebDriver, env: str, part: str = "") -> str:
    return text(page, f"li.card[data-environment={env}] {part}".strip())


def approve_buttons(page: WebDriver) -> list[WebElement]:
    return page.find_elements(By.XPATH, "//button[starts-with(text(), 'Approve')]")


def environments(page: WebDriver) -> list[str]:
    found: list[str] = wait(page).until(
        lambda p: [
            c.get_attribute("data-environment") for c in p.find_elements(By.CSS_SELECTOR, "li.card")
        ]
    )
    return found


def head(world: World) -> str:
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=world.repo, capture_output=True, text=True, check=True
    ).stdout.strip()


def test_the_pipeline_shows_each_environment_in_promotion_order(
    page: WebDriver, waiting: DaemonProcess, world: World, tmp_path: Path
) -> None:
    log_in(page, waiting, "alice")
    assert environments(page) == ["dev", "staging", "prod"]
    sha = head(world)
    assert card(page, "dev", "[data-testid=status]") == "verified"
    dev = card(page, "dev")
    assert "change" in dev and "Test Author" in dev  # the commit's subject and author
    assert sha[:12] in dev
    waiting_for = card(page, "prod", "[data-testid=waiting]")
    assert "needs 2 more approvals" in waiting_for and "0 of 2" in waiting_for
    row = text(page, f"table.timeline tr[data-revision='{sha}']")
    assert row.endswith("dev, staging dev, staging prod")
    screenshot(page, "dashboard-pipeline.png", tmp_path)


def test_a_reader_sees_no_approve_button_and_the_server_refuses_forged_posts(
    page: WebDriver, waiting: DaemonProcess, forms: FormClient
) -> None:
    log_in(page, waiting, "alice")
    assert len(approve_buttons(page)) == 1  # prod waits: an approver sees the button
    log_in(page, waiting, "carol")
    assert approve_buttons(page) == []
    carol = FormClient(waiting).log_in("carol")
    refused = carol.post("/environments/prod/approve", {"csrf": carol.csrf()})
    assert refused.status_code == 403 and "&#39;approve&#39; role" in refused.text
    forms.log_in("alice")
    token = forms.csrf()
    assert forms.post("/environments/prod/approve", {}).status_code == 403  # no CSRF token
    wrong = forms.post("/environments/prod/approve", {"csrf": token[::-1]})
    assert wrong.status_code == 403 and "CSRF" in wrong.text
    cross = forms.post("/environments/prod/approve", {"csrf": token}, Origin="https://evil.example")
    assert cross.status_code == 403
    site = forms.post(
        "/environments/prod/approve", {"csrf": token}, **{"Sec-Fetch-Site": "cross-site"}
    )
    assert site.status_code == 403
    assert "0 of 2" in forms.http.get("/").text  # none of them was recorded
    carol.close()


def test_prod_applies_after_two_approvals_without_the_page_reloading(
    page: WebDriver, waiting: DaemonProcess, forms: FormClient
) -> None:
    log_in(page, waiting, "alice")
    approve_buttons(page)[0].click()
    wait(page).until(lambda p: "1 of 2" in card(p, "prod"))
    assert "alice" in card(page, "prod")
    page.execute_script("window.stillTheSamePage = true")
    forms.log_in("bob")
    answer = forms.post("/environments/prod/approve", {"csrf": forms.csrf(), "back": "/"})
    assert answer.status_code == 303
    wait(page).until(lambda p: card(p, "prod", "[data-testid=status]") == "verified")
    assert page.execute_script("return window.stillTheSamePage") is True
    assert approve_buttons(page) == []


def test_the_pipeline_fits_a_390_px_phone_and_works_by_keyboard(
    page: WebDriver, waiting: DaemonProcess
) -> None:
    log_in(page, waiting, "carol")
    try:
        page.set_window_size(390, 800)
        wait(page).until(lambda p: p.execute_script("return window.innerWidth") <= 390)
        overflow = page.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow == 0  # nothing wider than the screen: wide tables scroll by themselves
        page.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)  # the skip link first
        assert page.switch_to.active_element.text == "Skip to content"
        page.switch_to.active_element.send_keys(Keys.TAB)
        page.switch_to.active_element.send_keys(Keys.TAB)  # past the brand, to Pipeline
        page.switch_to.active_element.send_keys(Keys.TAB)
        runs = page.switch_to.active_element
        assert runs.text == "Runs" and runs.get_attribute("href").endswith("/runs")
    finally:
        page.set_window_size(1280, 1000)
