"""`gitopsd diff`: an environment's rendered desired state at two revisions, side by side.

Pipeline: load -> render -> **diff**. For each component of the environment at a revision:
its layer, the git tree of its folder (any file changed shows as a new id), its driver and
timeout, and its inputs rendered for the environment with the outputs its dependencies have
now (an input reading an output not known yet is shown as written). The two states are
compared as a unified diff, as JSON (for `--output json`, unchanged for scripts) and as YAML
(for people), with a summary of the components added, removed and changed (which fields),
since a first diff of an environment adds every component; the commits between the revisions
are the changelog. By default: the environment's current revision against what it gets next
(the branch head, or the newest revision its upstream verified, soaked or not).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from dataclasses import dataclass, field
from typing import Any

from gitopsd.adapters import gitrepo
from gitopsd.engine import references, rendering, selection, yaml_text
from gitopsd.errors import ConflictError
from gitopsd.runtime.records import promotion_records, sensitivity
from gitopsd.runtime.runs.workspace import Workspace


@dataclass(frozen=True)
class ComponentChange:
    """One component whose desired state differs: `added`, `removed` or `changed` (with the
    fields that changed, an input as `inputs.NAME`)."""

    name: str
    change: str
    fields: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Diff:
    environment: str
    old: str | None
    new: str
    text: str  # unified diff of the JSON form; empty when the desired states are the same
    changelog: list[str]  # the newest commits, at most gitrepo.CHANGELOG_LIMIT
    readable: str = ""  # the same diff of the YAML form
    changes: list[ComponentChange] = field(default_factory=list)
    unchanged: int = 0  # components the same at both revisions
    commits: int = 0  # between the revisions, all of them (the changelog may list fewer)
    log: list[gitrepo.Commit] = field(default_factory=list)  # the changelog's commits

    @property
    def differs(self) -> bool:
        return bool(self.text)


def diff(
    workspace: Workspace, environment: str, *, old: str | None = None, new: str | None = None
) -> Diff:
    state = workspace.store.get_environment(environment)
    old_sha = workspace.source.resolve(old) if old else (state.revision if state else None)
    new_sha = workspace.source.resolve(new) if new else _next(workspace, environment, old_sha)
    before = desired_state(workspace, environment, old_sha) if old_sha else {}
    after = desired_state(workspace, environment, new_sha)
    names = (
        f"{environment}@{old_sha[:12] if old_sha else 'nothing'}",
        f"{environment}@{new_sha[:12]}",
    )
    log = workspace.source.commits(old_sha, new_sha) if old_sha != new_sha else []
    changelog = [commit.line for commit in log]
    commits = len(changelog)
    if commits >= gitrepo.CHANGELOG_LIMIT:
        commits = workspace.source.commit_count(old_sha, new_sha)
    changes = summary(before, after)
    return Diff(
        environment,
        old_sha,
        new_sha,
        _unified(_json_lines(before), _json_lines(after), names),
        changelog,
        readable=_unified(_yaml_lines(before), _yaml_lines(after), names),
        changes=changes,
        unchanged=len(after.keys() & before.keys()) - sum(c.change == "changed" for c in changes),
        commits=commits,
        log=log,
    )


def against(workspace: Workspace, environment: str, other: str) -> Diff:
    """What `environment` lacks that `other` has: its desired state at its own revision and
    at `other`'s (the two environments' variables differ by design, so each side is rendered
    for `environment`), with the commits between. ConflictError while `other` has none."""
    state = workspace.store.get_environment(other)
    if state is None or state.revision is None:
        raise ConflictError(f"{other} has no revision yet: nothing to compare {environment} with")
    return diff(workspace, environment, new=state.revision)


def report(found: Diff) -> dict[str, Any]:
    """The diff as `gitopsd diff --output json` prints it and the API answers it: the keys
    scripts know, and `commit_log` (each commit with its sha, subject, author and date)."""
    return {
        "environment": found.environment,
        "from": found.old,
        "to": found.new,
        "differs": found.differs,
        "diff": found.text,
        "readable": found.readable,
        "summary": [dataclasses.asdict(change) for change in found.changes],
        "unchanged": found.unchanged,
        "changelog": found.changelog,
        "commits": found.commits,
        "commit_log": [commit._asdict() for commit in found.log],
    }


def summary(before: dict[str, Any], after: dict[str, Any]) -> list[ComponentChange]:
    """The components that differ, in `after`'s order (removed ones last)."""
    found = []
    for name, state in after.items():
        if name not in before:
            found.append(ComponentChange(name, "added"))
        elif before[name] != state:
            found.append(ComponentChange(name, "changed", _changed_fields(before[name], state)))
    found += [ComponentChange(name, "removed") for name in before if name not in after]
    return found


