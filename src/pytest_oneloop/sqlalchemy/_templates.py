"""Worker databases on PostgreSQL copied from a template, and kept with `--reuse-db`.

Under pytest-xdist every worker needs the schema in a database of its own.
Building it (DDL, or fifty migrations) in each one costs the same work
four times over; `CREATE DATABASE ... TEMPLATE` copies the files of a
database that has it instead. So the first worker builds the schema once,
in `<name>_tpl_<fingerprint>`, and every worker copies it into
`<name>_gw<N>`. The fingerprint is a hash of what decides the schema: the
DDL of db_metadata, or the Alembic heads with the text of every revision
and of env.py (and db_metadata's DDL too when the check is on, so a model
changed without its migration is checked again).

The workers of one session start together, and other sessions may use the
same server, so every step is arbitrated by PostgreSQL advisory locks on
the connection each worker holds to the configured database for the whole
session (a crashed process loses its connection, and its locks with it):

- the *build lock*, one per configured database, exclusive: taken while a
  worker claims its database, drops stale ones or builds the template,
  and at the end while it decides whether to drop the template;
- a *claim* on each worker database, exclusive, held for the session: a
  second session that would use `<name>_gw0` at the same time is refused
  rather than allowed to drop it under the first one. Dropping a stale
  database takes the same lock for a moment, always under the build lock,
  so a claim (made under it too) never mistakes that for a session;
- a *share* of the template, shared, held by each worker that copied it:
  with its claim, it lets the workers copy the template side by side,
  outside the build lock.

Stale means unclaimed, or unshared: what a crashed session left. At start,
under the build lock, each worker drops the templates of other
fingerprints that no worker shares, a template whose build never finished,
and the worker databases nobody claims (with `--reuse-db`, those finished
with the current fingerprint are kept). At the end it drops its own
database and, if it is the last one to share the template, the template.

With `--reuse-db` nothing is dropped at the end: each worker database is
marked, in its PostgreSQL comment, with the fingerprint it was built with
once the session has finished with it, and the next session with the same
fingerprint uses it as it is. The mark is removed when a session starts
using the database, so one that crashed leaves it unmarked, and rebuilt.

With `oneloop_db_prebuild` the xdist controller does the building before
its workers start (`shared_template`): under the build lock it builds the
template, takes a share of it, and copies it into every worker database
that no session claims, each marked in its comment with the fingerprint
and a mark of this session that the controller hands its workers. A
worker that finds its database so marked takes it as it is, as it would a
kept one; other workers, and the next session, see it as one more worker
database that must not be dropped while the mark is this session's. At
the end the controller drops the copies no worker took, then gives its
share up like a worker.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import zlib
from typing import TYPE_CHECKING, Any

from pytest_oneloop.sqlalchemy._config import fail, mask_url
from pytest_oneloop.sqlalchemy._engine import (
    connect,
    drop_database,
    make_engine,
    null_pool,
    reason,
    sqlstate_of,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from sqlalchemy import URL, Dialect, MetaData
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

    #: Builds the schema in the database of the engine it is given.
    Build = Callable[[AsyncEngine], Awaitable[None]]

#: The first key of every advisory lock the plugin takes ("onel").
LOCK_CLASS = 0x6F6E656C
#: The start of every database comment: a new format makes every kept database stale.
_FORMAT = "pytest-oneloop 1"
# PostgreSQL's longest identifier, in bytes, and the hex digits of a fingerprint.
_MAX_NAME = 63
_FINGERPRINT_LENGTH = 12
# How long a worker waits for another to build the template, unless the
# server or role sets a lock_timeout of its own.
BUILD_WAIT = "600s"
_LOCK_NOT_AVAILABLE = "55P03"
_OBJECT_IN_USE = "55006"


def fingerprint(parts: list[str]) -> str:
    """The hash the template's name carries: the first hex digits of sha256."""
    digest = hashlib.sha256("\0".join([_FORMAT, *parts]).encode())
    return digest.hexdigest()[:_FINGERPRINT_LENGTH]


def metadata_ddl(metadata: MetaData, dialect: Dialect) -> list[str]:
    """The CREATE statements of `metadata` for `dialect`, and its column types in full.

    The types' reprs add what DDL leaves out, such as an enum's values.
    """
    from sqlalchemy.schema import CreateIndex, CreateTable

    parts = []
    for table in metadata.sorted_tables:
        parts.append(str(CreateTable(table).compile(dialect=dialect)))
        parts += sorted(str(CreateIndex(index).compile(dialect=dialect)) for index in table.indexes)
        parts += [f"{column.name}: {column.type!r}" for column in table.columns]
    return parts


