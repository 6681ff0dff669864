"""What the user configured for the database fixtures, and how it is shown.

The URL comes from `--db-url`, the `ONELOOP_DB_URL` environment variable or
the `oneloop_db_url` ini option; the tables from `oneloop_db_metadata`, and
how they are built from `oneloop_db_schema` (`metadata`, or
`alembic:path/to/alembic.ini`); the tests that commit for real are marked
`db_commit`.
Everything here that runs at start-up (the report header) works on plain
strings, so SQLAlchemy is imported only once a DB fixture is set up. A URL
is never shown with its password: `mask_url` and `scrub` are applied to every
message that may contain one.
"""

from __future__ import annotations

import importlib
import os
import re
import urllib.parse
from typing import TYPE_CHECKING, NoReturn

import pytest

from pytest_oneloop._imports import import_object

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

    from sqlalchemy import URL, MetaData

ENV_URL = "ONELOOP_DB_URL"
INI_URL = "oneloop_db_url"
INI_METADATA = "oneloop_db_metadata"
INI_SCHEMA = "oneloop_db_schema"
INI_CHECK = "oneloop_db_check_migrations"
INI_REUSE = "oneloop_db_reuse"
INI_TEMPLATES = "oneloop_db_templates"
INI_PREBUILD = "oneloop_db_prebuild"
COMMIT_MARKER = "db_commit"
COMMIT_MARKER_HELP = (
    f"{COMMIT_MARKER}: db_session commits for real (no outer transaction), and every table "
    "of db_metadata is emptied after the test."
)
INSTALL_SQLALCHEMY = "pip install 'pytest-oneloop[sqlalchemy]'"
INSTALL_POSTGRES = "pip install 'pytest-oneloop[postgres]'"
URL_HELP = (
    "Expected dialect+driver://user:password@host:port/database with an async driver, "
    "e.g. postgresql+asyncpg://user:password@localhost/test or sqlite+aiosqlite:///test.db"
)
NO_METADATA = (
    "oneloop: the database fixtures need the tables to create, and none are configured. "
    f"Set the ini option {INI_METADATA} = package.module:Base (a DeclarativeBase or a "
    "MetaData), or override the db_metadata fixture in conftest.py."
)

# Everything between "user:" and the last "@" is the password: overmasking
# an odd URL is better than leaking part of a password that contains "@".
_USERINFO = re.compile(
    r"^(?P<head>[^:/?#]+://[^:/?#@]*):(?P<password>.*)@(?P<tail>[^@]*)$", re.DOTALL
)
_SCHEME = re.compile(r"^[\w+.-]+://")
UNPARSEABLE = "<not a URL, not shown in case it holds a password>"
_QUERY_PASSWORD = re.compile(r"(?P<key>[?&]password=)[^&#]*", re.IGNORECASE)


def fail(message: str) -> NoReturn:
    """Fail the DB test being set up with `message` alone, without a traceback.

    A traceback would show function arguments, and some of them hold the URL;
    the exception being handled, if any, is left out for the same reason.
    """
    __tracebackhide__ = True
    raise pytest.fail.Exception(message, pytrace=False) from None


def mask_url(url: str | URL) -> str:
    """`url` as text with its password replaced by `***`.

    Text that does not even start like a URL is not shown at all: where its
    password would be cannot be told.
    """
    text = str(url)
    if not _SCHEME.match(text):
        return UNPARSEABLE
    text = _USERINFO.sub(r"\g<head>:***@\g<tail>", text)
    return _QUERY_PASSWORD.sub(r"\g<key>***", text)


def secrets_of(url: str | URL) -> list[str]:
    """The password of `url` in the forms it may take in a message."""
    text = str(url) if isinstance(url, str) else url.render_as_string(hide_password=False)
    found = [match["password"] for match in [_USERINFO.match(text)] if match]
    found += [
        value for key, value in urllib.parse.parse_qsl(text.partition("?")[2]) if key == "password"
    ]
    forms = {form for secret in found for form in _forms(secret)}
    return sorted((form for form in forms if form and form != "***"), key=len, reverse=True)


def _forms(secret: str) -> Iterable[str]:
    yield secret
    yield urllib.parse.unquote(secret)
    yield urllib.parse.quote(secret, safe="")
    yield urllib.parse.quote_plus(secret)


def scrub(text: str, url: str | URL) -> str:
    """`text` with every occurrence of the password of `url` replaced by `***`."""
    for secret in secrets_of(url):
        text = text.replace(secret, "***")
    return text


