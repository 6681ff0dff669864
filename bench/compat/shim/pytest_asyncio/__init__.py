"""Stand-in for `pytest_asyncio`, installed only by the compat harness.

It is NOT pytest-asyncio. Third-party suites write `import pytest_asyncio`
and `@pytest_asyncio.fixture`; with pytest-asyncio uninstalled those lines
would fail at import. Here `fixture` is `pytest.fixture` (the `loop_scope`
argument is dropped: pytest-oneloop runs every fixture on the session loop).

This module defines no hook, option, ini key, marker or fixture, and the
harness never loads it with `-p`: everything else a suite needs from
pytest-asyncio must come from pytest-oneloop itself.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest

__version__ = "0+compat.shim"
__all__ = ["fixture", "is_async_test"]


def fixture(fixture_function: Any = None, *, loop_scope: str | None = None, **kwargs: Any) -> Any:
    """`pytest.fixture`, accepting and dropping pytest-asyncio's `loop_scope`."""
    del loop_scope
    if fixture_function is not None:
        return pytest.fixture(fixture_function, **kwargs)
    return pytest.fixture(**kwargs)


def is_async_test(item: pytest.Item) -> bool:
    """Whether the item's test function is a coroutine function."""
    return inspect.iscoroutinefunction(getattr(item, "obj", None))
