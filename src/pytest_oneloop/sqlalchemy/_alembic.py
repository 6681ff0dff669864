"""The schema from Alembic migrations: `oneloop_db_schema = alembic:path/to/alembic.ini`.

`migrated` is what `db_engine` enters instead of creating `db_metadata`'s
tables. In order it:

1. runs `alembic upgrade head` against the engine's database (the xdist
   worker's own), with the project's alembic.ini and env.py, in a thread of
   its own: env.py as `alembic init -t async` writes it calls
   `asyncio.run()`, which cannot run on the session's loop. The plugin sets
   `sqlalchemy.url` to the test database, and hands env.py a Config without
   a file name, so that its `fileConfig(...)` leaves pytest's logging alone;
2. checks that the migrations did reach that database (an env.py that takes
   its URL from somewhere else would have migrated another one);
3. with `oneloop_db_check_migrations = true`, compares the migrated schema
   with `db_metadata` using Alembic's autogenerate comparison;

and at the end drops the tables the migrations created (the version table
included) and, on PostgreSQL, their enum types. A failing migration is
reported with its revision, taken from the log line Alembic writes before
running each one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_oneloop.sqlalchemy._config import INI_CHECK, INI_SCHEMA, fail, mask_url, require_for
from pytest_oneloop.sqlalchemy._engine import connect, reason

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from sqlalchemy import Connection, MetaData
    from sqlalchemy.ext.asyncio import AsyncEngine

_MIGRATION_LOGGER = "alembic.runtime.migration"


@contextlib.asynccontextmanager
async def migrated(
    engine: AsyncEngine, ini: Path, metadata: MetaData, *, check: bool
) -> AsyncIterator[None]:
    """The engine's database migrated to head for the block, then cleared (module docstring)."""
    __tracebackhide__ = True
    require_for(INI_SCHEMA, "alembic")
    async with connect(engine) as connection:
        before = await connection.run_sync(_objects)
    try:
        await migrate(engine, ini, metadata, check=check)
        yield
    finally:
        async with connect(engine) as connection:
            await connection.run_sync(_drop_new, before)
            await connection.commit()


async def migrate(engine: AsyncEngine, ini: Path, metadata: MetaData, *, check: bool) -> None:
    """`alembic upgrade head` on the engine's database, verified, and checked if `check`.

    What `migrated` does before its block; a template database gets only this.
    """
    __tracebackhide__ = True
    require_for(INI_SCHEMA, "alembic")
    config = _alembic_config(engine, ini)
    await _upgrade(engine, config)
    async with connect(engine) as connection:
        at_head = await connection.run_sync(_at_head, config)
        if not at_head:
            fail(
                f"oneloop: alembic upgrade head ran, but {mask_url(engine.url)!r} has no "
                f"Alembic version afterwards. env.py must connect with the URL the "
                "plugin sets, config.get_main_option('sqlalchemy.url') (as `alembic init "
                "-t async` writes it), not one of its own."
            )
        if check:
            differences = await connection.run_sync(_differences, metadata)
            if differences:
                listed = "\n".join(f"  {line}" for line in differences)
                fail(
                    f"oneloop: the schema the migrations of {str(ini)!r} build differs from "
                    f"db_metadata ({INI_CHECK} = true). What `alembic revision "
                    f"--autogenerate` would write:\n{listed}"
                )


def revision_fingerprint(ini: Path) -> list[str]:
    """What decides the migrated schema: alembic.ini and every Python file of the scripts.

    The script directory (env.py, the revisions, what they import from
    there) and the `version_locations` outside it, read as text rather than
    imported: a template or kept database made from the same files can be
    reused, and an edited revision changes them even when the heads do not.
    """
    __tracebackhide__ = True
    require_for(INI_SCHEMA, "alembic")
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config(str(ini))
    try:
        roots = [Path(ScriptDirectory.from_config(config).dir)]
    except Exception as exc:  # noqa: BLE001 - a missing script_location, a bad option...
        fail(f"oneloop: cannot read the migrations of {str(ini)!r}: {type(exc).__name__}: {exc}")
    locations = config.get_main_option("version_locations") or ""
    roots += [Path(part) for part in re.split(r"[\s,;:]+", locations) if part]
    files = {
        (str(path.relative_to(root)), path)
        for root in roots
        if root.is_dir()
        for path in root.rglob("*.py")
    }
    return [ini.read_text(), *(f"{name}\n{path.read_text()}" for name, path in sorted(files))]


