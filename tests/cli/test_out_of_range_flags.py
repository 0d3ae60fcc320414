"""Flags a user can get wrong are refused in a line or two, never with a traceback: a number
past what the store or the kernel takes is a usage error (64), a report path that cannot be a
file is an error naming it (1)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.test_run_commands import gitopsd
from tests.runtime.world import World

TOO_LARGE = str(2**63)  # one past SQLite's (and PostgreSQL's bigint) largest integer


@pytest.mark.parametrize(
    "arguments",
    [
        ("history", "--before", TOO_LARGE),
        ("history", "--limit", TOO_LARGE),
        ("runs", "--limit", "99999999999999999999"),
    ],
)
def test_a_count_past_64_bits_is_a_usage_error(world: World, arguments: tuple[str, ...]) -> None:
    done = gitopsd(world, *arguments)
    assert done.returncode == 64, done.stderr
    assert "Traceback" not in done.stderr
    assert f"Invalid value for '{arguments[1]}'" in done.stderr


NOT_UTF8 = os.fsdecode(b"on call \xff")  # what Python makes of a Latin-1 terminal's byte


@pytest.mark.parametrize(
    "arguments",
    [
        ("suspend", "--env", "dev", "--reason", NOT_UTF8),
        ("suspend", "--env", "dev", "--as", NOT_UTF8),
        ("approve", "--env", "dev", "--as", "alice", "--email", NOT_UTF8),
        ("rollback", "--env", "dev", "--to", "HEAD", "--as", NOT_UTF8),
        # read from the store by them: a traceback from SQLite before
        ("runs", "--run", NOT_UTF8),
        ("runs", "--env", NOT_UTF8),
        ("runs", "--before", NOT_UTF8),
        ("history", "--env", NOT_UTF8),
        ("cancel", NOT_UTF8),
    ],
)
def test_a_name_or_reason_that_is_not_utf8_is_a_usage_error(
    world: World, arguments: tuple[str, ...]
) -> None:
    """Stored in the history, such bytes could not be encoded: a traceback from the store."""
    done = gitopsd(world, *arguments)
    assert done.returncode == 64, done.stderr
    assert "Traceback" not in done.stderr
    assert "is not UTF-8 text" in done.stderr
    status = gitopsd(world, "status", "--env", "dev", "--output", "json")
    assert '"suspension": null' in status.stdout


@pytest.mark.parametrize(
    "arguments",
    [
        ("apply", "--env", "dev", "--revision", ""),
        ("rollback", "--env", "dev", "--to", " "),
        ("diff", "--env", "dev", "--from", ""),
        ("validate", "--revision", ""),
    ],
)
def test_an_empty_revision_is_a_usage_error(world: World, arguments: tuple[str, ...]) -> None:
    """It was taken for the default (`apply --revision ""` applied the head), or said "dev
    never verified no revision"."""
    done = gitopsd(world, *arguments)
    assert done.returncode == 64, done.stdout + done.stderr
    assert "an empty revision names no commit" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_largest_64_bit_count_is_taken(world: World) -> None:
    done = gitopsd(world, "history", "--limit", str(2**63 - 1), "--before", str(2**63 - 1))
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("where", ["missing/x.md", "."])
def test_a_drift_report_path_that_cannot_be_written_is_one_line(world: World, where: str) -> None:
    assert gitopsd(world, "apply", "--env", "dev").returncode == 0
    world.control(plan={name: 0 for name in ("net", "dns", "k8s", "app")})  # checks: in sync
    report = world.root / where
    done = gitopsd(world, "drift", "--env", "dev", "--report", str(report))
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        f"gitopsd: error: cannot write the report {report}: "
        + ("No such file or directory" if where.startswith("missing") else "Is a directory")
    ]


def serve(tmp_path: Path, *flags: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`gitopsd serve FLAGS` with only `env` among the GITOPSD_* variables; it must stop at
    once, before it opens anything."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("GITOPSD_")}
    return subprocess.run(
        [sys.executable, "-m", "gitopsd", "serve", *flags],
        cwd=tmp_path,
        env={**environment, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("flags", "env", "said"),
    [
        (("--listen", "127.0.0.1:99999"), {}, "the port must be 1 to 65535"),
        (("--listen", "127.0.0.1:0"), {}, "the port must be 1 to 65535"),
        ((), {"GITOPSD_LISTEN": "127.0.0.1:65536"}, "the port must be 1 to 65535"),
        (("--retention-max-age", "99999999999d"), {}, "is over 100 years (36500d)"),
        ((), {"GITOPSD_RETENTION_MAX_AGE": "36501d"}, "is over 100 years (36500d)"),
        (("--retention-max-runs", "99999999999999999999999"), {}, "1<=x<=2147483648"),
        ((), {"GITOPSD_RETENTION_MAX_RUNS": str(2**31 + 1)}, "less than or equal to 2147483648"),
    ],
)
def test_serve_refuses_out_of_range_settings_as_usage_errors(
    tmp_path: Path, flags: tuple[str, ...], env: dict[str, str], said: str
) -> None:
    done = serve(tmp_path, *flags, **env)
    assert done.returncode == 64, done.stderr
    assert "Traceback" not in done.stderr
    assert said in done.stderr.strip().splitlines()[-1]


def test_a_bad_retention_age_names_days_among_the_units(tmp_path: Path) -> None:
    done = serve(tmp_path, "--retention-max-age", "5y")
    assert done.returncode == 64
    assert "use a number with d, h, m or s, e.g. 90d, 12h, 1d12h" in done.stderr
    assert "use a number with s, m or h" not in done.stderr
