"""`python -m pytest_oneloop.migrate [PATH ...]`: the same as `pytest-oneloop migrate`."""

from __future__ import annotations

from pytest_oneloop.migrate.cli import migrate_main

raise SystemExit(migrate_main())
