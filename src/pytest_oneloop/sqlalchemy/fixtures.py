"""The database fixtures, their options and the report-header line.

Each fixture is a thin wrapper whose docstring is its user documentation
(`pytest --fixtures`); the work is in `_config`, `_engine`, `_session`,
`_factory`, `_queries` and `_commit`. Only `_config` (options, marker,
header line) is imported with the plugin; the others, and SQLAlchemy, when a
fixture is set up.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

import pytest

from pytest_oneloop._markers import marker_names
from pytest_oneloop.sqlalchemy import _config

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from sqlalchemy import URL, MetaData
    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

    from pytest_oneloop.sqlalchemy._factory import PersistingFactory
    from pytest_oneloop.sqlalchemy._queries import QueryCounter

#: The fixture each `db_commit` test gets: it empties the tables afterwards.
COMMIT_FIXTURE = "_oneloop_db_commit"


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register `--db-url` and the ini options `oneloop_db_*`."""
    group = parser.getgroup("oneloop")
    group.addoption(
        "--db-url",
        dest="oneloop_db_url",
        metavar="URL",
        default=None,
        help="Database for the DB fixtures, e.g. postgresql+asyncpg://user:pw@host/test. "
        f"Overrides the {_config.ENV_URL} environment variable and the {_config.INI_URL} "
        "ini option.",
    )
    parser.addini(
        _config.INI_URL,
        "Database URL for the DB fixtures (default: a temporary SQLite file).",
        default="",
    )
    parser.addini(
        _config.INI_METADATA,
        "Tables the DB fixtures create, as 'package.module:Base' (DeclarativeBase or MetaData).",
        default="",
    )
    parser.addini(
        _config.INI_SCHEMA,
        "How db_engine builds the schema: 'metadata' (create db_metadata's tables, the "
        "default) or 'alembic:PATH' (alembic upgrade head with the alembic.ini at PATH).",
        default="metadata",
    )
    # pytest-django has a `--reuse-db` of the same meaning; declaring it twice
    # would stop pytest, whichever plugin loads second. With it installed, the
    # flag is pytest-django's, and `_config.reuse_db` reads it from there.
    if importlib.util.find_spec("pytest_django") is None:
        group.addoption(
            "--reuse-db",
            dest="oneloop_reuse_db",
            action="store_true",
            default=None,
            help="PostgreSQL: keep the test databases for the next run, which uses them as "
            "they are unless the schema changed. Overrides the oneloop_db_reuse ini option.",
        )
    parser.addini(
        _config.INI_REUSE,
        "PostgreSQL: keep the test databases between runs, rebuilt when the schema changes "
        "(like --reuse-db).",
        type="bool",
        default=False,
    )
    parser.addini(
        _config.INI_TEMPLATES,
        "PostgreSQL under pytest-xdist: build the schema once in a template database and copy "
        "it for each worker (default); false: build it in each worker's database.",
        type="bool",
        default=True,
    )
    parser.addini(
        _config.INI_PREBUILD,
        "PostgreSQL under pytest-xdist: the controller builds the template while the workers "
        "start, from the configured URL and oneloop_db_metadata (default: false).",
        type="bool",
        default=False,
    )
    parser.addini(
        _config.INI_CHECK,
        "With oneloop_db_schema = alembic:PATH, fail if the migrated schema differs from "
        "db_metadata (Alembic's autogenerate comparison).",
        type="bool",
        default=False,
    )


