"""Behind a TLS proxy, the dashboard's cookies are Secure, wherever the proxy runs.

The server takes `X-Forwarded-Proto` only from a proxy on loopback; one on another host (an
ingress in front of the daemon's pod) reaches it over plain HTTP for browsers that use
HTTPS. With an `https://` public URL (`GITOPSD_PUBLIC_URL`) the login and session cookies
are Secure all the same, so a browser never sends them over plain HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.daemon.harness import DaemonProcess, outward_address
from tests.dashboard.conftest import token, write_tokens
from tests.runtime.world import World

PUBLIC = "gitops.example.com"


@pytest.fixture
def behind_proxy(world: World) -> Iterator[str]:
    """A daemon on every interface with an https:// public URL; the URL a proxy on another
    host (not loopback) would use to reach it."""
    address = outward_address()
    daemon = DaemonProcess(
        world,
        data=world.root / "data-proxy",
        GITOPSD_TOKENS_FILE=str(write_tokens(world.root)),
        GITOPSD_PUBLIC_URL=f"https://{PUBLIC}",
        GITOPSD_ALLOWED_HOSTS=PUBLIC,
    )
    daemon.start("--listen", f"0.0.0.0:{daemon.port}")
    yield f"http://{address}:{daemon.port}"
    daemon.stop()


def test_cookies_are_secure_behind_a_tls_proxy_on_another_host(behind_proxy: str) -> None:
    headers = {"Host": PUBLIC, "X-Forwarded-Proto": "https"}
    with httpx.Client(base_url=behind_proxy, headers=headers) as proxy:
        form = proxy.get("/login")
        assert form.status_code == 200
        login_cookie = form.headers["set-cookie"]
        assert login_cookie.startswith("gitopsd_login=") and "; Secure" in login_cookie
        csrf = login_cookie.split(";")[0].split("=", 1)[1]
        answer = proxy.post(
            "/login",
            data={"csrf": csrf, "token": token("carol"), "next": "/"},
            headers={"Cookie": f"gitopsd_login={csrf}", "Origin": f"https://{PUBLIC}"},
            follow_redirects=False,
        )
    assert answer.status_code == 303, answer.text
    session = next(c for c in answer.headers.get_list("set-cookie") if "gitopsd_session=" in c)
    assert "; Secure" in session and "; HttpOnly" in session
