"""No other page may show the dashboard in a frame (clickjacking), in a real browser.

The session cookie is SameSite=Strict, which keeps it from frames of other sites, but a page
of the same site (another port of the host, a sibling subdomain) framing the dashboard gets
the logged-in page, whose buttons a disguised click would press. So every page says
`frame-ancestors 'none'` (and X-Frame-Options: DENY for older browsers)."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.daemon.harness import DaemonProcess
from tests.dashboard.conftest import log_in, wait

# the frame's own document, not the empty one a frame starts with
LOADED = "return document.URL !== 'about:blank' && document.readyState === 'complete'"


@pytest.fixture
def framing(served: DaemonProcess, tmp_path: Path) -> Iterator[str]:
    """A page on another port of the same host that frames the dashboard's pipeline."""
    (tmp_path / "index.html").write_text(
        f'<!doctype html><iframe id="framed" src="{served.url}/" width="800" height="600"></iframe>'
    )
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/index.html"
    server.shutdown()
    server.server_close()


def test_another_page_cannot_frame_the_dashboard(
    page: WebDriver, served: DaemonProcess, framing: str
) -> None:
    log_in(page, served, "alice")
    page.get(framing)
    frame = wait(page).until(lambda b: b.find_element(By.ID, "framed"))
    page.switch_to.frame(frame)
    try:
        wait(page).until(lambda b: b.execute_script(LOADED))
        assert page.find_elements(By.CSS_SELECTOR, "[data-testid=user]") == []
        assert page.find_elements(By.CSS_SELECTOR, "form[action$='/approve'] button") == []
    finally:
        page.switch_to.default_content()
