"""Driver types as plugins: the registry, and an example driver installed as a real plugin."""

from __future__ import annotations

from gitopsd.adapters.driver_registry import installed_drivers
from gitopsd.engine.drivers import settings_of

# what a load validates `driver:` blocks with in this test process: the installed types
DRIVER_TYPES = settings_of(installed_drivers())
