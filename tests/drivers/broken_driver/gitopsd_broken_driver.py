"""A driver plugin whose module fails to import (a dependency it lacks)."""

import gitopsd_missing_dependency  # noqa: F401

DRIVER = None
