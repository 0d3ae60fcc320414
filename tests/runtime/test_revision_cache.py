"""A revision loaded once is read back from disk by the next process, not from git again."""

from __future__ import annotations

import json
import os
import pickle
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import ClassVar

import pytest

from gitopsd.adapters.gitrepo import Blob, GitSource, Listing
from gitopsd.adapters.sqlite_store import SqliteStore
from gitopsd.errors import GitSourceError
from gitopsd.runtime.runs import revisions
from gitopsd.runtime.runs.revisions import LoadedRevision, RevisionCache, load
from tests.runtime.world import World, component, environment


class CountingSource(GitSource):
    """A real GitSource that counts the manifest reads (what a cache hit must skip)."""

    reads = 0

    def listing(self, revision: str) -> Listing:
        CountingSource.reads += 1
        return super().listing(revision)


class ReadingSource(GitSource):
    """A real GitSource that notes the paths of every manifest it reads."""

    read: ClassVar[list[str]] = []

    def read_blobs(self, files: Mapping[str, Blob]) -> dict[str, bytes]:
        ReadingSource.read += files
        return super().read_blobs(files)


@pytest.fixture
def source(world: World) -> CountingSource:
    opened = CountingSource.open(str(world.repo), branch=None, data_dir=world.root / "data")
    assert isinstance(opened, CountingSource)
    CountingSource.reads = 0
    return opened


def cache(source: GitSource, folder: Path) -> RevisionCache:
    """A cache as a new process makes it: empty in memory, the data folder's files on disk."""
    return RevisionCache(source, folder=folder)


def process_loads(source: GitSource, folder: Path, revision: str | None = None) -> LoadedRevision:
    """What a whole process loads: a new cache, one load, and the process's end."""
    made = cache(source, folder)
    try:
        return made.load(revision)
    finally:
        made.close()


def test_the_next_process_reads_the_revision_from_disk(
    world: World, source: CountingSource, tmp_path: Path
) -> None:
    sha = world.commit(
        {
            "environments/dev.yaml": environment("dev"),
            "components/network/vpc/component.yaml": component("vpc"),
        }
    )
    first = process_loads(source, tmp_path / "revisions", sha)
    assert CountingSource.reads == 1
    again = cache(source, tmp_path / "revisions").load(sha)
    assert CountingSource.reads == 1  # not from git
    assert again is not first
    assert again.revision == sha and again.is_valid
    assert again.repository.components.keys() == first.repository.components.keys() == {"vpc"}
    assert (
        again.repository.components["vpc"].manifest == first.repository.components["vpc"].manifest
    )
    assert again.trees == first.trees == source.folder_trees(sha)


def test_a_folder_named_in_bytes_that_are_not_utf8_is_read_back_from_disk(
    world: World, source: CountingSource, tmp_path: Path
) -> None:
    """git names folders in bytes: a revision with a component in a folder named in Latin-1
    is kept and read back like any other, not refused as unreadable by every process."""
    latin = os.fsdecode(b"components/network/caf\xe9/component.yaml")
    sha = world.commit({"environments/dev.yaml": environment("dev"), latin: component("vpc")})
    first = process_loads(source, tmp_path / "revisions", sha)
    assert CountingSource.reads == 1
    again = cache(source, tmp_path / "revisions").load(sha)
    assert CountingSource.reads == 1  # not from git
    assert again.is_valid and again.repository.components.keys() == {"vpc"}
    assert again.repository.components["vpc"].folder == os.path.dirname(latin)
    assert again.trees == first.trees == source.folder_trees(sha)


def test_a_revision_read_from_disk_is_whole_whether_or_not_its_components_are_in_memory(
    world: World, source: CountingSource, tmp_path: Path
) -> None:
    """A component in memory already is found by its content's id; the others are built
    from what the file keeps of them."""
    first_sha = world.commit(
        {
            "environments/dev.yaml": environment("dev"),
            "components/network/vpc/component.yaml": component("vpc"),
            "components/network/dns/component.yaml": component("dns"),
        }
    )
    folder = tmp_path / "revisions"
    process_loads(source, folder, first_sha)  # nothing of it stays in memory
    second_sha = world.commit(
        {"components/network/dns/component.yaml": component("dns", timeout="40s")}
    )
    head = process_loads(source, folder, second_sha)  # vpc in memory, dns changed
    again = cache(source, folder).load(first_sha)
    assert CountingSource.reads == 2  # the first commit came from disk
    assert again.repository.components["vpc"] is head.repository.components["vpc"]
    assert again.repository.components.keys() == {"vpc", "dns"}
    dns = again.repository.components["dns"]
    assert dns is not head.repository.components["dns"]
    assert dns.manifest == load(source, first_sha).repository.components["dns"].manifest


