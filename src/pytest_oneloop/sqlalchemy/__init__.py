"""Async SQLAlchemy and factory_boy for pytest: rolled-back sessions, persisted factories.

The fixtures (`db_url`, `db_metadata`, `db_engine`, `db_session`, `factory`)
need no import: the plugin provides them. Import from here only `register`,
to make per-model fixtures in a conftest.py, and the types for annotations.
Importing this package imports neither SQLAlchemy nor factory_boy.
"""

from __future__ import annotations

from pytest_oneloop.sqlalchemy._factory import BoundFactory, PersistingFactory, register

__all__ = ["BoundFactory", "PersistingFactory", "register"]
