"""pytest-oneloop: async tests and fixtures on one event loop.

The plugin needs no import to work: installing it is enough. This module
exposes only the version and the few names users may want to refer to.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pytest_oneloop._warnings import (
    BlockingWarning,
    LeakedTaskWarning,
    LoopChangeWarning,
    LoopExceptionWarning,
)

if TYPE_CHECKING:
    from pytest_oneloop._vtime import Clock

__version__ = "0.1.0"

__all__ = [
    "BlockingWarning",
    "Clock",
    "LeakedTaskWarning",
    "LoopChangeWarning",
    "LoopExceptionWarning",
    "__version__",
]


def __getattr__(name: str) -> Any:
    """`Clock` (the `clock` fixture's type), imported on first use, as the plugin loads it."""
    if name == "Clock":
        return importlib.import_module("pytest_oneloop._vtime").Clock
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
