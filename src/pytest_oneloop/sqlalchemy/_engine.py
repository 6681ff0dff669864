"""The session's engine: its database, its schema, and how it is cleaned up.

`session_engine` is what the `db_engine` fixture enters. In order it:

1. under pytest-xdist, makes the worker its own database (`<name>_gw0` on a
   server, `<stem>_gw0<suffix>` for a SQLite file), dropping a leftover one;
2. creates the engine, with the SQLite SAVEPOINT fix for pysqlite/aiosqlite,
   and, for a SQLite file in pytest's temporary directory, commits that do
   not wait for the disk;
3. creates the tables of the metadata that do not exist yet, or, with
   `oneloop_db_schema = alembic:PATH`, runs the migrations (`_alembic`);

and on the way out drops those tables, disposes of the engine and drops the
worker's database. Tables that existed before are left as they were, so
the database ends the session holding exactly what it held before.

On PostgreSQL under pytest-xdist, and with `--reuse-db`, steps 1 and 3 are
`_templates` instead: the worker's database is a copy of a template that
has the schema, and it may be kept for the next session.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_oneloop.sqlalchemy._config import (
    INSTALL_POSTGRES,
    INSTALL_SQLALCHEMY,
    URL_HELP,
    as_metadata,
    fail,
    mask_url,
    parse_url,
    require,
    scrub,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    import pytest
    from sqlalchemy import URL, Connection, Dialect, MetaData, Table
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

    from pytest_oneloop.sqlalchemy._templates import Build

_SQLITE_DRIVERS = frozenset({"aiosqlite", "pysqlite"})
_DRIVER_EXTRAS = {"asyncpg": INSTALL_POSTGRES, "aiosqlite": INSTALL_SQLALCHEMY}
_BACKGROUND = re.compile(r"\s*\(Background on this error at: \S+\)")
# PostgreSQL's SQLSTATEs for "must be a member of ... pg_signal_backend" and
# "database ... is being accessed by other users", and the pauses between the
# four attempts to drop a database still in use.
_INSUFFICIENT_PRIVILEGE = "42501"
_OBJECT_IN_USE = "55006"
_DROP_RETRY_PAUSES = (0.2, 0.5, 1.0)
#: The key of pytest-xdist's `workerinput` under which `_prebuild` hands its mark over.
PREBUILT_KEY = "oneloop_db_prebuilt"


def worker_id(config: pytest.Config) -> str | None:
    """The pytest-xdist worker this process is (`gw0`, ...), or None."""
    return _worker_input(config, "workerid")


def prebuilt_mark(config: pytest.Config) -> str | None:
    """The mark of the databases the xdist controller copied for its workers, or None."""
    return _worker_input(config, PREBUILT_KEY)


def _worker_input(config: pytest.Config, key: str) -> str | None:
    workerinput = getattr(config, "workerinput", None)
    value = workerinput.get(key) if isinstance(workerinput, dict) else None
    return value if isinstance(value, str) else None


def reason(exc: BaseException, url: URL) -> str:
    """The driver's one-line account of `exc`, without the password of `url`."""
    text = _BACKGROUND.sub("", str(exc)).strip().rstrip(".") or type(exc).__name__
    return scrub(text, url)


def make_engine(url: URL, *, durable: bool = True, **kwargs: Any) -> AsyncEngine:
    """An AsyncEngine for `url`; SQLite files get SAVEPOINTs that really nest.

    `durable=False` (a throwaway SQLite file): commits do not wait for the disk.
    """
    __tracebackhide__ = True
    require("sqlalchemy", "greenlet")
    from sqlalchemy.ext.asyncio import create_async_engine

    try:
        engine = create_async_engine(url, **kwargs)
    except ImportError as exc:
        driver = url.get_driver_name()
        if "+" not in url.drivername:
            fail(
                f"oneloop: the database URL {mask_url(url)!r} names no driver, and the default "
                f"one, {driver!r}, cannot be imported ({exc}). {URL_HELP}"
            )
        install = _DRIVER_EXTRAS.get(driver, f"install the {driver!r} package")
        fail(f"oneloop: the driver of {mask_url(url)!r} is not installed ({exc}): {install}")
    except Exception as exc:  # noqa: BLE001 - dialects refuse URLs with many exception types
        problem = reason(exc, url)
        fail(f"oneloop: cannot use the database URL {mask_url(url)!r}: {problem}. {URL_HELP}")
    if url.get_backend_name() == "sqlite" and url.get_driver_name() in _SQLITE_DRIVERS:
        _emit_begin_ourselves(engine, durable=durable)
    return engine


