from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

import sqlalchemy_support as support

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture(params=support.BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh empty database on each backend."""
    with support.database(request.param, tmp_path) as url:
        yield url


def test_what_a_test_commits_is_gone_before_the_next_test(
    pytester: pytest.Pytester, database_url: str
) -> None:
    """A committed row exists for the rest of its test and not in the next one."""
    support.make_project(pytester, database_url)
    support.run_inner(
        pytester,
        """
        from helpers import count_users
        from models import User

        async def test_commits(db_session):
            user = User(name="ann", email="ann@example.com")
            db_session.add(user)
            await db_session.commit()
            assert user.name == "ann"  # still loaded: expire_on_commit is off
            assert await count_users(db_session) == 1
        """,
        support.SEES_NOTHING,
        passed=2,
    )


def test_a_rollback_inside_a_test_returns_to_the_tests_last_commit(
    pytester: pytest.Pytester, database_url: str
) -> None:
    """commit() and rollback() work on SAVEPOINTs; on SQLite too, and still nothing leaks."""
    support.make_project(pytester, database_url)
    support.run_inner(
        pytester,
        """
        from sqlalchemy import select

        from helpers import count_users
        from models import User

        async def test_savepoints(db_session):
            db_session.add(User(name="kept", email="kept@example.com"))
            await db_session.commit()
            db_session.add(User(name="dropped", email="dropped@example.com"))
            await db_session.flush()
            await db_session.rollback()
            assert (await db_session.scalars(select(User.name))).all() == ["kept"]
        """,
        support.SEES_NOTHING,
        passed=2,
    )


def test_nothing_is_lost_and_nothing_leaks_after_tests_that_commit_roll_back_raise_and_fail(
    pytester: pytest.Pytester, database_url: str
) -> None:
    """Every table keeps its row count, tables made for the run go, no connection stays out."""
    support.seed_users(database_url, "seed-1", "seed-2")
    support.make_project(pytester, database_url)
    pytester.makeconftest(support.AUDIT_CONFTEST)
    support.run_inner(
        pytester,
        """
        import pytest

        from factories import BlogPostFactory, UserFactory
        from helpers import count_users

        async def test_commits(factory, db_session):
            await factory(BlogPostFactory, tags=["a", "b"])
            await db_session.commit()

        async def test_rolls_back(factory, db_session):
            await factory.batch(UserFactory, 3)
            await db_session.rollback()

        async def test_raises(factory, db_session):
            await factory(UserFactory)
            await db_session.commit()
            raise RuntimeError("boom")

        async def test_fails(factory, db_session):
            await factory(BlogPostFactory)
            await db_session.commit()
            assert False

        async def test_sees_only_the_seed(db_session):
            assert await count_users(db_session) == 2
        """,
        passed=3,
        failed=2,
    )
    audit = json.loads((pytester.path / "audit.json").read_text())
    assert (
        audit["before"]
        == audit["after"]
        == {
            "users": 2,
            "blog_posts": 0,
            "tags": 0,
            "profiles": 0,
        }
    )
    assert audit["checked_out"] == 0
    assert support.row_counts(database_url) == {"users": 2}


def test_a_test_that_breaks_its_transaction_does_not_harm_the_next(
    pytester: pytest.Pytester, database_url: str
) -> None:
    """An IntegrityError, caught or not, leaves the next test a working session."""
    support.make_project(pytester, database_url)
    result = support.run_inner(
        pytester,
        """
        import pytest
        from sqlalchemy.exc import IntegrityError

        from helpers import count_users
        from models import User

        async def test_caught(db_session):
            db_session.add_all([User(name="x", email="1"), User(name="x", email="2")])
            with pytest.raises(IntegrityError):
                await db_session.commit()
            await db_session.rollback()
            assert await count_users(db_session) == 0

        async def test_uncaught(db_session):
            db_session.add_all([User(name="y", email="1"), User(name="y", email="2")])
            await db_session.commit()

        async def test_next(db_session):
            db_session.add(User(name="x", email="3"))
            await db_session.commit()
            assert await count_users(db_session) == 1
        """,
        passed=2,
        failed=1,
    )
    result.stdout.fnmatch_lines(["_* test_uncaught _*", "E *sqlalchemy.exc.IntegrityError: *"])


def test_committing_the_outer_transaction_fails_clearly_and_is_rolled_back(
    pytester: pytest.Pytester, database_url: str
) -> None:
    """Committing db_session's connection itself is refused with a message saying what to do."""
    support.make_project(pytester, database_url)
    result = support.run_inner(
        pytester,
        """
        from helpers import count_users
        from models import User

        async def test_commits_the_connection(db_session):
            db_session.add(User(name="ann", email="ann@example.com"))
            await db_session.flush()
            await db_session.bind.commit()
        """,
        support.SEES_NOTHING,
        passed=1,
        failed=1,
    )
    result.stdout.fnmatch_lines(
        [
            (
                "E   *OuterCommitError: oneloop: the test tried to commit the outer transaction "
                "of db_session's connection, which would make its writes outlive the test. "
                "Commit the session (`await db_session.commit()`), which only releases a "
                "SAVEPOINT; bind other sessions with join_transaction_mode='create_savepoint'."
            )
        ]
    )


def test_the_apps_sessionmaker_bound_to_db_session_writes_inside_the_test_transaction(
    pytester: pytest.Pytester, database_url: str
) -> None:
    """The documented recipe: the app's own sessions commit into db_session's transaction."""
    support.make_project(pytester, database_url)
    pytester.makepyfile(
        app="""
        from sqlalchemy.ext.asyncio import async_sessionmaker

        from models import User

        Session = async_sessionmaker(expire_on_commit=False)

        async def sign_up(name):
            async with Session() as session:
                session.add(User(name=name, email=f"{name}@example.com"))
                await session.commit()
        """,
    )
    pytester.makeconftest(
        """
        import pytest

        import app

        @pytest.fixture(autouse=True)
        def app_sessions(db_session, monkeypatch):
            monkeypatch.setitem(app.Session.kw, "bind", db_session.bind)
            monkeypatch.setitem(app.Session.kw, "join_transaction_mode", "create_savepoint")
        """
    )
    support.run_inner(
        pytester,
        """
        import app
        from helpers import count_users

        async def test_app_writes(db_session):
            await app.sign_up("ann")
            await app.sign_up("bob")
            assert await count_users(db_session) == 2
        """,
        support.SEES_NOTHING,
        passed=2,
    )


TEARDOWN_CONFTEST = """
import json
import pathlib

import pytest
from sqlalchemy import event


@pytest.fixture(scope="session", autouse=True)
def transaction_events(db_engine):
    events = []
    engine = db_engine.sync_engine
    for name in ("begin", "commit", "rollback", "savepoint", "rollback_savepoint"):
        event.listen(engine, name, lambda *args, name=name: events.append(name))

    def on_reset(dbapi_connection, record, state):
        events.append("pool reset" if not state.transaction_was_reset else "pool: already reset")

    event.listen(engine.pool, "reset", on_reset)
    yield events
    pathlib.Path(__file__).with_name("events.json").write_text(json.dumps(events))


@pytest.fixture(autouse=True)
def mark_the_teardown(transaction_events):
    transaction_events.append("test starts")
    yield
    transaction_events.append("teardown")
"""


def test_the_teardown_rolls_back_the_outer_transaction_once_and_does_nothing_else(
    pytester: pytest.Pytester, database_url: str
) -> None:
    """No ROLLBACK TO SAVEPOINT first, and the pool does not roll the connection back again."""
    support.make_project(pytester, database_url)
    pytester.makeconftest(TEARDOWN_CONFTEST)
    support.run_inner(
        pytester,
        """
        from factories import UserFactory
        from helpers import count_users

        async def test_writes_and_commits(factory, db_session):
            await factory.batch(UserFactory, 2)
            await db_session.commit()
            await factory(UserFactory)
            assert await count_users(db_session) == 3
        """,
        support.SEES_NOTHING,
        passed=2,
    )
    events = json.loads((pytester.path / "events.json").read_text())
    teardown = ["rollback", "pool: already reset"]
    assert events == [
        *["test starts", "begin", "savepoint", "savepoint", *teardown, "teardown"],
        *["test starts", "begin", "savepoint", *teardown, "teardown"],
    ]


def test_only_the_tests_own_connection_refuses_a_commit(
    pytester: pytest.Pytester, database_url: str
) -> None:
    """Other connections commit during a test, and the test's connection commits after it."""
    support.make_project(pytester, database_url)
    pytester.makeconftest(
        """
        import pathlib

        import pytest
        from sqlalchemy import text

        @pytest.fixture(scope="session", autouse=True)
        async def commit_after_the_tests(db_engine):
            yield
            async with db_engine.begin() as connection:
                await connection.execute(text("DELETE FROM users"))
            pathlib.Path(__file__).with_name("committed").write_text("yes")
        """
    )
    support.run_inner(
        pytester,
        """
        import pytest
        from sqlalchemy import text

        from helpers import count_users

        REFUSED = "tried to commit the outer transaction"

        async def test_another_connection_commits(db_session, db_engine):
            assert await count_users(db_session) == 0
            async with db_engine.connect() as other:
                await other.execute(text("SELECT 1"))
                await other.commit()
            with pytest.raises(RuntimeError, match=REFUSED):
                await db_session.bind.commit()

        @pytest.mark.parametrize("n", range(3))
        async def test_later_tests_are_guarded_too(n, db_session):
            with pytest.raises(RuntimeError, match=REFUSED):
                await db_session.bind.commit()
        """,
        passed=4,
    )
    assert (pytester.path / "committed").read_text() == "yes"


def test_on_aiosqlite_db_session_itself_costs_one_hand_over_to_begin_and_one_to_end(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    """BEGIN at set-up and ROLLBACK at teardown are one call each into aiosqlite's thread."""
    with support.database("sqlite", tmp_path) as url:
        support.make_project(pytester, url)
        pytester.makeconftest(
            """
            import json
            import pathlib

            import aiosqlite
            import pytest

            @pytest.fixture
            def calls(db_engine, monkeypatch):
                calls = []
                call = aiosqlite.Connection._execute

                async def counted(self, fn, *args, **kwargs):
                    calls.append(fn)
                    return await call(self, fn, *args, **kwargs)

                monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
                yield calls
                path = pathlib.Path(__file__).with_name("calls.json")
                path.write_text(json.dumps(len(calls)))
            """
        )
        pytester.makepyfile(
            """
            import json
            import pathlib

            from sqlalchemy import select

            async def test_one_query(calls, db_session):
                assert len(calls) == 1  # the BEGIN
                await db_session.scalar(select(1))  # SAVEPOINT, SELECT
                pathlib.Path(__file__).with_name("body.json").write_text(json.dumps(len(calls)))
            """
        )
        pytester.runpytest().assert_outcomes(passed=1)
        body = json.loads((pytester.path / "body.json").read_text())
        assert json.loads((pytester.path / "calls.json").read_text()) == body + 1  # the ROLLBACK
