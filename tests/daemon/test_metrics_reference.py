"""docs/reference/metrics.md lists what a running daemon's /metrics serves: every metric, with
its type and every label its series carry, and nothing it does not serve."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from gitopsd.reference import metrics
from tests.daemon.conftest import StartDaemon
from tests.runtime.world import World


def test_the_metrics_reference_matches_a_running_daemon(world: World, daemon: StartDaemon) -> None:
    served = daemon("--poll-interval", "1h")
    served.wait_for(lambda: served.environment("dev")["status"] == "verified", what="apply")
    exposed = {
        family.name + ("_total" if family.type == "counter" else ""): family
        for family in text_string_to_metric_families(served.get("/metrics").text)
        if not (family.name.endswith("_created") and family.type == "gauge")
    }
    documented = {family.name: family for family in metrics.families()}
    assert sorted(exposed) == sorted(documented)
    for name, family in exposed.items():
        assert family.type == documented[name].type, name
        assert family.documentation == documented[name].help, name
        labels = {label for sample in family.samples for label in sample.labels} - {"le"}
        assert labels <= set(documented[name].labels), name
    reference = (metrics.render()).splitlines()
    assert all(any(f"`{name}`" in line for line in reference) for name in exposed)
