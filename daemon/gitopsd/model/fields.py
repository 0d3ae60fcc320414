"""Field types shared by the manifest models: names, durations, commands, crons, timezones.

Each type parses the user's spelling once, at load time, into the value the engine works with
(a duration in seconds, an argv tuple), and fails with a message that says what is allowed, so
`gitopsd validate` can print it next to the file and line.
"""

from __future__ import annotations

import re
import shlex
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema

INPUT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
GITHUB_REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
HTTP_URL = re.compile(r"^https?://[^\s/?#]+(/[^\s?#]*)?$")
DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
DURATION_PATTERN = r"^(\d+h)?(\d+m)?(\d+s)?$"


def check_name(value: str) -> str:
    """Names become file names, metric labels and DNS names, hence the DNS-label rule."""
    if not DNS_LABEL.match(value):
        raise ValueError(
            f"invalid name {value!r}: use a DNS label (lowercase letters, digits and '-', "
            "starting and ending with a letter or digit, at most 63 characters)"
        )
    return value


def input_variable(name: str) -> str:
    """The environment variable a driver reads an input from: GITOPSD_INPUT_<NAME>."""
    return "GITOPSD_INPUT_" + re.sub(r"[^A-Z0-9_]", "_", name.upper())


def check_input_names(inputs: dict[str, Any]) -> dict[str, Any]:
    """Input names become variable names, so they must be usable as one, and distinct as one."""
    seen: dict[str, str] = {}
    for name in inputs:
        if not INPUT_NAME.match(name):
            raise ValueError(f"input name {name!r}: use letters, digits, '_', '-' and '.'")
        variable = input_variable(name)
        if variable in seen:
            raise ValueError(f"inputs {seen[variable]!r} and {name!r} both become {variable}")
        seen[variable] = name
    return inputs


def check_env_names(env: dict[str, str]) -> dict[str, str]:
    """Driver environment variables: valid names, and none of the protocol's own."""
    for name in env:
        if not ENV_NAME.match(name):
            raise ValueError(f"environment variable name {name!r}: use letters, digits and '_'")
        if name.startswith("GITOPSD_"):
            raise ValueError(f"{name!r}: GITOPSD_* variables are set by gitopsd itself")
    return env


def check_env_name(value: str) -> str:
    """The name of one environment variable of the daemon's: where a secret (a token, a
    webhook URL) is read from."""
    if not ENV_NAME.match(value):
        raise ValueError(f"environment variable name {value!r}: use letters, digits and '_'")
    return value


def check_github_repository(value: str) -> str:
    if not GITHUB_REPOSITORY.match(value):
        raise ValueError(f"repository {value!r}: use owner/name, as in octo-org/infra")
    return value


def check_http_url(value: str) -> str:
    """An http(s) base URL such as a GitHub API's; a typo here would otherwise fail only when
    a run reaches the component."""
    if not HTTP_URL.match(value):
        raise ValueError(
            f"URL {value!r}: use http:// or https:// and a host, "
            "e.g. https://api.github.com or https://github.example.com/api/v3"
        )
    return value


def parse_duration(value: Any) -> Any:
    """Accept `90s`, `15m`, `1h30m` (or a bare number of seconds) and return seconds."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration, got {str(value).lower()}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"duration {value!r} is negative")
        return float(value)
    if not isinstance(value, str):
        shown = "a list" if isinstance(value, list) else type(value).__name__
        shown = "a mapping" if isinstance(value, dict) else shown
        raise ValueError(
            f"expected a duration such as 90s, 15m or 1h30m (or a number of seconds), got {shown}"
        )
    match = DURATION.match(value.strip())
    if not value.strip() or match is None:
        raise ValueError(
            f"invalid duration {value!r}: use a number with s, m or h, e.g. 90s, 15m, 1h30m"
        )
    hours, minutes, seconds = (int(group or 0) for group in match.groups())
    return float(hours * 3600 + minutes * 60 + seconds)


def split_command(value: Any) -> Any:
    """A command is an argv list; a plain string is split as a shell would, never run by one."""
    if isinstance(value, str):
        try:
            value = shlex.split(value)
        except ValueError as error:
            raise ValueError(f"cannot split command {value!r}: {error}") from None
    if isinstance(value, list) and not value:
        raise ValueError("command is empty")
    return tuple(value) if isinstance(value, list) else value


def check_command(argv: tuple[str, ...]) -> tuple[str, ...]:
    """What no program can be started with is refused now, at its line, not when it runs:
    an empty program name, a NUL byte in any argument."""
    if not argv[0]:
        raise ValueError("the program (the command's first item) is empty")
    for number, argument in enumerate(argv):
        if "\0" in argument:
            raise ValueError(
                f"item {number} of the command holds a NUL byte, which no program can be given"
            )
    return argv


def check_cron(value: str) -> str:
    """Five-field cron, as in crontab(5); checked now so a typo fails validation, not at 3am."""
    if len(value.split()) != 5 or not croniter.is_valid(value):
        raise ValueError(f"invalid cron schedule {value!r}: use five fields, e.g. '0 18 * * 5'")
    return value


def check_timezone(value: str) -> str:
    """An IANA timezone name, resolvable from the system or the tzdata package."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown timezone {value!r}: use an IANA name such as Europe/Berlin"
        ) from None
    return value


Name = Annotated[str, AfterValidator(check_name)]
Seconds = Annotated[
    float,
    BeforeValidator(parse_duration),
    WithJsonSchema(
        {
            "anyOf": [{"type": "string", "pattern": DURATION_PATTERN}, {"type": "number"}],
            "description": "duration: 90s, 15m, 1h30m, or seconds",
        }
    ),
]
Command = Annotated[
    tuple[str, ...],
    BeforeValidator(split_command),
    AfterValidator(check_command),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "array", "items": {"type": "string"}, "minItems": 1},
                {"type": "string", "minLength": 1},
            ],
            "description": "argv list, or a string split like a shell would (never run by one)",
        }
    ),
]
PositiveSeconds = Annotated[Seconds, Field(gt=0)]
Cron = Annotated[str, AfterValidator(check_cron)]
Timezone = Annotated[str, AfterValidator(check_timezone)]
