from __future__ import annotations

import json
import textwrap
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


# Every test of the mix checks that it starts on empty tables, writes to
# several of them and commits: a rolled-back test through SAVEPOINTs, a
# db_commit test for real, seen from another connection.
MIX = """
import pytest
from sqlalchemy import func, select

from factories import BlogPostFactory, UserFactory, UserWithProfileFactory
from models import Base


EMPTY = {"users": 0, "blog_posts": 0, "tags": 0, "profiles": 0}
WRITTEN = {"users": 2, "blog_posts": 1, "tags": 2, "profiles": 1}


async def counts(connection):
    return {
        table.name: await connection.scalar(select(func.count()).select_from(table))
        for table in Base.metadata.sorted_tables
    }


async def write(factory, db_session):
    assert await counts(db_session) == EMPTY
    await factory(BlogPostFactory, tags=["a", "b"])
    await factory(UserWithProfileFactory)
    await db_session.commit()
    assert await counts(db_session) == WRITTEN


@pytest.mark.parametrize("n", range(4))
async def test_rolled_back(n, factory, db_session):
    await write(factory, db_session)


@pytest.mark.parametrize("n", range(4))
@pytest.mark.db_commit
async def test_commits(n, factory, db_session, db_engine):
    await write(factory, db_session)
    async with db_engine.connect() as other:
        assert await counts(other) == WRITTEN


@pytest.mark.db_commit
async def test_commits_then_fails(factory, db_session):
    await write(factory, db_session)
    assert False


@pytest.mark.db_commit
async def test_commits_then_raises(factory, db_session):
    await write(factory, db_session)
    raise RuntimeError("boom")


@pytest.mark.db_commit
async def test_writes_without_committing(factory, db_session):
    assert await counts(db_session) == EMPTY
    await factory.batch(UserFactory, 3)


async def test_rolled_back_then_fails(factory, db_session):
    await write(factory, db_session)
    assert False
"""


def run_the_mix(
    pytester: pytest.Pytester, database_url: str, *args: str
) -> list[dict[str, object]]:
    """Run MIX with the audit conftest; check the outcomes; return each session's audit."""
    support.make_project(pytester, database_url)
    pytester.makeconftest(support.AUDIT_CONFTEST)
    pytester.makepyfile(test_mix=MIX)
    result = pytester.runpytest_subprocess(*args, timeout=300) if args else pytester.runpytest()
    result.assert_outcomes(passed=9, failed=3)
    audits = [json.loads(path.read_text()) for path in sorted(pytester.path.glob("audit*.json"))]
    empty = {"users": 0, "blog_posts": 0, "tags": 0, "profiles": 0}
    for audit in audits:
        assert audit["before"] == audit["after"] == empty
        assert audit["checked_out"] == 0
    assert support.row_counts(database_url) == {}
    return audits


def test_nothing_is_lost_and_nothing_leaks_in_a_mix_of_rolled_back_and_db_commit_tests(
    pytester: pytest.Pytester, database_url: str
) -> None:
    """Every test of the mix starts on empty tables; the run ends with the database as it was."""
    audits = run_the_mix(pytester, database_url)
    assert len(audits) == 1


def test_nothing_is_lost_and_nothing_leaks_in_the_mix_under_xdist(
    pytester: pytest.Pytester, database_url: str
) -> None:
    """The same mix under -n 2: each worker's tables end empty, its database is dropped."""
    audits = run_the_mix(pytester, database_url, "-n", "2")
    assert len(audits) == 2
    base = make_url(database_url).database
    assert base
    if not base.endswith(".db"):
        assert not {name for name in support.pg_databases() if name.startswith(f"{base}_gw")}


def test_what_other_connections_commit_in_a_db_commit_test_is_emptied_too(
    pytester: pytest.Pytester, database_url: str
) -> None:
    """A test that commits only through db_engine, with no db_session, is cleaned up after."""
    support.make_project(pytester, database_url)
    support.run_inner(
        pytester,
        """
        import pytest
        from sqlalchemy import insert
        from sqlalchemy.ext.asyncio import async_sessionmaker

        from helpers import count_users
        from models import User

        @pytest.mark.db_commit
        async def test_an_app_on_its_own_connections(db_engine):
            Session = async_sessionmaker(db_engine)
            async with Session() as session:
                session.add(User(name="ann", email="ann@example.com"))
                await session.commit()
            async with db_engine.begin() as connection:
                await connection.execute(insert(User).values(name="bob", email="b"))
            async with Session() as session:
                assert await count_users(session) == 2
        """,
        support.SEES_NOTHING,
        passed=2,
    )


