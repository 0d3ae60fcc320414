"""The revision an environment is at stays loaded while it is there, however far the branch
moves on: its next apply rolls back to it, and loading it again made a copy of every
component each promotion."""

from __future__ import annotations

from gitopsd.runtime.runs.workspace import Workspace
from tests.runtime.world import World, component, environment


def commit(world: World, label: int) -> str:
    return world.commit(
        {
            "environments/dev.yaml": environment("dev"),
            "environments/prod.yaml": environment("prod"),
            "components/net/component.yaml": component("net", inputs={"label": label}),
        }
    )


def test_the_revision_an_environment_is_at_stays_loaded(world: World, workspace: Workspace) -> None:
    first = commit(world, 0)
    workspace.apply("dev", revision=first)
    workspace.apply("prod", revision=first)
    loaded = workspace.load_revision(first)
    for label in range(1, 6):  # dev moves on, many more revisions than the cache keeps
        workspace.apply("dev", revision=commit(world, label))
    assert workspace.load_revision(first) is loaded  # prod is still at it


def test_a_revision_no_environment_is_at_any_more_is_let_go(
    world: World, workspace: Workspace
) -> None:
    first = commit(world, 0)
    workspace.apply("dev", revision=first)
    loaded = workspace.load_revision(first)
    for label in range(1, 6):
        workspace.apply("dev", revision=commit(world, label))
    again = workspace.load_revision(first)
    assert again is not loaded  # loaded anew (from disk)
    assert again.repository.components.keys() == loaded.repository.components.keys()
