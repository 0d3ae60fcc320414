"""Every error of the tree, as a user meets it: the CLI's exit code, the API's status (None: a
logged, opaque 500) and whether the daemon tries the work again. A class added to
`gitopsd.errors` must be added here, with the answers SPEC sections 5 and 6 give it."""

from __future__ import annotations

import inspect

import pytest

from gitopsd import answers, errors
from gitopsd.errors import GitopsdError
from tests.api.conftest import TestClient
from tests.api.fake_control import FakeControl

RUNS = "/api/v1/environments/dev/runs"

# class name -> (exit code, HTTP status, tried again)
TABLE: dict[str, tuple[int, int | None, bool]] = {
    "GitopsdError": (1, None, False),
    "PermanentError": (1, None, False),
    "TemporaryError": (1, 503, True),
    "NotFoundError": (1, 404, False),
    "ConflictError": (1, 409, False),
    "ForbiddenError": (1, 403, False),
    "InvalidRequestError": (1, 422, False),
    "ConfigurationError": (1, None, False),
    "UnknownEnvironmentError": (1, 404, False),
    "RevisionNotFoundError": (1, 404, False),
    "UnknownPlanError": (1, 404, False),
    "UnknownRunError": (1, 404, False),
    "RunRefusedError": (1, 409, False),
    "StalePlanError": (1, 409, False),
    "SuspensionRefusedError": (1, 409, False),
    "ApprovalRefusedError": (1, None, False),
    "ApproverRefusedError": (1, 403, False),
    "OutOfScopeError": (1, 403, False),
    "DashboardAccessError": (1, 403, False),
    "ApprovalConflictError": (1, 409, False),
    "OrphanError": (1, None, False),
    "BusyError": (1, 409, True),
    "LeaseLostError": (1, 503, True),
    "StandbyError": (1, 503, True),
    "TooManyStreamsError": (1, 503, True),
    "StoreError": (1, None, False),
    "StoreBusyError": (1, 503, True),
    "StoreUnavailableError": (1, 503, True),
    "DataFolderError": (1, 503, True),
    "NotADataFolderError": (1, None, False),
    "GitSourceError": (1, 503, True),
    "UnknownRevisionError": (1, 422, False),
    "EncryptionKeyError": (1, None, False),
    "GitHubError": (1, None, False),
    "GitHubRequestError": (1, None, False),
    "GitHubUnavailableError": (1, 503, True),
    "RunNotFoundError": (1, None, False),
    "DeliveryError": (1, None, False),
    "DeliveryRefusedError": (1, None, False),
    "DeliveryFailedError": (1, 503, True),
    "RemoteCallError": (1, None, False),
    "TokensFileError": (1, None, False),
    "TrustFileError": (1, None, False),
    "ListenRefusedError": (1, None, False),
    "AllowedHostsError": (1, None, False),
    "JsonLimitError": (1, 422, False),
    "InvalidPayloadError": (1, 422, False),
    "InvalidDeliveryIdError": (1, 400, False),
    "DriverPluginError": (1, None, False),
    "UnknownDriverError": (1, None, False),
    "MissingSecretError": (1, None, False),
}


def make(kind: type[GitopsdError]) -> GitopsdError:
    """An instance of `kind`, with the arguments its constructor requires."""
    if kind is errors.StandbyError:
        return errors.StandbyError("a standby", leader="other:1")
    if kind is errors.GitHubRequestError:
        return errors.GitHubRequestError("HTTP 404", status=404, github_message="Not Found")
    return kind("it went wrong")


def test_the_table_names_every_error_of_the_tree() -> None:
    defined = {
        name
        for name, value in vars(errors).items()
        if inspect.isclass(value) and issubclass(value, GitopsdError)
    }
    assert defined == set(TABLE)


@pytest.mark.parametrize(("name", "expected"), TABLE.items(), ids=list(TABLE))
def test_each_error_has_its_exit_code_status_and_retry(
    name: str, expected: tuple[int, int | None, bool]
) -> None:
    error = make(getattr(errors, name))
    answer = answers.http_answer(error)
    status = None if answer is None else answer.status
    assert (answers.exit_code(error), status, errors.is_temporary(error)) == expected


def test_a_503_says_when_to_try_again() -> None:
    busy = answers.http_answer(errors.StoreBusyError("the state database is locked"))
    assert busy is not None
    assert busy.body == {"error": "try again shortly: the state database is locked"}
    assert busy.headers == {"Retry-After": "5"}
    later = answers.http_answer(errors.TemporaryError("full", retry_after=12.5))
    assert later is not None and later.headers == {"Retry-After": "13"}


def test_a_standby_names_the_leader_without_try_again(
    client: TestClient, fake: FakeControl
) -> None:
    fake.refuse_run = errors.StandbyError("the leader is other:1", leader="other:1")
    response = client.post(RUNS, json={"action": "plan"})
    assert (response.status_code, response.headers["Retry-After"]) == (503, "5")
    assert response.json() == {"error": "the leader is other:1"}


def test_an_error_without_a_status_is_an_opaque_500(client: TestClient, fake: FakeControl) -> None:
    fake.refuse_run = errors.EncryptionKeyError("the key does not open /secret/value")
    response = client.post(RUNS, json={"action": "plan"})
    assert response.status_code == 500
    assert response.json() == {"error": "internal error"}