def test_an_invalid_revision_is_read_from_git_each_time_with_the_same_problems(
    world: World, source: CountingSource, tmp_path: Path
) -> None:
    """Only valid revisions are kept on disk: an invalid one is never run, so it is not
    worth keeping, and its problems come from git, with their lines, every time."""
    sha = world.commit({"environments/dev.yaml": "apiVersion: gitopsd.io/v1\nkind: Environment\n"})
    first = process_loads(source, tmp_path / "revisions", sha)
    again = process_loads(source, tmp_path / "revisions", sha)
    assert CountingSource.reads == 2
    assert not list((tmp_path / "revisions").glob(f"{sha}.*"))
    assert not again.is_valid
    assert [str(p) for p in again.problems] == [str(p) for p in first.problems]
    assert any(p.path == "environments/dev.yaml" and p.line for p in again.problems)


def test_a_branch_name_is_resolved_each_time(
    world: World, source: CountingSource, tmp_path: Path
) -> None:
    """The disk is keyed by commit: a branch that moved loads its new commit."""
    world.commit({"environments/dev.yaml": environment("dev")})
    assert process_loads(source, tmp_path / "revisions").repository.environments.keys() == {"dev"}
    world.commit({"environments/prod.yaml": environment("prod")})
    moved = cache(source, tmp_path / "revisions").load()
    assert moved.repository.environments.keys() == {"dev", "prod"}
    assert CountingSource.reads == 2


def kept_file(folder: Path, sha: str) -> Path:
    """The one file the cache keeps for `sha`."""
    (found,) = folder.glob(f"{sha}.*")
    return found


def test_a_damaged_file_loads_from_git_and_is_written_again(
    world: World, source: CountingSource, tmp_path: Path
) -> None:
    sha = world.commit({"environments/dev.yaml": environment("dev")})
    folder = tmp_path / "revisions"
    process_loads(source, folder, sha)
    kept = kept_file(folder, sha)
    kept.write_bytes(kept.read_bytes()[:100])  # cut short, as by a crash
    loaded = process_loads(source, folder, sha)
    assert loaded.is_valid and CountingSource.reads == 2
    assert process_loads(source, folder, sha).is_valid
    assert CountingSource.reads == 2  # repaired for the next process


def header(kept: Path) -> dict[str, object]:
    """The first line of a kept file: what wrote it, for which commit, and what follows."""
    first: dict[str, object] = json.loads(kept.read_text().partition("\n")[0])
    return first


@pytest.mark.parametrize(
    ("field", "value"),
    [("format", 1), ("gitopsd", "0.0.1-other"), ("revision", "b" * 40), ("extra", 1)],
)
def test_a_file_written_for_another_format_version_or_commit_is_ignored(
    world: World, source: CountingSource, tmp_path: Path, field: str, value: object
) -> None:
    sha = world.commit(
        {
            "environments/dev.yaml": environment("dev"),
            "components/network/vpc/component.yaml": component("vpc"),
        }
    )
    folder = tmp_path / "revisions"
    process_loads(source, folder, sha)
    kept = kept_file(folder, sha)
    first, _, rest = kept.read_text().partition("\n")
    kept.write_text(json.dumps(json.loads(first) | {field: value}) + "\n" + rest)
    loaded = process_loads(source, folder, sha)
    assert CountingSource.reads == 2  # from git again
    assert loaded.is_valid and loaded.repository.components.keys() == {"vpc"}
    assert header(kept).get(field) != value  # written again, for this one


def test_a_file_cut_short_at_the_end_of_a_line_is_not_read_as_a_smaller_revision(
    world: World, source: CountingSource, tmp_path: Path
) -> None:
    """Each manifest is two lines: a file that lost its last lines would be a revision
    without those components (orphans, to a run), were the count in its header not checked."""
    sha = world.commit(
        {
            "environments/dev.yaml": environment("dev"),
            "components/network/vpc/component.yaml": component("vpc"),
            "components/network/dns/component.yaml": component("dns"),
        }
    )
    folder = tmp_path / "revisions"
    process_loads(source, folder, sha)
    kept = kept_file(folder, sha)
    lines = kept.read_text().splitlines(keepends=True)
    assert header(kept)["documents"] * 2 == len(lines) - 1 == 6
    kept.write_text("".join(lines[:-2]))
    loaded = process_loads(source, folder, sha)
    assert CountingSource.reads == 2  # from git again
    assert loaded.repository.components.keys() == {"vpc", "dns"}


