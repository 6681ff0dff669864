"""What the SQLAlchemy tests share: a small schema, its factories, real databases.

Tests run the plugin from the outside with pytester against real databases:
a SQLite file, or a scratch PostgreSQL database made for the test on the
server named by `ONELOOP_TEST_PG_URL` and dropped afterwards, so tests
running side by side never meet. The outer tests are synchronous (an inner
pytest run drives its own loop), so they query databases with `asyncio.run`.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import textwrap
import uuid
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import (
    Boolean,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    func,
    insert,
    inspect,
    make_url,
    select,
    text,
)
from sqlalchemy.ext.asyncio import create_async_engine

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from pathlib import Path

# The drivers and dialects are imported before any pytester run: pytester
# drops the modules a test imported, and importing a C extension (asyncpg's,
# psycopg's) a second time in one process crashes it, while a dialect
# imported again registers its SQL functions twice and warns. psycopg is
# optional.
for _module in (
    "aiosqlite",
    "asyncpg",
    "greenlet",
    "psycopg",
    "sqlalchemy.dialects.postgresql.asyncpg",
    "sqlalchemy.dialects.postgresql.psycopg",
    "sqlalchemy.dialects.sqlite.aiosqlite",
):
    with contextlib.suppress(ImportError):
        importlib.import_module(_module)

PG_ENV = "ONELOOP_TEST_PG_URL"

# How to install each driver the tests use, for the reason of a skip.
INSTALL_DRIVER = {
    "asyncpg": "pip install 'pytest-oneloop[postgres]'",
    "psycopg": "pip install 'psycopg[binary]'",
}

# Every backend the behaviours are proven on; PostgreSQL only with --integration.
BACKENDS = [
    "sqlite",
    pytest.param("postgresql", marks=pytest.mark.integration),
    pytest.param("psycopg", marks=pytest.mark.integration),
]

MODELS = textwrap.dedent(
    """
    from __future__ import annotations

    from sqlalchemy import ForeignKey, String
    from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


    class Base(DeclarativeBase):
        pass


    class User(Base):
        __tablename__ = "users"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(String(50), unique=True)
        email: Mapped[str] = mapped_column(String(100))
        active: Mapped[bool] = mapped_column(default=True)
        role: Mapped[str] = mapped_column(String(20), server_default="member")
        posts: Mapped[list[BlogPost]] = relationship(back_populates="author")


    class BlogPost(Base):
        __tablename__ = "blog_posts"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str] = mapped_column(String(100))
        author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
        author: Mapped[User] = relationship(back_populates="posts")
        tags: Mapped[list[Tag]] = relationship()


    class Tag(Base):
        __tablename__ = "tags"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(String(20))
        post_id: Mapped[int] = mapped_column(ForeignKey("blog_posts.id"))


    class Profile(Base):
        # No relationship: the foreign key has to come from the user's id.
        __tablename__ = "profiles"
        id: Mapped[int] = mapped_column(primary_key=True)
        user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
        bio: Mapped[str] = mapped_column(String(100))
    """
)

FACTORIES = textwrap.dedent(
    """
    import factory
    from factory.alchemy import SQLAlchemyModelFactory

    from models import BlogPost, Profile, Tag, User

    CREATE_FLAGS = []


    class UserFactory(SQLAlchemyModelFactory):
        class Meta:
            model = User

        class Params:
            admin = factory.Trait(role="admin")

        name = factory.Sequence(lambda n: f"user{n}")
        email = factory.LazyAttribute(lambda o: f"{o.name}@example.com")


    class ProfileFactory(SQLAlchemyModelFactory):
        class Meta:
            model = Profile

        class Params:
            user = factory.SubFactory(UserFactory)

        user_id = factory.SelfAttribute("user.id")
        bio = "hello"


    class UserWithProfileFactory(UserFactory):
        profile = factory.RelatedFactory(ProfileFactory, factory_related_name="user")


    class BlogPostFactory(SQLAlchemyModelFactory):
        class Meta:
            model = BlogPost

        title = factory.Sequence(lambda n: f"post {n}")
        author = factory.SubFactory(UserFactory)

        @factory.post_generation
        def tags(obj, create, extracted, **kwargs):
            CREATE_FLAGS.append(create)
            for name in extracted or ():
                obj.tags.append(Tag(name=name))


    class UserWithPostFactory(UserFactory):
        post = factory.RelatedFactory(BlogPostFactory, factory_related_name="author")
    """
)


# What the inner tests count rows with.
HELPERS = textwrap.dedent(
    """
    from sqlalchemy import func, select

    from models import User


    async def count(session, model):
        return await session.scalar(select(func.count()).select_from(model))


    async def count_users(session):
        return await count(session, User)
    """
)

# The inner test that follows one that wrote: the rollback left it nothing.
SEES_NOTHING = """
async def test_sees_nothing(db_session):
    assert await count_users(db_session) == 0
