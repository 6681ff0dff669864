"""Shared fixtures for the plugin's own tests."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

pytest_plugins = ["pytester"]


@pytest.fixture
def pytester(pytester: pytest.Pytester) -> Iterator[pytest.Pytester]:
    """A pytester whose runs ignore this project's configuration and cache.

    In-process runs inherit the warning filters of the outer run (which turns
    warnings into errors); the inner runs start from Python's defaults.
    """
    pytester.makeini("[pytest]\naddopts = -p no:cacheprovider\n")
    with warnings.catch_warnings():
        warnings.resetwarnings()
        yield pytester
