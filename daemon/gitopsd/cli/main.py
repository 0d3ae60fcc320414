"""The `gitopsd` command line: one click command per row of SPEC section 5.

Commands parse flags, call the runtime, print text or JSON and choose the exit code; they hold
no logic of their own. Every flag has a `GITOPSD_*` environment variable.

The group imports a command's module only when that command runs (or help lists it), as
click's documentation suggests for large groups: a scheduled `gitopsd drift` or a CI step
would otherwise import, on every start, the modules of commands it never uses.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

import click

from gitopsd import __version__
from gitopsd.adapters import allocator, data_folder, hidden_environment

# command name -> the module defining it (in gitopsd.cli), imported on first use
COMMAND_MODULES = {
    "validate": "repository_commands",
    "graph": "repository_commands",
    "schema": "repository_commands",
    "plan": "run_commands",
    "apply": "run_commands",
    "destroy": "run_commands",
    "runs": "run_commands",
    "cancel": "run_commands",
    "status": "status_commands",
    "history": "status_commands",
    "serve": "serve",
    "promote": "promotion_commands",
    "approve": "promotion_commands",
    "rollback": "promotion_commands",
    "diff": "promotion_commands",
    "drift": "drift_commands",
    "suspend": "suspension_commands",
    "resume": "suspension_commands",
}


class LazyGroup(click.Group):
    """A click group whose commands are attributes of modules imported on first use."""

    def __init__(self, *args: object, modules: dict[str, str], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._modules = modules

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._modules})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = self._modules.get(cmd_name)
        if module is None:
            return super().get_command(ctx, cmd_name)
        command = getattr(importlib.import_module(f"gitopsd.cli.{module}"), cmd_name)
        if not isinstance(command, click.Command):
            raise TypeError(f"gitopsd.cli.{module}.{cmd_name} is not a click command")
        return command


@click.group(
    cls=LazyGroup,
    modules=COMMAND_MODULES,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, prog_name="gitopsd")
def cli() -> None:
    """GitOps orchestrator for infrastructure in layers."""


EXIT_USAGE = 64  # sysexits' EX_USAGE: 2 means "changes" or "drift" to gitopsd's commands


def main() -> None:
    """Console-script entry point. Click reports a usage error (an unknown flag, a missing
    argument) with exit 2; here it is 64, so a script never reads one as "changes".

    Everything created from here on is private to the user (adapters/data_folder.py), the
    process's environment is hidden from its drivers (adapters/hidden_environment.py), and
    its threads share two heaps of the C allocator (adapters/allocator.py)."""
    data_folder.keep_private()
    hidden_environment.hide()
    allocator.cap_arenas()
    try:
        check_text(sys.argv[1:])
        code = cli.main(standalone_mode=False)  # --help, --version: ctx.exit's code, returned
    except click.exceptions.UsageError as error:
        error.show()
        sys.exit(EXIT_USAGE)
    except click.exceptions.Abort:
        click.echo("Aborted!", err=True)
        sys.exit(1)
    except click.exceptions.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    sys.exit(code if isinstance(code, int) else 0)


def check_text(arguments: Sequence[str]) -> None:
    """Every argument is UTF-8 text. Names, reasons, revisions and paths end up in the state
    store, logs and JSON answers, which take UTF-8 only; bytes that are not (a terminal in
    another encoding) reach Python as lone surrogates. A usage error naming the argument,
    rather than a traceback from wherever it is first encoded (the store, for `runs --run`)."""
    for position, argument in enumerate(arguments):
        try:
            argument.encode("utf-8")
        except UnicodeEncodeError:
            after = f" (after {arguments[position - 1]})" if position else ""
            raise click.UsageError(f"argument {argument!a}{after} is not UTF-8 text") from None
