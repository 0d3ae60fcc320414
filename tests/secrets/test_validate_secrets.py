"""What `gitopsd validate` says of secret references, each at its file and line: a malformed
name, a reference where no secret may go (a driver's env takes only secrets; a condition and
a github-actions workflow input take none)."""

from __future__ import annotations

from pathlib import Path

from tests.gitrepos import commit_files
from tests.secrets.stand import DEV, gitopsd

COMPONENT = """\
apiVersion: gitopsd.io/v1
kind: Component
metadata: {{name: {name}, layer: network}}
spec:
{spec}
"""
COMMAND = "  driver: {type: command, plan: [./x], apply: [./x], destroy: [./x]}\n"


def validate(root: Path, components: dict[str, str]) -> list[str]:
    files = {"environments/dev.yaml": DEV}
    for name, spec in components.items():
        files[f"components/{name}/component.yaml"] = COMPONENT.format(name=name, spec=spec)
    commit_files(root / "repo", files)
    done = gitopsd(root, "validate")
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == (1 if done.stdout.strip() else 0), done.stdout + done.stderr
    return done.stdout.splitlines()


def test_well_formed_references_are_valid(tmp_path: Path) -> None:
    spec = (
        '  inputs: {a: "${{ secrets.DB_PASSWORD }}", b: "x-${{secrets.token_2}}"}\n'
        + COMMAND.rstrip("}\n")
        + ', env: {TOKEN: "${{ secrets.API_TOKEN }}", PLAIN: "1"}}\n'
    )
    assert validate(tmp_path, {"db": spec}) == []


def test_a_malformed_reference_is_located(tmp_path: Path) -> None:
    spec = (
        "  inputs:\n"
        '    a: "${{ secrets.db-password }}"\n'
        '    b: "${{ secrets }}"\n'
        '    c: "${{ secrets.a.b }}"\n' + COMMAND
    )
    assert validate(tmp_path, {"db": spec}) == [
        "components/db/component.yaml:6: spec.inputs.a: invalid reference "
        "'secrets.db-password': 'db-password' is not a secret name (letters, digits and '_')",
        "components/db/component.yaml:7: spec.inputs.b: invalid reference 'secrets': "
        "expected secrets.<NAME>",
        "components/db/component.yaml:8: spec.inputs.c: invalid reference 'secrets.a.b': "
        "expected secrets.<NAME>",
    ]


def test_a_driver_env_takes_only_secrets(tmp_path: Path) -> None:
    spec = (
        "  driver:\n"
        "    type: command\n"
        "    apply: [./x]\n"
        "    plan: [./x]\n"
        "    env:\n"
        '      REGION: "${{ vars.region }}"\n'
        '      TOKEN: "${{ secrets.bad-name }}"\n'
    )
    assert validate(tmp_path, {"db": spec}) == [
        "components/db/component.yaml:10: spec.driver.env.REGION: a driver's env takes only "
        "${{ secrets.NAME }} references",
        "components/db/component.yaml:11: spec.driver.env.TOKEN: invalid reference "
        "'secrets.bad-name': 'bad-name' is not a secret name (letters, digits and '_')",
    ]


def test_no_secret_in_a_condition_or_a_workflow_input(tmp_path: Path) -> None:
    workflow = (
        '  inputs: {password: "${{ secrets.DB_PASSWORD }}"}\n'
        "  driver: {type: github-actions, repository: octo/infra, workflow: deploy.yml}\n"
    )
    condition = "  when: \"secrets.FLAG == 'on'\"\n" + COMMAND
    problems = validate(tmp_path, {"wf": workflow, "cond": condition})
    assert problems == [
        "components/cond/component.yaml:5: spec.when: invalid condition: a condition cannot read a "
        "secret (secrets reach drivers only) (at column 1)",
        "components/wf/component.yaml:5: spec.inputs.password: secrets.DB_PASSWORD: a "
        "github-actions component cannot take a secret as an input (GitHub shows a dispatch's "
        "inputs with the run); keep it in GitHub's secrets",
    ]