def lock_key(name: str) -> int:
    """The second key of the advisory lock on `name`, as PostgreSQL's signed int4."""
    key = zlib.crc32(name.encode())
    return key - (1 << 32) if key >= 1 << 31 else key


def template_name(database: str, fingerprint_: str) -> str:
    """`<database>_tpl_<fingerprint>`, the database's name shortened to fit."""
    suffix = f"_tpl_{fingerprint_}"
    stem = database.encode()[: _MAX_NAME - len(suffix)].decode(errors="ignore")
    return stem + suffix


def build_lock_name(database: str) -> str:
    """What the build lock of the configured database `database` is taken on."""
    return f"build {database}"


@contextlib.asynccontextmanager
async def worker_database(  # noqa: PLR0913 - each is one setting of the worker's database
    url: URL,
    worker: str,
    fingerprint_parts: Callable[[Dialect], list[str]],
    build: Build,
    *,
    reuse: bool,
    template: bool,
    prebuilt: str | None = None,
) -> AsyncIterator[URL]:
    """The URL of the worker's database, with the schema, for the block (module docstring).

    `template=False` builds the schema in the worker's database itself,
    which `--reuse-db` can still keep. `prebuilt` is the mark of the
    session's controller (`shared_template`): a database it copied for
    this worker is used as it is.
    """
    __tracebackhide__ = True
    assert url.database  # noqa: S101 - the caller sends only server databases here
    admin = make_engine(url, isolation_level="AUTOCOMMIT", poolclass=null_pool())
    try:
        async with connect(admin) as connection:
            marks = _Marks(
                url.database, worker, fingerprint(fingerprint_parts(admin.dialect)), prebuilt
            )
            async with _build_lock(connection, marks, url):
                await _claim(connection, marks, url)
                await _drop_stale(connection, marks, reuse=reuse)
                comment = await _comment(connection, marks.worker)
                reused = (reuse and comment == marks.finished) or marks.is_copy(comment)
                if reused:
                    await _set_comment(connection, marks.worker, None)
                elif template:
                    await _build_template(connection, url, marks, build)
            # The claim keeps the worker's database, and the share the template,
            # from any other worker: the copies run side by side.
            if not reused:
                await drop_database(connection, marks.worker)
                await _create(
                    connection,
                    url,
                    marks.worker,
                    marks.what,
                    template=marks.template if template else None,
                )
                if not template:
                    await _build_in(url.set(database=marks.worker), build)
            finished = False
            try:
                yield url.set(database=marks.worker)
                finished = True
            finally:
                if reuse and finished:
                    await _set_comment(connection, marks.worker, marks.finished)
                elif not reuse:
                    await drop_database(connection, marks.worker)
                    if template and not reused:  # it shares the template: it copied it
                        async with _build_lock(connection, marks, url):
                            await _drop_template_if_last(connection, marks)
    finally:
        await admin.dispose()


@contextlib.asynccontextmanager
async def shared_template(  # noqa: PLR0913 - each is one setting of the workers' databases
    url: URL,
    fingerprint_parts: Callable[[Dialect], list[str]],
    build: Build,
    *,
    reuse: bool,
    workers: list[str],
    mark: str,
) -> AsyncIterator[None]:
    """The template, and a copy of it for each of `workers`, made before any worker asks.

    The xdist controller's part when `oneloop_db_prebuild` is on (`_prebuild`).
    Under the build lock, as a worker would, it builds the template unless
    a finished one exists and takes a share of it. Then it copies it into
    each worker's database that no running session claims (a kept one
    that `reuse` can use as it is is left alone), and comments each copy
    with `mark`, which the controller hands its workers: a worker that
    finds its database so marked, under the build lock, takes it as it is.
    At the end, under the build lock again, it drops the copies no worker
    took and, unless `reuse`, the template if it is the last to share it.
    """
    __tracebackhide__ = True
    assert url.database  # noqa: S101 - the caller sends only server databases here
    admin = make_engine(url, isolation_level="AUTOCOMMIT", poolclass=null_pool())
    try:
        async with connect(admin) as connection:
            marks = _Marks(url.database, "", fingerprint(fingerprint_parts(admin.dialect)), mark)
            names = [f"{url.database}_{worker}" for worker in workers]
            async with _build_lock(connection, marks, url):
                await _build_template(connection, url, marks, build)
                for name in names:
                    await _copy_ahead(connection, url, marks, name, reuse=reuse)
            try:
                yield
            finally:
                async with _build_lock(connection, marks, url):
                    for name in names:
                        await _drop_if_untaken(connection, marks, name)
                    if not reuse:
                        await _drop_template_if_last(connection, marks)
    finally:
        await admin.dispose()