def pytest_configure(config: pytest.Config) -> None:
    """Declare the `db_commit` marker."""
    config.addinivalue_line("markers", _config.COMMIT_MARKER_HELP)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give each `db_commit` test, first of all, the fixture that empties the tables after it.

    First, so that it is torn down last: after db_session and every other
    fixture of the test has closed its connection. Each marked test gets a
    list of its own, since parametrized tests share theirs; the other tests
    are left as they are and pay nothing.
    """
    for item in items:
        if (
            isinstance(item, pytest.Function)
            and _config.COMMIT_MARKER in marker_names(item)
            and COMMIT_FIXTURE not in item.fixturenames
        ):
            item.fixturenames = [COMMIT_FIXTURE, *item.fixturenames]


def pytest_sessionstart(session: pytest.Session) -> None:
    """With `oneloop_db_prebuild`, the xdist controller starts building (`_prebuild`)."""
    config = session.config
    if config.getini(_config.INI_PREBUILD):
        from pytest_oneloop.sqlalchemy import _prebuild

        if _prebuild.wanted(config):
            config.pluginmanager.register(_prebuild.Prebuild(config), "oneloop-db-prebuild")


def pytest_report_header(config: pytest.Config) -> str | None:
    """`oneloop: db=<url with the password masked>` when a URL is configured."""
    url = _config.configured_url(config)
    return None if url is None else f"oneloop: db={_config.mask_url(url)}"


@pytest.fixture(scope="session")
def db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> URL:
    """The database URL, a SQLAlchemy URL whose repr and str hide the password.

    From --db-url, else the ONELOOP_DB_URL environment variable, else the
    oneloop_db_url ini option, else a new SQLite file in pytest's temporary
    directory (sqlite+aiosqlite:///...). Override it to compute the URL;
    returning a string is fine. Under pytest-xdist the database actually used
    is the worker's own: see db_engine.
    """
    return _config.resolve_url(request.config, tmp_path_factory)


@pytest.fixture(scope="session")
def db_metadata(request: pytest.FixtureRequest) -> MetaData:
    """The MetaData whose tables db_engine creates.

    From the ini option `oneloop_db_metadata = package.module:Base`, a
    DeclarativeBase or a MetaData. Override it to return either in code.
    """
    return _config.load_metadata(request.config)


@pytest.fixture(scope="session")
async def db_engine(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    db_url: URL | str,
    db_metadata: MetaData,
) -> AsyncIterator[AsyncEngine]:
    """The session's AsyncEngine for db_url, with db_metadata's tables.

    Creates the tables that do not exist yet, drops them at the end and
    disposes of the engine; tables that existed are left as they were.
    With the ini option `oneloop_db_schema = alembic:path/to/alembic.ini`
    it runs `alembic upgrade head` instead (env.py gets the test database's
    URL as sqlalchemy.url), and drops what the migrations created at the
    end; `oneloop_db_check_migrations = true` also compares the migrated
    schema with db_metadata and fails on any difference.
    Under pytest-xdist each worker uses its own database, created at start
    and dropped at the end: `<name>_gw0`, ... on a server, `<file>_gw0.db`
    for SQLite. On PostgreSQL the schema is built once, in a template
    database that each worker's is copied from, and `--reuse-db` (ini
    `oneloop_db_reuse`) keeps the databases for the next run as long as the
    schema is the same. `db_engine.url` is the database in use. A SQLite file in
    pytest's temporary directory (the default) is set to
    `PRAGMA synchronous = OFF`: its commits do not wait for the disk.
    """
    from pytest_oneloop.sqlalchemy import _engine

    config = request.config
    alembic = _config.alembic_ini(config)
    check = bool(config.getini(_config.INI_CHECK))
    worker = _engine.worker_id(config)
    scratch = tmp_path_factory.getbasetemp()
    async with _engine.session_engine(
        db_url,
        db_metadata,
        worker,
        scratch,
        alembic=alembic,
        check=check,
        reuse=_config.reuse_db(config),
        templates=bool(config.getini(_config.INI_TEMPLATES)),
        prebuilt=_engine.prebuilt_mark(config),
    ) as engine:
        yield engine


@pytest.fixture
async def db_session(
    request: pytest.FixtureRequest, db_engine: AsyncEngine
) -> AsyncIterator[AsyncSession]:
    """An AsyncSession whose work is rolled back after the test, whatever it did.

    Bound to a connection inside an outer transaction with
    join_transaction_mode="create_savepoint": commit() and rollback() work
    on SAVEPOINTs, and the outer transaction is rolled back at teardown.
    expire_on_commit is False. To make the application's own
    async_sessionmaker write in the same transaction, configure it with
    bind=db_session.bind and join_transaction_mode="create_savepoint".
    In a test marked @pytest.mark.db_commit, the connection has no outer
    transaction: commit() commits for real, and every table of db_metadata
    is emptied after the test.
    """
    if request.node.get_closest_marker(_config.COMMIT_MARKER) is not None:
        from pytest_oneloop.sqlalchemy import _commit

        async with _commit.committing_session(db_engine) as session:
            yield session
        return
    from pytest_oneloop.sqlalchemy import _session

    async with _session.rolled_back_session(db_engine) as session:
        yield session


@pytest.fixture(name=COMMIT_FIXTURE)
async def emptied_tables(
    request: pytest.FixtureRequest, db_engine: AsyncEngine, db_metadata: MetaData
) -> AsyncIterator[None]:
    """For a test marked db_commit: the tables are empty before it, and emptied after it."""
    from pytest_oneloop.sqlalchemy import _commit

    metadata = _config.as_metadata(db_metadata, "the db_metadata fixture's value")
    async with _commit.emptied_afterwards(db_engine, metadata, request.node.nodeid):
        yield


@pytest.fixture
def factory(db_session: AsyncSession) -> PersistingFactory:
    """Persists what factory_boy factories build into db_session.

    `user = await factory(UserFactory, name="ann")` builds with the factory
    (SubFactory, RelatedFactory, post_generation with create=True,
    LazyAttribute, Sequence, Trait), adds the whole object graph to
    db_session and flushes, so keys and defaults are set.
    `await factory.batch(UserFactory, 10, **overrides)` makes a list.
    """
    from pytest_oneloop.sqlalchemy import _factory

    return _factory.PersistingFactory(db_session)


@pytest.fixture
def db_queries(db_session: AsyncSession) -> QueryCounter:
    """Counts the SQL statements db_session's connection executes, to catch N+1 queries.

    `async with db_queries() as q: ...`, then `q.count` and `q.statements`
    (the SQL text of each statement, in order). `async with
    db_queries.assert_max(3): ...` fails the test, listing the statements,
    if the block executed more than 3. Plain `with` works too. Not counted:
    SAVEPOINT, RELEASE and ROLLBACK TO SAVEPOINT (what db_session's commit
    and rollback cost inside the test's transaction), BEGIN and COMMIT.
    The application's sessions bound to db_session.bind are counted; other
    connections, such as db_engine.connect(), are not.
    """
    from pytest_oneloop.sqlalchemy import _queries

    return _queries.QueryCounter(_queries.connection_of(db_session))
