"""Async SQLAlchemy and factory_boy for pytest: rolled-back sessions, persisted factories.

The fixtures (`db_url`, `db_metadata`, `db_engine`, `db_session`, `factory`,
`db_queries`)
need no import: the plugin provides them. Import from here only `register`,
to make per-model fixtures in a conftest.py, and the types for annotations.
Importing this package imports neither SQLAlchemy nor factory_boy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_oneloop.sqlalchemy._factory import BoundFactory, PersistingFactory, register
    from pytest_oneloop.sqlalchemy._queries import QueryCounter

__all__ = ["BoundFactory", "PersistingFactory", "QueryCounter", "register"]
_MODULES = {"QueryCounter": "_queries"}


def __getattr__(name: str) -> Any:
    """The public names, imported on first use: the plugin imports this package at start-up."""
    if name in __all__:
        module = _MODULES.get(name, "_factory")
        return getattr(importlib.import_module(f"pytest_oneloop.sqlalchemy.{module}"), name)
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
