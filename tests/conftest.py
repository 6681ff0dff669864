"""Shared fixtures for the plugin's own tests."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]


@pytest.fixture
def pytester(pytester: pytest.Pytester) -> pytest.Pytester:
    """A pytester whose runs ignore the user's configuration and cache."""
    pytester.makeini("[pytest]\naddopts = -p no:cacheprovider\n")
    return pytester
