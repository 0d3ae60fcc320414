"""The real daemon as a subprocess on a free loopback port, against a real git repository."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.runtime.world import World


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def outward_address() -> str:
    """This machine's address on its network (no packet is sent); skips without one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))
        except OSError:
            pytest.skip("no network interface besides loopback")
        address = str(probe.getsockname()[0])
    if address.startswith("127."):
        pytest.skip("no network interface besides loopback")
    return address


class DaemonProcess:
    """`gitopsd serve` on `world`'s repository (or `repo`, e.g. a file:// URL), with its data
    in `data` (default `world.root / "data"`) and its state at `state` (default SQLite there)."""

    def __init__(
        self,
        world: World,
        *,
        repo: str | None = None,
        state: str | None = None,
        data: Path | None = None,
        **env: str,
    ) -> None:
        self.world = world
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = world.root / f"daemon-{self.port}.log"
        self._repo = repo or str(world.repo)
        self.data = data or world.root / "data"
        self.state = state or f"sqlite:///{self.data / 'state.db'}"
        self._env = env
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *extra: str) -> DaemonProcess:
        self.launch(*extra)
        self.wait_for(lambda: self._answers("/healthz"), what="the daemon to answer")
        return self

    def launch(self, *extra: str) -> DaemonProcess:
        """Start the process without waiting for it to answer."""
        env = {
            **os.environ,
            "TEST_JOURNAL": str(self.world.journal_path),
            "TEST_CONTROL": str(self.world.control_path),
            **self._env,
        }
        command = [
            sys.executable, "-m", "gitopsd", "serve",
            "--listen", f"127.0.0.1:{self.port}",
            "--repo", self._repo,
            "--data-dir", str(self.data),
            "--state", self.state,
            *extra,
        ]  # fmt: skip
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command, cwd=self.world.root, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        return self

    def _answers(self, path: str) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(
                f"the daemon exited with {self.process.returncode}:\n{self.logs()}"
            )
        try:
            return httpx.get(self.url + path, timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def ready(self) -> bool:
        return self._answers("/readyz")

    def get(self, path: str, **options: Any) -> httpx.Response:
        return httpx.get(self.url + path, timeout=10, **options)

    def post(self, path: str, **options: Any) -> httpx.Response:
        """POST as API clients do: `Content-Type: application/json` unless `headers` say."""
        headers = {"Content-Type": "application/json", **options.pop("headers", {})}
        return httpx.post(self.url + path, timeout=10, headers=headers, **options)

    def environment(self, name: str = "dev", **options: Any) -> dict[str, Any]:
        response = self.get(f"/api/v1/environments/{name}", **options)
        assert response.status_code == 200, response.text
        found: dict[str, Any] = response.json()
        return found

    def wait_for(self, check: Callable[[], bool], *, what: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}\n{self.logs()}")

    def terminate(self, *, timeout: float = 60) -> int:
        """SIGTERM, then wait for the exit code."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def logs(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample of a Prometheus exposition, or None if absent."""
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        sample, _, label_text = series.partition("{")
        found = ",".join(sorted(label_text.rstrip("}").split(","))) if label_text else ""
        if sample == name and found == wanted:
            return float(value)
    return None
