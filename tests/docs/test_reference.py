"""The reference documents and schemas are what the code says, and the repository's Markdown
points only at files inside it."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
import yaml

from gitopsd.cli.main import cli
from gitopsd.reference import build, commands
from gitopsd.runtime.service.settings import DaemonSettings

ROOT = Path(__file__).resolve().parents[2]
GENERATED = build.documents(ROOT)


@pytest.mark.parametrize("relative", sorted(GENERATED))
def test_the_committed_document_is_what_the_code_says(relative: str) -> None:
    committed = (ROOT / relative).read_text(encoding="utf-8")
    assert committed == GENERATED[relative], f"{relative} is stale: run `make docs`"


def test_make_docs_writes_every_document(tmp_path: Path) -> None:
    for example in ("components/clusters/component.yaml", "environments/prod.yaml", "gitopsd.yaml"):
        (tmp_path / example).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / example).write_text((ROOT / example).read_text())
    assert sorted(build.write(tmp_path)) == sorted(GENERATED)
    assert build.write(tmp_path) == []  # nothing left to change
    assert (tmp_path / "docs/reference/cli.md").read_text() == GENERATED["docs/reference/cli.md"]


def test_every_command_has_its_exit_codes_documented() -> None:
    names = cli.list_commands(click.Context(cli))
    assert sorted(commands.EXIT_CODES) == sorted(names)


def test_every_command_and_flag_is_in_the_cli_reference() -> None:
    text = GENERATED["docs/reference/cli.md"]
    context = click.Context(cli)
    for name in cli.list_commands(context):
        command = cli.get_command(context, name)
        assert command is not None
        assert f"## gitopsd {name}\n" in text
        for param in command.params:
            for flag in param.opts if isinstance(param, click.Option) else []:
                assert f"`{flag}`" in text, (name, flag)


MODELINE = re.compile(r"^# (\S+\.yaml)\n# yaml-language-server: \$schema=(\S+)$", re.MULTILINE)


def test_the_readme_modelines_point_at_the_schema_of_their_kind() -> None:
    found = MODELINE.findall((ROOT / "README.md").read_text(encoding="utf-8"))
    kinds = {"Component": "component", "Environment": "environment", "Settings": "config"}
    assert {path for path, _ in found} >= {"gitopsd.yaml", "environments/prod.yaml"}
    for path, schema in found:
        kind = kinds[yaml.safe_load((ROOT / path).read_text()).get("kind", "Settings")]
        target = ((ROOT / path).parent / schema).resolve()
        assert target == ROOT / "schemas" / f"{kind}.json", path


def test_the_variables_documented_for_serve_are_settings_it_reads() -> None:
    text = GENERATED["docs/reference/cli.md"]
    serve = text[text.index("## gitopsd serve\n") : text.index("## gitopsd status\n")]
    variables = re.findall(r"`(GITOPSD_\w+)`", serve)
    assert len(variables) >= 9
    fields = {f"GITOPSD_{name.upper()}" for name in DaemonSettings.model_fields}
    assert set(variables) <= fields
    for variable in fields:
        assert f"| `{variable}` | `serve` |" in text
