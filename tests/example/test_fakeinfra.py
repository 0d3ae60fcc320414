"""fakeinfra, the example repo's simulated cloud, run as gitopsd runs a `command` driver.

Each test starts the real script as a subprocess in a read-only checkout, with the SPEC
section 4 environment, and judges it by exit codes, files and printed diffs.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.example.conftest import Driver

FAKEINFRA = Path(__file__).resolve().parents[2] / "components" / "_lib" / "fakeinfra.py"


def tamper(driver: Driver, *args: str) -> subprocess.CompletedProcess[str]:
    return driver.run("tamper", "--state-dir", str(driver.state_dir), *args)


def files_under(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_plan_on_empty_state_shows_a_create_and_exits_2(driver: Driver) -> None:
    result = driver.run("plan")
    assert result.returncode == 2, result.stderr
    assert "+ node_count: 3" in result.stdout
    assert "+ region: westeurope" in result.stdout
    assert not driver.state_path.exists()


def test_apply_writes_the_state_and_an_object_of_outputs(driver: Driver) -> None:
    result = driver.run("apply")
    assert result.returncode == 0, result.stderr
    assert json.loads(driver.state_path.read_text())["attributes"]["node_count"] == 3
    outputs = driver.outputs()
    assert outputs["vnet_id"].startswith("vnet-")
    assert set(outputs["subnet_ids"]) == {"nodes", "ingress"}
    assert "created" in result.stdout


def test_plan_after_apply_has_no_changes_and_a_changed_input_is_an_update(driver: Driver) -> None:
    driver.run("apply")
    assert driver.run("plan").returncode == 0
    driver.set_inputs({"region": "northeurope", "node_count": 3, "subnets": ["nodes", "ingress"]})
    result = driver.run("plan")
    assert result.returncode == 2
    assert "~ region: westeurope -> northeurope" in result.stdout


def test_tamper_makes_check_report_drift_and_health_fail(driver: Driver) -> None:
    driver.run("apply")
    assert driver.run("check").returncode == 0
    assert driver.run("health").returncode == 0
    assert tamper(driver, "--key", "node_count", "--value", "9").returncode == 0
    check = driver.run("check")
    assert check.returncode == 2
    assert "~ node_count: 9 -> 3" in check.stdout
    assert driver.run("health").returncode == 1


def test_tamper_without_a_key_adds_an_attribute_the_check_would_remove(driver: Driver) -> None:
    driver.run("apply")
    tamper(driver)
    check = driver.run("check")
    assert check.returncode == 2
    assert "- manual_edit: changed by hand" in check.stdout


def test_apply_repairs_drift(driver: Driver) -> None:
    driver.run("apply")
    tamper(driver, "--key", "region", "--value", "eastus")
    assert driver.run("apply").returncode == 0
    assert driver.run("check").returncode == 0


def test_tamper_before_any_apply_is_an_error(driver: Driver) -> None:
    result = tamper(driver)
    assert result.returncode == 1
    assert "apply the component first" in result.stderr


def test_destroy_removes_the_state_and_may_run_twice(driver: Driver) -> None:
    driver.run("apply")
    assert driver.run("destroy").returncode == 0
    assert not driver.state_path.exists()
    assert driver.run("health").returncode == 1
    assert driver.run("destroy").returncode == 0


@pytest.mark.parametrize("fail", ["network:apply", "dev/network:apply", "*:apply", "x:y,network:*"])
def test_an_injected_failure_fails_that_action_and_changes_nothing(
    driver: Driver, fail: str
) -> None:
    result = driver.run("apply", FAKEINFRA_FAIL=fail)
    assert result.returncode == 1
    assert "FAKEINFRA_FAIL" in result.stderr
    assert not driver.state_path.exists()


def test_an_injected_failure_leaves_other_calls_alone(driver: Driver) -> None:
    others = "staging/network:apply,clusters:apply,network:health,network"
    assert driver.run("apply", FAKEINFRA_FAIL=others).returncode == 0


def test_empty_inputs_still_make_a_resource(driver: Driver) -> None:
    driver.set_inputs({})
    assert driver.run("plan").returncode == 2
    assert driver.run("apply").returncode == 0
    assert driver.run("plan").returncode == 0
    assert driver.run("health").returncode == 0


def test_nested_inputs_are_compared_whole(driver: Driver) -> None:
    inputs = {"tags": {"team": "infra"}, "subnets": [{"name": "nodes", "size": 20}]}
    driver.set_inputs(inputs)
    driver.run("apply")
    assert set(driver.outputs()["subnet_ids"]) == {"nodes"}
    driver.set_inputs(inputs | {"tags": {"team": "apps"}})
    result = driver.run("check")
    assert result.returncode == 2
    assert '~ tags: {"team": "infra"} -> {"team": "apps"}' in result.stdout


def test_output_values_follow_their_name_suffix(driver: Driver) -> None:
    names = "cluster_endpoint kubeconfig_ref ingress_ip ingress_host dashboard_url region"
    assert driver.run("apply", FAKEINFRA_OUTPUTS=names).returncode == 0
    outputs = driver.outputs()
    assert outputs["cluster_endpoint"].startswith("https://cluster-")
    assert outputs["kubeconfig_ref"] == "secret://dev/network/kubeconfig"
    assert outputs["ingress_ip"].startswith("203.0.113.")
    assert outputs["ingress_host"].endswith(".dev.example.test")
    assert outputs["dashboard_url"].startswith("https://dashboard-")
    assert outputs["region"] == "westeurope"  # no known suffix: the input of that name


def test_outputs_are_stable_in_place_and_change_with_region_or_environment(
    driver: Driver,
) -> None:
    driver.run("apply")
    first = driver.outputs()["vnet_id"]
    driver.set_inputs({"region": "westeurope", "node_count": 7, "subnets": ["nodes", "ingress"]})
    driver.run("apply")
    assert driver.outputs()["vnet_id"] == first  # an in-place update keeps the resource
    driver.environment = "prod"
    driver.run("apply")
    in_prod = driver.outputs()["vnet_id"]
    driver.set_inputs({"region": "northeurope", "node_count": 7, "subnets": ["nodes", "ingress"]})
    driver.run("apply")
    assert len({first, in_prod, driver.outputs()["vnet_id"]}) == 3


def test_no_action_writes_into_its_working_directory(driver: Driver, checkout: Path) -> None:
    before = files_under(checkout)
    for action in ("plan", "apply", "check", "health", "destroy"):
        assert driver.run(action).returncode in (0, 2)
    assert files_under(checkout) == before


@pytest.mark.parametrize("content", ["[1, 2]", "{not json"])
def test_unreadable_inputs_are_an_error_not_a_change(driver: Driver, content: str) -> None:
    driver.inputs_path.write_text(content)
    result = driver.run("plan")
    assert result.returncode == 1
    assert "inputs" in result.stderr


def test_missing_protocol_variables_and_bad_usage_are_errors(driver: Driver) -> None:
    assert driver.run("plan", GITOPSD_STATE_DIR="").returncode == 1
    assert driver.run("frobnicate").returncode == 1
    assert driver.run("plan", "--extra").returncode == 1
    assert driver.run("tamper", "--key", "node_count").returncode == 1  # no --state-dir
    assert tamper(driver, "--colour", "red").returncode == 1
    assert driver.run("plan", FAKEINFRA_DELAY="soon").returncode == 1


def test_delay_slows_every_call(driver: Driver) -> None:
    started = time.monotonic()
    assert driver.run("plan", FAKEINFRA_DELAY="0.15").returncode == 2
    assert time.monotonic() - started >= 0.15


def test_the_simulator_is_executable() -> None:
    assert FAKEINFRA.stat().st_mode & 0o111


def test_an_injected_apply_failure_spares_an_apply_of_what_is_there(driver: Driver) -> None:
    """gitopsd's rollback of the component whose apply failed re-applies what it had: the
    failure changed nothing, so that apply has nothing to do and succeeds."""
    assert driver.run("apply").returncode == 0
    before = driver.state_path.read_bytes()
    assert driver.run("apply", FAKEINFRA_FAIL="network:apply").returncode == 0
    driver.set_inputs({"region": "northeurope", "node_count": 3, "subnets": ["nodes"]})
    changing = driver.run("apply", FAKEINFRA_FAIL="network:apply")
    assert changing.returncode == 1 and "FAKEINFRA_FAIL" in changing.stderr
    assert driver.state_path.read_bytes() == before
