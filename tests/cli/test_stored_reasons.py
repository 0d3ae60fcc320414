"""A suspension reason stored before control characters were refused (`reason_problem`) may
still hold them: every line the command line prints of it shows them escaped, never raw."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from gitopsd.adapters.sqlite_store import SqliteStore
from gitopsd.model.state import Event, escape_unsafe
from tests.cli.test_run_commands import as_json, gitopsd
from tests.runtime.test_promotion_flow import chain
from tests.runtime.world import World

# clears the screen, turns red, forges a line of its own, shows the rest backwards
HOSTILE = "\x1b[2J\x1b[31mall clear\nforged line\u202eevil"
ESCAPED = "\\x1b[2J\\x1b[31mall clear\\nforged line\\u202eevil"
RAW = ("\x1b", "\u202e", "\nforged line")


@pytest.fixture
def applied(tmp_path: Path) -> tuple[World, str]:
    """dev applied at two revisions (the first one's sha returned), suspended by oncall with a
    reason an older gitopsd took as it was: written straight into the store."""
    world = World.committed(tmp_path, chain())
    first = world.commit(chain())
    assert gitopsd(world, "apply", "--env", "dev").returncode == 0
    world.commit(chain(size=6))
    assert gitopsd(world, "apply", "--env", "dev").returncode == 0
    done = gitopsd(world, "suspend", "--env", "dev", "--reason", "placeholder", "--as", "oncall")
    assert done.returncode == 0, done.stderr
    store = SqliteStore(world.repo / ".gitopsd" / "state.db")
    try:
        state = store.get_environment("dev")
        assert state is not None and state.suspension is not None
        suspension = state.suspension.model_copy(update={"reason": HOSTILE})
        store.save_environment(state.model_copy(update={"suspension": suspension}))
        store.append_event(
            Event(
                at=datetime.now(UTC),
                environment="dev",
                actor="oncall",
                kind="environment.suspended",
                message=f"oncall suspended dev: {HOSTILE}",
            )
        )
    finally:
        store.close()
    return world, first


@pytest.fixture
def world(applied: tuple[World, str]) -> World:
    return applied[0]


def assert_escaped(text: str) -> None:
    assert ESCAPED in text, text
    assert not any(raw in text for raw in RAW), repr(text)


def test_status_shows_a_stored_reason_escaped(world: World) -> None:
    shown = gitopsd(world, "status", "--env", "dev")
    assert shown.returncode == 0, shown.stderr
    assert_escaped(shown.stdout)
    assert "dev suspended by oncall since " in shown.stdout
    data = as_json(gitopsd(world, "status", "--env", "dev", "--output", "json"))
    assert data["environments"][0]["suspension"]["reason"] == HOSTILE  # JSON: as stored


def test_history_shows_a_stored_reason_escaped(world: World) -> None:
    shown = gitopsd(world, "history", "--env", "dev")
    assert shown.returncode == 0, shown.stderr
    assert_escaped(shown.stdout)
    assert f"oncall suspended dev: {ESCAPED}" in shown.stdout


def test_rollback_s_suspension_line_shows_the_reason_it_restates_escaped(
    applied: tuple[World, str],
) -> None:
    """A rollback of a suspended environment restates the person's reason in its own."""
    world, first = applied
    back = gitopsd(world, "rollback", "--env", "dev", "--to", first, "--as", "oncall")
    assert back.returncode == 0, back.stdout + back.stderr
    assert "dev suspended: rolled back from" in back.stderr
    assert_escaped(back.stderr)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("incident 42: db, café ✅", "incident 42: db, café ✅"),  # as it is
        ("a\tb\rc\x00d\x7fe\x85f", "a\\tb\\rc\\x00d\\x7fe\\x85f"),  # every control character
        ("\u2066x\u2069\u200f\u061c", "\\u2066x\\u2069\\u200f\\u061c"),  # every bidi mark
        ("C:\\temp\\x1b", "C:\\temp\\x1b"),  # a backslash typed is left as typed
    ],
)
def test_escape_unsafe_escapes_only_what_drives_or_reorders_a_terminal(
    text: str, shown: str
) -> None:
    assert escape_unsafe(text) == shown


def test_an_error_quoting_a_stored_reason_shows_it_escaped(world: World) -> None:
    """Suspending dev again refuses, quoting the reason it is suspended for: its escape
    sequences and bidirectional marks are shown escaped (its line break stays one)."""
    again = gitopsd(world, "suspend", "--env", "dev", "--reason", "again")
    assert again.returncode == 1
    assert again.stderr.startswith("gitopsd: error: ")
    assert "\\x1b[2J\\x1b[31mall clear" in again.stderr and "\\u202eevil" in again.stderr
    assert "\x1b" not in again.stderr and "\u202e" not in again.stderr


def test_runs_show_a_stored_run_error_escaped(world: World) -> None:
    """A run's and a step's error may quote what a driver or GitHub said: `gitopsd runs`
    shows their escape sequences and bidirectional marks escaped."""
    store = SqliteStore(world.repo / ".gitopsd" / "state.db")
    try:
        last = store.list_runs("dev", limit=1)[0]
        store.save_run(last.model_copy(update={"error": HOSTILE}))
        step = store.list_steps(last.id)[0]
        store.save_step(step.model_copy(update={"error": HOSTILE}))
    finally:
        store.close()
    shown = gitopsd(world, "runs", "--env", "dev", "--limit", "1")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.count(ESCAPED) == 2, shown.stdout
    assert not any(raw in shown.stdout for raw in RAW), repr(shown.stdout)
