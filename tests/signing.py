"""Real signing keys for tests (ssh-keygen, gpg), commits signed with them, trust files.

Each OpenPGP key lives in its own short-named GNUPGHOME under /tmp (gpg-agent's socket
path must stay short); `Keys.close` ends the agents those homes started.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.gitrepos import IDENTITY, git
from tests.runtime.world import DRIVER, World


@dataclass(frozen=True)
class Key:
    """A signing key: how git signs with it, and its public half as a trust file lists it."""

    name: str
    kind: str  # ssh | openpgp
    public: str
    sign_args: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    fingerprint: str = ""

    def signer(self) -> dict[str, str]:
        return {"name": self.name, self.kind: self.public}


class Keys:
    """Makes keys in a folder of the test session."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._homes: list[Path] = []

    def ssh(self, name: str) -> Key:
        private = self.folder / f"{name}_ed25519"
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{name}@example.com",
             "-f", str(private)],
            check=True,
        )  # fmt: skip
        shown = subprocess.run(
            ["ssh-keygen", "-l", "-f", f"{private}.pub"], check=True, capture_output=True, text=True
        ).stdout.split()[1]
        args = ("-c", "gpg.format=ssh", "-c", f"user.signingkey={private}")
        public = Path(f"{private}.pub").read_text().strip()
        return Key(name, "ssh", public, args, fingerprint=shown)

    def openpgp(self, name: str) -> Key:
        home = Path(tempfile.mkdtemp(prefix="g", dir="/tmp"))
        self._homes.append(home)
        env = {"GNUPGHOME": str(home)}
        uid = f"{name} <{name}@example.com>"
        gpg = ["gpg", "--batch", "--passphrase", ""]
        subprocess.run(
            [*gpg, "--quick-gen-key", uid, "ed25519", "sign", "never"],
            check=True, capture_output=True, env={**_base_env(), **env},
        )  # fmt: skip
        listed = subprocess.run(
            ["gpg", "--batch", "--with-colons", "--fingerprint", uid],
            check=True, capture_output=True, text=True, env={**_base_env(), **env},
        ).stdout  # fmt: skip
        fingerprint = next(line.split(":")[9] for line in listed.splitlines() if line[:4] == "fpr:")
        public = subprocess.run(
            ["gpg", "--batch", "--armor", "--export", fingerprint],
            check=True, capture_output=True, text=True, env={**_base_env(), **env},
        ).stdout  # fmt: skip
        args = ("-c", "gpg.format=openpgp", "-c", f"user.signingkey={fingerprint}")
        return Key(name, "openpgp", public, args, env, fingerprint)

    def close(self) -> None:
        for home in self._homes:
            subprocess.run(
                ["gpgconf", "--kill", "all"],
                env={**_base_env(), "GNUPGHOME": str(home)},
                check=False,
                capture_output=True,
            )
            shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keys]:
    made = Keys(tmp_path_factory.mktemp("keys"))
    yield made
    made.close()


@dataclass(frozen=True)
class Signers:
    """alice (SSH) and bob (OpenPGP) are trusted; mallory signs with keys of both kinds
    that no trust file lists."""

    alice: Key
    bob: Key
    mallory_ssh: Key
    mallory_openpgp: Key


@pytest.fixture(scope="session")
def signers(keys: Keys) -> Signers:
    return Signers(
        alice=keys.ssh("alice"),
        bob=keys.openpgp("bob"),
        mallory_ssh=keys.ssh("mallory"),
        mallory_openpgp=keys.openpgp("mallory"),
    )


def commit_signed(
    world: World, files: Mapping[str, str], *, key: Key | None, message: str = "change"
) -> str:
    """Commit `files` (with the test driver) into `world`'s repository, signed with `key`
    (None: unsigned); the sha."""
    if not (world.repo / ".git").exists():
        world.repo.mkdir(parents=True, exist_ok=True)
        git(world.repo, "init", "-q", "-b", "main")
    for path, content in {**files, "driver.py": DRIVER.read_text()}.items():
        target = world.repo / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
    git(world.repo, "add", "-A")
    signing = [*key.sign_args, "commit", "-S"] if key else ["commit"]
    env = {**_base_env(), **(key.env if key else {})}
    subprocess.run(
        ["git", *IDENTITY, *signing, "-q", "--allow-empty", "-m", message],
        cwd=world.repo, check=True, capture_output=True, env=env,
    )  # fmt: skip
    return git(world.repo, "rev-parse", "HEAD")


def write_trust_file(
    path: Path, signers: Sequence[Key], *, required: Sequence[str], **more: Any
) -> Path:
    """A trust file listing `signers`, requiring signed commits in `required`."""
    content = {
        "signers": [key.signer() for key in signers],
        "environments": {name: {"require_signed_commits": True} for name in required},
        **more,
    }
    path.write_text(json.dumps(content, indent=2), encoding="utf-8")
    return path


def _base_env() -> dict[str, str]:
    return dict(os.environ)
