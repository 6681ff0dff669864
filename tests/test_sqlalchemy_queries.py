from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from sqlalchemy import make_url

import sqlalchemy_support as support

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture(params=support.BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh empty database on each backend."""
    with support.database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def sqlite_project(pytester: pytest.Pytester) -> pytest.Pytester:
    """The shared project on its default SQLite file."""
    support.make_project(pytester, None)
    return pytester


def test_a_block_keeps_the_statements_the_test_executes_without_transaction_bookkeeping(
    pytester: pytest.Pytester, database_url: str
) -> None:
    """Inside the block: each statement in order; commit, rollback and outside it: nothing."""
    support.make_project(pytester, database_url)
    support.run_inner(
        pytester,
        """
        from sqlalchemy import select

        from models import User

        async def test_counts(db_session, db_queries):
            await db_session.scalar(select(User.id))  # before the block
            async with db_queries() as q:
                db_session.add(User(name="ann", email="ann@example.com"))
                await db_session.commit()  # INSERT; SAVEPOINT and RELEASE are not counted
                db_session.add(User(name="bob", email="bob@example.com"))
                await db_session.flush()
                await db_session.rollback()  # ROLLBACK TO SAVEPOINT is not counted
                names = (await db_session.scalars(select(User.name))).all()
                assert q.count == 3  # read while the block runs
            await db_session.scalar(select(User.id))  # after the block
            assert names == ["ann"]
            assert q.count == len(q.statements) == 3
            assert [s.split()[0] for s in q.statements] == ["INSERT", "INSERT", "SELECT"]
            assert "FROM users" in q.statements[2]
        """,
    )


def test_assert_max_passes_at_the_limit_and_lists_the_statements_above_it(
    pytester: pytest.Pytester, database_url: str
) -> None:
    """A block at its limit passes; one above it fails with every statement, numbered."""
    support.make_project(pytester, database_url)
    result = support.run_inner(
        pytester,
        """
        from sqlalchemy import select

        from factories import BlogPostFactory
        from models import BlogPost, User

        async def test_at_the_limit(db_session, db_queries):
            async with db_queries.assert_max(1) as q:
                await db_session.scalar(select(User.id))
            assert q.count == 1

        async def test_an_n_plus_one(factory, db_session, db_queries):
            await factory.batch(BlogPostFactory, 3)
            db_session.expunge_all()
            async with db_queries.assert_max(2):
                posts = (await db_session.scalars(select(BlogPost).order_by(BlogPost.id))).all()
                for post in posts:
                    await db_session.get(User, post.author_id)
        """,
        passed=1,
        failed=1,
    )
    result.stdout.fnmatch_lines(
        [
            (
                "E   *AssertionError: oneloop: expected at most 2 statements in the "
                "db_queries.assert_max(2) block, and 4 were executed:"
            ),
            (
                "E   *1. SELECT blog_posts.id, blog_posts.title, blog_posts.author_id FROM "
                "blog_posts ORDER BY blog_posts.id"
            ),
            "E   *2. SELECT users.id, users.name, * FROM users WHERE users.id = *",
            "E   *3. SELECT users.id, users.name, * FROM users WHERE users.id = *",
            "E   *4. SELECT users.id, users.name, * FROM users WHERE users.id = *",
            "*test_inner.py:*: AssertionError",
        ]
    )
    assert "_queries.py" not in result.stdout.str()


def test_a_plain_with_block_counts_the_same_and_says_one_statement_in_the_singular(
    sqlite_project: pytest.Pytester,
) -> None:
    """`with` works like `async with`; the message of a limit of 1 says `1 statement`."""
    result = support.run_inner(
        sqlite_project,
        """
        from sqlalchemy import select

        async def test_with(db_session, db_queries):
            with db_queries() as q:
                await db_session.scalar(select(1))
            assert q.count == 1
            with db_queries.assert_max(1):
                await db_session.scalar(select(1))
                await db_session.scalar(select(2))
        """,
        failed=1,
    )
    result.stdout.fnmatch_lines(
        [
            (
                "E   *AssertionError: oneloop: expected at most 1 statement in the "
                "db_queries.assert_max(1) block, and 2 were executed:"
            ),
            "E   *1. SELECT 1",
            "E   *2. SELECT 2",
        ]
    )


def test_the_applications_sessions_on_the_tests_connection_count_and_other_connections_do_not(
    pytester: pytest.Pytester, database_url: str
) -> None:
    """A session bound to db_session.bind is the test's connection; db_engine.connect() is not."""
    support.make_project(pytester, database_url)
    support.run_inner(
        pytester,
        """
        from sqlalchemy import select, text
        from sqlalchemy.ext.asyncio import AsyncSession

        from models import User

        async def test_connections(db_session, db_engine, db_queries):
            async with db_queries() as q:
                async with AsyncSession(
                    bind=db_session.bind, join_transaction_mode="create_savepoint"
                ) as app_session:
                    app_session.add(User(name="ann", email="ann@example.com"))
                    await app_session.commit()
                async with db_engine.connect() as other:
                    await other.execute(text("SELECT 1"))
                assert await db_session.scalar(select(User.name)) == "ann"
            assert [s.split()[0] for s in q.statements] == ["INSERT", "SELECT"]
        """,
    )


def test_a_block_that_raises_reports_its_own_error_rather_than_the_limit(
    sqlite_project: pytest.Pytester,
) -> None:
    """An exception inside an assert_max block is the test's failure, and stops the counting."""
    result = support.run_inner(
        sqlite_project,
        """
        from sqlalchemy import select

        async def test_raises(db_session, db_queries):
            async with db_queries.assert_max(0) as q:
                await db_session.scalar(select(1))
                raise LookupError("the real problem")

        async def test_stops_counting(db_session, db_queries):
            try:
                async with db_queries() as q:
                    raise LookupError
            except LookupError:
                pass
            await db_session.scalar(select(1))
            assert q.count == 0
        """,
        failed=1,
        passed=1,
    )
    result.stdout.fnmatch_lines(["E   *LookupError: the real problem"])
    result.stdout.no_fnmatch_line("*expected at most*")


def test_misuses_of_db_queries_fail_with_what_to_write_instead(
    sqlite_project: pytest.Pytester,
) -> None:
    """The fixture without a call, a bad limit, and a block entered twice each say what to do."""
    result = support.run_inner(
        sqlite_project,
        """
        import pytest

        async def test_forgot_the_call(db_queries):
            async with db_queries:
                pass

        async def test_forgot_the_call_with_with(db_queries):
            with db_queries:
                pass

        @pytest.mark.parametrize("limit", [-1, "3", 2.0, True])
        async def test_bad_limit(db_queries, limit):
            db_queries.assert_max(limit)

        async def test_entered_twice(db_queries):
            block = db_queries()
            async with block:
                pass
            async with block:
                pass
        """,
        failed=7,
    )
    forgot = (
        "E   *TypeError: oneloop: db_queries is not a block itself: write `async with "
        "db_queries() as q:` to count the statements, or `async with "
        "db_queries.assert_max(n):` to set a limit."
    )
    bad_limit = (
        "E   *TypeError: oneloop: db_queries.assert_max() takes the largest number of "
        "statements allowed, an int >= 0, not {}"
    )
    result.stdout.fnmatch_lines_random(
        [
            forgot,
            forgot,
            *(bad_limit.format(shown) for shown in ["-1", "'3'", "2.0", "True"]),
            (
                "E   *RuntimeError: oneloop: this db_queries() block was already entered; each "
                "call of db_queries() or db_queries.assert_max(n) makes one block, so call it "
                "again for the next one."
            ),
        ]
    )


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)]
)
def test_a_db_session_bound_to_an_engine_fails_db_queries_clearly_without_the_password(
    pytester: pytest.Pytester, tmp_path: Path, backend: str
) -> None:
    """An override of db_session bound to the engine: db_queries names what it needs."""
    with support.database(backend, tmp_path) as url:
        support.make_project(pytester, url)
        pytester.makeconftest(
            """
            import pytest
            from sqlalchemy.ext.asyncio import AsyncSession

            @pytest.fixture
            async def db_session(db_engine):
                async with AsyncSession(db_engine) as session:
                    yield session
            """
        )
        result = support.run_inner(
            pytester, "async def test_counts(db_queries):\n    pass\n", errors=1
        )
    result.stdout.fnmatch_lines(
        [
            (
                "oneloop: db_queries counts the statements of db_session's connection, but "
                "db_session is an AsyncSession bound to AsyncEngine, not to one connection. Keep "
                "the plugin's db_session, or bind yours to a connection: "
                "AsyncSession(bind=connection)."
            )
        ]
    )
    password = make_url(url).password
    if password:
        assert password not in result.stdout.str() + result.stderr.str()


def test_a_db_session_that_is_no_async_session_fails_db_queries_clearly(
    sqlite_project: pytest.Pytester,
) -> None:
    """An override of db_session returning something else is named by its type."""
    sqlite_project.makeconftest(
        """
        import pytest

        @pytest.fixture
        def db_session():
            return object()
        """
    )
    result = support.run_inner(
        sqlite_project, "async def test_counts(db_queries):\n    pass\n", errors=1
    )
    result.stdout.fnmatch_lines(
        [
            (
                "oneloop: db_queries counts the statements of db_session's connection, but "
                "db_session is of type object, not an AsyncSession. *"
            )
        ]
    )


def test_pytest_fixtures_documents_db_queries(pytester: pytest.Pytester) -> None:
    """`pytest --fixtures` shows how to use db_queries."""
    result = pytester.runpytest("--fixtures")
    result.stdout.fnmatch_lines(
        [
            "db_queries -- *fixtures.py:*",
            "*Counts the SQL statements db_session's connection executes, to catch N+1 queries.",
        ]
    )
