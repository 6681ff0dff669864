"""Real commits: a test marked db_commit, for code that does not share the test's transaction.

The `api` fixture puts every request inside the test's rolled-back
transaction. Some code cannot live there: a background worker, a second
engine, or the application on its own sessions. A `db_commit` test gets a
db_session that commits for real, and afterwards every table is emptied, so
the next test starts as it would after a rollback.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from bookshelf.models import Author
from sqlalchemy import select

if TYPE_CHECKING:
    import httpx
    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession


@pytest.mark.db_commit
async def test_an_author_posted_on_the_apps_own_session_is_committed(
    client: httpx.AsyncClient, db_engine: AsyncEngine, db_session: AsyncSession
) -> None:
    """The app commits on a connection of its own; a third connection reads the row back."""
    response = await client.post("/authors", json={"name": "Ursula K. Le Guin"})
    assert response.status_code == 201, response.text

    async with db_engine.connect() as connection:
        assert await connection.scalar(select(Author.name)) == "Ursula K. Le Guin"
    assert await db_session.scalar(select(Author.id)) == response.json()["id"]


async def test_the_next_test_finds_the_tables_emptied(db_session: AsyncSession) -> None:
    """After the db_commit test the tables were emptied, not left with its author."""
    assert await db_session.scalar(select(Author.id)) is None
