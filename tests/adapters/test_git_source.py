"""Reading manifests from git commits: local repositories, URLs, branches, revisions."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gitopsd.adapters import gitrepo
from gitopsd.adapters.gitrepo import GitSource, is_url
from gitopsd.engine.loading import is_manifest_path
from gitopsd.errors import GitSourceError
from tests.gitrepos import commit_files, git

OPENED: list[GitSource] = []


@pytest.fixture(autouse=True)
def _close_sources() -> Iterator[None]:
    yield
    while OPENED:
        OPENED.pop().close()


def open_source(location: str | Path, tmp_path: Path, branch: str | None = None) -> GitSource:
    source = GitSource.open(str(location), branch=branch, data_dir=tmp_path / "data")
    OPENED.append(source)
    return source


def test_files_come_from_the_commit_not_the_working_tree(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    sha = commit_files(repo, {"environments/dev.yaml": "committed\n", "README.md": "x"})
    (repo / "environments" / "dev.yaml").write_text("edited, not committed\n")
    (repo / "environments" / "new.yaml").write_text("untracked\n")
    source = open_source(repo, tmp_path)
    assert source.head() == sha
    assert source.read_files(sha, wanted=is_manifest_path) == {
        "environments/dev.yaml": b"committed\n"
    }


def test_an_older_revision_reads_its_own_files(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    first = commit_files(repo, {"environments/dev.yaml": "one\n"})
    commit_files(repo, {"environments/dev.yaml": "two\n", "environments/prod.yaml": "p\n"})
    source = open_source(repo, tmp_path)
    assert source.read_files(first[:8], wanted=is_manifest_path) == {
        "environments/dev.yaml": b"one\n"
    }


def test_binary_and_empty_blobs_are_read_exactly(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    files: dict[str, str | bytes] = {
        "components/a/component.yaml": b"\xff\xfe\n\x00binary",
        "components/b/component.yaml": b"",
        "environments/dev.yaml": "kind: Environment\n" * 1000,
    }
    sha = commit_files(repo, files)
    read = open_source(repo, tmp_path).read_files(sha, wanted=is_manifest_path)
    assert read == {p: c if isinstance(c, bytes) else c.encode() for p, c in files.items()}


def test_the_default_branch_is_the_checked_out_one(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    commit_files(repo, {"a": "1"})
    git(repo, "checkout", "-q", "-b", "feature")
    feature = commit_files(repo, {"a": "2"})
    assert open_source(repo, tmp_path).branch == "feature"
    assert open_source(repo, tmp_path).head() == feature
    assert open_source(repo, tmp_path, branch="main").head() != feature


def test_a_detached_head_tracks_head(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    first = commit_files(repo, {"a": "1"})
    commit_files(repo, {"a": "2"})
    git(repo, "checkout", "-q", first)
    source = open_source(repo, tmp_path)
    assert (source.branch, source.head()) == ("HEAD", first)


def test_a_url_is_mirrored_under_the_data_folder_and_fetched(tmp_path: Path) -> None:
    upstream = tmp_path / "upstream"
    first = commit_files(upstream, {"environments/dev.yaml": "one\n"})
    source = open_source(f"file://{upstream}", tmp_path)
    assert source.repo.bare
    assert Path(source.repo.git_dir).is_relative_to(tmp_path / "data" / "mirrors")
    assert source.head() == first
    second = commit_files(upstream, {"environments/dev.yaml": "two\n"})
    assert source.head() == first
    source.fetch()
    assert source.head() == second
    assert source.read_files(second, wanted=is_manifest_path) == {"environments/dev.yaml": b"two\n"}
    assert open_source(f"file://{upstream}", tmp_path).head() == second


@pytest.mark.parametrize(
    ("location", "message"),
    [("missing-dir", "no such directory"), ("plain-dir", "not a git repository")],
)
def test_bad_locations_are_clear_errors(tmp_path: Path, location: str, message: str) -> None:
    (tmp_path / "plain-dir").mkdir()
    with pytest.raises(GitSourceError, match=message):
        open_source(tmp_path / location, tmp_path)


def test_an_unreachable_url_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(GitSourceError, match="cannot clone or fetch"):
        open_source(f"file://{tmp_path}/nowhere.git", tmp_path)


def test_an_unknown_revision_or_branch_is_a_clear_error(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    commit_files(repo, {"a": "1"})
    with pytest.raises(GitSourceError, match="no commit named 'deadbeef'"):
        open_source(repo, tmp_path).resolve("deadbeef")
    with pytest.raises(GitSourceError, match="no commit named 'nope'"):
        open_source(repo, tmp_path, branch="nope").head()


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("https://github.com/o/r.git", True),
        ("git@github.com:o/r.git", True),
        ("file:///srv/r", True),
        ("./repo", False),
        ("/srv/repo", False),
        (".", False),
    ],
)
def test_url_detection(location: str, expected: bool) -> None:
    assert is_url(location) is expected


def test_history_author_and_folder_digests(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    first = commit_files(repo, {"components/network/vpc/main.tf": "a\n"}, message="first")
    second = commit_files(repo, {"components/network/vpc/main.tf": "b\n"}, message="second")
    third = commit_files(repo, {"README.md": "c\n"}, message="third")
    source = open_source(repo, tmp_path)
    assert source.commits_between(first, third) == [second]
    assert source.commits_between(third, first) == []  # not an ancestor: nothing skipped
    assert source.commits_between("no-such-commit", third) == []
    assert [line.split(" ", 1)[1] for line in source.changelog(first, "main")] == [
        "third (Test Author)",
        "second (Test Author)",
    ]
    assert source.author(second[:10]) == ("Test Author", "author@example.com")
    trees = source.folder_trees(third)
    assert trees[""] == git(repo, "rev-parse", f"{third}^{{tree}}")
    assert trees["components/network/vpc"] == git(
        repo, "rev-parse", f"{third}:components/network/vpc"
    )
    assert trees["components/network/vpc"] != source.folder_trees(first)["components/network/vpc"]
    with pytest.raises(GitSourceError, match="no commit named 'nope'"):
        source.author("nope")


def test_a_full_sha_resolves_to_itself_and_options_are_not_revisions(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    sha = commit_files(repo, {"a": "1"})
    source = open_source(repo, tmp_path)
    assert source.resolve(sha) == sha == source.resolve(sha)
    assert source.resolve(sha[:7]) == sha
    with pytest.raises(GitSourceError, match="no commit named '--all'"):
        source.resolve("--all")


@pytest.mark.parametrize("name", ["a\x00b", "main\n", "HEAD\x7f"])
def test_a_name_with_a_control_character_is_no_commit(tmp_path: Path, name: str) -> None:
    repo = tmp_path / "repo"
    commit_files(repo, {"a": "1"})
    with pytest.raises(GitSourceError, match="no commit named"):
        open_source(repo, tmp_path).resolve(name)


def test_the_commit_a_branch_resolved_to_is_named_again_without_git(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "repo"
    sha = commit_files(repo, {"a": "1"})
    source = open_source(repo, tmp_path)
    assert source.head() == sha
    no_git = tmp_path / "no-git"
    no_git.mkdir()
    monkeypatch.setenv("PATH", str(no_git))  # a git started now would not be found
    assert source.resolve(sha) == sha


def test_only_the_most_recent_commits_are_named_again_without_git(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A daemon resolves a new head with every commit: it remembers the last few, not all."""
    monkeypatch.setattr(gitrepo, "KNOWN_COMMITS", 2)
    repo = tmp_path / "repo"
    shas = [commit_files(repo, {"a": str(n)}) for n in range(3)]
    source = open_source(repo, tmp_path)
    assert [source.resolve(sha) for sha in shas] == shas
    no_git = tmp_path / "no-git"
    no_git.mkdir()
    monkeypatch.setenv("PATH", str(no_git))  # a git started now would not be found
    assert [source.resolve(sha) for sha in shas[1:]] == shas[1:]
    with pytest.raises(GitSourceError, match="cannot run git"):
        source.resolve(shas[0])


