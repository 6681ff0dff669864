"""pytest-oneloop: async tests and fixtures on one event loop.

The plugin needs no import to work: installing it is enough. This module
exposes only the version and the few names users may want to refer to.
"""

from __future__ import annotations

from pytest_oneloop._warnings import BlockingWarning, LeakedTaskWarning, LoopExceptionWarning

__version__ = "0.1.0"

__all__ = ["BlockingWarning", "LeakedTaskWarning", "LoopExceptionWarning", "__version__"]
