"""The runs pages in a real browser: the list with its filters and pages, a run's output
arriving while its step runs, Cancel, and what a user without the operate role sees and may do.

The `net` driver prints a line, waits for the gate file `first`, prints another, waits for
`second`, and ends: what the page shows before a gate exists it showed while the step was
running, with no timing involved. Each test commits a new round (a changed input), which
starts a new run of dev, and ends that run when it is done with it.
"""

from __future__ import annotations

import itertools
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver

from tests.daemon.harness import DaemonProcess
from tests.dashboard.conftest import (
    FormClient,
    chosen,
    log_in,
    pick,
    screenshot,
    text,
    wait,
    write_tokens,
)
from tests.runtime.world import World, environment

ALICE = {"Authorization": "Bearer alice-token"}
STEP_STATUS = "[data-testid=step-status]"
DONE_BARS = "svg.bar rect.run-succeeded"
NET_OUTPUT = "li[data-component=net] pre.output"
GATES = ("first", "second")

PRINTER = """
import json, os, sys, time
from pathlib import Path

if sys.argv[1] != "apply":
    sys.exit(2 if sys.argv[1] in ("plan", "check") else 0)
name = os.environ["GITOPSD_COMPONENT"]
inputs = json.loads(Path(os.environ["GITOPSD_INPUTS"]).read_text())
print(f"{name}: applying round {inputs['round']}", flush=True)
gates = Path(os.environ["TEST_GATES"])
for gate, line in (("first", "second line"), ("second", "done")):
    while inputs["gated"] and not (gates / gate).exists():
        time.sleep(0.02)
    print(f"{name}: {line}", flush=True)
"""

rounds = itertools.count(1)
T = TypeVar("T")


def printing(name: str, round_: int, *, gated: bool, deps: tuple[str, ...] = ()) -> str:
    commands = {a: [sys.executable, "../../printer.py", a] for a in ("plan", "apply")}
    spec = {
        "depends_on": list(deps),
        "inputs": {"round": round_, "gated": gated},
        "driver": {"type": "command", **commands},
    }
    layer = "platform" if deps else "network"
    return json.dumps(
        {"apiVersion": "gitopsd.io/v1", "kind": "Component",
         "metadata": {"name": name, "layer": layer}, "spec": spec}
    )  # fmt: skip