"""


def make_project(
    pytester: pytest.Pytester, url: str | None, *ini_lines: str, metadata: str = "models:Base"
) -> None:
    """Write models.py, factories.py, helpers.py and an ini file pointing at them and at `url`."""
    pytester.makepyfile(models=MODELS, factories=FACTORIES, helpers=HELPERS)
    lines = [
        "[pytest]",
        "addopts = -p no:cacheprovider",
        f"oneloop_db_metadata = {metadata}",
        "pythonpath = .",
        *([f"oneloop_db_url = {url}"] if url else []),
        *ini_lines,
    ]
    pytester.makeini("\n".join(lines) + "\n")


def run_inner(
    pytester: pytest.Pytester, *sources: str, args: Sequence[str] = (), **outcomes: int
) -> pytest.RunResult:
    """Run `sources`, one after the other, as the inner test module; check the outcomes.

    `args` go to pytest's command line. Without `outcomes`, the one test in
    it must pass.
    """
    pytester.makepyfile(test_inner="\n\n".join(textwrap.dedent(source) for source in sources))
    result = pytester.runpytest(*args)
    result.assert_outcomes(**(outcomes or {"passed": 1}))
    return result


def require_driver(module: str) -> None:
    """Skip the test when the database driver `module` cannot be imported.

    asyncpg comes with the `[postgres]` extra and psycopg with the test
    dependencies: a clone without them skips the tests that need them, and
    says what to install, rather than failing.
    """
    try:
        importlib.import_module(module)
    except ImportError as exc:
        install = INSTALL_DRIVER.get(module, f"pip install {module}")
        pytest.skip(f"{module} cannot be imported ({exc}): {install}")


def pg_server_url() -> str:
    """The PostgreSQL URL of the test server; fails the test when it is not set.

    The test is skipped when the URL's driver is not installed.
    """
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.fail(
            f"{PG_ENV} is not set: integration tests need a PostgreSQL server. "
            f'Run `make test`, or export {PG_ENV}="$(bash scripts/ensure-postgres.sh)".',
            pytrace=False,
        )
    require_driver(make_url(url).get_driver_name())
    return url


def pg_password() -> str:
    """The test server's password, to prove it never appears in any output."""
    password = make_url(pg_server_url()).password
    assert password, f"{PG_ENV} has no password, so no test could prove it is hidden"
    return password


def full_url(url: Any) -> str:
    """`url` as a string with its password (SQLAlchemy's str() hides it)."""
    rendered: str = make_url(url).render_as_string(hide_password=False)
    return rendered