def manifests(loaded: LoadedRevision) -> dict[str, object]:
    """Every manifest of a load as plain values: what two loads are compared by."""
    repository = loaded.repository
    return {
        "settings": repository.settings.model_dump(),
        **{name: e.manifest.model_dump() for name, e in repository.environments.items()},
        **{name: e.manifest.model_dump() for name, e in repository.components.items()},
    }


def three_commits(world: World) -> list[str]:
    """vpc and dns; then dns changed, cache added; then vpc gone and dns as it was."""
    first = {
        "environments/dev.yaml": environment("dev"),
        "components/network/vpc/component.yaml": component("vpc"),
        "components/network/dns/component.yaml": component("dns"),
    }
    second = {
        "components/network/dns/component.yaml": component("dns", timeout="40s"),
        "components/addons/cache/component.yaml": component("cache", layer="addons"),
    }
    third = {
        "environments/dev.yaml": environment("dev", parallelism=2),
        "components/network/dns/component.yaml": component("dns"),
        "components/addons/cache/component.yaml": component("cache", layer="addons"),
    }
    return [world.commit(first), world.commit(second), world.commit(third, replace=True)]


def test_each_revision_kept_after_another_reads_back_as_git_has_it(
    world: World, source: CountingSource, tmp_path: Path
) -> None:
    """A revision is kept by copying from the one kept before it what the two share: each
    must still read back whole, as git has it, whatever was added, changed or removed."""
    shas = three_commits(world)
    folder = tmp_path / "revisions"
    for sha in shas:
        process_loads(source, folder, sha)  # each kept after the one before
    from_disk = {sha: manifests(cache(source, folder).load(sha)) for sha in shas}
    assert CountingSource.reads == 3  # the reads back came from disk
    assert from_disk == {sha: manifests(load(source, sha)) for sha in shas}
    assert sorted(from_disk[shas[2]]) == ["cache", "dev", "dns", "settings"]


