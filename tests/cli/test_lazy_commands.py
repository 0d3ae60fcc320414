"""The command group finds every command, loading a command's module when it is used."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import click
from click.testing import CliRunner

import gitopsd.cli
from gitopsd.cli.main import COMMAND_MODULES, cli


def defined_commands() -> dict[str, str]:
    """Every click command defined at the top of a gitopsd.cli module: name -> module."""
    found = {}
    for module_info in pkgutil.iter_modules(gitopsd.cli.__path__):
        if module_info.name == "main":
            continue
        module = importlib.import_module(f"gitopsd.cli.{module_info.name}")
        for value in vars(module).values():
            if isinstance(value, click.Command) and _defined_in(value, module.__name__):
                found[value.name or ""] = module_info.name
    return found


def _defined_in(command: click.Command, module: str) -> bool:
    """Whether the command's function was written in `module` (not imported into it)."""
    callback = command.callback
    while hasattr(callback, "__wrapped__"):  # common_options wraps the function
        callback = callback.__wrapped__
    return getattr(callback, "__module__", None) == module


def test_every_command_defined_is_in_the_group_and_nothing_else() -> None:
    assert defined_commands() == COMMAND_MODULES


def test_every_command_resolves_and_help_lists_it() -> None:
    context = click.Context(cli)
    for name in COMMAND_MODULES:
        command = cli.get_command(context, name)
        assert command is not None and command.name == name
    assert cli.get_command(context, "no-such-command") is None
    listed = CliRunner().invoke(cli, ["--help"]).output
    assert all(f"  {name} " in listed for name in COMMAND_MODULES)


def test_an_unknown_command_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["frobnicate"])
    assert result.exit_code == 2
    assert "No such command 'frobnicate'" in result.output


def test_each_command_s_help_runs_in_a_fresh_process() -> None:
    """`gitopsd <command> --help` answers for every command, each loading only its own
    module (how long that takes is measured by benchmarks/startup.py)."""
    for name in sorted(COMMAND_MODULES):
        done = subprocess.run(
            [sys.executable, "-m", "gitopsd", name, "--help"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        usage = done.stdout.splitlines()[0]
        assert usage.startswith("Usage: ") and f" gitopsd {name} [OPTIONS]" in usage
