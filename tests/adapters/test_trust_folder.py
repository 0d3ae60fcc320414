"""The keyring and allowed signers gitopsd builds from the trust file, changed on disk while
it runs (a driver runs as gitopsd's user and could): no check trusts anything until a restart
builds them again. Real keys, real signed commits, git's own verification."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from gitopsd.adapters import trust_file
from gitopsd.adapters.commit_signatures import CommitSignatures
from gitopsd.engine.signing import Seal
from tests.runtime.test_apply_runs import layered
from tests.runtime.world import World, environment
from tests.signing import Signers, commit_signed, keys, signers, write_trust_file

__all__ = ["keys", "signers"]  # the fixtures, for pytest

pytestmark = pytest.mark.timeout(120)


def sized(size: int) -> dict[str, str]:
    return layered(**{"environments/dev.yaml": environment("dev", variables={"size": size})})


def test_a_changed_folder_trusts_nothing_until_built_again(
    tmp_path: Path, signers: Signers
) -> None:
    world = World(tmp_path)
    path = write_trust_file(tmp_path / "trust.yaml", [signers.alice], required=["dev"])
    good = commit_signed(world, sized(3), key=signers.alice)
    forged = commit_signed(world, sized(5), key=signers.mallory_ssh)
    data = tmp_path / "data"
    running = CommitSignatures.build(trust_file.load(path), git_dir=world.repo, data_dir=data)
    assert running.verify(good).seal is Seal.TRUSTED
    (built,) = (data / "trust").iterdir()
    with (built / "allowed_signers").open("a") as allowed:
        allowed.write(f'alice namespaces="git" {signers.mallory_ssh.public}\n')

    refused = running.verify(forged)
    assert refused.seal is Seal.UNCHECKED
    assert refused.detail is not None and "was changed since gitopsd built it" in refused.detail
    assert running.verify(good).seal is Seal.TRUSTED  # a verdict given before stays

    restarted = CommitSignatures.build(trust_file.load(path), git_dir=world.repo, data_dir=data)
    assert restarted.verify(forged).seal is Seal.UNKNOWN_KEY
    assert restarted.verify(good).seal is Seal.TRUSTED


def test_a_folder_built_a_second_earlier_is_not_taken_for_a_changed_one(
    tmp_path: Path, signers: Signers, caplog: pytest.LogCaptureFixture
) -> None:
    """gpg writes the time into a new keyring's header: every start used to warn that the
    folder "was changed since it was built" and build it again, crying wolf."""
    world = World(tmp_path)
    path = write_trust_file(tmp_path / "trust.yaml", [signers.alice], required=["dev"])
    good = commit_signed(world, sized(3), key=signers.alice)
    data = tmp_path / "data"
    CommitSignatures.build(trust_file.load(path), git_dir=world.repo, data_dir=data)
    (built,) = (data / "trust").iterdir()
    keyring = built / "gnupg" / "pubring.kbx"
    header = bytearray(keyring.read_bytes())
    assert header[8:12] == b"KBXf"
    header[16:24] = bytes(8)  # made and maintained at another moment, as a build a second ago
    keyring.write_bytes(bytes(header))

    with caplog.at_level(logging.WARNING):
        again = CommitSignatures.build(trust_file.load(path), git_dir=world.repo, data_dir=data)
    assert "was changed since it was built" not in caplog.text
    assert again.verify(good).seal is Seal.TRUSTED