@contextlib.contextmanager
def database(backend: str, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database for one test, as a URL with its password."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
        return
    server = make_url(pg_server_url())
    if backend == "psycopg":
        require_driver("psycopg")
    name = f"oneloop_t_{uuid.uuid4().hex[:12]}"
    autocommit(server, f'CREATE DATABASE "{name}"')
    try:
        drivername = "postgresql+psycopg" if backend == "psycopg" else server.drivername
        yield full_url(server.set(drivername=drivername, database=name))
    finally:
        autocommit(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(coro: Any) -> Any:
    """Run `coro` on a loop of its own (the outer tests are synchronous)."""
    return asyncio.run(coro)


def autocommit(url: Any, *statements: str) -> None:
    """Execute `statements` outside any transaction (CREATE/DROP DATABASE)."""

    async def execute() -> None:
        engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as connection:
                for statement in statements:
                    await connection.exec_driver_sql(statement)
        finally:
            await engine.dispose()

    run(execute())


def execute(url: str, *statements: str) -> None:
    """Execute `statements` in one committed transaction."""

    async def go() -> None:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as connection:
                for statement in statements:
                    await connection.execute(text(statement))
        finally:
            await engine.dispose()

    run(go())


def row_counts(url: str) -> dict[str, int]:
    """The number of rows of every table in the database at `url`."""

    async def count() -> dict[str, int]:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as connection:
                names = await connection.run_sync(lambda c: inspect(c).get_table_names())
                counts = {}
                for name in names:
                    table = Table(name, MetaData())
                    result = await connection.execute(select(func.count()).select_from(table))
                    counts[name] = result.scalar_one()
                return counts
        finally:
            await engine.dispose()

    counts: dict[str, int] = run(count())
    return counts


def pg_databases() -> set[str]:
    """The names of the databases on the PostgreSQL test server."""

    async def names() -> set[str]:
        engine = create_async_engine(pg_server_url())
        try:
            async with engine.connect() as connection:
                rows = await connection.scalars(text("SELECT datname FROM pg_database"))
                return set(rows)
        finally:
            await engine.dispose()

    found: set[str] = run(names())
    return found


AUDIT_CONFTEST = textwrap.dedent(
    """
    import json
    import os
    import pathlib

    import pytest
    from sqlalchemy import func, select

    from models import Base


    @pytest.fixture(scope="session", autouse=True)
    async def audit(db_engine):
        async def counts():
            async with db_engine.connect() as connection:
                return {
                    table.name: await connection.scalar(select(func.count()).select_from(table))
                    for table in Base.metadata.sorted_tables
                }

        before = await counts()
        yield
        after = await counts()
        report = {"before": before, "after": after, "checked_out": db_engine.pool.checkedout()}
        worker = os.environ.get("PYTEST_XDIST_WORKER")
        name = f"audit-{worker}.json" if worker else "audit.json"
        pathlib.Path(__file__).with_name(name).write_text(json.dumps(report))
    """
)


def seed_users(url: str, *names: str) -> None:
    """Create the `users` table outside any test session and commit rows in it."""
    metadata = MetaData()
    users = Table(
        "users",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("name", String(50), unique=True, nullable=False),
        Column("email", String(100), nullable=False),
        Column("active", Boolean, nullable=False),
        Column("role", String(20), nullable=False, server_default="member"),
    )

    async def go() -> None:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as connection:
                await connection.run_sync(metadata.create_all)
                rows = [
                    {"name": name, "email": f"{name}@example.com", "active": True} for name in names
                ]
                await connection.execute(insert(users), rows)
        finally:
            await engine.dispose()

    run(go())


# No logging sections: env.py's fileConfig() would fail on this file, so a
# run that passes proves the plugin skipped it.
ALEMBIC_INI = """
[alembic]
script_location = %(here)s/migrations
prepend_sys_path = .
path_separator = os
sqlalchemy.url = driver://user:pass@localhost/dbname
"""

# What `alembic init -t async` writes, without its comments.
ENV_PY = """
import asyncio
from logging.config import fileConfig

from sqlalchemy import pool
from sqlalchemy.ext.asyncio import async_engine_from_config

from alembic import context

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name)
target_metadata = None


def do_run_migrations(connection):
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations():
    connectable = async_engine_from_config(
        config.get_section(config.config_ini_section, {}),
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    async with connectable.connect() as connection:
        await connection.run_sync(do_run_migrations)
    await connectable.dispose()


asyncio.run(run_async_migrations())
"""