def _changed_fields(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """`files`, `timeout`, `driver.apply`, `inputs.node_count`: one level into mappings."""
    changed = []
    for key in sorted(before.keys() | after.keys()):
        old, new = before.get(key), after.get(key)
        if old == new:
            continue
        if isinstance(old, dict) and isinstance(new, dict):
            inner = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
            changed += [f"{key}.{k}" for k in inner]
        else:
            changed.append(key)
    return changed


def desired_state(workspace: Workspace, environment: str, revision: str) -> dict[str, Any]:
    """Every component of `environment` at `revision`, as gitopsd would apply it."""
    target = workspace.parsed(revision)
    repository = target.repository
    if environment not in repository.environments:
        return {}
    entry = repository.environments[environment]
    applied = workspace.store.list_components(environment)
    outputs = {s.name: dict(s.outputs) for s in applied}
    declared = sensitivity.declared(repository, applied)
    state: dict[str, Any] = {}
    for component in selection.select(repository, environment).components:
        name = component.manifest.name
        spec = component.manifest.spec
        scope = selection.scope_for(entry, name, revision=revision, outputs=outputs)
        state[name] = {
            "layer": component.manifest.metadata.layer,
            "files": target.trees.get(component.folder, ""),
            "driver": spec.driver.model_dump(mode="json"),
            "timeout": spec.timeout,
            "inputs": sensitivity.masked(
                _render_inputs(spec.inputs, scope),
                sensitivity.sensitive_inputs(component, declared),
            ),
        }
    return state


def _render_inputs(inputs: dict[str, Any], scope: references.Scope) -> dict[str, Any]:
    """Each input rendered on its own: one reading an output not known yet (always so where
    nothing was applied, as in a pull request's check) is shown as written, and the others
    still show the variables they read."""
    rendered: dict[str, Any] = {}
    for key, value in inputs.items():
        try:
            rendered[key] = rendering.render(value, scope)
        except rendering.RenderError:
            rendered[key] = value
    return rendered


def _next(workspace: Workspace, environment: str, current: str | None) -> str:
    """What the environment gets next: the newest revision its upstream verified (soaked or
    not yet: the diff shows what is coming), or the branch head if it tracks the branch."""
    entry = workspace.manifests().environments.get(environment)
    if entry is None or entry.manifest.upstream is None:
        return workspace.source.head()
    upstream = promotion_records.holds(workspace.store, entry.manifest.upstream)
    newest = max(upstream, key=lambda hold: hold.since, default=None)
    return newest.revision if newest else (current or workspace.source.head())


def _unified(before: list[str], after: list[str], names: tuple[str, str]) -> str:
    return "".join(difflib.unified_diff(before, after, fromfile=names[0], tofile=names[1]))


def _json_lines(state: dict[str, Any]) -> list[str]:
    return [line + "\n" for line in json.dumps(state, indent=2, sort_keys=True).splitlines()]


def _yaml_lines(state: dict[str, Any]) -> list[str]:
    return yaml_text.dump(state).splitlines(keepends=True) if state else []
