"""The request rules (api/guards.py) through the app: which Host, Origin, Sec-Fetch-Site and
Content-Type a request may carry, what each refusal answers, and that a refused request never
reaches the daemon. The finding itself runs against a real server in
tests/daemon/test_hostile_browsers.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gitopsd.api import webhooks
from gitopsd.api.app import create_app
from gitopsd.api.auth import Tokens
from gitopsd.api.guards import RequestRules
from tests.api.conftest import MakeClient, TestClient
from tests.api.fake_control import FakeControl

RUNS = "/api/v1/environments/dev/runs"
PLAN = b'{"action": "plan"}'


def client_for(fake: FakeControl, rules: RequestRules, base_url: str) -> TestClient:
    app = create_app(fake, tokens=Tokens.none(), webhook_secret=b"s", rules=rules)
    return TestClient(app, base_url=base_url)


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", "Application/JSON ;charset=UTF-8"],
)
def test_json_in_any_spelling_is_accepted(
    client: TestClient, fake: FakeControl, content_type: str
) -> None:
    response = client.post(RUNS, content=PLAN, headers={"Content-Type": content_type})
    assert response.status_code == 202
    assert len(fake.calls_to("submit_run")) == 1


@pytest.mark.parametrize(
    ("method", "path", "content_type"),
    [
        ("POST", RUNS, "text/plain"),
        ("POST", RUNS, "multipart/form-data; boundary=x"),
        ("POST", RUNS, "application/json-patch+json"),
        ("POST", "/api/v1/environments/dev/drift", ""),
        ("POST", "/api/v1/runs/run-1/cancel", "text/plain"),
        ("DELETE", "/api/v1/environments/dev/suspension", ""),
        ("POST", "/api/v1/environments/dev/approvals", "application/x-www-form-urlencoded"),
        ("POST", "/api/v1/environments/prod/promotions", "text/plain"),
        ("POST", "/api/v1/environments/prod/rollbacks", "application/x-www-form-urlencoded"),
    ],
)
def test_a_change_without_json_is_415_and_reaches_nothing(
    client: TestClient, fake: FakeControl, method: str, path: str, content_type: str
) -> None:
    response = client.request(method, path, content=PLAN, headers={"Content-Type": content_type})
    assert response.status_code == 415
    assert response.json()["error"].startswith("Content-Type must be application/json")
    assert fake.calls == []


@pytest.mark.parametrize(
    "site", ["same-origin, cross-site", "cross-site,same-origin", "none ,same-site"]
)
def test_a_cross_site_value_folded_into_a_list_is_still_403(
    client: TestClient, fake: FakeControl, site: str
) -> None:
    """A proxy that folds repeated header lines sends them as one comma-separated list."""
    response = client.post(RUNS, content=PLAN, headers={"Sec-Fetch-Site": site})
    assert response.status_code == 403
    assert "request (Sec-Fetch-Site): use the API directly" in response.json()["error"]
    assert fake.calls == []


def test_reads_need_no_content_type(client: TestClient) -> None:
    assert client.get("/api/v1/environments", headers={"Content-Type": ""}).status_code == 200


def test_a_cross_site_request_is_403_before_its_content_type(
    client: TestClient, fake: FakeControl
) -> None:
    headers = {"Content-Type": "text/plain", "Origin": "https://evil.example"}
    response = client.post(RUNS, content=PLAN, headers=headers)
    assert response.status_code == 403
    assert response.json() == {
        "error": "refused a request from another site (Origin 'https://evil.example')"
    }
    assert fake.calls == []


def test_the_webhook_is_exempt_from_origin_and_type_not_from_host(
    make_client: MakeClient, fake: FakeControl
) -> None:
    client = make_client(webhook_secret=b"secret")
    body = b'{"zen": "hi"}'
    headers = {
        webhooks.EVENT_HEADER: "ping",
        webhooks.SIGNATURE_HEADER: webhooks.sign(b"secret", body),
        "Content-Type": "text/plain",
        "Origin": "https://github.example",
        "Sec-Fetch-Site": "cross-site",
    }
    url = "/api/v1/webhooks/github"
    assert client.post(url, content=body, headers=headers).status_code == 200
    refused = client.post(url, content=body, headers={**headers, "Host": "evil.example"})
    assert refused.status_code == 421


def test_a_wildcard_listener_answers_loopback_names_and_probes_by_ip(fake: FakeControl) -> None:
    rules = RequestRules.for_listen("0.0.0.0", 8080)
    with client_for(fake, rules, "http://127.0.0.1:8080") as client:
        assert client.get("/api/v1/environments").status_code == 200
        assert client.get("/api/v1/environments", headers={"Host": "localhost:8080"}).is_success
        by_ip = {"Host": "10.0.0.5:8080"}
        assert client.get("/api/v1/environments", headers=by_ip).status_code == 421
        assert client.get("/healthz", headers=by_ip).status_code == 200
        assert client.get("/metrics", headers={"Host": "metrics.example:8080"}).status_code == 421


def test_an_ipv6_loopback_listener_answers_every_loopback_name(fake: FakeControl) -> None:
    with client_for(fake, RequestRules.for_listen("::1", 8080), "http://[::1]:8080") as client:
        for host in ("[::1]:8080", "127.0.0.1:8080", "localhost:8080", "LOCALHOST.:8080"):
            assert client.get("/api/v1/runs", headers={"Host": host}).status_code == 200, host
        for host in ("[::1]:8081", "::1:8080", "[::1", "127.0.0.1:http", "", "a b:8080"):
            assert client.get("/api/v1/runs", headers={"Host": host}).status_code == 421, host


def test_any_host_behind_a_proxy_still_wants_a_same_origin_page(fake: FakeControl) -> None:
    rules = RequestRules.for_listen("10.0.0.5", 8080, ["*"])
    with client_for(fake, rules, "http://gitops.example.com") as client:
        assert client.get("/api/v1/runs", headers={"Host": "anything.example"}).status_code == 200
        own = {"Content-Type": "application/json", "Origin": "https://gitops.example.com"}
        assert client.post(RUNS, content=PLAN, headers=own).status_code == 202
        other = {**own, "Origin": "https://evil.example"}
        assert client.post(RUNS, content=PLAN, headers=other).status_code == 403


@pytest.mark.parametrize(
    "entry", ["bad host", "ok.example:http", "::1", "[nope]:80", "ok.example:99999", "[::1]:0"]
)
def test_a_bad_allowed_hosts_entry_is_a_usage_error_in_one_line(tmp_path: Path, entry: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gitopsd", "serve", "--allowed-hosts", f"ok.example,{entry}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 64
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"Error: --allowed-hosts: {entry!r} is not HOST, HOST:PORT, [IPv6]:PORT or *"
        " (a port is 1 to 65535)"
    )