def test_identity_counters_start_again_after_a_db_commit_test(
    pytester: pytest.Pytester, database_url: str
) -> None:
    """After the tables are emptied, the next row's id is 1 again."""
    support.make_project(pytester, database_url)
    support.run_inner(
        pytester,
        """
        import pytest

        from factories import UserFactory

        @pytest.mark.db_commit
        @pytest.mark.parametrize("n", range(2))
        async def test_ids_start_at_one(n, factory, db_session):
            users = await factory.batch(UserFactory, 3)
            await db_session.commit()
            assert [user.id for user in users] == [1, 2, 3]
        """,
        passed=2,
    )


def test_on_sqlite_autoincrement_counters_start_again_after_a_db_commit_test(
    pytester: pytest.Pytester,
) -> None:
    """The tables' sqlite_sequence rows are removed with their rows."""
    support.make_project(pytester, None, metadata="counted:Base")
    pytester.makepyfile(
        counted="""
        from sqlalchemy import String
        from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

        class Base(DeclarativeBase):
            pass

        class Ticket(Base):
            __tablename__ = "tickets"
            __table_args__ = {"sqlite_autoincrement": True}
            id: Mapped[int] = mapped_column(primary_key=True)
            title: Mapped[str] = mapped_column(String(20))
        """
    )
    support.run_inner(
        pytester,
        """
        import pytest
        from sqlalchemy import delete

        from counted import Ticket

        @pytest.mark.db_commit
        @pytest.mark.parametrize("n", range(2))
        async def test_ids_start_at_one(n, db_session):
            tickets = [Ticket(title="a"), Ticket(title="b")]
            db_session.add_all(tickets)
            await db_session.commit()
            assert [ticket.id for ticket in tickets] == [1, 2]
        """,
        passed=2,
    )


def test_only_the_marked_tests_commit_for_real(
    pytester: pytest.Pytester, database_url: str
) -> None:
    """The marker on one parameter, or on a class, makes those tests commit, and no others."""
    support.make_project(pytester, database_url)
    support.run_inner(
        pytester,
        """
        import pytest

        from helpers import count_users
        from models import User

        async def committed(db_session, db_engine, name):
            db_session.add(User(name=name, email=f"{name}@example.com"))
            await db_session.commit()
            async with db_engine.connect() as other:
                return await count_users(other)

        @pytest.mark.parametrize("real", [False, pytest.param(True, marks=pytest.mark.db_commit)])
        async def test_one_parameter(real, db_session, db_engine):
            assert await count_users(db_session) == 0
            assert await committed(db_session, db_engine, "ann") == (1 if real else 0)

        @pytest.mark.db_commit
        class TestCommitting:
            async def test_one(self, db_session, db_engine):
                assert await committed(db_session, db_engine, "bob") == 1

            async def test_the_connection_itself_may_commit(self, db_session):
                db_session.add(User(name="eve", email="eve@example.com"))
                await db_session.flush()
                await db_session.bind.commit()
        """,
        support.SEES_NOTHING,
        passed=5,
    )


