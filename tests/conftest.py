"""Shared fixtures for the plugin's own tests."""

from __future__ import annotations

import os
import warnings
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the outer run's database, group and xdist settings out of the inner runs."""
    for name in ("ONELOOP_DB_URL", "ONELOOP_GROUPS", "PYTEST_XDIST_WORKER"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def pytester(pytester: pytest.Pytester) -> Iterator[pytest.Pytester]:
    """A pytester whose runs ignore this project's configuration and cache.

    ONELOOP_TEST_LOOP_FACTORY (e.g. `uvloop:new_event_loop`) runs the inner
    sessions on another loop, and ONELOOP_TEST_FAST_LOOP=false drives
    asyncio's loop through `run_until_complete` only; `make test` runs the
    core suite both ways too.
    In-process runs inherit the warning filters of the outer run (which turns
    warnings into errors); the inner runs start from Python's defaults.
    """
    ini = "[pytest]\naddopts = -p no:cacheprovider\n"
    factory = os.environ.get("ONELOOP_TEST_LOOP_FACTORY")
    if factory:
        ini += f"oneloop_loop_factory = {factory}\n"
    fast = os.environ.get("ONELOOP_TEST_FAST_LOOP")
    if fast:
        ini += f"oneloop_fast_loop = {fast}\n"
    pytester.makeini(ini)
    with warnings.catch_warnings():
        warnings.resetwarnings()
        yield pytester
