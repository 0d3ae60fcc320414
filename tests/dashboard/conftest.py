"""The dashboard as a user meets it: a real `gitopsd serve` and a real headless Chromium.

One daemon per test module (`served`), on a world of three environments (dev -> staging ->
prod, prod needing two approvals) with a tokens file; one browser per module (`browser`),
driven by Selenium through Debian's `chromedriver` (`make tools` installs `chromium` and
`chromium-driver`). `log_in(browser, served, "alice")` logs the browser in as that user.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from selenium import webdriver
from selenium.common.exceptions import (
    NoSuchElementException,
    StaleElementReferenceException,
    TimeoutException,
)
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.wait import WebDriverWait

from tests.daemon.harness import DaemonProcess
from tests.runtime.test_apply_runs import layered
from tests.runtime.test_promotion_flow import environment
from tests.runtime.world import World

# who may do what: the token of each user is `<name>-token`
USERS = {
    "alice": ["read", "operate", "approve"],
    "bob": ["read", "approve"],
    "carol": ["read"],
}
# the README's screenshots: rewritten only when asked (`make screenshots`), so that running
# the tests leaves the checkout as it was
IMAGES = Path(__file__).parents[2] / "docs" / "images"
UPDATE_SCREENSHOTS = "GITOPSD_UPDATE_SCREENSHOTS"
WAIT = 30.0
CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')


def token(name: str) -> str:
    return f"{name}-token"


def write_tokens(root: Path) -> Path:
    path = root / "tokens.yaml"
    entries = [
        {"name": name, "email": f"{name}@example.com", "roles": roles,
         "token_sha256": hashlib.sha256(token(name).encode()).hexdigest()}
        for name, roles in USERS.items()
    ]  # fmt: skip
    path.write_text(yaml.safe_dump(entries))
    return path


def three_environments() -> dict[str, str]:
    """dev -> staging -> prod, each promoted automatically, prod after two approvals."""
    prod = {
        "promotion": {"from": "staging", "auto": True},
        "approvals": {"required": 2, "approvers": list(USERS), "forbid_author": True},
    }
    return layered(
        **{
            "environments/dev.yaml": environment("dev"),
            "environments/staging.yaml": environment(
                "staging", promotion={"from": "dev", "auto": True}
            ),
            "environments/prod.yaml": environment("prod", **prod),
        }
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return World.committed(tmp_path_factory.mktemp("dashboard"), three_environments())


@pytest.fixture(scope="module")
def served(world: World) -> Iterator[DaemonProcess]:
    """`gitopsd serve` on `world` with the tokens of `USERS`."""
    tokens = write_tokens(world.root)
    daemon = DaemonProcess(world, GITOPSD_TOKENS_FILE=str(tokens))
    daemon.start()
    yield daemon
    daemon.stop()


def chromium() -> tuple[str, str]:
    """Debian's chromium and its driver (`make tools` installs them); without them the
    browser tests skip, except in CI, where they fail."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if binary is None or driver is None:
        message = "the browser tests need chromium and chromium-driver: run `make tools`"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return binary, driver


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    """A headless Chromium 1280 px wide; cookies are cleared between tests."""
    binary, driver_path = chromium()
    options = Options()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--window-size=1280,1000"):  # fmt: skip
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    yield driver
    driver.quit()


@pytest.fixture
def page(browser: WebDriver) -> Iterator[WebDriver]:
    """The module's browser, logged out at the start of the test."""
    browser.delete_all_cookies()
    yield browser


def log_in(browser: WebDriver, served: DaemonProcess, name: str, *, path: str = "/") -> None:
    """Open `path` (the login page comes first) and log in with `name`'s token."""
    browser.delete_all_cookies()
    browser.get(served.url + path)
    field = wait(browser).until(lambda b: b.find_element(By.ID, "token"))
    field.send_keys(token(name))
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    try:
        wait(browser).until(lambda b: b.find_element(By.CSS_SELECTOR, "[data-testid=user]"))
    except TimeoutException as timeout:  # twice under a loaded machine: say where it stood
        text = browser.find_element(By.TAG_NAME, "body").text[:500]
        raise AssertionError(f"not logged in at {browser.current_url}: {text!r}") from timeout


def wait(browser: WebDriver, timeout: float = WAIT) -> WebDriverWait[WebDriver]:
    """Waits that look again when a live update replaced what they were reading."""
    ignored = (StaleElementReferenceException, NoSuchElementException)
    return WebDriverWait(browser, timeout, poll_frequency=0.1, ignored_exceptions=ignored)


def pick(browser: WebDriver, select_id: str, value: str) -> None:
    """Choose `value` in the select `select_id`, again if a live update replaced the select
    between finding and choosing."""

    def choose(b: WebDriver) -> bool:
        Select(b.find_element(By.ID, select_id)).select_by_value(value)
        return True

    wait(browser).until(choose)


def chosen(browser: WebDriver, select_id: str) -> str:
    """The value chosen in the select `select_id`, read by the page in one go."""
    found: str = browser.execute_script(
        "return document.getElementById(arguments[0]).value", select_id
    )
    return found


def texts(browser: WebDriver, css: str) -> list[str]:
    """The text of every element `css` selects, read by the page in one go: a live update
    cannot replace them between finding and reading them."""
    found: list[str] = browser.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map(e => e.textContent)", css
    )
    return found


def text(browser: WebDriver, css: str) -> str:
    """The text of the element `css` selects, read in one go (a live update may replace it)."""
    found: str = wait(browser).until(lambda b: b.find_element(By.CSS_SELECTOR, css).text)
    return found


class FormClient:
    """A dashboard session driven over HTTP (no browser): what a forged or scripted form
    POST looks like to the daemon."""

    def __init__(self, served: DaemonProcess) -> None:
        self.url = served.url
        self.http = httpx.Client(base_url=served.url, timeout=10, follow_redirects=False)

    def log_in(self, name: str) -> FormClient:
        self.http.get("/login")
        csrf = self.http.cookies["gitopsd_login"]
        answer = self.http.post("/login", data={"csrf": csrf, "token": token(name), "next": "/"})
        assert answer.status_code == 303, answer.text
        return self

    def csrf(self, path: str = "/") -> str:
        """The CSRF token the forms of `path` carry."""
        found = CSRF_FIELD.search(self.http.get(path).text)
        assert found is not None
        return found.group(1)

    def post(self, path: str, data: dict[str, str], **headers: str) -> httpx.Response:
        return self.http.post(path, data=data, headers=headers)

    def close(self) -> None:
        self.http.close()


def screenshot(page: Any, name: str, scratch: Path) -> Path:
    """A PNG of what `page` shows: into docs/images/ under `GITOPSD_UPDATE_SCREENSHOTS=1`
    (`make screenshots`), else into `scratch`; either way it must be a real image."""
    folder = IMAGES if os.environ.get(UPDATE_SCREENSHOTS) == "1" else scratch
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    assert page.save_screenshot(str(path)), f"no screenshot of {page.current_url}"
    assert path.read_bytes().startswith(b"\x89PNG"), f"{path} is not a PNG"
    return path
