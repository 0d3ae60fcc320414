"""Commit signatures, verified by git against the trust file's keys (SPEC 9).

Pipeline: start -> **trust** -> admit. gitopsd verifies nothing itself: git does, with the
keys the trust file lists and no others, and without touching the user's git or gpg setup:
- SSH keys go to an allowed-signers file (0600), each under its signer's name, handed to git
  as `-c gpg.ssh.allowedSignersFile=...`;
- OpenPGP keys go into a keyring of gitopsd's own (`GNUPGHOME`, 0700) that holds them and
  nothing else, and trusts what it holds, so a good signature by one of them, and only by
  one of them, is `G`.
Both live in the data folder under `trust/<digest of the trust file>`: built once into a
fresh folder and renamed into place, so a daemon and a command started beside it never see
each other's half-built keyring. A key that does not parse stops the start with a
TrustFileError naming its line. Git's verdict (`%G?` and the key it found) becomes an
engine.signing.Signature; the admission rule decides what it means.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from gitopsd.adapters.trust_file import Signer, Trust
from gitopsd.engine.signing import Seal, Signature
from gitopsd.errors import TrustFileError

log = logging.getLogger(__name__)
FORMAT = "%G?%x1f%GK%x1f%GS%x1f%GF%x1f%GP"
SEALS = {  # git's %G? letters
    "G": Seal.TRUSTED,
    "U": Seal.UNKNOWN_KEY,  # good, but no listed signer (an SSH key no principal matches)
    "N": Seal.UNSIGNED,
    "B": Seal.BAD,
    "X": Seal.EXPIRED,
    "Y": Seal.EXPIRED,
    "R": Seal.REVOKED,
    "E": Seal.UNCHECKED,
}
# the keyring holds the trust file's keys and nothing else, so every key in it is trusted
# (`trust-model always`: a good signature by one is `G`); gpg never starts an agent for it
GPG_CONF = "no-autostart\ntrust-model always\n"
# what gpg writes in its home by itself; it changes nothing of which keys are trusted
GPG_BOOKKEEPING = frozenset({"trustdb.gpg", "random_seed", "pubring.gpg.lock", "trustdb.gpg.lock"})
KNOWN_SIGNATURES = 256  # verdicts kept (the most recently made), as gitrepo.KNOWN_COMMITS
KEYBOX = "pubring.kbx"  # gpg's keyring, whose header carries times (`_without_times`)
_BUILD_VERSION = b"1"  # changes the folder's name when the layout inside changes


class CommitSignatures:
    """The verifier for one repository, with the keys of one trust file."""

    def __init__(
        self,
        trust: Trust,
        *,
        git_dir: Path,
        folder: Path,
        names: dict[str, str],
        expected: dict[str, bytes],
    ):
        self.trust = trust
        self._expected = expected  # the folder as built: what a check must find there
        self._git_dir = git_dir
        self._folder = folder
        self._names = names  # OpenPGP fingerprint -> signer name
        self._seen: dict[str, Signature] = {}  # a commit's signature never changes

    @classmethod
    def build(cls, trust: Trust, *, git_dir: Path, data_dir: Path) -> CommitSignatures:
        """Check every key, and build the allowed-signers file and keyring under `data_dir`."""
        digest = hashlib.sha256(_BUILD_VERSION + trust.path.read_bytes()).hexdigest()[:16]
        parent = data_dir / "trust"
        parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        folder = parent / digest
        staging = Path(tempfile.mkdtemp(prefix=".build-", dir=parent))
        try:
            names = _fill(trust, staging)
            expected = contents(staging)
            if folder.exists() and contents(folder) != expected:
                log.warning("%s was changed since it was built: built again", folder)
                _replace(folder, staging)
            if not folder.exists():
                staging.rename(folder)
        except OSError:
            if not folder.exists():  # not another process's folder renamed first: a fault
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        required = sorted(n for n in trust.file.environments if trust.requires(n))
        log.info("trust file %s: %d signers; signed commits required in %s",
                 trust.path, len(trust.file.signers), ", ".join(required) or "none")  # fmt: skip
        return cls(trust, git_dir=git_dir, folder=folder, names=names, expected=expected)

    def requires(self, environment: str) -> bool:
        """Whether the trust file requires signed commits in `environment`."""
        return self.trust.requires(environment)

    def verify(self, revision: str) -> Signature:
        """Git's verification of `revision`'s signature against the listed keys; a verdict
        is kept (a commit's signature never changes), a failure of git itself is not."""
        found = self._seen.get(revision)
        if found is not None:
            return found
        if contents(self._folder) != self._expected:
            log.error("%s was changed since gitopsd built it: restart gitopsd", self._folder)
            detail = f"{self._folder} was changed since gitopsd built it: restart gitopsd"
            return Signature(Seal.UNCHECKED, detail=detail)
        done = _run(
            ["git", *self._config(), "log", "-1", "--no-show-signature", f"--format={FORMAT}",
             revision, "--"],
            cwd=self._git_dir,
            gnupg=self._folder / "gnupg",
        )  # fmt: skip
        if done.returncode != 0:
            return Signature(Seal.UNCHECKED, detail=_first_line(done.stderr) or "git log failed")
        fields = [*done.stdout.strip().split("\x1f"), "", "", "", ""]
        letter, key, claimed, fingerprint, primary = fields[:5]
        found = self._seen[revision] = self._signature(letter, key, claimed, primary or fingerprint)
        if len(self._seen) > KNOWN_SIGNATURES:  # a daemon verifies every commit of its life
            del self._seen[next(iter(self._seen))]
        return found

    def _signature(self, letter: str, key: str, claimed: str, fingerprint: str) -> Signature:
        seal = SEALS.get(letter, Seal.UNCHECKED)
        if seal is Seal.UNCHECKED and key:  # gpg: a key that is not in gitopsd's keyring
            seal = Seal.UNKNOWN_KEY
        if seal is not Seal.TRUSTED:
            return Signature(seal, key=key or None, signer=claimed or None)
        # an SSH signature names its principal (the signer); an OpenPGP one, its fingerprint
        name = self._names.get(fingerprint) if fingerprint in self._names else claimed
        if not name or name not in {s.name for s in self.trust.file.signers}:
            return Signature(Seal.UNKNOWN_KEY, key=key or None, signer=claimed or None)
        return Signature(Seal.TRUSTED, key=key or None, signer=name)

    def _config(self) -> list[str]:
        """git's settings for this verification only: the user's git config is not changed,
        and a gpg program or signers file it names is not used."""
        return [
            "-c", f"gpg.ssh.allowedSignersFile={self._folder / 'allowed_signers'}",
            "-c", "gpg.program=gpg",
            "-c", "gpg.ssh.program=ssh-keygen",
            "-c", "gpg.minTrustLevel=undefined",
        ]  # fmt: skip


def contents(folder: Path) -> dict[str, bytes]:
    """What git and gpg read in a built folder: the allowed signers and every file of the
    keyring's home but gpg's own bookkeeping (its trust database, seed and lock files).

    Drivers run as gitopsd's user, so they could write here: a line added to the allowed
    signers, a key or a `keyring` option added to the home, would make their own signature
    pass as a listed signer's. So what is read is compared with what was built, at start
    (a changed folder is built again) and before each check (refused until a restart)."""
    found: dict[str, bytes] = {}
    for path in sorted(folder.rglob("*")):
        name = path.relative_to(folder).as_posix()
        if path.name in GPG_BOOKKEEPING or path.name.startswith(".#lk") or path.is_dir():
            continue
        try:
            found[name] = _without_times(path.name, path.read_bytes())
        except OSError:
            found[name] = b"<unreadable>"
    return found


def _without_times(name: str, data: bytes) -> bytes:
    """gpg stamps a keybox's header blob with when it was made and last maintained (bytes
    16 to 24, after the `KBXf` magic): two builds of the same keys a second apart differ
    there only, and would each time be taken for a folder someone changed. The keys and
    every other byte are compared."""
    if name == KEYBOX and len(data) >= 24 and data[8:12] == b"KBXf":
        return data[:16] + bytes(8) + data[24:]
    return data


def _replace(folder: Path, built: Path) -> None:
    """Put `built` in the place of `folder` (which was tampered with)."""
    aside = Path(tempfile.mkdtemp(prefix=".tampered-", dir=folder.parent))
    folder.rename(aside / "folder")
    built.rename(folder)
    shutil.rmtree(aside, ignore_errors=True)


def _fill(trust: Trust, folder: Path) -> dict[str, str]:
    """Write the allowed-signers file and import the OpenPGP keys into `folder`; the
    fingerprints of those keys, to their signer's name."""
    folder.chmod(0o700)
    gnupg = folder / "gnupg"
    gnupg.mkdir(mode=0o700)
    lines = [_allowed_signer(trust, s) for s in trust.file.signers if s.ssh is not None]
    descriptor = os.open(folder / "allowed_signers", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as allowed:
        allowed.write("".join(f"{line}\n" for line in lines))
    (gnupg / "gpg.conf").write_text(GPG_CONF, encoding="utf-8")
    names: dict[str, str] = {}
    for signer in trust.file.signers:
        if signer.openpgp is not None:
            for fingerprint in _import(trust, signer, signer.openpgp, gnupg):
                names[fingerprint] = signer.name
    _check_keyring(trust, gnupg, names)
    return names


def _allowed_signer(trust: Trust, signer: Signer) -> str:
    """The allowed-signers line of an SSH signer, once ssh-keygen read its key."""
    key = (signer.ssh or "").strip()
    where = f"{trust.path}:{trust.key_lines[signer.name]}: signer {signer.name}: ssh"
    if "\n" in key or not key:
        raise TrustFileError(f"{where}: expected one line, as in an authorized_keys file")
    with tempfile.TemporaryDirectory() as scratch:
        public = Path(scratch) / "key.pub"
        public.write_text(key + "\n", encoding="utf-8")
        done = _run(["ssh-keygen", "-l", "-f", str(public)], cwd=Path(scratch))
    if done.returncode != 0:
        raise TrustFileError(f"{where}: not an SSH public key ({_first_line(done.stderr)})")
    return f'{signer.name} namespaces="git" {key}'


def _import(trust: Trust, signer: Signer, armored: str, gnupg: Path) -> list[str]:
    """Add one signer's OpenPGP key to the keyring; its primary key's fingerprints. The key
    is read in a scratch home first (gpg may not write the real one), then appended,
    unarmored, to the keyring file: no gpg-agent is ever needed."""
    where = f"{trust.path}:{trust.key_lines[signer.name]}: signer {signer.name}: openpgp"
    with tempfile.TemporaryDirectory(prefix="gitopsd-gpg-") as scratch:
        home = Path(scratch)
        shown = _gpg(home, "--with-colons", "--import-options", "show-only", "--import",
                     key=armored)  # fmt: skip
        fingerprints = _primary_fingerprints(shown.stdout)
        if shown.returncode != 0 or not fingerprints:
            reason = _first_line(shown.stderr) or "no public key in it"
            raise TrustFileError(f"{where}: not an OpenPGP public key ({reason})")
        plain = home / "key.gpg"
        done = _gpg(home, "--dearmor", "--output", str(plain), key=armored)
        if done.returncode != 0:
            raise TrustFileError(f"{where}: gpg could not read it ({_first_line(done.stderr)})")
        with (gnupg / "pubring.gpg").open("ab") as keyring:
            keyring.write(plain.read_bytes())
    return fingerprints


def _check_keyring(trust: Trust, gnupg: Path, names: dict[str, str]) -> None:
    """Every key meant for the keyring is in it, as gpg itself lists it."""
    listed = _primary_fingerprints(_gpg(gnupg, "--with-colons", "--list-keys", key="").stdout)
    for fingerprint, name in names.items():
        if fingerprint not in listed:
            line = trust.key_lines[name]
            raise TrustFileError(
                f"{trust.path}:{line}: signer {name}: openpgp: gpg does not list the key "
                f"{fingerprint} once imported"
            )


def _primary_fingerprints(colons: str) -> list[str]:
    """The fingerprints of the primary keys in gpg's `--with-colons` listing."""
    found: list[str] = []
    primary = False
    for line in colons.splitlines():
        fields = line.split(":")
        if fields[0] in ("pub", "sub"):
            primary = fields[0] == "pub"
        elif fields[0] == "fpr" and primary and len(fields) > 9:
            found.append(fields[9])
            primary = False
    return found


def _gpg(gnupg: Path, *args: str, key: str) -> subprocess.CompletedProcess[str]:
    command = ["gpg", "--batch", "--no-tty", "--quiet", "--no-autostart", *args]
    return _run(command, cwd=gnupg, gnupg=gnupg, stdin=key)


def _run(
    command: list[str], *, cwd: Path, gnupg: Path | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`command`, with gitopsd's keyring as GNUPGHOME; a tool that cannot start is a
    TrustFileError (signatures could not be checked at all)."""
    env = {**os.environ, "GNUPGHOME": str(gnupg)} if gnupg else dict(os.environ)
    try:
        return subprocess.run(
            command,
            cwd=cwd,
            env=env,
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError as error:
        raise TrustFileError(f"cannot run {command[0]}: {error.strerror or error}") from None


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")
