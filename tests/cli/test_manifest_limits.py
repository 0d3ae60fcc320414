"""Size limits (issue 17, finding 5): a commit's manifests are measured from git before any of
them is read, through `validate` and through `apply`, as the user runs them."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.cli.test_run_commands import gitopsd
from tests.gitrepos import git
from tests.runtime.test_apply_runs import layered
from tests.runtime.world import World, environment

ENVIRONMENT_HEAD = "apiVersion: gitopsd.io/v1\nkind: Environment\nmetadata: {name: dev}\n"


def many_variables(count: int) -> str:
    """An environment file of `count` variables, 18 bytes each: 3 million are 54 MB."""
    lines = "".join(f"    v{i:08d}: xx\n" for i in range(count))
    return f"{ENVIRONMENT_HEAD}spec:\n  variables:\n    size: 3\n{lines}"


def settings(limits: str) -> str:
    return f"apiVersion: gitopsd.io/v1\nkind: Settings\nlimits:\n{limits}"


def test_a_50_mb_environment_file_is_refused_unread_with_its_size(tmp_path: Path) -> None:
    """The finding: 3 million variables passed `validate` after 30 s at 3.1 GB of memory."""
    huge = many_variables(3_000_000)
    world = World.committed(tmp_path, layered(**{"environments/dev.yaml": huge}))

    done = gitopsd(world, "validate")

    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout.splitlines() == [
        f"environments/dev.yaml:1: file is {len(huge):,} bytes, over the 1 MiB limit "
        "(limits.max_file_bytes in gitopsd.yaml)"
    ]
    assert len(huge) > 50_000_000


def test_apply_refuses_a_revision_over_the_limits_and_runs_nothing(tmp_path: Path) -> None:
    files = layered(
        **{
            "gitopsd.yaml": settings("  max_file_bytes: 2KiB\n"),
            "environments/dev.yaml": many_variables(200),  # 3.5 KB
        }
    )
    world = World.committed(tmp_path, files)

    done = gitopsd(world, "apply", "--env", "dev")

    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "environments/dev.yaml:1: file is 3," in done.stderr
    assert "over the 2 KiB limit (limits.max_file_bytes in gitopsd.yaml)" in done.stderr
    assert world.journal() == []


def test_gitopsd_yaml_raises_the_limits_as_sizes_or_byte_counts(tmp_path: Path) -> None:
    big = many_variables(120_000)  # 2 MB: over the default
    files = {"environments/dev.yaml": big}
    world = World.committed(tmp_path, layered(**files))
    assert gitopsd(world, "validate").returncode == 1

    for limit in ("4MiB", "'3 MiB'", "3000000"):
        world.commit({"gitopsd.yaml": settings(f"  max_file_bytes: {limit}\n")})
        done = gitopsd(world, "validate")
        assert done.returncode == 0, f"{limit}: {done.stdout}{done.stderr}"


def test_gitopsd_yaml_itself_is_read_only_within_the_default_limit(tmp_path: Path) -> None:
    padding = "# " + "x" * 100 + "\n"
    oversized = settings("  max_file_bytes: 8MiB\n") + padding * 11_000  # 1.1 MB
    files = layered(**{"gitopsd.yaml": oversized})
    world = World.committed(tmp_path, files)

    done = gitopsd(world, "validate")

    assert done.returncode == 1, done.stderr
    assert done.stdout.splitlines() == [
        f"gitopsd.yaml:1: file is {len(oversized):,} bytes, over the 1 MiB limit "
        "(the default, for gitopsd.yaml itself)"
    ]


def test_a_repository_at_its_limits_still_applies(tmp_path: Path) -> None:
    """Six manifest files (gitopsd.yaml counts) with `max_files: 6`: the limit is allowed."""
    files = layered(
        **{
            "gitopsd.yaml": settings("  max_file_bytes: 64KiB\n  max_files: 6\n"),
            "environments/dev.yaml": environment("dev", variables={"size": 3}),
        }
    )
    world = World.committed(tmp_path, files)

    done = gitopsd(world, "apply", "--env", "dev")

    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(world.calls()) == ["app", "dns", "k8s", "net"]


def test_a_size_limit_over_1_tib_is_refused_at_its_line(tmp_path: Path) -> None:
    world = World.committed(tmp_path, layered())
    world.commit({"gitopsd.yaml": settings("  max_file_bytes: 99999999999999999999999TiB\n")})

    done = gitopsd(world, "validate")

    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.splitlines() == [
        "gitopsd.yaml:4: limits.max_file_bytes: Input should be less than or equal to "
        "1099511627776 (got '99999999999999999999999TiB')"
    ]


def test_an_unreadable_gitopsd_yaml_is_reported_alone(tmp_path: Path) -> None:
    """Its variables unknown, environments that take them from it would each report every one
    missing: only the real problem is shown."""
    world = World.committed(tmp_path, layered(**{"environments/dev.yaml": environment("dev")}))
    template = "apiVersion: gitopsd.io/v1\nkind: Settings\ndefaults:\n  variables: {size: 3}\n"
    world.commit({"gitopsd.yaml": template})
    assert gitopsd(world, "validate").returncode == 0  # size comes from the template

    huge = "limits:\n  max_files: 99999999999999999999999999\n"
    world.commit({"gitopsd.yaml": template + huge})
    done = gitopsd(world, "validate")

    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.splitlines() == [
        "gitopsd.yaml:6: integer 99999999999999999999999999 does not fit in 64 bits: quote it "
        "to keep it text"
    ]


def validated_with_links(root: Path, links: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`gitopsd validate` of the layered repository with `links` (path -> target) committed
    as symbolic links, each replacing what was at its path."""
    world = World.committed(root, layered())
    for path, target in links.items():
        link = world.repo / path
        link.unlink(missing_ok=True)
        link.symlink_to(target)
    git(world.repo, "add", "-A")
    git(world.repo, "commit", "-qm", "links")
    return gitopsd(world, "validate")


def test_a_manifest_committed_as_a_symbolic_link_is_named_as_one(tmp_path: Path) -> None:
    """A link's content in git is the path it points to, which was parsed as YAML: `expected
    a YAML mapping, got a string`. It is refused unread, for what it is."""
    links = {"components/app/component.yaml": "../net/component.yaml"}
    done = validated_with_links(tmp_path, links)

    assert done.returncode == 1, done.stderr
    assert done.stdout.splitlines() == [
        "components/app/component.yaml:1: a symbolic link in git: a manifest must be a regular"
        " file (what is committed is read, not what a link points to)"
    ]


def test_a_component_folder_committed_as_a_symbolic_link_is_named_as_one(tmp_path: Path) -> None:
    """A link to a component's folder was silently no component at all (an orphan, had it
    been deployed); a link to any other file stays a component's own business."""
    links = {"components/cache": "dns", "components/dns/run.sh": "../net/component.yaml"}
    done = validated_with_links(tmp_path, links)

    assert done.returncode == 1, done.stderr
    assert done.stdout.splitlines() == [
        "components/cache:1: a symbolic link in git to the component folder components/dns: a"
        " component must be a folder of its own (what is committed is read, not what a link"
        " points to)"
    ]