def _alembic_config(engine: AsyncEngine, ini: Path) -> Any:
    from alembic.config import Config

    config = Config(str(ini))
    config.file_config  # noqa: B018 - read the file now, while its name is known
    config.config_file_name = None
    url = engine.url.render_as_string(hide_password=False)
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


async def _upgrade(engine: AsyncEngine, config: Any) -> None:
    """`alembic upgrade head`, in a thread; a failure names the revision and masks the URL."""
    __tracebackhide__ = True
    from alembic import command

    with _running_revisions() as running:
        try:
            await asyncio.to_thread(command.upgrade, config, "head")
        except Exception as exc:  # noqa: BLE001 - whatever a migration raises: one message
            where = f"the migration {running[-1]}" if running else "alembic upgrade head"
            fail(
                f"oneloop: {where} failed on {mask_url(engine.url)!r}: "
                f"{type(exc).__name__}: {reason(exc, engine.url)}"
            )


@contextlib.contextmanager
def _running_revisions() -> Iterator[list[str]]:
    """The revisions Alembic starts while the block runs, from its log, kept out of pytest's."""
    logger = logging.getLogger(_MIGRATION_LOGGER)
    running: list[str] = []

    class Recorder(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            message = record.getMessage()
            if message.startswith("Running upgrade "):
                # "Running upgrade 0001 -> 0002, add posts"
                _, _, step = message.partition("-> ")
                revision, _, doc = step.partition(", ")
                running.append(f"{revision} ({doc})" if doc else revision)

    handler = Recorder(logging.INFO)
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield running
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


def _objects(connection: Connection) -> tuple[set[str], set[str]]:
    """The tables of the default schema, and PostgreSQL's enum types."""
    from sqlalchemy import inspect

    inspector = inspect(connection)
    get_enums = getattr(inspector, "get_enums", None)
    enums: set[str] = {enum["name"] for enum in get_enums()} if get_enums else set()
    return set(inspector.get_table_names()), enums


def _at_head(connection: Connection, config: Any) -> bool:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    heads = set(ScriptDirectory.from_config(config).get_heads())
    current = set(MigrationContext.configure(connection).get_current_heads())
    return bool(current) and current == heads


def _differences(connection: Connection, metadata: MetaData) -> list[str]:
    """Alembic's autogenerate comparison, one line per difference."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    context = MigrationContext.configure(connection, opts={"compare_type": True})
    lines = []
    for difference in compare_metadata(context, metadata):
        changes = difference if isinstance(difference, list) else [difference]
        lines += [_describe(change) for change in changes]
    return lines


def _describe(change: tuple[Any, ...]) -> str:
    """`add_table users`, `add_column users.email`, `modify_type users.name: ... -> ...`."""
    kind = change[0]
    if kind in {"add_table", "remove_table"}:
        return f"{kind} {change[1].name}"
    if kind in {"add_column", "remove_column"}:
        return f"{kind} {change[2]}.{change[3].name}"
    if kind.startswith("modify_"):
        return f"{kind} {change[2]}.{change[3]}: {change[5]!r} -> {change[6]!r}"
    item = change[1]
    table = getattr(getattr(item, "table", None), "name", None)
    name = getattr(item, "name", None) or item
    return f"{kind} {name}" + (f" on {table}" if table else "")


def _drop_new(connection: Connection, before: tuple[set[str], set[str]]) -> None:
    """Drop the tables and enum types that were not there before the migrations."""
    from sqlalchemy import MetaData

    tables_before, enums_before = before
    reflected = MetaData()
    reflected.reflect(connection)
    new = [table for table in reflected.sorted_tables if table.name not in tables_before]
    reflected.drop_all(connection, tables=new)
    _, enums = _objects(connection)
    preparer = connection.dialect.identifier_preparer
    for enum in sorted(enums - enums_before):
        connection.exec_driver_sql(f"DROP TYPE IF EXISTS {preparer.quote(enum)}")