def test_keeping_a_revision_parses_only_the_manifests_the_one_kept_before_did_not_have(
    world: World, source: CountingSource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parsed: list[str] = []
    parse = revisions.yaml_text.values

    def counting(text: str) -> object:
        parsed.append(text)
        return parse(text)

    monkeypatch.setattr(revisions.yaml_text, "values", counting)
    shas = three_commits(world)
    folder = tmp_path / "revisions"
    process_loads(source, folder, shas[0])
    assert len(parsed) == 3  # the first: every manifest
    parsed.clear()
    process_loads(source, folder, shas[1])
    assert sorted(parsed) == sorted(
        [component("dns", timeout="40s"), component("cache", layer="addons")]
    )


def test_a_damaged_kept_revision_passes_none_of_its_damage_to_the_next(
    world: World, source: CountingSource, tmp_path: Path
) -> None:
    """A file zeroed from the middle of a manifest's data on (a machine that crashed before
    writing it out) gives the next revision only what came before the damage."""
    shas = three_commits(world)
    folder = tmp_path / "revisions"
    process_loads(source, folder, shas[0])
    kept = kept_file(folder, shas[0])
    text = kept.read_bytes()
    vpc_data = text.index(b'{"text":', text.index(b'"components/network/vpc/component.yaml"'))
    kept.write_bytes(text[: vpc_data + 20] + bytes(len(text) - vpc_data - 20))
    process_loads(source, folder, shas[1])
    assert CountingSource.reads == 2
    again = cache(source, folder).load(shas[1])
    assert CountingSource.reads == 2  # the second read back from disk: whole
    assert manifests(again) == manifests(load(source, shas[1]))


class Planted:
    """A pickle payload: unpickled, it makes the folder `marker`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.mkdir, (str(self.marker),))


def test_a_pickle_planted_in_the_cache_folder_runs_nothing(
    world: World, source: CountingSource, tmp_path: Path
) -> None:
    sha = world.commit({"environments/dev.yaml": environment("dev")})
    folder = tmp_path / "revisions"
    process_loads(source, folder, sha)
    marker = tmp_path / "marker"
    payload = pickle.dumps(Planted(marker))
    kept_file(folder, sha).write_bytes(payload)  # where the cache reads
    (folder / f"{sha}.0123456789abcdef.pickle").write_bytes(payload)  # an older gitopsd's
    loaded = process_loads(source, folder, sha)
    assert loaded.is_valid and CountingSource.reads == 2
    assert not marker.exists()
    assert pickle.loads(payload) is None and marker.exists()  # the payload is live


def test_without_files_nothing_is_written(world: World, source: CountingSource) -> None:
    sha = world.commit({"environments/dev.yaml": environment("dev")})
    RevisionCache(source).load(sha)
    RevisionCache(source).load(sha)
    assert CountingSource.reads == 2
    assert revisions.load(source, sha).is_valid


def two_commits(world: World) -> tuple[str, str]:
    """A commit of two components, then one that changes `dns` alone."""
    first = world.commit(
        {
            "environments/dev.yaml": environment("dev"),
            "components/network/vpc/component.yaml": component("vpc"),
            "components/network/dns/component.yaml": component("dns"),
        }
    )
    changed = component("dns", inputs={"zone": "example.org"})
    return first, world.commit({"components/network/dns/component.yaml": changed})


def test_revisions_in_memory_share_their_unchanged_components(
    world: World, source: CountingSource, tmp_path: Path
) -> None:
    first_sha, second_sha = two_commits(world)
    process_loads(source, tmp_path / "revisions", second_sha)  # on disk for the next process
    revisions_cache = cache(source, tmp_path / "revisions")
    first = revisions_cache.load(first_sha).repository  # from git
    second = revisions_cache.load(second_sha).repository  # read back from disk
    assert CountingSource.reads == 2
    assert second.components["vpc"] is first.components["vpc"]
    assert second.components["dns"] is not first.components["dns"]
    assert second.components["dns"].manifest.spec.inputs == {"zone": "example.org"}
    assert first.components["dns"].manifest.spec.inputs == {}


def test_revisions_in_memory_have_each_its_own_folder_digests(
    world: World, source: CountingSource, tmp_path: Path
) -> None:
    """They share the paths and digests they have in common, and differ where they differ."""
    first_sha, second_sha = two_commits(world)
    process_loads(source, tmp_path / "revisions", first_sha)  # on disk for the next process
    revisions_cache = cache(source, tmp_path / "revisions")
    second = revisions_cache.load(second_sha)  # from git
    first = revisions_cache.load(first_sha)  # read back from disk
    assert second.trees == source.folder_trees(second_sha)
    assert first.trees == source.folder_trees(first_sha)
    dns = "components/network/dns"
    assert first.trees[dns] != second.trees[dns]
    assert first.trees["components/network/vpc"] == second.trees["components/network/vpc"]


def test_an_evicted_revision_is_loaded_again_whole(
    world: World, source: CountingSource, tmp_path: Path
) -> None:
    first_sha, second_sha = two_commits(world)
    bounded = RevisionCache(source, size=1, folder=tmp_path / "revisions")
    bounded.load(first_sha)
    second = bounded.load(second_sha)
    bounded.close()  # both written to disk now, as at a command's end
    again = bounded.load(first_sha)  # evicted by the second: read back from disk
    assert CountingSource.reads == 2
    assert again.revision == first_sha and again.is_valid
    assert again.repository.components["dns"].manifest.spec.inputs == {}
    assert again.repository.components["vpc"] is second.repository.components["vpc"]


class SlowSource(CountingSource):
    """The first read of a commit's files waits until `go` is set: a load in progress."""

    reading = threading.Event()
    go = threading.Event()

    def listing(self, revision: str) -> Listing:
        if not SlowSource.reading.is_set():
            SlowSource.reading.set()
            SlowSource.go.wait(timeout=10)
        else:
            SlowSource.go.set()  # a second read: the first need not wait any longer
        return super().listing(revision)


def test_a_commit_asked_for_by_two_threads_at_once_is_loaded_once(world: World) -> None:
    """A new head is asked for by the head watch and each environment's admission at the
    same moment: the second waits for the first one's load instead of loading it again."""
    sha = world.commit({"components/network/vpc/component.yaml": component("vpc")})
    slow = SlowSource.open(str(world.repo), branch=None, data_dir=world.root / "data")
    CountingSource.reads = 0
    revisions_cache = RevisionCache(slow)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(revisions_cache.load, sha)
        assert SlowSource.reading.wait(timeout=10)
        second = pool.submit(revisions_cache.load, sha)
        SlowSource.go.wait(timeout=0.5)  # set at once only if the second reads git too
        SlowSource.go.set()
        assert first.result() is second.result()
    assert CountingSource.reads == 1
    assert revisions_cache.load(sha) is first.result()


class FailingOnceSource(CountingSource):
    """The first read of a commit's files fails, as a repository briefly unreadable."""

    def listing(self, revision: str) -> Listing:
        if not CountingSource.reads:
            CountingSource.reads += 1
            raise GitSourceError("the repository is unreadable for a moment")
        return super().listing(revision)


def test_a_load_that_failed_is_tried_again_by_the_next_caller(world: World) -> None:
    sha = world.commit({"components/network/vpc/component.yaml": component("vpc")})
    failing = FailingOnceSource.open(str(world.repo), branch=None, data_dir=world.root / "data")
    CountingSource.reads = 0
    revisions_cache = RevisionCache(failing)
    with pytest.raises(GitSourceError):
        revisions_cache.load(sha)
    assert revisions_cache.load(sha).repository.components.keys() == {"vpc"}


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.json")) if folder.exists() else []


def test_a_delayed_write_waits_and_closing_writes_it_at_once(
    world: World, source: CountingSource, tmp_path: Path
) -> None:
    """A daemon delays its writes (`write_delay`); stopping it must neither wait out the
    delay nor lose the load: `close` writes what waits, now."""
    sha = world.commit(
        {
            "environments/dev.yaml": environment("dev"),
            "components/network/vpc/component.yaml": component("vpc"),
        }
    )
    folder = tmp_path / "revisions"
    made = cache(source, folder)
    made.write_delay = 3600.0
    made.load(sha)
    assert files_in(folder) == []  # an hour to go
    made.close()
    assert [name.split(".")[0] for name in files_in(folder)] == [sha]
    cache(source, folder).load(sha)
    assert CountingSource.reads == 1  # the next process read it from disk


def test_delayed_writes_wait_from_their_load_not_one_after_the_other(
    world: World, source: CountingSource, tmp_path: Path
) -> None:
    """Commits that come faster than the delay must not queue loads without end (each held
    in memory until written): each is written about `write_delay` after its load."""
    shas = [
        world.commit({"environments/dev.yaml": environment("dev", variables={"n": n})})
        for n in range(12)
    ]
    folder = tmp_path / "revisions"
    made = cache(source, folder)
    made.write_delay = 0.5
    for sha in shas:
        made.load(sha)
    deadline = time.monotonic() + 4  # one after the other, the last would be due in 6 s
    while shas[-1] not in {name.split(".")[0] for name in files_in(folder)}:
        assert time.monotonic() < deadline, "the newest load was not written after its delay"
        time.sleep(0.05)
    made.close()
    kept = {name.split(".")[0] for name in files_in(folder)}
    assert shas[-1] in kept and len(kept) <= 10


def test_a_workspace_closed_writes_its_delayed_loads(world: World, tmp_path: Path) -> None:
    sha = world.commit({"environments/dev.yaml": environment("dev")})
    store = SqliteStore(tmp_path / "state.db")
    workspace = world.workspace(store)
    workspace.delay_cache_writes(3600.0)
    workspace.load_revision(sha)
    folder = workspace.data_dir / "cache" / "revisions"
    assert files_in(folder) == []
    workspace.close()
    assert [name.split(".")[0] for name in files_in(folder)] == [sha]
    store.close()


def test_a_new_head_reads_only_the_manifests_it_changed(world: World) -> None:
    """A component a revision in memory has (same path, same content) is neither read from
    git nor parsed again."""
    first_sha, second_sha = two_commits(world)  # the second changes dns
    reading = ReadingSource.open(str(world.repo), branch=None, data_dir=world.root / "data")
    revisions_cache = RevisionCache(reading, size=2)
    ReadingSource.read = []
    first = revisions_cache.load(first_sha).repository
    assert sorted(ReadingSource.read) == [
        "components/network/dns/component.yaml",
        "components/network/vpc/component.yaml",
        "environments/dev.yaml",
    ]
    ReadingSource.read = []
    second = revisions_cache.load(second_sha).repository
    assert sorted(ReadingSource.read) == [
        "components/network/dns/component.yaml",
        "environments/dev.yaml",
    ]
    assert second.components["vpc"] is first.components["vpc"]
    assert second.components["dns"].manifest.spec.inputs == {"zone": "example.org"}
