"""Every error a user can act on, in one tree whose branches say whether to try again.

Modelled on kopf's PermanentError / TemporaryError: code that retries (the daemon's requests,
the store's writes, notifications) asks `is_temporary`, never a list of classes; the CLI and
the API turn an error into an exit code or an HTTP answer with `exit_code` and `http_answer`
(`gitopsd.answers`), never with their own `except X: return 409`.

    GitopsdError                      a message meant for the user, printed as one line
    ├── PermanentError                asking again the same way cannot help
    │   ├── NotFoundError             404: UnknownEnvironmentError, UnknownPlanError,
    │   │                             UnknownRunError
    │   ├── ConflictError             409: the state refuses it now (RunRefusedError,
    │   │                             StalePlanError, SuspensionRefusedError, a daemon stopping)
    │   ├── ForbiddenError            403: who asks may not (ApproverRefusedError,
    │   │                             OutOfScopeError, DashboardAccessError)
    │   ├── InvalidRequestError       422: the request itself is wrong (UnknownRevisionError,
    │   │                             JsonLimitError, InvalidPayloadError; 400: the
    │   │                             InvalidDeliveryIdError)
    │   ├── ConfigurationError        a file, flag or key is unusable (TokensFileError,
    │   │                             TrustFileError, ListenRefusedError, AllowedHostsError,
    │   │                             EncryptionKeyError, NotADataFolderError,
    │   │                             DriverPluginError, UnknownDriverError, MissingSecretError)
    │   └── OrphanError, GitHubRequestError, RunNotFoundError, DeliveryRefusedError
    └── TemporaryError                may pass by itself; `retry_after` seconds when known
        ├── BusyError                 another process runs the environment (409 over HTTP)
        ├── StandbyError              another daemon leads (503, naming the leader)
        ├── TooManyStreamsError       the event streams hold their share of the connections
        ├── DataFolderError           the disk is full, read-only or forbidden
        ├── StoreBusyError, StoreUnavailableError, GitHubUnavailableError, DeliveryFailedError
        └── GitSourceError            the repository cannot be read

Some classes only group one adapter's errors for callers that catch them all (StoreError,
GitHubError, ApprovalRefusedError, DeliveryError); their subclasses say the kind. An unknown
revision is one of the repository's errors (GitSourceError), which mostly pass, yet itself
never passes: when a class is both kinds, the permanent kind wins (`is_temporary`), and it
lists its permanent base first, so that the answer found first in its MRO is that one.

Not here, on purpose: signals that are not errors (`engine.ports.FencedError`,
`runtime.runs.steps.Interrupted`, `runtime.notifications.outbox.Stopping`, `GitHubStoppedError`),
the pure core's ValueErrors (a dependency cycle, an expression) which validation turns into
problems, and the API's private parse errors. Failures inside a run (a driver exiting non-zero, a
timeout) are not exceptions either: they are recorded on the run's steps and decide its outcome.
"""

from __future__ import annotations


class GitopsdError(Exception):
    """An error with a message meant for the user."""


class PermanentError(GitopsdError):
    """Refused, not found, invalid or misconfigured: reported, never retried."""


class TemporaryError(GitopsdError):
    """A fault expected to pass by itself (busy, locked, unreachable, full): the work is kept
    and tried again, after `retry_after` seconds when the error knows, else with backoff."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def is_temporary(error: BaseException) -> bool:
    """Whether trying again later may succeed; a class of both kinds is permanent."""
    return isinstance(error, TemporaryError) and not isinstance(error, PermanentError)


# --- the kinds of permanent error, each answered its own way -------------------------------


class NotFoundError(PermanentError):
    """What the request names does not exist."""


class ConflictError(PermanentError):
    """A well-formed request the state refuses now (busy with it already, stale, shutting
    down): the state's fault, not the request's."""


class ForbiddenError(PermanentError):
    """Who asks may not do this (an approver who is not one, or the author)."""


class DashboardAccessError(ForbiddenError):
    """A dashboard request its viewer may not make: a role they lack, or a form without
    its session's CSRF token (a forged POST)."""


class InvalidRequestError(PermanentError):
    """The request itself is wrong: an unknown component, a malformed value or cursor."""


class ConfigurationError(PermanentError):
    """A setting, file or key the process was given cannot be used."""


# --- runtime -------------------------------------------------------------------------------


class UnknownEnvironmentError(NotFoundError):
    """The environment is not in the manifests at the branch head."""


class RevisionNotFoundError(NotFoundError):
    """A read names a revision git does not know (a diff's `from` or `to`): 404, as an
    unknown environment is. (A request for work naming one is invalid: 422.)"""


class UnknownPlanError(NotFoundError):
    """No saved plan has the id a request names."""


class UnknownRunError(NotFoundError):
    """No run the asker may see has the id a request names (a run of an environment outside
    a token's scope answers so too, so the token learns nothing of it)."""


class RunRefusedError(ConflictError):
    """A run that cannot start: unknown environment, invalid revision, bad component list."""


class StalePlanError(ConflictError):
    """The saved plan no longer matches the environment, or is another one's."""


class SuspensionRefusedError(ConflictError):
    """Suspending a suspended environment, or resuming one that is not."""


class ApprovalRefusedError(GitopsdError):
    """An approval not recorded, with the reason (groups the two below)."""


class ApproverRefusedError(ApprovalRefusedError, ForbiddenError):
    """The approver may not approve this revision (not an approver, or its author)."""


