"""`${{ secrets.NAME }}` inputs, through the real command line and real drivers: the value
reaches the component that references it (inputs file, GITOPSD_INPUT_*, its driver's env),
from the secrets folder or GITOPSD_SECRET_<NAME>; it is redacted from output, never stored
(no file of the data folder holds it), never given to another component, and a rotated
secret re-applies what uses it. A missing one fails that step, naming it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.secrets.stand import component, dumped, files_holding, gitopsd, stand

PASSWORD = "s3cret-pw-2"
TOKEN = "tok-98765-abc"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """db references two secrets; app consumes db's output and references none."""
    dump = tmp_path / "dumps"
    stand(
        tmp_path,
        {
            "db": component(
                "db",
                dump,
                inputs={
                    "password": "${{ secrets.DB_PASSWORD }}",
                    "url": "postgres://app:${{secrets.DB_PASSWORD}}@db/${{ env.name }}",
                },
                env={"API_TOKEN": "${{ secrets.API_TOKEN }}"},
            ),
            "app": component(
                "app", dump, inputs={"db_ready": "${{ components.db.outputs.ready }}"}, deps=("db",)
            ),
        },
    )
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "DB_PASSWORD").write_text(PASSWORD + "\n")  # as `echo` writes it
    return tmp_path


def with_secrets(root: Path) -> dict[str, str]:
    """The folder for one secret, the environment for the other."""
    return {"GITOPSD_SECRETS_DIR": str(root / "secrets"), "GITOPSD_SECRET_API_TOKEN": TOKEN}


def test_the_component_that_references_a_secret_gets_its_value(root: Path) -> None:
    done = gitopsd(root, "apply", "--env", "dev", env=with_secrets(root))

    assert done.returncode == 0, done.stdout + done.stderr
    db = dumped(root, "db", "apply")
    assert db["inputs"]["password"] == PASSWORD  # the file's trailing newline dropped
    assert db["inputs"]["url"] == f"postgres://app:{PASSWORD}@db/dev"
    assert db["env"]["GITOPSD_INPUT_PASSWORD"] == PASSWORD
    assert db["env"]["API_TOKEN"] == TOKEN  # from the driver's env setting
    assert not [name for name in db["env"] if name.startswith("GITOPSD_SECRET")]


def test_another_component_never_gets_the_value(root: Path) -> None:
    done = gitopsd(root, "apply", "--env", "dev", env=with_secrets(root))

    assert done.returncode == 0, done.stdout + done.stderr
    app = json.dumps(dumped(root, "app", "apply"))
    assert dumped(root, "app", "apply")["inputs"] == {"db_ready": "yes"}
    assert PASSWORD not in app
    assert TOKEN not in app


def test_the_value_is_never_stored_shown_or_printed(root: Path) -> None:
    applied = gitopsd(root, "apply", "--env", "dev", "--output", "json", env=with_secrets(root))
    runs = gitopsd(root, "runs", "--env", "dev", "--output", "json")
    history = gitopsd(root, "history", "--env", "dev", "--output", "json")
    status = gitopsd(root, "status", "--output", "json")

    assert applied.returncode == 0, applied.stdout + applied.stderr
    for done in (applied, runs, history, status):
        assert PASSWORD not in done.stdout + done.stderr
        assert TOKEN not in done.stdout + done.stderr
    assert "password is ***" in runs.stdout  # the driver printed it: redacted
    assert files_holding(root / "data", PASSWORD) == []
    assert files_holding(root / "data", TOKEN) == []


def test_stored_inputs_name_the_secret(root: Path) -> None:
    gitopsd(root, "apply", "--env", "dev", env=with_secrets(root))

    done = gitopsd(root, "plan", "--env", "dev", "--save", "--output", "json")
    shown = gitopsd(root, "diff", "--env", "dev", "--from", "HEAD", "--to", "HEAD")

    assert PASSWORD not in done.stdout + done.stderr + shown.stdout
    assert files_holding(root / "data", "${{ secrets.DB_PASSWORD }}")  # the name, in the store


def test_a_rotated_secret_re_applies_what_uses_it(root: Path) -> None:
    env = with_secrets(root)
    assert gitopsd(root, "apply", "--env", "dev", env=env).returncode == 0
    unchanged = gitopsd(root, "plan", "--env", "dev", env=env)
    (root / "secrets" / "DB_PASSWORD").write_text("rotated-pw-3\n")
    rotated = gitopsd(root, "plan", "--env", "dev", env=env)
    reapplied = gitopsd(root, "apply", "--env", "dev", env=env)

    assert unchanged.returncode == 0, unchanged.stdout + unchanged.stderr
    assert rotated.returncode == 2, rotated.stdout + rotated.stderr
    assert "~ db" in rotated.stdout
    assert reapplied.returncode == 0, reapplied.stdout + reapplied.stderr
    assert dumped(root, "db", "apply")["inputs"]["password"] == "rotated-pw-3"
    assert files_holding(root / "data", "rotated-pw-3") == []


def test_a_missing_secret_fails_the_step_naming_it_and_where_it_looked(root: Path) -> None:
    env = {"GITOPSD_SECRETS_DIR": str(root / "secrets")}  # no GITOPSD_SECRET_API_TOKEN

    done = gitopsd(root, "apply", "--env", "dev", env=env)

    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert (
        f"db: secret 'API_TOKEN' is not set: no file {root / 'secrets' / 'API_TOKEN'} and no"
        " environment variable GITOPSD_SECRET_API_TOKEN"
    ) in done.stdout + done.stderr
    assert not (root / "dumps" / "db.apply.json").exists()  # the driver never started
    assert PASSWORD not in done.stdout + done.stderr


def test_without_a_secrets_folder_the_environment_is_enough(root: Path) -> None:
    env = {"GITOPSD_SECRET_DB_PASSWORD": "from-env-pw", "GITOPSD_SECRET_API_TOKEN": TOKEN}

    done = gitopsd(root, "apply", "--env", "dev", env=env)

    assert done.returncode == 0, done.stdout + done.stderr
    assert dumped(root, "db", "apply")["inputs"]["password"] == "from-env-pw"


def test_the_secrets_folder_wins_over_the_environment(root: Path) -> None:
    env = {**with_secrets(root), "GITOPSD_SECRET_DB_PASSWORD": "from-env-pw"}

    done = gitopsd(root, "apply", "--env", "dev", "--secrets-dir", str(root / "secrets"), env=env)

    assert done.returncode == 0, done.stdout + done.stderr
    assert dumped(root, "db", "apply")["inputs"]["password"] == PASSWORD
