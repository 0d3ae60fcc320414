"""deploy/: the systemd unit, the Dockerfile and the Kubernetes manifests.

Neither Docker nor Kubernetes runs here: these tests check the files themselves. The systemd
unit is also checked by `systemd-analyze verify`, and the kustomization rendered by
`kubectl kustomize` (offline), when those tools exist.
"""

from __future__ import annotations

import configparser
import pwd
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
UNIT = DEPLOY / "systemd" / "gitopsd.service"
ENV_EXAMPLE = DEPLOY / "systemd" / "gitopsd.env.example"
DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
K8S = DEPLOY / "kubernetes"

HARDENING = {
    "User": "gitopsd",
    "Group": "gitopsd",
    "DynamicUser": "no",
    "WorkingDirectory": "/var/lib/gitopsd",
    "StateDirectory": "gitopsd",
    "RuntimeDirectory": "gitopsd",  # drivers' inputs files in memory (call_folder)
    "RuntimeDirectoryMode": "0700",
    "ProtectSystem": "strict",
    "ReadWritePaths": "/var/lib/gitopsd",
    "PrivateTmp": "yes",
    "NoNewPrivileges": "yes",
    "ProtectHome": "yes",
    "Restart": "on-failure",
    "RestartSec": "5",
    "KillSignal": "SIGTERM",
    "KillMode": "mixed",
    "TimeoutStopSec": "90",
    "EnvironmentFile": "-/etc/gitopsd/gitopsd.env",
}


def read_unit(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text)
    return parser


# --- systemd -------------------------------------------------------------------------------


def test_unit_parses_and_is_hardened() -> None:
    unit = read_unit(UNIT.read_text(encoding="utf-8"))
    assert set(unit.sections()) == {"Unit", "Service", "Install"}
    service = unit["Service"]
    for key, value in HARDENING.items():
        assert service.get(key) == value, key
    exec_start = service["ExecStart"].split()
    assert exec_start[:2] == ["/opt/gitopsd/bin/gitopsd", "serve"]
    assert exec_start[exec_start.index("--repo") + 1] == "https://git.example.com/infra.git"
    assert exec_start[exec_start.index("--listen") + 1] == "127.0.0.1:8080"
    # Drivers may be anything: nothing that breaks JITs or arbitrary binaries.
    assert "MemoryDenyWriteExecute" not in service
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_stop_timeout_covers_the_shutdown_grace() -> None:
    service = read_unit(UNIT.read_text(encoding="utf-8"))["Service"]
    grace, driver_kill = 30, 10  # GITOPSD_SHUTDOWN_GRACE default, then SIGKILL after 10 s
    assert int(service["TimeoutStopSec"]) > grace + driver_kill


def test_env_example_names_the_settings() -> None:
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    assert re.search(r"^GITOPSD_TOKENS_FILE=/etc/gitopsd/tokens\.yaml$", text, re.M)
    assert re.search(r"^GITOPSD_WEBHOOK_SECRET=", text, re.M)
    assert not re.search(r"^\s*export ", text, re.M)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is not installed: the unit is only checked by parsing",
)
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    lines = []
    for line in UNIT.read_text(encoding="utf-8").splitlines():
        if line.startswith("ExecStart="):
            # verify checks the binary exists; /opt/gitopsd is not installed here.
            line = line.replace("/opt/gitopsd/bin/gitopsd", "/bin/true", 1)
        if line.startswith(("User=", "Group=")) and not _user_exists("gitopsd"):
            continue
        lines.append(line)
    copy = tmp_path / "gitopsd.service"
    copy.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # Unknown keys and bad values are only warnings ("...: Unknown key ..., ignoring").
    about_unit = [line for line in output.splitlines() if str(copy) in line]
    assert not about_unit, output