class ApprovalConflictError(ApprovalRefusedError, ConflictError):
    """Nothing waits for this approval, or it was given already."""


class OrphanError(PermanentError):
    """An orphan cannot be dealt with: a component whose own driver cannot destroy it, or a
    driver left by a dead process that could not be ended (no step may run beside it)."""


class BusyError(TemporaryError):
    """Another live process holds the environment's lease."""


class LeaseLostError(TemporaryError):
    """This process could not renew the environment's lease in time (its store failed or
    stalled): its run stopped as a crash would stop it, to be resumed once the store is back
    (by this process, or by whoever holds the lease then)."""


class TooManyStreamsError(TemporaryError):
    """Every connection that event streams may hold is taken: a new stream waits (503), so
    that the other requests (`/healthz`, `/metrics`, the API) keep their connections."""


class StandbyError(TemporaryError):
    """This daemon stands by while another one, sharing its state store, leads: it serves
    reads but takes no work; `leader` names the leader when one is known."""

    def __init__(self, message: str, *, leader: str | None) -> None:
        super().__init__(message, retry_after=5.0)
        self.leader = leader


# --- adapters ------------------------------------------------------------------------------


class StoreError(GitopsdError):
    """The state database cannot be opened or used (bad URL, not a database, too new...)."""


class StoreBusyError(StoreError, TemporaryError):
    """The database stayed locked (or the disk full) for longer than a write waits."""


class StoreUnavailableError(StoreError, TemporaryError):
    """The server did not answer, or the connection broke beyond the one retry (a restart,
    a failover)."""


class DataFolderError(TemporaryError):
    """The data folder cannot be written (disk full, read-only, permission): may pass."""


class NotADataFolderError(ConfigurationError):
    """`--data-dir` names a folder of the user's inside a git work tree (its root, say)."""


class GitSourceError(TemporaryError):
    """The repository, branch or revision cannot be used; the message says which and why. A
    commit seen a moment ago cannot vanish: reading again later may work."""


class UnknownRevisionError(InvalidRequestError, GitSourceError):
    """The repository answers, but has no such commit: asking again will not help (a typo, or
    a commit gone with a force-push), unlike a repository that cannot be read. The permanent
    base comes first, so that its answer (422) is the one found first in the class's MRO."""


class EncryptionKeyError(ConfigurationError):
    """The key is missing, malformed, or not the one a stored value was sealed with."""


class GitHubError(GitopsdError):
    """A GitHub request that did not succeed; `status` is the HTTP status, if any came."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class GitHubRequestError(GitHubError, PermanentError):
    """A final 4xx answer: retrying the same request cannot help."""

    def __init__(self, message: str, *, status: int, github_message: str) -> None:
        super().__init__(message, status=status)
        self.github_message = github_message


class GitHubUnavailableError(GitHubError, TemporaryError):
    """GitHub did not answer usefully before the deadline (5xx, network, rate limit), or the
    circuit breaker is open."""


class RunNotFoundError(GitHubError, PermanentError):
    """A workflow dispatch was accepted, but no run carrying its correlation id appeared."""


class DeliveryError(GitopsdError):
    """A webhook did not take a notification's body (groups the two below)."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DeliveryRefusedError(DeliveryError, PermanentError):
    """The receiver refused the body (a 4xx other than 408 and 429): sending it again cannot
    help."""


class DeliveryFailedError(DeliveryError, TemporaryError):
    """No answer, a timeout, or a 5xx / 408 / 429: the receiver may take it later."""


# --- drivers -------------------------------------------------------------------------------


class DriverPluginError(ConfigurationError):
    """An installed driver plugin cannot be used: it fails to import, or is not a driver."""


class MissingSecretError(ConfigurationError):
    """A `${{ secrets.NAME }}` with no file in the secrets folder and no GITOPSD_SECRET_NAME:
    the call that needs it fails, naming the secret and where it looked (never a value)."""


class UnknownDriverError(ConfigurationError):
    """A driver type no installed plugin provides (uninstalled since the manifests were
    validated): its calls fail, each with this message, and are not retried."""


# --- api -----------------------------------------------------------------------------------


class RemoteCallError(GitopsdError):
    """A command acting through a running daemon (`--server`) that did not succeed: the
    daemon is unreachable, or answered with an error (`status`, its reason as the message)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class TokensFileError(ConfigurationError):
    """The tokens file cannot be used; the message names the file, the line and the field."""


class OutOfScopeError(ForbiddenError):
    """A token acting on an environment outside its `environments` (403; reads of such an
    environment answer as for an unknown one, 404, so a token learns nothing of it)."""


class TrustFileError(ConfigurationError):
    """The trust file (`--trust-file`) cannot be used: unreadable, malformed, a key that does
    not parse, an environment the repository lacks; the message names the file, line and
    field. gitopsd refuses to start rather than apply commits it was told to check."""


class ListenRefusedError(ConfigurationError):
    """An open API (no tokens file) was asked to listen beyond loopback."""


class AllowedHostsError(ConfigurationError):
    """An `--allowed-hosts` entry that is not `host`, `host:port` or `*`."""


class JsonLimitError(InvalidRequestError):
    """A body that is not JSON, or JSON beyond the limits; the message says which."""


class InvalidPayloadError(InvalidRequestError):
    """A signed webhook delivery whose body is not the JSON its event promises."""


class InvalidDeliveryIdError(InvalidRequestError):
    """An `X-GitHub-Delivery` that GitHub would not send (HTTP 400, not 422)."""