def files(round_: int) -> dict[str, str]:
    """dev runs `net` (gated) then `app`; staging takes revisions from dev only when asked."""
    return {
        "environments/dev.yaml": environment("dev"),
        "environments/staging.yaml": environment(
            "staging", promotion={"from": "dev", "auto": False}
        ),
        "printer.py": PRINTER,
        "components/net/component.yaml": printing("net", round_, gated=True),
        "components/app/component.yaml": printing("app", round_, gated=False, deps=("net",)),
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return World.committed(tmp_path_factory.mktemp("runs"), files(0))


@pytest.fixture(scope="module")
def served(world: World) -> Iterator[DaemonProcess]:
    """`gitopsd serve` once dev verified round 0 (its gates open)."""
    gates = world.root / "gates"
    gates.mkdir()
    open_gates(world)
    tokens = write_tokens(world.root)
    daemon = DaemonProcess(world, GITOPSD_TOKENS_FILE=str(tokens), TEST_GATES=str(gates))
    daemon.start()
    daemon.wait_for(lambda: _dev(daemon)["status"] == "verified", what="dev to verify round 0")
    yield daemon
    daemon.stop()


def open_gates(world: World, *names: str) -> None:
    for name in names or GATES:
        (world.root / "gates" / name).write_text("")


def _dev(served: DaemonProcess) -> dict[str, Any]:
    return served.environment("dev", headers=ALICE)


def run_of(served: DaemonProcess, run_id: str) -> dict[str, Any]:
    found: dict[str, Any] = served.get(f"/api/v1/runs/{run_id}", headers=ALICE).json()
    return found


@pytest.fixture
def running(served: DaemonProcess, world: World) -> Iterator[str]:
    """The id of a new run of dev whose `net` step printed its first line and waits."""
    for name in GATES:
        (world.root / "gates" / name).unlink(missing_ok=True)
    round_ = next(rounds)
    world.commit(files(round_), message=f"round {round_}")
    found: list[str] = []

    def started() -> bool:
        listed = served.get("/api/v1/runs", params={"status": "running"}, headers=ALICE)
        for run in listed.json()["runs"]:
            logs = served.get(
                f"/api/v1/runs/{run['id']}/logs", headers={**ALICE, "Accept": "text/plain"}
            )
            if f"net: applying round {round_}" in logs.text:
                found.append(run["id"])
        return bool(found)

    served.wait_for(started, what=f"round {round_}'s net step to print")
    yield found[0]
    open_gates(world)
    served.wait_for(
        lambda: run_of(served, found[0])["status"] in ("succeeded", "failed", "cancelled"),
        what="the run to end",
    )


@pytest.fixture
def forms(served: DaemonProcess) -> Iterator[FormClient]:
    client = FormClient(served)
    yield client
    client.close()


def live_output(page: WebDriver) -> str:
    return text(page, "#live-output")


def cancel_buttons(page: WebDriver) -> list[Any]:
    return page.find_elements(By.XPATH, "//button[text()='Cancel run']")


def test_a_run_shows_its_output_as_the_driver_prints_it_without_reloading(
    page: WebDriver, served: DaemonProcess, running: str, world: World, tmp_path: Path
) -> None:
    log_in(page, served, "alice", path="/runs")
    follow(page, running)
    wait(page).until(lambda p: "net: applying round" in live_output(p))
    page.execute_script("window.stillTheSamePage = true")
    assert "net: second line" not in live_output(page)
    # the page renders itself again (as when anything it shows changes): the output stays live
    page.execute_script("document.dispatchEvent(new Event('gitopsd:refresh'))")
    wait(page).until(lambda p: p.find_element(By.ID, "main").get_attribute("data-updated"))
    open_gates(world, "first")
    wait(page).until(lambda p: "net: second line" in live_output(p))
    assert page.execute_script("return window.stillTheSamePage") is True
    assert text(page, "li[data-component=net] [data-testid=step-status]") == "running"
    screenshot(page, "run.png", tmp_path)
    open_gates(world, "second")
    wait(page).until(lambda p: text(p, "[data-testid=run-status]") == "succeeded")
    assert page.execute_script("return window.stillTheSamePage") is True
    steps = seen(page, lambda p: [s.text for s in p.find_elements(By.CSS_SELECTOR, STEP_STATUS)])
    assert steps == ["succeeded", "succeeded"]  # net, then app, in order
    assert len(seen(page, lambda p: p.find_elements(By.CSS_SELECTOR, DONE_BARS))) == 2
    wait(page).until(lambda p: p.find_elements(By.ID, "live-output") == [])  # stored output now
    stored = seen(
        page, lambda p: p.find_element(By.CSS_SELECTOR, NET_OUTPUT).get_attribute("textContent")
    )
    assert str(stored).splitlines()[-2:] == ["net: second line", "net: done"]


def test_an_operator_cancels_a_run_from_its_page(
    page: WebDriver, served: DaemonProcess, running: str
) -> None:
    log_in(page, served, "alice", path=f"/runs/{running}")
    assert text(page, "[data-testid=run-status]") == "running"
    wait(page).until(lambda p: cancel_buttons(p)[0].click() or True)  # again if replaced
    wait(page).until(lambda p: "Cancel requested" in text(p, "p.notice"))
    wait(page).until(lambda p: text(p, "[data-testid=run-status]") == "cancelled")
    assert cancel_buttons(page) == []
    assert run_of(served, running)["status"] == "cancelled"
    events = served.get("/api/v1/events", params={"env": "dev"}, headers=ALICE).json()["events"]
    asked = [e for e in events if e["kind"] == "run.cancel_requested"]
    assert asked and asked[0]["actor"] == "alice"


def test_a_reader_sees_no_cancel_button_and_a_forged_cancel_is_refused(
    page: WebDriver, served: DaemonProcess, running: str, forms: FormClient
) -> None:
    log_in(page, served, "carol", path=f"/runs/{running}")
    wait(page).until(lambda p: "net: applying round" in live_output(p))
    assert cancel_buttons(page) == []
    carol = FormClient(served).log_in("carol")
    without_script = carol.http.get(f"/runs/{running}").text  # what a page without JS shows
    assert "net: applying round" in without_script and ">Reload</a>" in without_script
    refused = carol.post(f"/runs/{running}/cancel", {"csrf": carol.csrf(f"/runs/{running}")})
    assert refused.status_code == 403 and "&#39;operate&#39; role" in refused.text
    carol.close()
    forms.log_in("alice")
    token = forms.csrf(f"/runs/{running}")
    assert forms.post(f"/runs/{running}/cancel", {}).status_code == 403  # no CSRF token
    cross = forms.post(f"/runs/{running}/cancel", {"csrf": token}, Origin="https://evil.example")
    assert cross.status_code == 403
    assert run_of(served, running)["status"] == "running"  # none of them cancelled it
    unknown = forms.http.get("/runs/no-such-run")
    assert unknown.status_code == 404 and "unknown run" in unknown.text
    assert forms.post("/runs/no-such-run/cancel", {"csrf": token}).status_code == 404


def test_a_request_not_started_yet_has_a_page_and_may_be_cancelled_before_it_runs(
    served: DaemonProcess, running: str, forms: FormClient
) -> None:
    asked = served.post("/api/v1/environments/dev/runs", json={"action": "plan"}, headers=ALICE)
    queued = asked.json()["id"]  # dev is busy with `running`: the plan waits in its queue
    forms.log_in("alice")
    shown = forms.http.get(f"/runs/{queued}")
    assert shown.status_code == 200 and ">queued</span>" in shown.text
    assert "Cancel run" in shown.text and "No steps yet." in shown.text
    answer = forms.post(f"/runs/{queued}/cancel", {"csrf": forms.csrf(f"/runs/{queued}")})
    assert answer.status_code == 303 and answer.headers["location"] == f"/runs/{queued}?done=cancel"
    ended = run_of(served, queued)
    assert (ended["status"], ended["outcome"]) == ("done", "cancelled by alice before it ran")
    after = forms.http.get(f"/runs/{queued}").text
    assert "cancelled by alice before it ran" in after and "Cancel run" not in after
    assert run_of(served, running)["status"] == "running"  # only the request was cancelled


def test_the_runs_list_filters_by_environment_status_and_action_and_pages(
    page: WebDriver, served: DaemonProcess, running: str
) -> None:
    log_in(page, served, "carol", path="/runs")
    assert running in listed(page)
    choose(page, status="succeeded")
    assert "status=succeeded" in page.current_url
    assert running not in listed(page) and set(statuses(page)) == {"succeeded"}
    choose(page, status="running", action="apply", env="dev")
    assert listed(page) == [running]
    choose(page, status="", action="", env="staging")
    assert listed(page) == [] and "No runs match these filters" in text(page, "table.runs")
    page.get(f"{served.url}/runs?env=dev&limit=1")
    assert listed(page) == [running]  # the newest first
    follow(page, "Older runs")
    older = listed(page)
    assert len(older) == 1 and older != [running] and "limit=1" in page.current_url
    follow(page, "Newest runs")
    assert listed(page) == [running]


def follow(page: WebDriver, link: str) -> None:
    """Click the link of that text (found again if a live update replaced it)."""
    wait(page).until(lambda p: p.find_element(By.LINK_TEXT, link).click() or True)


def seen(page: WebDriver, read: Callable[[WebDriver], T]) -> T:
    """What `read` finds, read again when a live update replaced what it was reading."""
    found: tuple[T] = wait(page).until(lambda p: (read(p),))
    return found[0]


def listed(page: WebDriver) -> list[str]:
    """The ids of the runs the list shows, once the page is the list (it may list none)."""
    wait(page).until(lambda p: p.find_elements(By.CSS_SELECTOR, "table.runs"))
    return seen(
        page,
        lambda p: [
            str(r.get_attribute("data-run"))
            for r in p.find_elements(By.CSS_SELECTOR, "tr[data-run]")
        ],
    )


def statuses(page: WebDriver) -> list[str]:
    return seen(
        page,
        lambda p: [
            b.text for b in p.find_elements(By.CSS_SELECTOR, "tr[data-run] [data-testid=status]")
        ],
    )


def choose(page: WebDriver, **values: str) -> None:
    """Pick the filters (by value; "" is all) and submit the form, as a user would (picked
    again if a live update replaced the form before the first pick)."""

    def submit(p: WebDriver) -> bool:
        for name, value in values.items():
            pick(p, f"filter-{name}", value)
        p.find_element(By.XPATH, "//button[text()='Filter']").click()
        return True

    wait(page).until(submit)
    wait(page).until(lambda p: all(f"{n}={v}" in p.current_url for n, v in values.items()))


def test_a_filter_chosen_before_a_live_update_is_still_chosen_after_it(
    page: WebDriver, served: DaemonProcess, running: str
) -> None:
    log_in(page, served, "carol", path="/runs")
    assert running in listed(page)
    pick(page, "filter-status", "succeeded")
    before = page.execute_script("return document.getElementById('main').dataset.updated")
    page.execute_script("document.dispatchEvent(new Event('gitopsd:refresh'))")
    page.execute_script("document.activeElement.blur()")  # the update waits for this
    wait(page).until(
        lambda p: (
            p.execute_script("return document.getElementById('main').dataset.updated") != before
        )
    )
    assert chosen(page, "filter-status") == "succeeded"


def test_the_runs_pages_fit_a_390_px_phone_and_cancel_works_by_keyboard(
    page: WebDriver, served: DaemonProcess, running: str
) -> None:
    log_in(page, served, "alice", path="/runs")
    try:
        page.set_window_size(390, 800)
        wait(page).until(lambda p: p.execute_script("return window.innerWidth") <= 390)
        assert overflow(page) == 0  # the list's table scrolls by itself
        page.get(f"{served.url}/runs/{running}")
        wait(page).until(lambda p: "net: applying round" in live_output(p))
        assert overflow(page) == 0
        # keys go to whatever has the focus, as a keyboard's do (a live update may have
        # replaced the element focused a moment ago, keeping the focus on its new copy)
        keyboard = ActionChains(page)
        for _ in range(40):  # Tab from the top of the page until Cancel has the focus
            keyboard.send_keys(Keys.TAB).perform()
            if page.switch_to.active_element.get_attribute("id") == "cancel-run":
                break
        # a live update keeps the focus on Cancel (it has an id): Enter presses it
        wait(page).until(lambda p: p.switch_to.active_element.get_attribute("id") == "cancel-run")
        keyboard.send_keys(Keys.ENTER).perform()
        wait(page).until(lambda p: text(p, "[data-testid=run-status]") == "cancelled")
    finally:
        page.set_window_size(1280, 1000)


def overflow(page: WebDriver) -> int:
    """How much wider than the window the page is."""
    found: int = page.execute_script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    return found


def test_the_runs_list_answers_a_bad_filter_or_page_size_with_a_page_saying_why(
    served: DaemonProcess, forms: FormClient
) -> None:
    forms.log_in("carol")
    for query, status, says in (
        ("limit=0", 422, "limit: a whole number from 1 to 500"),
        ("limit=many", 422, "limit: a whole number from 1 to 500"),
        ("status=broken", 422, "status: &#39;broken&#39; is not one of pending"),
        ("action=deploy", 422, "action: &#39;deploy&#39; is not one of plan"),
        ("env=nowhere", 404, "unknown environment &#39;nowhere&#39;"),
        ("cursor=not-ours", 422, "cursor: not a cursor this API handed out"),
    ):
        answer = forms.http.get(f"/runs?{query}")
        assert (answer.status_code, query) == (status, query)
        assert says in answer.text and "<html" in answer.text
