"""Logging in to the dashboard with an API token, in a real browser."""

from __future__ import annotations

from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.daemon.harness import DaemonProcess
from tests.dashboard.conftest import FormClient, log_in, wait


def test_a_page_asks_for_a_login_and_a_token_opens_it(
    page: WebDriver, served: DaemonProcess
) -> None:
    page.get(served.url + "/drift")
    assert page.current_url.startswith(served.url + "/login?next=")
    log_in(page, served, "bob", path="/drift")
    assert page.current_url == served.url + "/drift"
    assert page.find_element(By.CSS_SELECTOR, "[data-testid=user]").text == "bob"
    cookie = page.get_cookie("gitopsd_session")
    assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Strict"


def test_a_wrong_token_is_refused_and_logging_out_ends_the_session(
    page: WebDriver, served: DaemonProcess
) -> None:
    page.get(served.url + "/login")
    page.find_element(By.ID, "token").send_keys("not-a-token")
    page.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    alert = wait(page).until(lambda b: b.find_element(By.CSS_SELECTOR, "[role=alert]"))
    assert alert.text == "unknown token"
    log_in(page, served, "carol")
    page.find_element(By.XPATH, "//button[text()='Log out']").click()
    wait(page).until(lambda b: b.find_element(By.ID, "token"))
    page.get(served.url + "/")
    assert page.current_url.startswith(served.url + "/login")


def test_logging_in_goes_back_only_to_a_page_of_this_server(served: DaemonProcess) -> None:
    for target, expected in (("/drift", "/drift"), ("//evil.example/x", "/"),
                             ("https://evil.example/", "/")):  # fmt: skip
        client = FormClient(served)
        client.http.get("/login")
        csrf = client.http.cookies["gitopsd_login"]
        answer = client.post("/login", {"csrf": csrf, "token": "alice-token", "next": target})
        assert answer.status_code == 303 and answer.headers["location"] == expected
        client.close()


def test_a_login_without_the_forms_csrf_value_is_refused(served: DaemonProcess) -> None:
    client = FormClient(served)
    answer = client.post("/login", {"csrf": "made-up", "token": "alice-token"})
    assert answer.status_code == 403 and "gitopsd_session" not in answer.headers.get(
        "set-cookie", ""
    )
    client.close()


def test_a_login_form_open_stays_good_when_the_login_page_is_shown_again(
    served: DaemonProcess,
) -> None:
    """A second rendering of /login in the same browser (another tab, or a page whose
    session ended fetching itself and being sent to /login) keeps the browser's CSRF value:
    the form already open still logs in (before: the cookie was replaced under it, 403)."""
    client = FormClient(served)
    first = client.http.get("/login")
    form_value = first.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    again = client.http.get("/login?next=/runs")
    assert f'name="csrf" value="{form_value}"' in again.text
    answer = client.post("/login", {"csrf": form_value, "token": "alice-token"})
    assert answer.status_code == 303
    client.close()
    other = FormClient(served)  # another browser gets a value of its own
    assert f'value="{form_value}"' not in other.http.get("/login").text
    other.close()