def test_a_fresh_process_names_commits_and_reads_files_of_a_local_repository(
    tmp_path: Path,
) -> None:
    """What commands that only name commits and read files do, from a process's start (how
    long that takes: benchmarks/startup.py)."""
    repo = tmp_path / "repo"
    commit_files(repo, {"environments/dev.yaml": "one\n"})
    probe = (
        "from pathlib import Path\n"
        "from gitopsd.adapters.gitrepo import GitSource\n"
        f"source = GitSource.open({str(repo)!r}, branch=None, data_dir=Path({str(tmp_path)!r}))\n"
        "sha = source.head()\n"
        "files = source.read_files(sha, wanted=lambda path: True)\n"
        "source.folder_trees(sha)\n"
        "assert source.common_dir.name == '.git', source.common_dir\n"
        "source.close()\n"
        "print(sorted(files))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "['environments/dev.yaml']"


def test_a_linked_worktree_shares_the_main_repositorys_refs(tmp_path: Path) -> None:
    """The daemon watches the common folder's refs, where a worktree's commits land."""
    repo = tmp_path / "repo"
    commit_files(repo, {"a": "1"})
    git(repo, "worktree", "add", "-q", "-b", "side", str(tmp_path / "side"))
    assert open_source(repo, tmp_path).common_dir == (repo / ".git").resolve()
    linked = open_source(tmp_path / "side", tmp_path)
    assert linked.branch == "side"
    assert linked.common_dir == (repo / ".git").resolve()
    assert linked.git_dir != linked.common_dir


def test_a_history_question_git_cannot_answer_is_a_clear_error(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    commit_files(repo, {"a": "1"})
    source = open_source(repo, tmp_path)
    with pytest.raises(GitSourceError, match=r"repo: git log failed: .*nope"):
        source.changelog("nope", "main")


def test_reading_the_files_of_consecutive_commits_gives_each_its_own_content(
    tmp_path: Path,
) -> None:
    repo = tmp_path / "repo"
    first = commit_files(repo, {"a.yaml": "a: 1\n", "b.yaml": "b: 1\n"})
    second = commit_files(repo, {"a.yaml": "a: 2\n", "b.yaml": "b: 1\n", "c.yaml": "b: 1\n"})
    with GitSource.open(str(repo), branch=None, data_dir=tmp_path / "data") as source:
        read = {
            sha: source.read_blobs(source.list_files(sha, wanted=lambda _: True))
            for sha in (first, second, first)
        }
    assert read[first] == {"a.yaml": b"a: 1\n", "b.yaml": b"b: 1\n"}
    assert read[second] == {"a.yaml": b"a: 2\n", "b.yaml": b"b: 1\n", "c.yaml": b"b: 1\n"}


def test_more_files_than_a_pipe_holds_are_listed_and_read_each_with_its_content(
    tmp_path: Path,
) -> None:
    # 1,700 files of 1 KB: the names git is sent (41 bytes each) and the content it prints
    # each fill a pipe of 64 KiB, so neither side may wait for the other to finish
    repo = tmp_path / "repo"
    files: dict[str, str | bytes] = {
        f"components/c{n:04d}/component.yaml": f"{n:04d}\n" * 200 for n in range(1700)
    }
    sha = commit_files(repo, files)
    source = open_source(repo, tmp_path)
    found = source.read_files(sha, wanted=is_manifest_path)
    assert found == {path: str(text).encode() for path, text in files.items()}
    assert set(source.folder_trees(sha)) >= {f"components/c{n:04d}" for n in range(1700)}


def test_a_blob_git_does_not_have_is_a_clear_error(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    commit_files(repo, {"environments/dev.yaml": "x\n"})
    source = open_source(repo, tmp_path)
    missing = {"environments/dev.yaml": gitrepo.Blob("0" * 40, 2)}
    with pytest.raises(GitSourceError, match="unexpected git cat-file output"):
        source.read_blobs(missing)


def history_of_every_kind_of_change(repo: Path) -> list[str]:
    """Commits that add, change, remove and retype files and folders, one kind or more each."""
    shas = [
        commit_files(
            repo,
            {
                "gitopsd.yaml": "a\n",
                "components/network/vpc/component.yaml": "vpc\n",
                "components/network/vpc/main.tf": "tf\n",
                "components/network/dns/component.yaml": "dns\n",
                "environments/dev.yaml": "dev\n",
                "docs/readme": "a file that becomes a folder\n",
            },
        )
    ]
    shas.append(commit_files(repo, {"components/network/vpc/main.tf": "tf, longer now\n"}))
    (repo / "docs" / "readme").unlink()
    shas.append(commit_files(repo, {"docs/readme/part.md": "now a folder\n"}))
    git(repo, "rm", "-rq", "components/network/dns")
    shas.append(commit_files(repo, {"components/addons/cache/component.yaml": "cache\n"}))
    git(repo, "rm", "-rq", "docs/readme")
    (repo / "components/link").symlink_to("addons/cache")
    shas.append(commit_files(repo, {"docs/readme": "a file again\n"}))
    (repo / "components/network/vpc/main.tf").chmod(0o755)
    subprocess.run(
        ["git", "update-index", "--add", "--cacheinfo", f"160000,{shas[0]},vendor/sub"],
        cwd=repo,
        check=True,
    )
    git(repo, "add", "components/network/vpc/main.tf")
    git(repo, "commit", "-qm", "a submodule, and main.tf executable")  # not `add -A`: no sub/
    shas.append(git(repo, "rev-parse", "HEAD"))
    shas.append(commit_files(repo, {}, replace=True))  # everything removed
    shas.append(commit_files(repo, {"environments/prod.yaml": "prod\n"}))
    return shas


def test_a_listing_made_from_the_last_one_is_the_commit_as_git_lists_it(tmp_path: Path) -> None:
    """A source lists each commit from the one it listed before and what changed between
    them; each must be what a source that never listed anything finds, forwards, backwards
    and between commits far apart."""
    repo = tmp_path / "repo"
    shas = history_of_every_kind_of_change(repo)
    source = open_source(repo, tmp_path)
    order = [*shas, *reversed(shas), shas[0], shas[-1], shas[3], shas[3]]
    listed = [source.listing(sha) for sha in order]
    fresh = [open_source(repo, tmp_path / str(n)).listing(sha) for n, sha in enumerate(order)]
    assert listed == fresh
    assert listed[4].files["components/link"].link  # as a link, whichever way listed
    assert not any(blob.link for path, blob in listed[4].files.items() if path != "components/link")
    assert "vendor/sub" not in listed[5].files and "vendor" in listed[5].folders
    assert listed[2].folders["docs/readme"] and "docs/readme" not in listed[2].files
    assert listed[1].files["components/network/vpc/main.tf"].size == len("tf, longer now\n")


def test_a_commit_git_no_longer_has_is_not_needed_to_list_the_next(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    commit_files(repo, {"environments/dev.yaml": "dev\n"})
    gone = commit_files(repo, {"environments/dev.yaml": "a commit about to be dropped\n"})
    source = open_source(repo, tmp_path)
    source.listing(gone)
    git(repo, "reset", "-q", "--hard", "HEAD~1")
    git(repo, "reflog", "expire", "--expire=now", "--all")
    git(repo, "gc", "-q", "--prune=now")
    sha = commit_files(repo, {"environments/prod.yaml": "prod\n"})
    assert source.listing(sha) == open_source(repo, tmp_path / "fresh").listing(sha)


def drop_object(repo: Path, sha: str) -> None:
    """Delete a loose object, as a damaged or half-copied repository lacks one."""
    (repo / ".git" / "objects" / sha[:2] / sha[2:]).unlink()


@pytest.mark.parametrize("listed_before", [False, True])
def test_a_listed_file_whose_blob_git_does_not_have_is_a_clear_error(
    tmp_path: Path, listed_before: bool
) -> None:
    """git lists a file whose content it lacks with no size (`BAD` from ls-tree, `missing`
    from cat-file): the listing is a GitSourceError, never a bug, whether the source lists
    the commit whole or from the one it listed before."""
    repo = tmp_path / "repo"
    first = commit_files(repo, {"environments/dev.yaml": "dev\n"})
    source = open_source(repo, tmp_path)
    if listed_before:
        source.listing(first)
    sha = commit_files(repo, {"environments/prod.yaml": "prod, whose blob goes missing\n"})
    drop_object(repo, git(repo, "rev-parse", f"{sha}:environments/prod.yaml"))
    with pytest.raises(GitSourceError, match=r"no object .*environments/prod\.yaml"):
        source.listing(sha)


def test_a_listing_changed_by_its_caller_changes_no_later_listing(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    first, second = history_of_every_kind_of_change(repo)[:2]
    source = open_source(repo, tmp_path)
    for sha in (first, first, second):
        mine = source.listing(sha)
        mine.files.clear()
        mine.folders["planted"] = "0" * 40
    fresh = open_source(repo, tmp_path / "fresh")
    assert source.listing(first) == fresh.listing(first)
    assert source.listing(second) == fresh.listing(second)


def test_a_password_in_the_repository_url_is_never_in_an_error(tmp_path: Path) -> None:
    """`--repo https://bot:TOKEN@host/infra.git` is how a private repository is often
    reached; its errors reach API answers, dashboard pages and /readyz (which needs no
    token): an unknown revision, a branch the remote deleted, a failed clone. They name the
    repository without the password, as the state store's URL is named."""
    with pytest.raises(GitSourceError) as cloned:
        open_source("https://bot:s3cret@127.0.0.1:1/infra.git", tmp_path)
    assert "s3cret" not in str(cloned.value) and "bot:***@127.0.0.1:1" in str(cloned.value)
    repo = tmp_path / "repo"
    commit_files(repo, {"a": "1"})
    url = "https://bot:s3cret@git.example.com/infra.git"
    source = GitSource(repo / ".git", branch="gone", location=url)
    OPENED.append(source)
    for ask in (lambda: source.resolve("deadbeef"), source.head):
        with pytest.raises(GitSourceError) as unknown:
            ask()
        assert "s3cret" not in str(unknown.value)
        assert "https://bot:***@git.example.com/infra.git" in str(unknown.value)
