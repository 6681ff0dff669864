"""Loaded by the compat harness with `-p count_async`: counts async tests.

Writes `{"async": [passed, collected], "unittest_async": [passed, collected]}`
to the file named by `$COMPAT_COUNT_OUT` at the end of the session, counting
the items whose test function is `async def` (after deselection), split into
plain pytest tests and `unittest.TestCase` methods. An item passed when its
call phase passed and no phase failed. It proves the async tests ran rather
than being skipped or collected as something else.
"""

from __future__ import annotations

import inspect
import json
import os
import pathlib
import unittest
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pytest

_kinds: dict[str, str] = {}
_passed: set[str] = set()
_failed: set[str] = set()


def _kind(item: pytest.Item) -> str | None:
    if not inspect.iscoroutinefunction(getattr(item, "obj", None)):
        return None
    cls = getattr(item, "cls", None)
    if isinstance(cls, type) and issubclass(cls, unittest.TestCase):
        return "unittest_async"
    return "async"


def pytest_collection_finish(session: pytest.Session) -> None:
    """Remember which selected items are async tests."""
    for item in session.items:
        kind = _kind(item)
        if kind is not None:
            _kinds[item.nodeid] = kind


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Record passes (call phase) and failures (any phase)."""
    if report.nodeid not in _kinds:
        return
    if report.failed:
        _failed.add(report.nodeid)
    elif report.when == "call" and report.passed:
        _passed.add(report.nodeid)


def pytest_sessionfinish() -> None:
    """Write the counts where the harness will read them."""
    out = os.environ.get("COMPAT_COUNT_OUT")
    if not out:
        return
    counts = {}
    for kind in ("async", "unittest_async"):
        ids = {nodeid for nodeid, k in _kinds.items() if k == kind}
        counts[kind] = [len((ids & _passed) - _failed), len(ids)]
    pathlib.Path(out).write_text(json.dumps(counts), encoding="utf-8")
