"""The command group imports a command's module only when that command is used."""

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


def test_drift_does_not_import_the_daemon_or_other_commands() -> None:
    """`gitopsd drift --help` in a fresh interpreter loads its own module only."""
    probe = (
        "import sys\n"
        "from gitopsd.cli.main import cli\n"
        "try:\n"
        "    cli(['drift', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('gitopsd.cli.'))))\n"
        "print('fastapi' in sys.modules, 'uvicorn' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    modules, servers = done.stdout.strip().splitlines()[-2:]
    assert "gitopsd.cli.drift_commands" in modules.split()
    assert not {"gitopsd.cli.serve", "gitopsd.cli.run_commands"} & set(modules.split())
    assert servers == "False False"


def test_the_drift_path_leaves_expressions_and_planning_unimported() -> None:
    """What a drift check of components without `when` never uses is not imported by it:
    the expression modules and dry-run planning."""
    probe = (
        "import sys\n"
        "import gitopsd.cli.drift_commands, gitopsd.runtime.drift.drifting\n"
        "import gitopsd.runtime.stores\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('gitopsd.engine.'))))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    modules = set(done.stdout.split())
    assert "gitopsd.engine.selection" in modules
    unused = {"conditions", "condition_tokens", "references", "planning", "rendering"}
    assert not {f"gitopsd.engine.{name}" for name in unused} & modules


def test_a_command_is_imported_with_the_collector_paused_then_frozen() -> None:
    """What importing a command makes is frozen out of collector passes; the collector is
    on again afterwards (and stays off if it was off)."""
    probe = (
        "import gc, sys\n"
        "import click\n"
        "from gitopsd.cli.main import cli\n"
        "passes = []\n"
        "gc.callbacks.append(lambda phase, info: passes.append(phase))\n"
        "cli.get_command(click.Context(cli), 'drift')\n"
        "print(len(passes), gc.isenabled(), gc.get_freeze_count() > 1000)\n"
        "gc.disable()\n"
        "cli.get_command(click.Context(cli), 'status')\n"
        "print(gc.isenabled())\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["0", "True", "True", "False"]
