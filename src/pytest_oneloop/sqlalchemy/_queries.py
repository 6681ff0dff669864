"""The `db_queries` fixture: the SQL statements a test's connection executes.

A block (`async with db_queries() as q:`) listens to SQLAlchemy's
`before_cursor_execute` event on the connection `db_session` is bound to,
from the moment it is entered until it is left, and keeps the text of each
statement sent to the driver. Listening on that one connection, not on the
engine, is what makes the count the test's own: the application's sessions
bound to `db_session.bind` are counted with it, and a session-scoped
fixture's connection is not.

Transaction bookkeeping is left out: the SAVEPOINT, RELEASE SAVEPOINT and
ROLLBACK TO SAVEPOINT that `db_session.commit()` and `rollback()` cost in a
rolled-back test, and a BEGIN or COMMIT a driver sends as a statement (the
SQLite recipe on pysqlite does). A test's count is then the same in a
rolled-back test and in a `db_commit` one, and it is the count the
application has in production.
"""

from __future__ import annotations

import re
import textwrap
from typing import TYPE_CHECKING, Any, Self

from pytest_oneloop.sqlalchemy._config import fail

if TYPE_CHECKING:
    from sqlalchemy import Connection

# Statements that only open, close or mark a transaction.
_BOOKKEEPING = re.compile(r"\s*(?:SAVEPOINT|RELEASE|ROLLBACK|BEGIN|COMMIT|END)\b", re.IGNORECASE)
# How much of one statement a failure message shows.
_SHOWN = 300

NOT_A_BLOCK = (
    "oneloop: db_queries is not a block itself: write `async with db_queries() as q:` to "
    "count the statements, or `async with db_queries.assert_max(n):` to set a limit."
)
USED_TWICE = (
    "oneloop: this db_queries() block was already entered; each call of db_queries() or "
    "db_queries.assert_max(n) makes one block, so call it again for the next one."
)


def connection_of(session: object) -> Connection:
    """The connection `session` (the test's `db_session`) is bound to."""
    __tracebackhide__ = True
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

    bind = session.bind if isinstance(session, AsyncSession) else None
    if not (isinstance(bind, AsyncConnection) and bind.sync_connection is not None):
        # Type names only: a repr may show a URL, and with it a password.
        if isinstance(session, AsyncSession):
            shown = f"an AsyncSession bound to {type(bind).__name__}, not to one connection"
        else:
            shown = f"of type {type(session).__name__}, not an AsyncSession"
        fail(
            "oneloop: db_queries counts the statements of db_session's connection, but "
            f"db_session is {shown}. Keep the plugin's db_session, or bind yours to a "
            "connection: AsyncSession(bind=connection)."
        )
    return bind.sync_connection


class QueryCounter:
    """The value of the `db_queries` fixture: makes counting blocks."""

    __slots__ = ("_connection",)

    def __init__(self, connection: Connection) -> None:
        """Count on `connection`, the test's."""
        self._connection = connection

    def __call__(self) -> Queries:
        """A block that counts and keeps the statements executed inside it."""
        return Queries(self._connection, None)

    def assert_max(self, limit: int) -> Queries:
        """A block that fails the test if more than `limit` statements are executed inside it."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            msg = (
                "oneloop: db_queries.assert_max() takes the largest number of statements "
                f"allowed, an int >= 0, not {limit!r}"
            )
            raise TypeError(msg)
        return Queries(self._connection, limit)

    def __enter__(self) -> None:
        """Refuse `with db_queries:`, which forgot the call."""
        raise TypeError(NOT_A_BLOCK)

    def __exit__(self, *exc_info: object) -> None:
        """Never reached: entering is refused."""

    async def __aenter__(self) -> None:
        """Refuse `async with db_queries:`, which forgot the call."""
        raise TypeError(NOT_A_BLOCK)

    async def __aexit__(self, *exc_info: object) -> None:
        """Never reached: entering is refused."""

    def __repr__(self) -> str:
        """Say how to use it."""
        return "<db_queries: async with db_queries() as q / db_queries.assert_max(n)>"


class Queries:
    """The statements executed inside one block, in the order they were sent."""

    __slots__ = ("_connection", "_entered", "_limit", "statements")

    def __init__(self, connection: Connection, limit: int | None) -> None:
        """A block on `connection`, with an optional limit checked when it ends."""
        self._connection = connection
        self._limit = limit
        self._entered = False
        #: The SQL text of each statement, as sent to the driver.
        self.statements: list[str] = []

    @property
    def count(self) -> int:
        """How many statements were executed so far."""
        return len(self.statements)

    def __enter__(self) -> Self:
        """Start listening on the test's connection."""
        from sqlalchemy import event

        if self._entered:
            raise RuntimeError(USED_TWICE)
        self._entered = True
        event.listen(self._connection, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Stop listening; check the limit unless the block raised."""
        __tracebackhide__ = True
        from sqlalchemy import event

        event.remove(self._connection, "before_cursor_execute", self._record)
        if exc_info[0] is None and self._limit is not None and self.count > self._limit:
            raise AssertionError(self.report(self._limit))

    async def __aenter__(self) -> Self:
        """The same as `with`: counting needs no await."""
        return self.__enter__()

    async def __aexit__(self, *exc_info: object) -> None:
        """The same as `with`."""
        __tracebackhide__ = True
        self.__exit__(*exc_info)

    def _record(self, *args: Any) -> None:
        statement = args[2]  # of (connection, cursor, statement, parameters, context, many)
        if not _BOOKKEEPING.match(statement):
            self.statements.append(statement)

    def report(self, limit: int) -> str:
        """The failure message of a block that executed more than `limit` statements."""
        allowed = f"{limit} statement" + ("" if limit == 1 else "s")
        head = (
            f"oneloop: expected at most {allowed} in the db_queries.assert_max({limit}) "
            f"block, and {self.count} were executed:"
        )
        lines = [head]
        lines += [
            f"  {number}. {textwrap.shorten(statement, _SHOWN, placeholder=' ...')}"
            for number, statement in enumerate(self.statements, 1)
        ]
        return "\n".join(lines)

    def __repr__(self) -> str:
        """The count so far."""
        return f"<db_queries block: {self.count} statements>"
