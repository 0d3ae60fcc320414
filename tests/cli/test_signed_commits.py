"""Signed commits (`--trust-file`, GITOPSD_TRUST_FILE) on the command line: `apply`,
`promote` and `rollback` take only commits signed by a trusted signer where the trust file
requires it, record the others once as `revision.untrusted`, show the environment `blocked`,
and refuse a trust file that is malformed or tampered with. Real keys, real signatures."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.cli.test_run_commands import as_json
from tests.runtime.test_apply_runs import layered
from tests.runtime.test_promotion_flow import chain
from tests.runtime.world import World, environment
from tests.signing import Signers, commit_signed, keys, signers, write_trust_file

__all__ = ["keys", "signers"]  # the fixtures, for pytest

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def world(tmp_path: Path) -> World:
    made = World(tmp_path)
    made.control()
    return made


def run(world: World, *args: str, trust: Path | None = None) -> subprocess.CompletedProcess[str]:
    flags = ("--trust-file", str(trust)) if trust else ()
    done = world.gitopsd(*args, *flags)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def status_of(world: World, name: str) -> dict[str, Any]:
    shown = as_json(run(world, "status", "--env", name, "--output", "json"))
    found: dict[str, Any] = shown["environments"][0]
    return found


def events(world: World, name: str, kind: str) -> list[dict[str, Any]]:
    found = as_json(run(world, "history", "--env", name, "--output", "json"))["events"]
    return [event for event in found if event["kind"] == kind]


def trusting(world: World, signers: Signers) -> Path:
    """A trust file of alice (SSH) and bob (OpenPGP), requiring signed commits in dev."""
    return write_trust_file(
        world.root / "trust.yaml", [signers.alice, signers.bob], required=["dev"]
    )


def resized(size: int) -> dict[str, str]:
    return layered(**{"environments/dev.yaml": environment("dev", variables={"size": size})})


def test_apply_takes_trusted_commits_and_blocks_others_until_a_trusted_one_comes(
    world: World, signers: Signers
) -> None:
    trust = write_trust_file(
        world.root / "trust.yaml", [signers.alice, signers.bob], required=["dev"]
    )
    first = commit_signed(world, resized(3), key=signers.alice)
    applied = run(world, "apply", "--env", "dev", trust=trust)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert status_of(world, "dev")["revision"] == first

    unsigned = commit_signed(world, resized(5), key=None)
    calls = len(world.journal())
    planned = run(world, "plan", "--env", "dev", trust=trust)  # its plan commands would run
    assert planned.returncode == 1, planned.stdout + planned.stderr
    assert f"{unsigned[:12]} is not signed" in planned.stderr
    for _ in range(2):  # asked twice, recorded once
        refused = run(world, "apply", "--env", "dev", trust=trust)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert f"{unsigned[:12]} is not signed" in refused.stderr
    assert len(world.journal()) == calls  # no driver ran
    dev = status_of(world, "dev")
    assert (dev["status"], dev["revision"]) == ("blocked", first)
    assert dev["waiting"]["kind"] == "blocked" and "is not signed" in dev["waiting"]["reason"]
    assert "dev is blocked" in run(world, "status", "--env", "dev").stdout
    recorded = events(world, "dev", "revision.untrusted")
    assert len(recorded) == 1
    assert recorded[0]["data"]["revision"] == unsigned
    assert recorded[0]["data"]["seal"] == "unsigned"
    assert recorded[0]["data"]["key"] is None

    trusted = commit_signed(world, resized(7), key=signers.bob)  # OpenPGP this time
    applied = world.gitopsd("apply", "--env", "dev", env={"GITOPSD_TRUST_FILE": str(trust)})
    assert applied.returncode == 0, applied.stdout + applied.stderr
    dev = status_of(world, "dev")
    assert (dev["status"], dev["revision"], dev["waiting"]) == ("verified", trusted, None)


@pytest.mark.parametrize("kind", ["ssh", "openpgp"])
def test_a_signature_by_a_key_the_trust_file_does_not_list_is_refused_naming_the_key(
    world: World, signers: Signers, kind: str
) -> None:
    mallory = signers.mallory_ssh if kind == "ssh" else signers.mallory_openpgp
    trust = write_trust_file(
        world.root / "trust.yaml", [signers.alice, signers.bob], required=["dev"]
    )
    sha = commit_signed(world, resized(3), key=mallory)
    refused = run(world, "apply", "--env", "dev", "--revision", sha, trust=trust)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "signed by a key the trust file does not list" in refused.stderr
    assert world.journal() == []
    (recorded,) = events(world, "dev", "revision.untrusted")
    assert recorded["data"]["seal"] == "unknown_key"
    assert recorded["data"]["key"] and recorded["data"]["key"] in mallory.fingerprint


def test_environments_the_trust_file_does_not_name_take_any_commit(
    world: World, signers: Signers
) -> None:
    trust = write_trust_file(world.root / "trust.yaml", [signers.alice], required=[])
    commit_signed(world, resized(3), key=None)
    applied = run(world, "apply", "--env", "dev", trust=trust)
    assert applied.returncode == 0, applied.stdout + applied.stderr


def test_promotion_into_an_environment_that_requires_signatures(
    world: World, signers: Signers
) -> None:
    trust = write_trust_file(world.root / "trust.yaml", [signers.alice], required=["prod"])
    files = chain(prod={"approvals": {"required": 0}})
    unsigned = commit_signed(world, files, key=None)
    assert run(world, "apply", "--env", "dev", trust=trust).returncode == 0  # dev: any commit
    refused = run(world, "promote", "--to", "prod", trust=trust)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert f"{unsigned[:12]} is not signed" in refused.stderr
    assert status_of(world, "prod")["status"] == "blocked"
    assert world.calls().count("net") == 1  # dev's apply only

    signed = commit_signed(world, {**files, "notes.txt": "signed"}, key=signers.alice)
    assert run(world, "apply", "--env", "dev", trust=trust).returncode == 0
    promoted = run(world, "promote", "--to", "prod", trust=trust)
    assert promoted.returncode == 0, promoted.stdout + promoted.stderr
    prod = status_of(world, "prod")
    assert (prod["status"], prod["revision"]) == ("verified", signed)


def test_rollback_to_a_revision_that_is_not_signed_is_refused(
    world: World, signers: Signers
) -> None:
    trust = write_trust_file(world.root / "trust.yaml", [signers.alice], required=["dev"])
    unsigned = commit_signed(world, resized(3), key=None)
    assert run(world, "apply", "--env", "dev").returncode == 0  # before the trust file
    signed = commit_signed(world, resized(5), key=signers.alice)
    assert run(world, "apply", "--env", "dev", trust=trust).returncode == 0
    for _ in range(2):  # asked for by name: each request is recorded
        refused = run(world, "rollback", "--env", "dev", "--to", unsigned, trust=trust)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert f"{unsigned[:12]} is not signed" in refused.stderr
    dev = status_of(world, "dev")  # still at its trusted revision: nothing waits
    assert (dev["status"], dev["revision"], dev["waiting"]) == ("verified", signed, None)
    recorded = events(world, "dev", "revision.untrusted")
    assert [e["data"]["revision"] for e in recorded] == [unsigned, unsigned]
    back = run(world, "rollback", "--env", "dev", "--to", signed, trust=trust)
    assert back.returncode == 0, back.stdout + back.stderr


def test_the_keyring_and_allowed_signers_are_private_to_gitopsd(
    world: World, signers: Signers
) -> None:
    trust = write_trust_file(
        world.root / "trust.yaml", [signers.alice, signers.bob], required=["dev"]
    )
    commit_signed(world, resized(3), key=signers.alice)
    assert run(world, "apply", "--env", "dev", trust=trust).returncode == 0
    (built,) = (world.root / "data" / "trust").iterdir()
    assert (built.stat().st_mode & 0o777, (built / "gnupg").stat().st_mode & 0o777) == (
        0o700,
        0o700,
    )
    allowed = built / "allowed_signers"
    assert allowed.stat().st_mode & 0o777 == 0o600
    assert allowed.read_text().startswith(f'alice namespaces="git" {signers.alice.public}')


def _damaged_ssh(signers: Signers) -> str:
    """alice's key with its key type, inside the base64, overwritten."""
    kind, blob, comment = signers.alice.public.split()
    return f"{kind} {blob[:6]}XXXX{blob[10:]} {comment}"