# --- Docker --------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    found = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def test_dockerfile() -> None:
    instructions = dockerfile_instructions()
    keywords = [k for k, _ in instructions]
    assert instructions[0] == ("FROM", "python:3.11-slim")
    runs = " ".join(rest for k, rest in instructions if k == "RUN")
    assert re.search(r"apt-get install\b[^&]*\bgit\b", runs)
    assert "useradd" in runs and "pip install ." in runs
    copies = [rest for k, rest in instructions if k == "COPY"]
    assert copies == ["pyproject.toml README.md ./", "daemon ./daemon"]
    users = [rest for k, rest in instructions if k == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert keywords.index("USER") > max(i for i, k in enumerate(keywords) if k == "RUN")
    assert ("WORKDIR", "/var/lib/gitopsd") in instructions
    assert ("EXPOSE", "8080") in instructions
    (healthcheck,) = [rest for k, rest in instructions if k == "HEALTHCHECK"]
    assert "urllib.request" in healthcheck and "/healthz" in healthcheck
    (entrypoint,) = [rest for k, rest in instructions if k == "ENTRYPOINT"]
    assert entrypoint == '["gitopsd", "serve", "--listen", "0.0.0.0:8080"]'


# --- Kubernetes ----------------------------------------------------------------------------


def load_all(name: str) -> list[dict[str, Any]]:
    with (K8S / name).open(encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d is not None]
    assert docs, name
    return docs


def load_one(name: str) -> dict[str, Any]:
    (doc,) = load_all(name)
    return doc


@pytest.mark.parametrize(
    "name",
    [
        "deployment.yaml",
        "service.yaml",
        "servicemonitor.yaml",
        "pvc.yaml",
        "secrets.example.yaml",
        "kustomization.yaml",
    ],
)
def test_kubernetes_yaml_parses(name: str) -> None:
    for doc in load_all(name):
        assert doc["apiVersion"] and doc["kind"]


def test_kustomization_lists_everything_but_the_example_secret() -> None:
    kustomization = load_one("kustomization.yaml")
    resources = kustomization["resources"]
    assert sorted(resources) == [
        "deployment.yaml",
        "pvc.yaml",
        "service.yaml",
        "servicemonitor.yaml",
    ]
    assert "secrets.example.yaml" not in resources
    (config,) = kustomization["configMapGenerator"]
    assert config["name"] == "gitopsd-config"
    assert any(lit.startswith("GITOPSD_REPO=") for lit in config["literals"])


def test_deployment() -> None:
    deployment = load_one("deployment.yaml")
    assert deployment["kind"] == "Deployment"
    spec = deployment["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    resources = container["resources"]
    assert resources["requests"]["memory"] and resources["limits"]["memory"]

    env = {e["name"]: e for e in container["env"]}
    assert env["GITOPSD_TOKENS_FILE"]["value"] == "/etc/gitopsd/tokens.yaml"
    assert env["GITOPSD_WEBHOOK_SECRET"]["valueFrom"]["secretKeyRef"] == {
        "name": "gitopsd-webhook",
        "key": "secret",
    }
    assert {"configMapRef": {"name": "gitopsd-config"}} in container["envFrom"]

    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert (
        volumes[mounts["/var/lib/gitopsd"]]["persistentVolumeClaim"]["claimName"]
        == (load_one("pvc.yaml")["metadata"]["name"])
    )
    assert volumes[mounts["/etc/gitopsd"]]["secret"]["secretName"] == "gitopsd-tokens"
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert pod["terminationGracePeriodSeconds"] > 40


def test_service_and_servicemonitor() -> None:
    service = load_one("service.yaml")
    assert service["spec"]["ports"][0]["name"] == "http"
    assert service["spec"]["ports"][0]["port"] == 8080
    labels = service["metadata"]["labels"]
    monitor = load_one("servicemonitor.yaml")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["kind"] == "ServiceMonitor"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert monitor["spec"]["endpoints"] == [{"port": "http", "path": "/metrics", "interval": "30s"}]


def test_example_secrets_match_the_deployment() -> None:
    secrets = {d["metadata"]["name"]: d for d in load_all("secrets.example.yaml")}
    assert set(secrets) == {"gitopsd-tokens", "gitopsd-webhook"}
    tokens = yaml.safe_load(secrets["gitopsd-tokens"]["stringData"]["tokens.yaml"])
    assert {"name", "email", "roles", "token_sha256"} <= tokens[0].keys()
    assert "PLACEHOLDER" in secrets["gitopsd-webhook"]["stringData"]["secret"]


@pytest.mark.skipif(
    shutil.which("kubectl") is None,
    reason="kubectl is not installed: the kustomization is only checked by parsing",
)
def test_kustomization_renders() -> None:
    result = subprocess.run(
        ["kubectl", "kustomize", str(K8S)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    kinds = sorted(d["kind"] for d in yaml.safe_load_all(result.stdout) if d)
    assert kinds == [
        "ConfigMap",
        "Deployment",
        "PersistentVolumeClaim",
        "Service",
        "ServiceMonitor",
    ]
