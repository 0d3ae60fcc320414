"""The root of the errors a user can act on: the CLI prints them as one line, never a trace.

    GitopsdError
    ├── GitSourceError      adapters.gitrepo: repository, branch or revision unusable
    ├── StoreError          adapters.sqlite_store: state URL or database unusable
    ├── RunRefusedError     runtime.runs.workspace: unknown environment, invalid manifests...
    ├── GitHubError         adapters.github_http: a GitHub REST request failed (final 4xx, or
    │                       unavailable: 5xx, network, rate limit past its deadline, breaker open)
    └── BusyError           runtime.runs.leases: another process runs the environment

Failures inside a run (a driver exiting non-zero, a timeout) are not exceptions: they are
recorded on the run's steps and decide its outcome.
"""


class GitopsdError(Exception):
    """An error with a message meant for the user."""
