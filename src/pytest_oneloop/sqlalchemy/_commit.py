"""Tests marked `db_commit`: real commits, then every table emptied.

Some tests cannot live inside one rolled-back transaction: code that opens
its own connections (a worker, a second engine), LISTEN/NOTIFY, checks of
what a commit does. For them `db_session` is bound to a connection with no
outer transaction, so its `commit()` is a COMMIT, and the tables of
`db_metadata` are emptied after the test, in one transaction:

- a `DELETE` per table, children first;
- on PostgreSQL, the sequences the tables own (serial and identity
  columns) set back to their start, as `TRUNCATE ... RESTART IDENTITY`
  does; when rows of a table outside `db_metadata` refer to the rows, the
  DELETE is refused and `TRUNCATE ... RESTART IDENTITY CASCADE` empties
  them all instead;
- on SQLite, the tables' `sqlite_sequence` rows removed, so AUTOINCREMENT
  starts again.

DELETE rather than TRUNCATE first, because a TRUNCATE costs new files for
each table and index, and CASCADE takes every table with a foreign key
along: on the PostgreSQL 15 of `make test`, emptying a users table that
nine empty tables refer to took 170 ms with TRUNCATE ... CASCADE (24 ms for
one table alone), and 4 ms with DELETE, commit included. Only the tables
that hold rows after the test are emptied (the others are empty already),
so a test that wrote to two tables of fifty deletes from two. The next
test finds the tables as a rolled-back test leaves them, ids starting at 1.

Emptying must not delete rows the test did not write: rows a session- or
module-scoped fixture committed, or that were in the database before the
session, would be lost for the tests after it. So before the test the same
statement that finds the tables with rows must find none; otherwise the
test fails at set-up, naming the tables, and nothing is deleted.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from pytest_oneloop.sqlalchemy._config import COMMIT_MARKER, fail, mask_url
from pytest_oneloop.sqlalchemy._engine import connect, reason, sqlstate_of

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

    from sqlalchemy import MetaData, Table
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

# How long emptying waits for a lock that another connection holds, on
# PostgreSQL: SQLite's own default wait for a locked database.
LOCK_TIMEOUT = "5s"
# PostgreSQL's SQLSTATE for a foreign key violation.
_FOREIGN_KEY_VIOLATION = "23503"
# The sequences owned by the given tables, each set back to its start.
_RESTART_SEQUENCES = """
SELECT setval(d.objid::regclass, s.seqstart, false)
FROM pg_depend d JOIN pg_sequence s ON s.seqrelid = d.objid
WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
  AND d.deptype IN ('a', 'i')
  AND d.refobjid = ANY(CAST(CAST(:tables AS text[]) AS regclass[]))
"""
# Tables per statement that looks for rows: SQLite allows 500 terms in a UNION.
_CHUNK = 100


@contextlib.asynccontextmanager
async def committing_session(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """An AsyncSession on one connection with no outer transaction: commits are real."""
    __tracebackhide__ = True
    from sqlalchemy.ext.asyncio import AsyncSession

    async with connect(engine) as connection:
        session = AsyncSession(bind=connection, expire_on_commit=False)
        try:
            yield session
        finally:
            await session.close()


@contextlib.asynccontextmanager
async def emptied_afterwards(
    engine: AsyncEngine, metadata: MetaData, test: str
) -> AsyncIterator[None]:
    """Check that the tables are empty, run the block, then empty them (module docstring)."""
    __tracebackhide__ = True
    tables = metadata.sorted_tables
    async with connect(engine) as connection:
        found = await _tables_with_rows(connection, tables)
    if found:
        names = ", ".join(table.name for table in found)
        fail(
            f"oneloop: {test} is marked {COMMIT_MARKER}, so every table of db_metadata is emptied "
            f"after it, but these already hold rows it did not write: {names}. Emptying them "
            "would lose those rows for the tests after it. They were committed before the "
            "session or by a session-, package- or module-scoped fixture: write them in the "
            f"test or a function-scoped fixture instead, or leave the test without {COMMIT_MARKER}."
        )
    yield
    async with connect(engine) as connection:
        try:
            found = await _tables_with_rows(connection, tables)
            if found:
                await _empty(connection, found)
                await connection.commit()
        except Exception as exc:  # noqa: BLE001 - locks, a lost server, ...: one message
            # A failed COMMIT can leave the driver's transaction open while
            # SQLAlchemy considers it over: discard the connection, so that
            # the database rolls it back and the pool never hands it out.
            await connection.invalidate()
            fail(
                f"oneloop: cannot empty the tables after the {COMMIT_MARKER} test {test} in "
                f"{mask_url(engine.url)!r}: {reason(exc, engine.url)}. A connection or "
                "session the test opened may still hold them: close it before the test ends. "
                "The tests after it may see its rows."
            )


async def _tables_with_rows(connection: AsyncConnection, tables: Sequence[Table]) -> list[Table]:
    """Those of `tables` that hold at least one row, one statement per hundred tables."""
    from sqlalchemy import exists, literal, select, union_all

    found: set[int] = set()
    for start in range(0, len(tables), _CHUNK):
        probes = [
            select(literal(index)).where(exists().select_from(table))
            for index, table in enumerate(tables[start : start + _CHUNK], start)
        ]
        query = probes[0] if len(probes) == 1 else union_all(*probes)
        found.update(await connection.scalars(query))
    return [table for index, table in enumerate(tables) if index in found]


async def _empty(connection: AsyncConnection, tables: Sequence[Table]) -> None:
    """Delete every row of `tables` and restart their identity counters."""
    from sqlalchemy import text

    preparer = connection.dialect.identifier_preparer
    names = [preparer.format_table(table) for table in tables]
    postgresql = connection.dialect.name == "postgresql"
    if postgresql:
        await connection.exec_driver_sql(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
    try:
        for name in reversed(names):
            await connection.exec_driver_sql(f"DELETE FROM {name}")  # noqa: S608 - quoted names
    except Exception as exc:
        if not postgresql or sqlstate_of(exc) != _FOREIGN_KEY_VIOLATION:
            raise
        await connection.rollback()
        await connection.exec_driver_sql(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        await connection.exec_driver_sql(f"TRUNCATE {', '.join(names)} RESTART IDENTITY CASCADE")
        return
    if postgresql:
        await connection.execute(text(_RESTART_SEQUENCES), {"tables": names})
    elif connection.dialect.name == "sqlite":
        await _reset_sqlite_sequence(connection, tables)


async def _reset_sqlite_sequence(connection: AsyncConnection, tables: Sequence[Table]) -> None:
    """Forget the AUTOINCREMENT counters of `tables`, if the database keeps any."""
    from sqlalchemy import bindparam, text

    exists = await connection.scalar(
        text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_sequence'")
    )
    if exists:
        statement = text("DELETE FROM sqlite_sequence WHERE name IN :names").bindparams(
            bindparam("names", expanding=True)
        )
        await connection.execute(statement, {"names": [table.name for table in tables]})