TAMPERED = {
    "a damaged SSH key": (
        _damaged_ssh,
        "trust.yaml:3: signer alice: ssh: not an SSH public key",
    ),
    "a truncated OpenPGP key": (
        lambda s: s.bob.public[: len(s.bob.public) // 2],
        "trust.yaml:3: signer alice: openpgp: not an OpenPGP public key",
    ),
}


@pytest.mark.parametrize("case", sorted(TAMPERED))
def test_a_tampered_key_stops_every_command_that_applies(
    world: World, signers: Signers, case: str
) -> None:
    damage, message = TAMPERED[case]
    kind = "ssh" if "SSH" in case else "openpgp"
    trust = world.root / "trust.yaml"
    trust.write_text(
        f"signers:\n  - name: alice\n    {kind}: {json.dumps(damage(signers))}\n"
        "environments:\n  dev: {require_signed_commits: true}\n"
    )
    commit_signed(world, resized(3), key=signers.alice)
    for command in (["apply", "--env", "dev"], ["serve", "--once"]):
        refused = run(world, *command, trust=trust)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert message in refused.stderr
    assert world.journal() == []


def test_a_key_changed_into_another_valid_key_trusts_no_signature_of_the_real_one(
    world: World, signers: Signers
) -> None:
    kind, blob, comment = signers.alice.public.split()
    other = blob[:40] + ("A" if blob[40] != "A" else "B") + blob[41:]  # still 32 key bytes
    trust = world.root / "trust.yaml"
    trust.write_text(
        f"signers:\n  - name: alice\n    ssh: {kind} {other} {comment}\n"
        "environments:\n  dev: {require_signed_commits: true}\n"
    )
    commit_signed(world, resized(3), key=signers.alice)
    refused = run(world, "apply", "--env", "dev", trust=trust)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "signed by a key the trust file does not list" in refused.stderr
    assert world.journal() == []


MALFORMED = {
    "an unknown environment": (
        "signers:\n  - {name: alice, ssh: KEY}\n"
        "environments:\n  prdo: {require_signed_commits: true}\n",
        "trust.yaml:4: environments.prdo: no such environment in the repository "
        "(environments: dev)",
    ),
    "a signer with two keys": (
        "signers:\n  - name: alice\n    ssh: KEY\n    openpgp: KEY\n",
        "trust.yaml:2: signers[0]: give exactly one key: ssh or openpgp",
    ),
    "an unknown field": (
        "signers:\n  - {name: alice, ssh: KEY}\nenvironments:\n  dev: {require_signed: true}\n",
        "trust.yaml:4: environments.dev.require_signed: unknown field",
    ),
    "no signer for a required environment": (
        "signers: []\nenvironments:\n  dev: {require_signed_commits: true}\n",
        "trust.yaml:3: environments.dev: requires signed commits, but no signer is listed",
    ),
    "two signers of one name": (
        "signers:\n  - {name: alice, ssh: KEY}\n  - {name: alice, ssh: KEY}\n",
        "trust.yaml:3: signers[1].name: 'alice' is also the signer at line 2",
    ),
    "invalid YAML": ("signers: [\n", "trust.yaml:2: invalid YAML"),
    "not a mapping": (
        "- alice\n",
        "trust.yaml:1: expected a mapping with signers and environments",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_trust_file_is_refused_naming_the_line_and_field(
    world: World, signers: Signers, case: str
) -> None:
    text, message = MALFORMED[case]
    trust = world.root / "trust.yaml"
    trust.write_text(text.replace("KEY", f'"{signers.alice.public}"'))
    commit_signed(world, resized(3), key=signers.alice)
    refused = run(world, "apply", "--env", "dev", trust=trust)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert message in refused.stderr
    assert world.journal() == []


def test_a_missing_trust_file_is_refused(world: World) -> None:
    commit_signed(world, resized(3), key=None)
    refused = run(world, "apply", "--env", "dev", trust=world.root / "nowhere.yaml")
    assert refused.returncode == 1
    assert "nowhere.yaml: cannot read the trust file: No such file or directory" in refused.stderr


def test_signers_added_to_the_built_keyring_or_allowed_signers_are_not_trusted(
    world: World, signers: Signers
) -> None:
    """Drivers run as gitopsd's user and could write the allowed signers and keyring it
    builds under the data folder: a key added there, under a listed signer's name, must not
    make its signatures trusted. The next start builds the folder again from the trust
    file."""
    trust = trusting(world, signers)
    commit_signed(world, resized(3), key=signers.alice)
    assert run(world, "apply", "--env", "dev", trust=trust).returncode == 0
    (built,) = (world.root / "data" / "trust").iterdir()
    with (built / "allowed_signers").open("a") as allowed:  # as a driver could
        allowed.write(f'alice namespaces="git" {signers.mallory_ssh.public}\n')
    with (built / "gnupg" / "gpg.conf").open("a") as conf:
        conf.write("keyring /nonexistent/mallory.gpg\n")

    forged = commit_signed(world, resized(5), key=signers.mallory_ssh)
    refused = run(world, "apply", "--env", "dev", "--revision", forged, trust=trust)

    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "signed by a key the trust file does not list" in refused.stderr
    assert status_of(world, "dev")["revision"] != forged
    assert "mallory" not in (built / "allowed_signers").read_text()
    assert "keyring" not in (built / "gnupg" / "gpg.conf").read_text()
