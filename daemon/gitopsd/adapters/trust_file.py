"""The trust file (`--trust-file`, SPEC 9): who may sign commits, and where it is required.

Pipeline: start -> **trust** -> admit. The file is kept outside the watched repository (a
commit must not be able to vouch for itself) and read once when a command or the daemon
starts. Any problem stops the start with a TrustFileError naming the file, the line and the
field, never a traceback: a daemon told to check signatures must not run without checking
them. Whether each key parses is the verifier's to say (`adapters.commit_signatures`), which
is given the line of every key for its own messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import ErrorDetails

from gitopsd.adapters import operator_files
from gitopsd.engine.sources import line_of
from gitopsd.errors import TrustFileError
from gitopsd.model.fields import DNS_LABEL

# a signer's name is the principal of git's allowed-signers file: no blanks, commas or quotes
SIGNER_NAME = r"^[A-Za-z0-9][A-Za-z0-9._@+-]*$"
_MESSAGES = {  # pydantic's words for a trust file, where the reader is an operator
    "extra_forbidden": "unknown field (a trust file has signers and environments; a signer "
    "name and ssh or openpgp; an environment require_signed_commits)",
    "string_pattern_mismatch": "not a valid name here",
}


class Signer(BaseModel):
    """One trusted signer: a name (shown in events) and one public key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=SIGNER_NAME, description="who signs, as events name them")
    ssh: str | None = Field(None, description="an SSH public key, as in authorized_keys")
    openpgp: str | None = Field(None, description="an ASCII-armored OpenPGP public key")

    @model_validator(mode="after")
    def _one_key(self) -> Signer:
        if (self.ssh is None) == (self.openpgp is None):
            raise ValueError("give exactly one key: ssh or openpgp")
        return self


class EnvironmentTrust(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    require_signed_commits: bool = Field(
        False, description="apply only commits signed by a listed signer"
    )


class TrustFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    signers: tuple[Signer, ...] = ()
    environments: dict[str, EnvironmentTrust] = Field(default_factory=dict)


@dataclass(frozen=True)
class Trust:
    """A loaded trust file, with where each key and environment is written in it."""

    path: Path
    file: TrustFile
    key_lines: dict[str, int]  # signer name -> line of its key
    environment_lines: dict[str, int]

    def requires(self, environment: str) -> bool:
        found = self.file.environments.get(environment)
        return found is not None and found.require_signed_commits

    def check_environments(self, known: Sequence[str]) -> None:
        """A name the repository lacks is most likely a typo that would leave the intended
        environment unprotected: refused, naming the line and the known names."""
        for name, line in self.environment_lines.items():
            if name not in known:
                names = ", ".join(sorted(known)) or "none"
                raise TrustFileError(
                    f"{self.path}:{line}: environments.{name}: no such environment in the "
                    f"repository (environments: {names})"
                )


def load(path: Path) -> Trust:
    """The trust file at `path`; TrustFileError names the file, line and field at fault."""
    text = operator_files.read(path, what="trust file", error=TrustFileError)
    root = operator_files.compose(path, text, error=TrustFileError)
    if root is not None and not isinstance(root, yaml.MappingNode):
        line = root.start_mark.line + 1
        raise TrustFileError(f"{path}:{line}: expected a mapping with signers and environments")
    try:
        file = TrustFile.model_validate(yaml.safe_load(text) or {})
    except ValidationError as error:
        raise TrustFileError(_describe(path, root, error.errors()[0])) from None
    _check(path, root, file)
    return Trust(
        path=path,
        file=file,
        key_lines={
            s.name: line_of(root, ("signers", i, "ssh" if s.ssh else "openpgp"))
            for i, s in enumerate(file.signers)
        },
        environment_lines={n: line_of(root, ("environments", n)) for n in file.environments},
    )


def _describe(path: Path, root: yaml.Node | None, error: ErrorDetails) -> str:
    location = tuple(error["loc"])
    field = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in location)
    message = _MESSAGES.get(error["type"], error["msg"]).removeprefix("Value error, ")
    where = f"{path}:{line_of(root, location)}"
    return f"{where}: {field.lstrip('.')}: {message}" if field else f"{where}: {message}"


def _check(path: Path, root: yaml.Node | None, file: TrustFile) -> None:
    """Names unique and well-formed, and a signer for environments that need one."""
    first: dict[str, int] = {}
    for index, signer in enumerate(file.signers):
        line = line_of(root, ("signers", index, "name"))
        if signer.name in first:
            raise TrustFileError(
                f"{path}:{line}: signers[{index}].name: {signer.name!r} is also the signer "
                f"at line {first[signer.name]}"
            )
        first[signer.name] = line
    for name, wanted in file.environments.items():
        line = line_of(root, ("environments", name))
        if not DNS_LABEL.match(name):
            raise TrustFileError(f"{path}:{line}: environments.{name}: not an environment name")
        if wanted.require_signed_commits and not file.signers:
            raise TrustFileError(
                f"{path}:{line}: environments.{name}: requires signed commits, but no signer "
                "is listed: nothing could ever be applied"
            )
