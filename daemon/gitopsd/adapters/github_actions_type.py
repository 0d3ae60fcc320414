"""The `github-actions` driver type as the registry finds it (`engine.drivers.DriverType`).

Registered as the entry point `github-actions` of the `gitopsd.drivers` group, like any
plugin. Apart from the runner (`github_actions_driver`) because the runner imports httpx: every
command loads the driver types to validate manifests, and only those that dispatch a workflow
should pay for httpx.
"""

from __future__ import annotations

from gitopsd.engine.drivers import DriverSetup
from gitopsd.engine.ports import DriverRunner
from gitopsd.model.manifests import GitHubActionsDriver


class GitHubActionsType:
    """Dispatches a workflow per call and follows the run it started."""

    name = "github-actions"
    settings = GitHubActionsDriver

    def runner(self, setup: DriverSetup) -> DriverRunner:
        """The runner, made (and httpx imported) on the first workflow to dispatch."""
        from gitopsd.adapters.github_actions_driver import GitHubActionsRunner

        return GitHubActionsRunner()


DRIVER = GitHubActionsType()