async def _copy_ahead(
    connection: AsyncConnection, url: URL, marks: _Marks, name: str, *, reuse: bool
) -> None:
    """Copy the template into the worker database `name`, marked, unless it is in use or kept."""
    __tracebackhide__ = True
    if not await _try_lock(connection, name):
        return  # another running session's
    try:
        if reuse and await _comment(connection, name) == marks.finished:
            return
        await drop_database(connection, name)
        await _create(connection, url, name, marks.what, template=marks.template)
        await _set_comment(connection, name, marks.copied)
    finally:
        await _unlock(connection, name)


async def _drop_if_untaken(connection: AsyncConnection, marks: _Marks, name: str) -> None:
    """Drop a copy `_copy_ahead` made that no worker took (it is still marked)."""
    if marks.is_copy(await _comment(connection, name)):
        await _drop_unclaimed(connection, name)


class _Marks:
    """The names of a worker's databases, and the comments that mark them finished."""

    def __init__(
        self, database: str, worker: str, fingerprint_: str, prebuilt: str | None = None
    ) -> None:
        self.database = database
        self.worker = f"{database}_{worker}"
        self.what = "the database" if worker == "main" else "the pytest-xdist worker database"
        self.template = template_name(database, fingerprint_)
        self.built = f"{_FORMAT} template {fingerprint_}"
        self.finished = f"{_FORMAT} reusable {fingerprint_}"
        # A copy the controller made for this session's workers (shared_template).
        self.copied = None if prebuilt is None else f"{_FORMAT} copy {fingerprint_} {prebuilt}"
        template_stem = self.template.removesuffix(f"_tpl_{fingerprint_}")
        self.stale_template = re.compile(rf"{re.escape(template_stem)}_tpl_[0-9a-f]+")
        self.stale_worker = re.compile(rf"{re.escape(database)}_(gw[0-9]+|main)")

    def is_copy(self, comment: str | None) -> bool:
        """Whether `comment` marks a copy the controller made for this session's workers."""
        return self.copied is not None and comment == self.copied


async def _try_lock(connection: AsyncConnection, name: str, *, shared: bool = False) -> bool:
    function = "pg_try_advisory_lock_shared" if shared else "pg_try_advisory_lock"
    result = await connection.exec_driver_sql(f"SELECT {function}({LOCK_CLASS}, {lock_key(name)})")
    return bool(result.scalar())


async def _unlock(connection: AsyncConnection, name: str, *, shared: bool = False) -> None:
    function = "pg_advisory_unlock_shared" if shared else "pg_advisory_unlock"
    await connection.exec_driver_sql(f"SELECT {function}({LOCK_CLASS}, {lock_key(name)})")


async def _claim(connection: AsyncConnection, marks: _Marks, url: URL) -> None:
    """Hold the worker's database for the session, or fail if another session holds it."""
    __tracebackhide__ = True
    if not await _try_lock(connection, marks.worker):
        fail(
            f"oneloop: the database {marks.worker!r} on {mask_url(url)!r} is in use by another "
            "pytest session that is still running (it holds the database's advisory lock). "
            "Wait for it to end, or give this session a database of its own with --db-url."
        )


@contextlib.asynccontextmanager
async def _build_lock(connection: AsyncConnection, marks: _Marks, url: URL) -> AsyncIterator[None]:
    """The build lock of the configured database, waited for up to BUILD_WAIT."""
    __tracebackhide__ = True
    name = build_lock_name(marks.database)
    timeout = (await connection.exec_driver_sql("SHOW lock_timeout")).scalar()
    if timeout in {"0", None}:
        await connection.exec_driver_sql(f"SET lock_timeout = '{BUILD_WAIT}'")
        timeout = BUILD_WAIT
    try:
        await connection.exec_driver_sql(f"SELECT pg_advisory_lock({LOCK_CLASS}, {lock_key(name)})")
    except Exception as exc:
        if sqlstate_of(exc) != _LOCK_NOT_AVAILABLE:
            raise
        fail(
            f"oneloop: waited {timeout} (lock_timeout) for another pytest session or xdist "
            f"worker to finish with the template databases of {mask_url(url)!r} (building "
            "one, or dropping stale ones). It is still at it, or stuck: pg_stat_activity "
            "shows what it runs."
        )
    try:
        yield
    finally:
        await _unlock(connection, name)


