"""A real `gitopsd serve` without a tokens file, asked by a hostile web page (SPEC 6): a
cross-site or non-JSON request changes nothing, a foreign `Host` reads nothing, and the
clients that should work (an HTTP library, curl, the server's own pages) still do."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import httpx
import pytest

from tests.daemon.harness import DaemonProcess
from tests.runtime.test_apply_runs import layered
from tests.runtime.world import World

DESTROY = b'{"action": "destroy"}'
RUNS = "/api/v1/environments/dev/runs"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    """One daemon for the module, dev applied; the tests that start runs ask for plans."""
    world = World(tmp_path_factory.mktemp("browsers"))
    world.control()
    world.commit(layered())
    daemon = DaemonProcess(world, GITOPSD_ALLOWED_HOSTS="gitops.example.com,[::1]:9")
    daemon.start("--poll-interval", "1h")
    daemon.wait_for(lambda: daemon.environment("dev")["status"] == "verified", what="apply")
    yield daemon
    daemon.stop()


def raw_post(served: DaemonProcess, path: str, body: bytes, **headers: str) -> httpx.Response:
    """A POST carrying exactly `headers` (besides Host and Content-Length)."""
    return httpx.post(served.url + path, content=body, headers=headers, timeout=10)


def destroys(served: DaemonProcess) -> list[str]:
    runs = served.get("/api/v1/runs", params={"env": "dev"}).json()["runs"]
    return [run["id"] for run in runs if run["action"] == "destroy"]


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Content-Type": "text/plain", "Origin": "http://evil.example"}, 403),  # the finding
        ({"Content-Type": "text/plain"}, 415),  # a form-like POST, no Origin
        ({"Content-Type": "application/x-www-form-urlencoded"}, 415),
        ({"Content-Type": "application/json", "Origin": "http://evil.example"}, 403),
        ({"Content-Type": "application/json", "Origin": "null"}, 403),
        ({"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"}, 403),
        ({"Content-Type": "application/json", "Sec-Fetch-Site": "same-site"}, 403),
    ],
)
def test_a_hostile_page_cannot_destroy(
    served: DaemonProcess, headers: dict[str, str], status: int
) -> None:
    response = raw_post(served, RUNS, DESTROY, **headers)
    assert response.status_code == status
    assert set(response.json()) == {"error"}
    assert destroys(served) == []
    assert served.world.calls("destroy") == []


def test_a_rebinding_host_reads_nothing(served: DaemonProcess) -> None:
    for path in ("/api/v1/environments", "/api/v1/runs", "/metrics", "/readyz"):
        response = served.get(path, headers={"Host": f"evil.example:{served.port}"})
        assert response.status_code == 421, path
        assert "evil.example" in response.json()["error"]
    response = raw_post(
        served, RUNS, DESTROY, **{"Host": "evil.example", "Content-Type": "application/json"}
    )
    assert response.status_code == 421
    assert destroys(served) == []


def test_the_listen_address_and_allowed_hosts_are_answered(served: DaemonProcess) -> None:
    for host in (
        f"127.0.0.1:{served.port}",
        f"localhost:{served.port}",
        f"[::1]:{served.port}",
        "gitops.example.com",  # an --allowed-hosts entry without a port: any port
        "GITOPS.example.com:443",
        "[::1]:9",
    ):
        response = served.get("/api/v1/environments", headers={"Host": host})
        assert response.status_code == 200, host
    for host in ("127.0.0.1:1", f"gitops.example.org:{served.port}", "[::1]:10"):
        response = served.get("/api/v1/environments", headers={"Host": host})
        assert response.status_code == 421, host


def test_probes_answer_by_ip_address_as_kubernetes_and_prometheus_ask(
    served: DaemonProcess,
) -> None:
    for path in ("/healthz", "/readyz", "/metrics"):
        assert served.get(path, headers={"Host": "10.1.2.3:8080"}).status_code == 200, path
        assert served.get(path, headers={"Host": "[fd00::7]:8080"}).status_code == 200, path
    assert served.get("/api/v1/environments", headers={"Host": "10.1.2.3:8080"}).status_code == 421


def test_an_http_library_curl_and_the_servers_own_pages_may_change_things(
    served: DaemonProcess,
) -> None:
    plan = {"action": "plan"}
    assert served.post(RUNS, json=plan).status_code == 202  # httpx: JSON, no Origin
    curl = subprocess.run(
        [
            "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
            "-H", "Content-Type: application/json; charset=utf-8",
            "-d", '{"action": "plan"}', served.url + RUNS,
        ],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert curl.stdout == "202"
    own_page = {
        "Content-Type": "application/json",
        "Origin": served.url,
        "Sec-Fetch-Site": "same-origin",
    }
    assert raw_post(served, RUNS, b'{"action": "plan"}', **own_page).status_code == 202
    proxied = {"Content-Type": "application/json", "Origin": "https://gitops.example.com"}
    assert raw_post(served, RUNS, b'{"action": "plan"}', **proxied).status_code == 202
    typed = {"Content-Type": "application/json", "Sec-Fetch-Site": "none"}  # typed in the bar
    assert raw_post(served, "/api/v1/environments/dev/drift", b"", **typed).status_code == 202


def test_numbers_written_in_other_digits_are_refused_not_a_crash(served: DaemonProcess) -> None:
    """'²' is a digit to str.isdigit and not to int: each place that checked a number a
    client wrote with isdigit and then read it with int answered 500 (the Host's or the
    Origin's port on every route, Last-Event-ID on a run's output, `limit` on /runs and `v`
    on /events). They answer as for any other number that is not one."""
    superscript = b"\xb2"  # '²' as a header's Latin-1, and %C2%B2 in a query string
    host = httpx.get(served.url + "/healthz", headers={"Host": b"127.0.0.1:" + superscript})
    assert host.status_code == 421
    origin = {"Content-Type": "application/json", "Origin": b"http://127.0.0.1:" + superscript}
    assert httpx.post(served.url + RUNS, content=DESTROY, headers=origin).status_code == 403
    assert destroys(served) == []

    run = served.get("/api/v1/runs", params={"env": "dev"}).json()["runs"][0]["id"]
    logs = served.get(f"/api/v1/runs/{run}/logs", headers={"Last-Event-ID": superscript})
    assert logs.status_code == 200
    assert served.get("/runs", params={"limit": "²"}).status_code == 422
    with httpx.stream("GET", served.url + "/events?v=%C2%B2", timeout=10) as events:
        assert events.status_code == 200