def _emit_begin_ourselves(engine: AsyncEngine, *, durable: bool) -> None:
    """SQLAlchemy's documented recipe so SQLite SAVEPOINTs join the transaction.

    sqlite3 (and aiosqlite over it) emits BEGIN only before DML, so on Python
    3.11 a SAVEPOINT opened first lives outside the test's transaction and the
    final ROLLBACK does not undo what was committed inside it. Taking BEGIN
    away from the driver and emitting it on SQLAlchemy's `begin` event fixes it.

    On aiosqlite the BEGIN is sent with the driver's own `execute_fetchall`:
    one call into the connection's thread, where a statement through
    SQLAlchemy's cursor takes three (open the cursor, execute, close it).
    Every test's outer transaction starts with it.

    A database that is not `durable` also gets `PRAGMA synchronous = OFF` on
    each connection: a COMMIT then leaves the writing to the operating system
    instead of waiting for the disk, which only a power cut can tell apart.
    """
    from sqlalchemy import event

    def on_connect(dbapi_connection: Any, _record: object) -> None:
        dbapi_connection.isolation_level = None
        if not durable:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA synchronous = OFF")
            cursor.close()

    def on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN")

    def on_begin_aiosqlite(connection: Connection) -> None:
        adapted = connection.connection.dbapi_connection
        adapted.run_async(lambda driver: driver.execute_fetchall("BEGIN"))  # type: ignore[union-attr]

    aiosqlite = engine.url.get_driver_name() == "aiosqlite"
    event.listen(engine.sync_engine, "connect", on_connect)
    event.listen(engine.sync_engine, "begin", on_begin_aiosqlite if aiosqlite else on_begin)


