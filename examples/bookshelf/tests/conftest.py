"""Fixtures of the bookshelf's tests: the app and its client, factories, the request id.

pytest-oneloop provides `db_engine` (the schema built by the migrations in
migrations/, `oneloop_db_schema = "alembic:alembic.ini"` in pyproject.toml,
and checked against `bookshelf.models:Base`) and `db_session` (rolled back
after each test). Everything async here runs on the session's one
event loop, so the session-scoped app and client serve every test.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import httpx
import pytest
from bookshelf import context
from bookshelf.app import create_app, get_session
from factories import AuthorFactory, BookFactory, ReviewFactory
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pytest_oneloop.sqlalchemy import register

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from fastapi import FastAPI
    from sqlalchemy.ext.asyncio import AsyncEngine

# Each makes two fixtures: `author` (one persisted Author) and
# `author_factory` (`await author_factory(name="Ann")`), and so on.
register(AuthorFactory)
register(BookFactory)
register(ReviewFactory)


@pytest.fixture(scope="session")
async def app(db_engine: AsyncEngine) -> AsyncIterator[FastAPI]:
    """The application on the test database, started once for the session.

    Its lifespan (start-up and shutdown) is held open across the `yield`: the
    fixture's setup and teardown run in one task on the session loop.
    """
    app = create_app(engine=db_engine)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture(scope="session")
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """One HTTP client for the whole session, calling the app in-process."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bookshelf.test") as client:
        yield client


@pytest.fixture
def api(
    app: FastAPI, client: httpx.AsyncClient, db_session: AsyncSession
) -> Iterator[httpx.AsyncClient]:
    """The client, with each request's session inside this test's transaction.

    The app's `get_session` dependency is replaced by sessions bound to
    db_session's connection with join_transaction_mode="create_savepoint":
    what a request commits is visible to the test (and to later requests of
    the test) and rolled back with everything else after it.
    """
    sessions = async_sessionmaker(
        bind=db_session.bind, join_transaction_mode="create_savepoint", expire_on_commit=False
    )

    async def session_in_test_transaction() -> AsyncIterator[AsyncSession]:
        async with sessions() as session:
            yield session

    app.dependency_overrides[get_session] = session_in_test_transaction
    yield client
    del app.dependency_overrides[get_session]


@pytest.fixture
async def request_id() -> str:
    """Run the test as if serving request `req-test`: the code under test logs that id."""
    context.request_id.set("req-test")
    return "req-test"


@pytest.fixture
def postgres(db_engine: AsyncEngine) -> None:
    """Fail, saying how to run it, a test that needs PostgreSQL run on another database."""
    if db_engine.dialect.name != "postgresql":
        pytest.fail(
            f"this test needs PostgreSQL, and the database is {db_engine.dialect.name}: "
            f"pass {_postgres_option()}",
            pytrace=False,
        )


def _postgres_option() -> str:
    return "--db-url postgresql+asyncpg://USER:PASSWORD@HOST/DATABASE"


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    """After a run that skipped the integration tests, say how to run them."""
    skipped = [
        report
        for report in terminalreporter.stats.get("skipped", [])
        if "--integration" in str(getattr(report, "longrepr", ""))
    ]
    if not skipped:
        return
    where = os.path.relpath(config.rootpath, config.invocation_params.dir)
    terminalreporter.write_sep("-", "integration tests")
    terminalreporter.write_line(
        f"{len(skipped)} integration test(s) need PostgreSQL and were skipped. Run them with:"
    )
    terminalreporter.write_line(f"  pytest {where} --integration {_postgres_option()}")