def test_a_db_commit_test_refuses_to_empty_tables_that_hold_rows_it_did_not_write(
    pytester: pytest.Pytester, database_url: str
) -> None:
    """Seeded rows fail the test at set-up with the tables named, and stay where they were."""
    support.seed_users(database_url, "seed-1", "seed-2")
    support.make_project(pytester, database_url)
    result = support.run_inner(
        pytester,
        """
        import pytest

        from helpers import count_users

        @pytest.mark.db_commit
        async def test_would_empty_the_seed(db_session):
            pass

        async def test_sees_the_seed(db_session):
            assert await count_users(db_session) == 2
        """,
        passed=1,
        errors=1,
    )
    result.stdout.fnmatch_lines(
        [
            "*ERROR at setup of test_would_empty_the_seed*",
            (
                "oneloop: test_inner.py::test_would_empty_the_seed is marked db_commit, so every "
                "table of db_metadata is emptied after it, but these already hold rows it did not "
                "write: users. Emptying them would lose those rows for the tests after it. They "
                "were committed before the session or by a session-, package- or module-scoped "
                "fixture: write them in the test or a function-scoped fixture instead, or leave "
                "the test without db_commit."
            ),
        ]
    )
    assert support.row_counts(database_url) == {"users": 2}


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)]
)
def test_a_connection_the_test_left_open_fails_the_emptying_with_one_clear_error(
    pytester: pytest.Pytester, tmp_path: Path, backend: str
) -> None:
    """A lock held past the test: the teardown fails after a wait, naming the masked URL."""
    with support.database(backend, tmp_path) as url:
        support.make_project(pytester, url)
        result = support.run_inner(
            pytester,
            """
            import pytest
            from sqlalchemy import select

            from helpers import count_users
            from models import User

            LEFT_OPEN = []

            @pytest.mark.db_commit
            async def test_leaves_a_transaction_open(db_session, db_engine):
                db_session.add(User(name="ann", email="ann@example.com"))
                await db_session.commit()
                other = await db_engine.connect()
                await other.execute(select(User.id).with_for_update())  # SQLite: a read lock
                LEFT_OPEN.append(other)

            async def test_after_it(db_session):
                await LEFT_OPEN.pop().close()
                assert await count_users(db_session) == 1
            """,
            passed=2,
            errors=1,
        )
    lock = (
        "database is locked" if backend == "sqlite" else "canceling statement due to lock timeout"
    )
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_leaves_a_transaction_open*",
            "oneloop: cannot empty the tables after the db_commit test "
            "test_inner.py::test_leaves_a_transaction_open in '*': *" + lock + "*",
        ]
    )
    assert (
        ". A connection or session the test opened may still hold them: close it before the "
        "test ends. The tests after it may see its rows.\n"
    ) in result.stdout.str()
    password = make_url(url).password
    if password:
        assert password not in result.stdout.str() + result.stderr.str()
        result.stdout.fnmatch_lines(["*in '*:***@*'*"])


@pytest.mark.integration
def test_on_postgresql_rows_referring_to_the_tables_from_outside_db_metadata_go_with_them(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    """A foreign key from a table the plugin does not know: TRUNCATE ... CASCADE empties both."""
    with support.database("postgresql", tmp_path) as url:
        support.make_project(pytester, url)
        pytester.makeconftest(
            """
            import pytest
            from sqlalchemy import text

            @pytest.fixture(scope="session", autouse=True)
            async def audit_log(db_engine):
                async with db_engine.begin() as connection:
                    await connection.execute(text(
                        "CREATE TABLE audit_log (id serial PRIMARY KEY,"
                        " user_id integer REFERENCES users (id))"
                    ))
                yield
                async with db_engine.begin() as connection:
                    await connection.execute(text("DROP TABLE audit_log"))
            """
        )
        support.run_inner(
            pytester,
            """
            import pytest
            from sqlalchemy import text

            from factories import UserFactory
            from helpers import count_users

            @pytest.mark.db_commit
            @pytest.mark.parametrize("n", range(2))
            async def test_logs_a_user(n, factory, db_session):
                user = await factory(UserFactory)
                await db_session.execute(
                    text("INSERT INTO audit_log (user_id) VALUES (:id)"), {"id": user.id}
                )
                await db_session.commit()
                assert user.id == 1

            async def test_sees_nothing(db_session):
                assert await count_users(db_session) == 0
                assert await db_session.scalar(text("SELECT count(*) FROM audit_log")) == 0
            """,
            passed=3,
        )


def test_db_queries_counts_the_same_statements_in_a_db_commit_test(
    pytester: pytest.Pytester, database_url: str
) -> None:
    """BEGIN and COMMIT of a real transaction are bookkeeping too: only the work is counted."""
    support.make_project(pytester, database_url)
    body = textwrap.dedent(
        """
        async def {name}(db_session, db_queries):
            async with db_queries() as q:
                db_session.add(User(name="ann", email="ann@example.com"))
                await db_session.commit()
                await db_session.scalar(select(User.id))
                await db_session.rollback()
            assert [s.split()[0] for s in q.statements] == ["INSERT", "SELECT"]
        """
    )
    support.run_inner(
        pytester,
        "import pytest\nfrom sqlalchemy import select\n\nfrom models import User\n",
        body.format(name="test_rolled_back"),
        "@pytest.mark.db_commit" + body.format(name="test_committed"),
        passed=2,
    )


def test_the_db_commit_marker_is_declared(pytester: pytest.Pytester) -> None:
    """`pytest --markers` describes db_commit, and --strict-markers accepts it."""
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(
        [
            (
                "@pytest.mark.db_commit: db_session commits for real (no outer transaction), and "
                "every table of db_metadata is emptied after the test."
            )
        ]
    )
    pytester.makepyfile("import pytest\n\n@pytest.mark.db_commit\ndef test_x():\n    pass\n")
    support.make_project(pytester, None)
    pytester.runpytest("--strict-markers").assert_outcomes(passed=1)
