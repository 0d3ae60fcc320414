"""Without a tokens file (loopback only) the dashboard needs no login: everyone is `local`
with every role, and the forms still carry a CSRF token. Form POSTs are the dashboard's;
the API keeps its JSON-only rule."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest

from tests.daemon.harness import DaemonProcess
from tests.dashboard.conftest import CSRF_FIELD
from tests.runtime.test_apply_runs import layered
from tests.runtime.world import World


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    world = World.committed(tmp_path_factory.mktemp("open"), layered())
    daemon = DaemonProcess(world).start()
    daemon.wait_for(lambda: daemon.environment("dev")["status"] == "verified", what="dev")
    yield daemon
    daemon.stop()


@pytest.fixture
def browser_like(served: DaemonProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, timeout=10) as client:
        yield client


def test_the_local_user_gets_the_pipeline_without_logging_in(browser_like: httpx.Client) -> None:
    page = browser_like.get("/")
    assert page.status_code == 200
    assert 'data-testid="user">local<' in page.text
    assert "Log out" not in page.text
    cookie = page.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "secure" not in cookie
    assert page.headers["cache-control"] == "no-store"
    assert browser_like.get("/login", follow_redirects=False).headers["location"] == "/"


def test_a_form_post_needs_the_pages_csrf_token_and_the_drift_page_shows_the_check(
    browser_like: httpx.Client, served: DaemonProcess
) -> None:
    found = CSRF_FIELD.search(browser_like.get("/environments/dev").text)
    assert found is not None
    refused = browser_like.post("/environments/dev/drift-check", data={})
    assert refused.status_code == 403
    done = browser_like.post("/environments/dev/drift-check", data={"csrf": found.group(1)})
    assert done.status_code == 303
    assert "done=drift" in done.headers["location"]
    served.wait_for(lambda: "Not checked yet" not in browser_like.get("/drift").text, what="drift")
    report = browser_like.get("/drift").text  # the report the check wrote
    # the test driver's plan says every component changed: the report says so, and what
    # the check said of each, as the Markdown report does
    assert 'data-testid="result">drifted<' in report
    for component in ("net", "dns", "k8s", "app"):
        assert f'<th scope="row">{component}</th><td>drifted</td>' in report
        assert f"<pre>{component}:plan exit 2</pre>" in report


def test_the_api_still_takes_only_json_and_the_dashboard_forms_from_its_own_site(
    browser_like: httpx.Client, served: DaemonProcess
) -> None:
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    api = httpx.post(served.url + "/api/v1/environments/dev/drift", headers=form, content="")
    assert api.status_code == 415
    found = CSRF_FIELD.search(browser_like.get("/environments/dev").text)
    assert found is not None
    evil = browser_like.post(
        "/environments/dev/drift-check",
        data={"csrf": found.group(1)},
        headers={"Origin": "http://evil.example"},
    )
    assert evil.status_code == 403
    rebound = browser_like.get("/", headers={"Host": "evil.example"})
    assert rebound.status_code == 421


def test_an_unknown_environment_is_a_404_page(browser_like: httpx.Client) -> None:
    page = browser_like.get("/environments/nope")
    assert page.status_code == 404
    assert "unknown environment" in page.text and page.headers["content-type"].startswith(
        "text/html"
    )


def test_open_pages_end_their_event_streams_when_the_daemon_stops(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    world = World.committed(tmp_path_factory.mktemp("stopping"), layered())
    daemon = DaemonProcess(world).start()
    try:
        streams = [socket.create_connection(("127.0.0.1", daemon.port), timeout=30)
                   for _ in range(3)]  # fmt: skip
        for stream in streams:
            stream.sendall(
                f"GET /events HTTP/1.1\r\nHost: 127.0.0.1:{daemon.port}\r\n\r\n".encode()
            )
            assert stream.recv(64).startswith(b"HTTP/1.1 200")
        assert daemon.terminate() == 0
        for stream in streams:
            assert _rest(stream).endswith(b"0\r\n\r\n")  # the chunked body ended properly
        # the streams ended when the stop began, not cut off when its grace ran out
        assert "timeout graceful shutdown exceeded" not in daemon.logs()
    finally:
        daemon.stop()


def _rest(stream: socket.socket) -> bytes:
    received = b""
    while chunk := stream.recv(4096):
        received += chunk
    stream.close()
    return received