def configured_url(config: pytest.Config) -> str | None:
    """The URL the user configured: `--db-url`, then the environment, then the ini file."""
    for value in (
        config.getoption("oneloop_db_url", None),
        os.environ.get(ENV_URL),
        config.getini(INI_URL),
    ):
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def reuse_db(config: pytest.Config) -> bool:
    """Whether the test databases are kept between runs: `--reuse-db`, else the ini option.

    With pytest-django installed, `--reuse-db` is its flag (dest `reuse_db`).
    """
    flag = config.getoption("oneloop_reuse_db", None) or config.getoption("reuse_db", None)
    return bool(flag or config.getini(INI_REUSE))


def require(*modules: str) -> None:
    """Fail with the install command when a module of the extra cannot be imported."""
    __tracebackhide__ = True
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            fail(
                f"oneloop: the database fixtures need {module!r}, which cannot be imported "
                f"({exc}). Install the extra: {INSTALL_SQLALCHEMY}"
            )


def require_for(option: str, module: str) -> None:
    """Fail with the install command when `module`, which `option` needs, cannot be imported."""
    __tracebackhide__ = True
    try:
        importlib.import_module(module)
    except ImportError as exc:
        fail(
            f"oneloop: {option} needs {module!r}, which cannot be imported ({exc}): "
            f"pip install {module}"
        )


def alembic_ini(config: pytest.Config) -> Path | None:
    """The alembic.ini of `oneloop_db_schema = alembic:PATH`, or None for `metadata`.

    PATH is relative to the directory of the pytest configuration file.
    """
    __tracebackhide__ = True
    value = str(config.getini(INI_SCHEMA)).strip() or "metadata"
    if value == "metadata":
        return None
    kind, colon, path = value.partition(":")
    if kind != "alembic" or not colon or not path.strip():
        fail(
            f"oneloop: invalid {INI_SCHEMA} {value!r}: expected 'metadata' (create the tables "
            "of db_metadata) or 'alembic:PATH' (run the migrations of PATH, an alembic.ini), "
            "for example 'alembic:alembic.ini'"
        )
    base = config.inipath.parent if config.inipath else config.rootpath
    ini = (base / path.strip()).resolve()
    if not ini.is_file():
        fail(
            f"oneloop: {INI_SCHEMA} {value!r} names no file: {ini} does not exist. Give the "
            "path of alembic.ini, relative to the directory of the pytest configuration file."
        )
    return ini


def parse_url(value: str | URL) -> URL:
    """`value` as a SQLAlchemy URL, or a failure that shows it masked."""
    __tracebackhide__ = True
    require("sqlalchemy")
    from sqlalchemy import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(value)
    except (ArgumentError, ValueError) as exc:
        problem = scrub(str(exc), value)
        fail(f"oneloop: invalid database URL {mask_url(value)!r}: {problem}. {URL_HELP}")


def resolve_url(config: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> URL:
    """The configured URL, else a new SQLite file in pytest's temporary directory."""
    __tracebackhide__ = True
    value = configured_url(config)
    if value is None:
        path = tmp_path_factory.mktemp("oneloop-db") / "test.db"
        value = f"sqlite+aiosqlite:///{path}"
    return parse_url(value)


def load_metadata(config: pytest.Config) -> MetaData:
    """The MetaData named by the `oneloop_db_metadata` ini option."""
    __tracebackhide__ = True
    spec = str(config.getini(INI_METADATA)).strip()
    if not spec:
        fail(NO_METADATA)
    try:
        target = import_object(
            spec, what=INI_METADATA, form="package.module:Base", example="myapp.models:Base"
        )
    except pytest.UsageError as exc:
        # A DB test's failure, not the session's: the tests without the database still run.
        fail(str(exc))
    return as_metadata(target, f"{INI_METADATA} {spec!r}")


def as_metadata(value: object, source: str) -> MetaData:
    """The MetaData of a DeclarativeBase, or `value` itself when it is one."""
    __tracebackhide__ = True
    require("sqlalchemy")
    from sqlalchemy import MetaData

    if isinstance(value, MetaData):
        return value
    metadata = getattr(value, "metadata", None)
    if isinstance(metadata, MetaData):
        return metadata
    fail(
        f"oneloop: {source} is {value!r}, which is neither a DeclarativeBase nor a MetaData. "
        f"Point {INI_METADATA} at your declarative base class or MetaData object."
    )
