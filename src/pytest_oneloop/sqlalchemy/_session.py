"""The per-test session: everything a test writes is rolled back after it.

The test gets an `AsyncSession` bound to one connection on which an outer
transaction was begun first. With `join_transaction_mode="create_savepoint"`
the session works inside SAVEPOINTs: its `commit()` releases one and its
`rollback()` returns to one, and neither ends the outer transaction. After
the test, whatever it did (commit, rollback, raise, fail), the outer
transaction is rolled back and the connection goes back to the pool.

The teardown costs one statement: closing the connection rolls the outer
transaction back, which ends the session's SAVEPOINTs with it (no `ROLLBACK
TO SAVEPOINT` first) and tells the pool that the connection is already reset
(no second rollback on its return). The session is closed afterwards, when
it has nothing left to roll back.

The application's own sessions can join the same transaction: bind its
`async_sessionmaker` to `session.bind` with the same join mode (see
`docs/database.md`).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from sqlalchemy import Connection
    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from pytest_oneloop.sqlalchemy._engine import connect

JOIN_MODE = "create_savepoint"
OUTER_COMMIT = (
    "oneloop: the test tried to commit the outer transaction of db_session's connection, "
    "which would make its writes outlive the test. Commit the session "
    "(`await db_session.commit()`), which only releases a SAVEPOINT; bind other sessions "
    f"with join_transaction_mode={JOIN_MODE!r}."
)
# Marks, in `Connection.info`, the connection whose outer transaction a test holds.
_GUARDED = "pytest_oneloop.outer_transaction"


class OuterCommitError(RuntimeError):
    """The test committed the transaction that keeps it isolated."""


def _refuse_outer_commit(connection: Connection) -> None:
    """The engine's `commit` listener: refuse it on a connection a test holds."""
    if connection.info.get(_GUARDED):
        raise OuterCommitError(OUTER_COMMIT)


def _guard(engine: AsyncEngine) -> None:
    """Listen for commits on `engine` once, rather than on every test's connection."""
    from sqlalchemy import event

    if not event.contains(engine.sync_engine, "commit", _refuse_outer_commit):
        event.listen(engine.sync_engine, "commit", _refuse_outer_commit)


@contextlib.asynccontextmanager
async def rolled_back_session(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """An AsyncSession whose work is rolled back when the block ends."""
    __tracebackhide__ = True
    from sqlalchemy.ext.asyncio import AsyncSession

    _guard(engine)
    async with connect(engine) as connection:
        transaction = await connection.begin()
        connection.info[_GUARDED] = True
        session = AsyncSession(
            bind=connection, join_transaction_mode=JOIN_MODE, expire_on_commit=False
        )
        try:
            yield session
        finally:
            connection.info.pop(_GUARDED, None)
            if transaction.is_active:
                await connection.close()
            else:
                # The test ended the outer transaction itself (a refused commit
                # leaves it open on the server while SQLAlchemy thinks it is
                # over): discard the connection, so the server rolls it back.
                await connection.invalidate()
            await session.close()