async def _databases(connection: AsyncConnection) -> dict[str, str | None]:
    """Every database on the server, with its comment."""
    result = await connection.exec_driver_sql(
        "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database"
    )
    rows: list[Any] = list(result.all())
    return {str(name): comment for name, comment in rows}


async def _comment(connection: AsyncConnection, name: str) -> str | None:
    comment: str | None = (await _databases(connection)).get(name)
    return comment


async def _set_comment(connection: AsyncConnection, name: str, comment: str | None) -> None:
    quoted = connection.dialect.identifier_preparer.quote(name)
    value = "NULL" if comment is None else "'" + comment.replace("'", "''") + "'"
    await connection.exec_driver_sql(f"COMMENT ON DATABASE {quoted} IS {value}")


async def _drop_stale(connection: AsyncConnection, marks: _Marks, *, reuse: bool) -> None:
    """Drop what crashed or finished sessions left that nobody uses (module docstring)."""
    for name, comment in (await _databases(connection)).items():
        if name in {marks.worker, marks.database}:
            continue
        if marks.stale_worker.fullmatch(name):
            keep = (reuse and comment == marks.finished) or marks.is_copy(comment)
        elif marks.stale_template.fullmatch(name):
            keep = name == marks.template and comment == marks.built
        else:
            continue
        if not keep:
            await _drop_unclaimed(connection, name)


async def _drop_unclaimed(connection: AsyncConnection, name: str) -> None:
    """Drop the database `name` unless a running session claims it; under the build lock."""
    if await _try_lock(connection, name):
        try:
            await drop_database(connection, name)
        finally:
            await _unlock(connection, name)


async def _build_template(
    connection: AsyncConnection, url: URL, marks: _Marks, build: Build
) -> None:
    """Share the template, building it first if no finished one exists."""
    __tracebackhide__ = True
    # Only a worker dropping the template holds it exclusively, and only under
    # the build lock, which this one holds: this never waits.
    await connection.exec_driver_sql(
        f"SELECT pg_advisory_lock_shared({LOCK_CLASS}, {lock_key(marks.template)})"
    )
    if await _comment(connection, marks.template) == marks.built:
        return
    await drop_database(connection, marks.template)
    await _create(connection, url, marks.template, "the template database")
    try:
        await _build_in(url.set(database=marks.template), build)
    except BaseException:
        await drop_database(connection, marks.template)
        raise
    await _set_comment(connection, marks.template, marks.built)


async def _build_in(url: URL, build: Build) -> None:
    """Build the schema in the database at `url`; no connection to it is left open."""
    __tracebackhide__ = True
    engine = make_engine(url, poolclass=null_pool())
    try:
        await build(engine)
    finally:
        await engine.dispose()


async def _create(
    connection: AsyncConnection, url: URL, name: str, what: str, *, template: str | None = None
) -> None:
    """CREATE DATABASE `name`, copied from `template` if given, or one clear failure."""
    __tracebackhide__ = True
    preparer = connection.dialect.identifier_preparer
    statement = f"CREATE DATABASE {preparer.quote(name)}"
    if template is not None:
        statement += f" TEMPLATE {preparer.quote(template)}"
    try:
        await connection.exec_driver_sql(statement)
    except Exception as exc:  # noqa: BLE001 - permissions, a template in use, the disk...
        copied = f" from the template {template!r}" if template else ""
        if sqlstate_of(exc) == _OBJECT_IN_USE:
            advice = (
                f"A connection to {template!r} that the plugin did not open is in the way: "
                "close it (pg_stat_activity shows it)."
            )
        else:
            advice = (
                "The user needs the right to create databases (PostgreSQL: ALTER ROLE ... "
                "CREATEDB)."
            )
        # The statement is what the message says already.
        problem = reason(exc, url).partition("\n[SQL: ")[0].rstrip(".")
        fail(
            f"oneloop: cannot create {what} {name!r}{copied} with {mask_url(url)!r}: "
            f"{problem}. {advice}"
        )


async def _drop_template_if_last(connection: AsyncConnection, marks: _Marks) -> None:
    """Drop the template once no worker of any session shares it any more."""
    await _unlock(connection, marks.template, shared=True)
    if await _try_lock(connection, marks.template):
        try:
            await drop_database(connection, marks.template)
        finally:
            await _unlock(connection, marks.template)
