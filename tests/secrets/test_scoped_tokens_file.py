"""A tokens file naming an environment the branch head does not have: `serve` starts (the
repository's environments change with its commits, the file does not) and says which."""

from __future__ import annotations

from pathlib import Path

from gitopsd.api.auth import hash_token
from tests.secrets.stand import component, gitopsd, stand


def test_serve_warns_of_an_environment_no_manifest_has(tmp_path: Path) -> None:
    stand(tmp_path, {"plain": component("plain", tmp_path / "dumps", inputs={})})
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(
        "- name: dev-team\n"
        "  email: dev@example.com\n"
        "  roles: [read]\n"
        f"  token_sha256: {hash_token('dev-team-token')}\n"
        "  environments: [dev, stagin]\n"
    )

    done = gitopsd(tmp_path, "serve", "--once", env={"GITOPSD_TOKENS_FILE": str(tokens)})

    assert done.returncode == 0, done.stdout + done.stderr
    assert "tokens file: token dev-team: stagin: no such environment at the branch head" in (
        done.stderr
    )
    assert "dev-team: dev:" not in done.stderr
