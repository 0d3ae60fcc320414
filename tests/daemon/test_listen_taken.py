"""A listen address another process holds stops `gitopsd serve` before any work: one line
naming the address and the two ways to choose another, exit 1, no driver called, no run."""

from __future__ import annotations

import socket

from tests.daemon.harness import DaemonProcess
from tests.runtime.world import World


def test_a_taken_port_stops_serve_in_one_line_before_any_run(world: World) -> None:
    served = DaemonProcess(world)
    with socket.create_server(("127.0.0.1", served.port)):  # another program holds it
        served.launch()
        assert served.process is not None
        exit_code = served.process.wait(timeout=60)
    said = served.logs().strip()
    assert exit_code == 1, said
    assert "Traceback" not in said and len(said.splitlines()) == 1, said
    assert said.startswith(f"gitopsd: error: cannot listen on 127.0.0.1:{served.port}: "), said
    assert "--listen" in said and "GITOPSD_LISTEN" in said
    assert world.calls() == []  # nothing applied...
    assert not (served.data / "state.db").exists()  # ...and no store opened, so no run left


def test_once_the_port_is_free_the_same_daemon_serves_and_applies(world: World) -> None:
    served = DaemonProcess(world)
    with socket.create_server(("127.0.0.1", served.port)):
        served.launch()
        assert served.process is not None and served.process.wait(timeout=60) == 1
    try:
        served.start()  # the same address, now free
        served.wait_for(lambda: served.environment("dev")["status"] == "verified", what="dev")
        assert sorted(world.calls()) == ["app", "dns", "k8s", "net"]
        assert served.terminate() == 0
    finally:
        served.stop()
