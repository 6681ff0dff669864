"""The warning categories users may filter on (`-W error::pytest_oneloop.X`).

Kept apart from the plugin modules: `pytest_oneloop/__init__.py` re-exports
them, and importing a module listed in `pytest_plugins` that early would
stop pytest from rewriting its asserts (pytest 8.4 warns about it).
"""

from __future__ import annotations

import pytest


class LeakedTaskWarning(pytest.PytestWarning):
    """A test left tasks pending after its teardown."""


class LoopExceptionWarning(pytest.PytestWarning):
    """An exception was raised in an event loop callback or an unawaited task."""


class LoopChangeWarning(pytest.PytestWarning):
    """A test changed a setting of the session loop; it was restored after the test."""


class BlockingWarning(pytest.PytestWarning):
    """Code run by the event loop held it longer than `oneloop_blocking` allows."""
