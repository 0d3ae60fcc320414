"""docs/reference/cli.md: every command, flag, environment variable and exit code.

Commands and flags come from click itself (the same objects `gitopsd --help` prints), the
daemon's variables from `DaemonSettings`. Exit codes are not something click knows, so they
are listed here, one entry per command: a command added without its exit codes fails the
reference test rather than going undocumented.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator

import click

from gitopsd.adapters.encryption import KEY_VARIABLE
from gitopsd.cli import remote
from gitopsd.cli.main import EXIT_USAGE, cli
from gitopsd.reference import markdown
from gitopsd.reference.manifests import duration
from gitopsd.runtime.service.settings import DURATIONS, DaemonSettings

SETTING = re.compile(r"\s*\[env (GITOPSD_\w+); ([^\]]+)\]\.?$")
OK, FAILED, DIFFERS, WAITING = "0", "1", "2", "3"
EXIT_CODES: dict[str, list[tuple[str, str]]] = {
    "validate": [(OK, "valid"), (FAILED, "invalid: each problem as `path:line: message`")],
    "graph": [(OK, "printed"), (FAILED, "unknown environment, or invalid manifests")],
    "schema": [(OK, "printed")],
    "plan": [(OK, "no changes"), (DIFFERS, "changes"), (FAILED, "error")],
    "apply": [
        (OK, "applied (or nothing to do)"),
        (FAILED, "failed, or a stale `--plan`"),
        (WAITING, "waiting for approvals or a change window (`--force` goes through a window)"),
    ],
    "destroy": [(OK, "destroyed"), (FAILED, "failed, or held by a change window")],
    "promote": [
        (OK, "applied"),
        (FAILED, "failed or refused"),
        (WAITING, "waiting for approvals or a change window"),
    ],
    "approve": [(OK, "recorded"), (FAILED, "refused, with the reason")],
    "rollback": [(OK, "applied"), (FAILED, "failed or refused")],
    "diff": [(OK, "same"), (DIFFERS, "differs"), (FAILED, "error")],
    "drift": [(OK, "in sync"), (DIFFERS, "drift found (also when remediated)"), (FAILED, "error")],
    "status": [(OK, "printed"), (FAILED, "error")],
    "history": [(OK, "printed"), (FAILED, "error")],
    "runs": [(OK, "printed"), (FAILED, "unknown run, or error")],
    "cancel": [(OK, "asked to stop"), (FAILED, "unknown or finished run")],
    "suspend": [(OK, "suspended"), (FAILED, "already suspended, or error")],
    "resume": [(OK, "resumed"), (FAILED, "not suspended, or error")],
    "serve": [
        (OK, "stopped by SIGTERM or SIGINT, or `--once` reconciled every environment"),
        (FAILED, "`--once` left an environment failed, or an error"),
    ],
}
GENERAL = [
    (OK, "done; for `plan`, `diff`, `drift`: nothing differs"),
    (FAILED, 'failed or refused; the reason on stderr (and as `{"error"}` with `--output json`)'),
    (DIFFERS, "`plan`: changes; `diff`: differs; `drift`: drift found"),
    (WAITING, "`apply`, `promote`: waiting for approvals or a change window"),
    (
        str(EXIT_USAGE),
        "usage error: an unknown flag, a missing argument, a bad flag value, an argument that"
        " is not UTF-8 text (names, reasons, revisions and paths are stored and shown as UTF-8)",
    ),
]
INTRO = (
    "Every command of `gitopsd`, with its flags, the environment variables that set them and "
    "its exit codes. `gitopsd COMMAND --help` prints the same. A usage error exits 64 on "
    'every command, so a script never takes a typo for 2 ("changes").'
)


def render() -> str:
    context = click.Context(cli, info_name="gitopsd")
    commands = {name: cli.get_command(context, name) for name in cli.list_commands(context)}
    shared = _shared_options([c for c in commands.values() if c is not None])
    lines = markdown.header("Command line reference", "daemon/gitopsd/reference/commands.py", INTRO)
    lines += ["## Exit codes", "", *markdown.table(("code", "means"), GENERAL)]
    lines += ["## Options of every command but `schema`", ""]
    lines += markdown.table(OPTION_COLUMNS, [_option_row(o) for o in shared])
    for name, command in commands.items():
        assert command is not None
        lines += _command(name, command, context, {o.name for o in shared})
    return "\n".join([*lines, *_variables(shared)]).rstrip("\n") + "\n"


OPTION_COLUMNS = ("flag", "value", "default", "variable", "meaning")


def _shared_options(commands: list[click.Command]) -> list[click.Option]:
    """The options most commands take (`--repo`, `--state`...), described once."""
    with_repo = [c for c in commands if any(p.name == "repo" for p in c.params)]
    first = with_repo[0].params
    names = set.intersection(*({p.name for p in c.params} for c in with_repo))
    return [p for p in first if isinstance(p, click.Option) and p.name in names]


def _command(
    name: str, command: click.Command, parent: click.Context, shared: set[str | None]
) -> list[str]:
    context = click.Context(command, info_name=name, parent=parent)
    usage = " ".join(["gitopsd", name, *command.collect_usage_pieces(context)])
    lines = [f"## gitopsd {name}", "", *markdown.fenced(usage, "console")]
    lines += [_help(command), ""]
    own = [p for p in command.params if isinstance(p, click.Option) and p.name not in shared]
    if own:
        lines += markdown.table(OPTION_COLUMNS, [_option_row(o) for o in own])
    return [*lines, *markdown.table(("exit code", "means"), EXIT_CODES[name])]


def _help(command: click.Command) -> str:
    """The command's help as paragraphs: click's `\\b` (keep lines) marks dropped."""
    text = inspect.cleandoc(command.help or "").replace("\b\n", "")
    return text


def _option_row(option: click.Option) -> tuple[str, str, str, str, str]:
    """`serve`'s flags fall back on `DaemonSettings`, so their help ends `[env VAR; default]`
    instead of click knowing either: that ending fills the two columns."""
    flags = ", ".join(markdown.code(flag) for flag in option.opts)
    variable = option.envvar if isinstance(option.envvar, str) else ""
    default, meaning = _default(option), option.help or ""
    settled = SETTING.search(meaning)
    if settled:
        variable, fallback = settled.group(1), settled.group(2)
        default = "" if fallback == "none" else markdown.code(fallback)
        meaning = meaning[: settled.start()].rstrip() + "."
    return flags, _value(option), default, markdown.code(variable) if variable else "", meaning


def _value(option: click.Option) -> str:
    if option.is_flag:
        return "flag"
    if isinstance(option.type, click.Choice):
        return " | ".join(markdown.code(str(choice)) for choice in option.type.choices)
    return option.type.name.replace(" range", "")


def _default(option: click.Option) -> str:
    default = option.default
    if option.required:
        return "required"
    if option.is_flag or default is None or not isinstance(default, str | int):
        return ""
    return markdown.code(str(default)) if str(default) else ""


def _variables(shared: list[click.Option]) -> Iterator[str]:
    yield from ["## Environment variables", ""]
    yield "Flags win over variables. `serve` reads every `GITOPSD_*` setting below."
    yield ""
    rows = [
        (markdown.code(str(o.envvar)), "every command", f"`{o.opts[0]}`: {o.help}")
        for o in shared
        if isinstance(o.envvar, str)
    ]
    rows.append(
        (
            markdown.code(KEY_VARIABLE),
            "every command",
            "key that encrypts sensitive outputs at rest (never a flag), see docs/data-at-rest.md",
        )
    )
    acting = ", ".join(f"`{name}`" for name in remote.ACTING)
    rows.append(
        (
            markdown.code(remote.TOKEN_VARIABLE),
            acting,
            "with `--server`: the API token to act with; the daemon acts as its identity "
            "(never a flag), see docs/daemon.md",
        )
    )
    for field, info in DaemonSettings.model_fields.items():
        default = info.get_default()
        meaning = info.description or ""
        if field in DURATIONS:
            meaning += f" Default: `{_days(default)}`."
        elif default not in (None, ""):
            meaning += f" Default: `{default}`."
        rows.append((markdown.code(f"GITOPSD_{field.upper()}"), "`serve`", meaning))
    yield from markdown.table(("variable", "read by", "meaning"), rows)


def _days(seconds: float) -> str:
    """A duration setting as its flag takes it: 7776000.0 -> 90d, 30.0 -> 30s."""
    days, rest = divmod(int(seconds), 86400)
    return f"{days}d" if days and not rest else duration(seconds)
