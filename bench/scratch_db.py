"""The scratch PostgreSQL database the database benchmarks run on, and their `--pg-url`.

db_isolation.py, db_commit.py and db_startup.py each measure on a database
of their own, created on the server named by `--pg-url` (or
ONELOOP_TEST_PG_URL) for the run, and dropped at the end with every
database the plugin made from it (`<name>_gw0`, `<name>_tpl_...`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse
    from collections.abc import Iterator


def add_pg_url(parser: argparse.ArgumentParser) -> None:
    """The `--pg-url` option, ONELOOP_TEST_PG_URL by default."""
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("ONELOOP_TEST_PG_URL"),
        help="PostgreSQL server URL (default: $ONELOOP_TEST_PG_URL); a scratch database "
        "is created on it",
    )


async def _autocommit(url: str, statements: list[str]) -> list[str]:
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            for statement in statements:
                await connection.exec_driver_sql(statement)
            names = await connection.exec_driver_sql("SELECT datname FROM pg_database")
            return [str(name) for name in names.scalars()]
    finally:
        await engine.dispose()


def autocommit(url: str, *statements: str) -> list[str]:
    """Run `statements` outside a transaction on `url`; the server's databases afterwards."""
    return asyncio.run(_autocommit(url, list(statements)))


def drop_made_from(server_url: str, name: str) -> None:
    """Drop every database the plugin made from the database `name` (`<name>_...`)."""
    made = [database for database in autocommit(server_url) if database.startswith(f"{name}_")]
    autocommit(server_url, *[f'DROP DATABASE IF EXISTS "{d}" WITH (FORCE)' for d in made])


@contextlib.contextmanager
def scratch_database(server_url: str) -> Iterator[tuple[str, str]]:
    """A new database on the server: its name and URL (password shown), dropped at the end."""
    from sqlalchemy import make_url

    name = f"oneloop_bench_{uuid.uuid4().hex[:8]}"
    autocommit(server_url, f'CREATE DATABASE "{name}"')
    try:
        yield name, make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        drop_made_from(server_url, name)
        autocommit(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