@contextlib.asynccontextmanager
async def connect(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection, or one clear failure naming the masked URL and the cause."""
    __tracebackhide__ = True
    try:
        connection = await engine.connect()
    except Exception as exc:  # noqa: BLE001 - refused, unknown host, bad password, TLS...
        problem = reason(exc, engine.url)
        fail(f"oneloop: cannot connect to the database {mask_url(engine.url)!r}: {problem}")
    try:
        yield connection
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def session_engine(  # noqa: PLR0913 - each is one setting of db_engine's
    url_value: str | URL,
    metadata_value: object,
    worker: str | None,
    scratch: Path,
    *,
    alembic: Path | None = None,
    check: bool = False,
    reuse: bool = False,
    templates: bool = True,
    prebuilt: str | None = None,
) -> AsyncIterator[AsyncEngine]:
    """The engine of the session: database, schema, then the cleanup (module docstring).

    `scratch` is pytest's temporary directory: a SQLite file in it is thrown
    away with it, so its commits need not wait for the disk. With `alembic`
    (an alembic.ini) the schema comes from its migrations, checked against
    the metadata when `check` is true, instead of from the metadata. On
    PostgreSQL, xdist workers copy their database from a template built once
    (unless `templates` is false), and `reuse` keeps the databases for the
    next session (`_templates`); `prebuilt` is the mark of the databases
    the xdist controller copied for its workers (`oneloop_db_prebuild`).
    """
    __tracebackhide__ = True
    url = parse_url(url_value)
    metadata = as_metadata(metadata_value, "the db_metadata fixture's value")
    if _on_server(url, "postgresql") and (reuse or (templates and worker is not None)):
        async with _copied_engine(
            url,
            metadata,
            worker,
            alembic,
            check=check,
            reuse=reuse,
            templates=templates,
            prebuilt=prebuilt,
        ) as engine:
            yield engine
        return
    async with _worker_database(url, worker) as test_url:
        engine = make_engine(test_url, durable=not _sqlite_file_in(test_url, scratch))
        try:
            if alembic is None:
                schema = _schema(engine, metadata)
            else:
                from pytest_oneloop.sqlalchemy._alembic import migrated

                schema = migrated(engine, alembic, metadata, check=check)
            async with schema:
                yield engine
        finally:
            await engine.dispose()


def _on_server(url: URL, backend: str) -> bool:
    return url.get_backend_name() == backend and bool(url.database)


@contextlib.asynccontextmanager
async def _copied_engine(  # noqa: PLR0913 - each is one setting of db_engine's
    url: URL,
    metadata: MetaData,
    worker: str | None,
    alembic: Path | None,
    *,
    check: bool,
    reuse: bool,
    templates: bool,
    prebuilt: str | None,
) -> AsyncIterator[AsyncEngine]:
    """The engine of a worker database made by `_templates`, which also drops it."""
    __tracebackhide__ = True
    from pytest_oneloop.sqlalchemy import _templates

    fingerprint_parts, build = schema_recipe(metadata, alembic, check=check)
    async with _templates.worker_database(
        url,
        worker or "main",
        fingerprint_parts,
        build,
        reuse=reuse,
        template=templates,
        prebuilt=prebuilt,
    ) as test_url:
        engine = make_engine(test_url)
        try:
            yield engine
        finally:
            await engine.dispose()


def schema_recipe(
    metadata: MetaData, alembic: Path | None, *, check: bool
) -> tuple[Callable[[Dialect], list[str]], Build]:
    """What decides a template's schema (its fingerprint's parts), and how to build it."""
    from pytest_oneloop.sqlalchemy import _alembic, _templates

    def fingerprint_parts(dialect: Dialect) -> list[str]:
        tables = _templates.metadata_ddl(metadata, dialect) if alembic is None or check else []
        return tables if alembic is None else [*_alembic.revision_fingerprint(alembic), *tables]

    async def build(engine: AsyncEngine) -> None:
        __tracebackhide__ = True
        if alembic is None:
            await _create_tables(engine, metadata)
        else:
            await _alembic.migrate(engine, alembic, metadata, check=check)

    return fingerprint_parts, build


def _sqlite_file_in(url: URL, directory: Path) -> bool:
    """Whether `url` is a SQLite database file inside `directory`."""
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return False
    if url.query.get("uri") or database.startswith("file:"):
        return False
    return Path(database).resolve().is_relative_to(directory.resolve())


@contextlib.asynccontextmanager
async def _schema(engine: AsyncEngine, metadata: MetaData) -> AsyncIterator[None]:
    created = await _create_tables(engine, metadata)
    try:
        yield
    finally:
        if created:
            async with connect(engine) as connection:
                await connection.run_sync(metadata.drop_all, tables=created)
                await connection.commit()


async def _create_tables(engine: AsyncEngine, metadata: MetaData) -> list[Table]:
    """Create the tables of `metadata` that do not exist yet; the ones it created."""
    __tracebackhide__ = True
    async with connect(engine) as connection:
        try:
            created = await connection.run_sync(_create_missing, metadata)
            await connection.commit()
        except Exception as exc:  # noqa: BLE001 - any DDL error becomes one clear failure
            fail(
                f"oneloop: cannot create the tables of db_metadata in {mask_url(engine.url)!r}: "
                f"{reason(exc, engine.url)}"
            )
    return created


def _create_missing(connection: Connection, metadata: MetaData) -> list[Table]:
    from sqlalchemy import inspect

    inspector = inspect(connection)
    missing = [
        table
        for table in metadata.sorted_tables
        if not inspector.has_table(table.name, schema=table.schema)
    ]
    metadata.create_all(connection, tables=missing)
    return missing


@contextlib.asynccontextmanager
async def _worker_database(url: URL, worker: str | None) -> AsyncIterator[URL]:
    if worker is None or not url.database or url.database == ":memory:":
        yield url
    elif url.get_backend_name() == "sqlite":
        if url.query.get("uri") or url.database.startswith("file:"):
            yield url
            return
        path = Path(url.database)
        path = path.with_name(f"{path.stem}_{worker}{path.suffix}")
        _remove_sqlite_files(path)
        try:
            yield url.set(database=str(path))
        finally:
            _remove_sqlite_files(path)
    else:
        name = f"{url.database}_{worker}"
        admin = make_engine(url, isolation_level="AUTOCOMMIT", poolclass=null_pool())
        try:
            await _recreate_database(admin, name)
            try:
                yield url.set(database=name)
            finally:
                await _drop_with(admin, name)
        finally:
            await admin.dispose()


def null_pool() -> type[Any]:
    from sqlalchemy.pool import NullPool

    return NullPool


def _remove_sqlite_files(path: Path) -> None:
    for suffix in ("", "-journal", "-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


async def _recreate_database(admin: AsyncEngine, name: str) -> None:
    async with connect(admin) as connection:
        await drop_database(connection, name)
        quoted = connection.dialect.identifier_preparer.quote(name)
        try:
            await connection.exec_driver_sql(f"CREATE DATABASE {quoted}")
        except Exception as exc:  # noqa: BLE001 - permissions, templates in use, ...
            fail(
                f"oneloop: cannot create the pytest-xdist worker database {name!r} with "
                f"{mask_url(admin.url)!r}: {reason(exc, admin.url)}. The user needs the "
                "right to create databases (PostgreSQL: ALTER ROLE ... CREATEDB)."
            )


async def _drop_with(admin: AsyncEngine, name: str) -> None:
    async with connect(admin) as connection:
        await drop_database(connection, name)


async def drop_database(connection: AsyncConnection, name: str) -> None:
    """Drop the database `name` if it exists, even with a connection a test leaked in it.

    On PostgreSQL 13+ `WITH (FORCE)` ends the other sessions in the database.
    Before PostgreSQL 17 it refuses to end an autovacuum worker unless the
    user is a member of pg_signal_backend; a plain DROP DATABASE then asks
    autovacuum to leave by itself (and waits up to 5 s for other sessions).
    While the database is still in use, both are tried again after a pause:
    once autovacuum is gone, the forced drop ends a leaked connection too.
    """
    quoted = connection.dialect.identifier_preparer.quote(name)
    statement = f"DROP DATABASE IF EXISTS {quoted}"
    version = connection.dialect.server_version_info or ()
    if connection.dialect.name != "postgresql" or version < (13,):
        await connection.exec_driver_sql(statement)
        return
    forced = f"{statement} WITH (FORCE)"
    for pause in _DROP_RETRY_PAUSES:
        if await execute_unless(connection, forced, _INSUFFICIENT_PRIVILEGE):
            return
        if await execute_unless(connection, statement, _OBJECT_IN_USE):
            return
        await asyncio.sleep(pause)
    if not await execute_unless(connection, forced, _INSUFFICIENT_PRIVILEGE):
        await connection.exec_driver_sql(statement)


async def execute_unless(connection: AsyncConnection, sql: str, sqlstate: str) -> bool:
    """Execute `sql`: True if it succeeded, False if it failed with `sqlstate` (not raised)."""
    try:
        await connection.exec_driver_sql(sql)
    except Exception as exc:
        if sqlstate_of(exc) != sqlstate:
            raise
        await connection.rollback()
        return False
    return True


def sqlstate_of(exc: BaseException) -> str | None:
    """The SQLSTATE of a DBAPI error wrapped by SQLAlchemy (asyncpg and psycopg)."""
    orig = getattr(exc, "orig", None)
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return code if isinstance(code, str) else None
