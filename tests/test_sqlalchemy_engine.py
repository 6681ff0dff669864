from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import make_url

import sqlalchemy_support as support

if TYPE_CHECKING:
    from collections.abc import Iterator

SECRET = "hunter2-not-shown"  # noqa: S105 - made up, so that no output may show it
UNREACHABLE = f"postgresql+asyncpg://tester:{SECRET}@127.0.0.1:1/nowhere"
DB_TEST = """
    async def test_uses_the_database(db_session):
        pass
"""
LIBRARIES = ("sqlalchemy", "factory", "aiosqlite", "asyncpg", "psycopg")


@pytest.fixture(params=support.BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh empty database on each backend."""
    with support.database(request.param, tmp_path) as url:
        yield url


def assert_never_shown(result: pytest.RunResult, secret: str) -> None:
    """Fail if `secret` appears anywhere in the run's stdout or stderr."""
    output = "\n".join(result.outlines + result.errlines)
    assert secret not in output


def plain_and_db_tests(pytester: pytest.Pytester) -> None:
    """A project without a URL, with a plain async test and a DB test in modules of their own."""
    support.make_project(pytester, None)
    pytester.makepyfile(
        test_plain="async def test_plain():\n    pass\n",
        test_db=textwrap.dedent(DB_TEST),
    )


def test_the_plugin_loads_no_database_library_until_a_db_fixture_is_set_up(
    pytester: pytest.Pytester,
) -> None:
    """Importing the plugin and running non-DB tests import no DB library; a DB fixture does."""
    plain_and_db_tests(pytester)
    script = textwrap.dedent(
        f"""
        import sys
        import pytest_oneloop.plugin, pytest_oneloop.sqlalchemy
        import pytest_oneloop.sqlalchemy.fixtures
        import pytest
        def loaded():
            return [name for name in {LIBRARIES!r} if name in sys.modules]
        print("after import:", loaded())
        assert pytest.main(["-q", "test_plain.py"]) == 0
        print("after plain tests:", loaded())
        assert pytest.main(["-q", "test_db.py"]) == 0
        print("after db tests:", loaded())
        """
    )
    result = pytester.run(sys.executable, "-c", script, timeout=120)
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    result.stdout.fnmatch_lines(
        [
            "after import: []",
            "after plain tests: []",
            "after db tests: ['sqlalchemy', 'aiosqlite']",
        ]
    )


def test_without_sqlalchemy_installed_async_tests_run_and_db_fixtures_name_the_extra(
    pytester: pytest.Pytester,
) -> None:
    """With SQLAlchemy missing, plain async tests pass and DB tests say what to install."""
    plain_and_db_tests(pytester)
    script = textwrap.dedent(
        """
        import sys
        for name in ("sqlalchemy", "factory", "aiosqlite", "asyncpg", "greenlet"):
            sys.modules[name] = None
        import pytest
        raise SystemExit(pytest.main(["-q", "-rE"]))
        """
    )
    result = pytester.run(sys.executable, "-c", script, timeout=120)
    assert (
        "oneloop: the database fixtures need 'sqlalchemy', which cannot be imported (import of "
        "sqlalchemy halted; None in sys.modules). Install the extra: "
        "pip install 'pytest-oneloop[sqlalchemy]'"
    ) in result.stdout.lines
    result.stdout.fnmatch_lines(["*1 passed, 1 error*"])
    result.stdout.no_fnmatch_line("*During handling*")


def test_a_missing_driver_names_the_extra_that_installs_it(pytester: pytest.Pytester) -> None:
    """A PostgreSQL URL without asyncpg installed says to install the [postgres] extra."""
    support.make_project(pytester, UNREACHABLE)
    pytester.makeconftest("import sys\nsys.modules['asyncpg'] = None\n")
    pytester.makepyfile(textwrap.dedent(DB_TEST))
    result = pytester.runpytest_subprocess(timeout=120)
    result.assert_outcomes(errors=1)
    assert (
        "oneloop: the driver of 'postgresql+asyncpg://tester:***@127.0.0.1:1/nowhere' is not "
        "installed (import of asyncpg halted; None in sys.modules): "
        "pip install 'pytest-oneloop[postgres]'"
    ) in result.stdout.lines


def test_db_url_defaults_to_a_new_sqlite_file_in_the_temporary_directory(
    pytester: pytest.Pytester,
) -> None:
    """With no URL configured, db_url is an aiosqlite file under pytest's basetemp."""
    support.make_project(pytester, None)
    pytester.makepyfile(
        """
        def test_default(db_url, tmp_path_factory):
            assert db_url.drivername == "sqlite+aiosqlite"
            assert db_url.database.startswith(str(tmp_path_factory.getbasetemp()))
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("oneloop: db=*")


@pytest.mark.parametrize(("configured", "expected"), [(False, 0), (True, 2)])
def test_a_sqlite_file_in_pytests_temporary_directory_commits_without_waiting_for_the_disk(
    pytester: pytest.Pytester, tmp_path: Path, configured: bool, expected: int
) -> None:
    """The default file gets synchronous = OFF on every connection; a file elsewhere keeps FULL."""
    with support.database("sqlite", tmp_path) as url:
        support.make_project(pytester, url if configured else None)
        support.run_inner(
            pytester,
            f"""
            from sqlalchemy import text

            async def test_synchronous(db_session, db_engine):
                assert await db_session.scalar(text("PRAGMA synchronous")) == {expected}
                async with db_engine.connect() as other:
                    assert await other.scalar(text("PRAGMA synchronous")) == {expected}
            """,
        )


@pytest.mark.parametrize(
    ("option", "env", "expected"),
    [("option.db", "env.db", "option.db"), (None, "env.db", "env.db"), (None, None, "ini.db")],
)
def test_db_url_comes_from_the_option_then_the_environment_then_the_ini_file(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    option: str | None,
    env: str | None,
    expected: str,
) -> None:
    """--db-url beats ONELOOP_DB_URL, which beats oneloop_db_url; the header shows the winner."""
    support.make_project(pytester, "sqlite+aiosqlite:///ini.db")
    if env:
        monkeypatch.setenv("ONELOOP_DB_URL", f"sqlite+aiosqlite:///{env}")
    pytester.makepyfile(
        f"""
        def test_url(db_url):
            assert db_url.database == {expected!r}
        """
    )
    args = ["--db-url", f"sqlite+aiosqlite:///{option}"] if option else []
    result = pytester.runpytest(*args)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"oneloop: db=sqlite+aiosqlite:///{expected}"])


@pytest.mark.parametrize("spec", ["models:Base", "models:Base.metadata"])
def test_db_metadata_accepts_a_declarative_base_or_a_metadata(
    pytester: pytest.Pytester, spec: str
) -> None:
    """oneloop_db_metadata may name a DeclarativeBase or a MetaData; either gives the MetaData."""
    support.make_project(pytester, None, metadata=spec)
    pytester.makepyfile(
        """
        from sqlalchemy import MetaData

        def test_metadata(db_metadata):
            assert isinstance(db_metadata, MetaData)
            assert "users" in db_metadata.tables
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_a_missing_metadata_setting_fails_db_tests_with_one_clear_error(
    pytester: pytest.Pytester,
) -> None:
    """Without oneloop_db_metadata, DB tests error naming the option and the override."""
    pytester.makepyfile(
        textwrap.dedent(DB_TEST) + "\n\nasync def test_without_the_database():\n    pass\n"
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            (
                "*oneloop: the database fixtures need the tables to create, and none are "
                "configured. Set the ini option oneloop_db_metadata = package.module:Base "
                "(a DeclarativeBase or a MetaData), or override the db_metadata fixture in "
                "conftest.py."
            )
        ]
    )
    result.stdout.no_fnmatch_line("*Traceback*")


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("models", "expected 'package.module:Base', for example 'myapp.models:Base'"),
        (".models:Base", "expected 'package.module:Base', for example 'myapp.models:Base'"),
        ("no_such_module:Base", "cannot import module 'no_such_module' (*)"),
        ("models:Nothing", "module 'models' has no attribute 'Nothing'"),
        (
            "models:User.name",
            (
                "*which is neither a DeclarativeBase nor a MetaData. Point oneloop_db_metadata at "
                "your declarative base class or MetaData object."
            ),
        ),
    ],
)
def test_a_wrong_metadata_setting_fails_with_what_is_wrong_with_it(
    pytester: pytest.Pytester, spec: str, problem: str
) -> None:
    """Each way oneloop_db_metadata can be wrong gets its own message naming the value."""
    support.make_project(pytester, None, metadata=spec)
    result = support.run_inner(pytester, DB_TEST, errors=1)
    if spec == "models:User.name":
        result.stdout.fnmatch_lines(["*oneloop: oneloop_db_metadata 'models:User.name' is *"])
    else:
        result.stdout.fnmatch_lines([f"*oneloop: invalid oneloop_db_metadata {spec!r}: *"])
    result.stdout.fnmatch_lines([f"*{problem}"])


def test_the_tables_are_created_at_start_and_dropped_at_the_end(
    pytester: pytest.Pytester, database_url: str
) -> None:
    """db_engine creates the metadata's tables for the session and drops them afterwards."""
    support.make_project(pytester, database_url)
    pytester.makepyfile(
        """
        from sqlalchemy import inspect

        async def test_tables_exist(db_engine):
            async with db_engine.connect() as connection:
                names = await connection.run_sync(lambda c: inspect(c).get_table_names())
            assert sorted(names) == ["blog_posts", "profiles", "tags", "users"]
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)
    assert support.row_counts(database_url) == {}


def test_the_report_header_shows_the_url_with_its_password_masked(
    pytester: pytest.Pytester,
) -> None:
    """The header line names the configured database without its password."""
    support.make_project(pytester, UNREACHABLE)
    result = pytester.runpytest("--collect-only")
    result.stdout.fnmatch_lines(["oneloop: db=postgresql+asyncpg://tester:***@127.0.0.1:1/nowhere"])
    assert_never_shown(result, SECRET)


def test_an_unreachable_server_fails_db_tests_with_one_clear_error_and_no_password(
    pytester: pytest.Pytester,
) -> None:
    """Connection refused: every DB test errors with one message, a plain test still passes."""
    support.require_driver("asyncpg")
    support.make_project(pytester, UNREACHABLE)
    pytester.makepyfile(
        """
        async def test_first(db_session):
            pass

        async def test_second(db_session, db_url):
            pass

        async def test_plain():
            pass
        """
    )
    result = pytester.runpytest("-vv", "-l", "--tb=long", "-rA")
    result.assert_outcomes(passed=1, errors=2)
    result.stdout.fnmatch_lines(
        [
            (
                "*oneloop: cannot connect to the database "
                "'postgresql+asyncpg://tester:***@127.0.0.1:1/nowhere': *"
            )
        ]
    )
    result.stdout.no_fnmatch_line("*Traceback*")
    assert_never_shown(result, SECRET)


def test_without_asyncpg_the_tests_that_need_it_are_skipped_not_failed(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A clone without the [postgres] extra: this suite's PostgreSQL tests skip, saying why."""
    pytester.makepyfile(no_asyncpg="import sys\n\nsys.modules['asyncpg'] = None\n")
    # Never reached: the tests must skip before they connect to anything.
    monkeypatch.setenv(support.PG_ENV, UNREACHABLE)
    tests = Path(__file__).parent
    result = pytester.runpytest_subprocess(
        "-p",
        "no_asyncpg",
        "-p",
        "no:cacheprovider",
        "-rs",
        f"{tests / 'test_sqlalchemy_engine.py'}::"
        "test_an_unreachable_server_fails_db_tests_with_one_clear_error_and_no_password",
        f"{tests / 'test_sqlalchemy_engine.py'}::"
        "test_a_wrong_password_fails_with_one_clear_error_that_never_shows_it",
        f"{tests / 'test_sqlalchemy_session.py'}::"
        "test_what_a_test_commits_is_gone_before_the_next_test[postgresql]",
        f"{tests / 'test_sqlalchemy_session.py'}::"
        "test_what_a_test_commits_is_gone_before_the_next_test[psycopg]",
        timeout=300,
    )
    result.assert_outcomes(skipped=4)
    reason = (
        "asyncpg cannot be imported (import of asyncpg halted; None in sys.modules): "
        "pip install 'pytest-oneloop[postgres]'"
    )
    skips = [line for line in result.outlines if line.startswith("SKIPPED ")]
    assert skips, result.stdout.str()
    assert all(line.endswith(f": {reason}") for line in skips), skips


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            f"not a url {SECRET}",
            (
                "oneloop: invalid database URL "
                "'<not a URL, not shown in case it holds a password>': "
                "Could not parse SQLAlchemy URL from given URL string. Expected dialect+driver://*"
            ),
        ),
        (
            f"postgresql+asyncpg://tester:{SECRET}@localhost:port/db",
            (
                "oneloop: invalid database URL "
                "'postgresql+asyncpg://tester:***@localhost:port/db': invalid literal for int() *"
            ),
        ),
        (
            f"nosuch+driver://tester:{SECRET}@localhost/db",
            (
                "oneloop: cannot use the database URL 'nosuch+driver://tester:***@localhost/db': "
                "Can't load plugin: sqlalchemy.dialects:nosuch.driver. Expected dialect+driver://*"
            ),
        ),
        (
            "sqlite:///test.db",
            (
                "oneloop: cannot use the database URL 'sqlite:///test.db': "
                "The asyncio extension requires an async driver to be used. *"
            ),
        ),
    ],
)
def test_an_invalid_url_fails_with_one_clear_error_and_no_password(
    pytester: pytest.Pytester, url: str, message: str
) -> None:
    """Unparseable URLs, bad ports, unknown dialects and sync drivers each get one clear error."""
    support.make_project(pytester, url)
    result = support.run_inner(pytester, DB_TEST, args=("-l", "--tb=long"), errors=1)
    result.stdout.fnmatch_lines([f"*{message}"])
    assert_never_shown(result, SECRET)


@pytest.mark.integration
def test_a_wrong_password_fails_with_one_clear_error_that_never_shows_it(
    pytester: pytest.Pytester,
) -> None:
    """A refused login names the user and the masked URL, never the password tried."""
    server = make_url(support.pg_server_url())
    wrong = f"{support.pg_password()}-{SECRET}"
    support.make_project(pytester, support.full_url(server.set(password=wrong)))
    result = support.run_inner(pytester, DB_TEST, args=("-l", "--tb=long", "-vv"), errors=1)
    result.stdout.fnmatch_lines(
        [
            (
                f"*oneloop: cannot connect to the database '{server.drivername}://"
                f"{server.username}:***@*': *password authentication failed*"
            )
        ]
    )
    assert_never_shown(result, SECRET)
    assert_never_shown(result, support.pg_password())


def test_pytest_fixtures_documents_every_db_fixture(pytester: pytest.Pytester) -> None:
    """`pytest --fixtures` lists the DB fixtures with their docstrings."""
    result = pytester.runpytest("--fixtures")
    result.stdout.fnmatch_lines_random(
        [
            "db_url * -- *fixtures.py:*",
            "*The database URL, a SQLAlchemy URL whose repr and str hide the password.",
            "db_metadata * -- *",
            "*The MetaData whose tables db_engine creates.",
            "db_engine * -- *",
            "*The session's AsyncEngine for db_url, with db_metadata's tables.",
            "db_session -- *",
            "*An AsyncSession whose work is rolled back after the test, whatever it did.",
            "factory -- *",
            "*Persists what factory_boy factories build into db_session.",
        ]
    )


def test_each_xdist_worker_uses_a_database_of_its_own_and_drops_it_at_the_end(
    pytester: pytest.Pytester, database_url: str
) -> None:
    """Under -n 2 each worker works in `<name>_gw<N>`, audited clean, and gone afterwards."""
    support.make_project(pytester, database_url)
    pytester.makeconftest(support.AUDIT_CONFTEST)
    pytester.makepyfile(
        """
        import os
        import pathlib

        import pytest

        from factories import BlogPostFactory

        @pytest.mark.parametrize("n", range(8))
        async def test_records_its_database(n, factory, db_session, db_engine):
            await factory(BlogPostFactory)
            await db_session.commit()
            worker = os.environ["PYTEST_XDIST_WORKER"]
            seen = pathlib.Path(__file__).with_name(f"seen-{worker}-{n}.txt")
            seen.write_text(db_engine.url.database)
        """
    )
    result = pytester.runpytest_subprocess("-n", "2", timeout=300)
    result.assert_outcomes(passed=8)
    base = make_url(database_url).database
    assert base
    seen = {path.name.split("-")[1]: path.read_text() for path in pytester.path.glob("seen-*")}
    assert sorted(seen) == ["gw0", "gw1"]
    for worker, name in seen.items():
        if base.endswith(".db"):
            assert name == base.removesuffix(".db") + f"_{worker}.db"
        else:
            assert name == f"{base}_{worker}"
        audit = json.loads((pytester.path / f"audit-{worker}.json").read_text())
        assert audit["before"] == audit["after"]
        assert audit["checked_out"] == 0
    if base.endswith(".db"):
        assert sorted(path.name for path in Path(base).parent.iterdir()) == []
    else:
        assert not {name for name in support.pg_databases() if name.startswith(f"{base}_gw")}
    assert support.row_counts(database_url) == {}


def test_a_db_metadata_override_of_the_wrong_type_fails_clearly(pytester: pytest.Pytester) -> None:
    """An overridden db_metadata returning neither a MetaData nor a base is named as such."""
    support.make_project(pytester, None)
    pytester.makeconftest(
        """
        import pytest

        @pytest.fixture(scope="session")
        def db_metadata():
            return 42
        """
    )
    result = support.run_inner(pytester, DB_TEST, errors=1)
    result.stdout.fnmatch_lines(
        [
            (
                "oneloop: the db_metadata fixture's value is 42, which is neither a "
                "DeclarativeBase nor a MetaData. Point oneloop_db_metadata at your declarative "
                "base class or MetaData object."
            )
        ]
    )


def test_tables_that_cannot_be_created_fail_with_one_clear_error(
    pytester: pytest.Pytester,
) -> None:
    """DDL the database refuses fails the DB tests with the database's own reason."""
    support.make_project(pytester, None, metadata="broken:metadata")
    pytester.makepyfile(
        broken="""
        from sqlalchemy import CheckConstraint, Column, Integer, MetaData, Table

        metadata = MetaData()
        Table("broken", metadata, Column("x", Integer), CheckConstraint("x >>> 1"))
        """
    )
    result = support.run_inner(pytester, DB_TEST, errors=1)
    result.stdout.fnmatch_lines(
        [
            (
                "oneloop: cannot create the tables of db_metadata in 'sqlite+aiosqlite:///*': "
                "(sqlite3.OperationalError) near *: syntax error"
            ),
            "[[]SQL: ",
            "CREATE TABLE broken (",
        ]
    )


@pytest.mark.integration
@pytest.mark.parametrize("backend", ["postgresql", "psycopg"])
def test_the_password_never_appears_in_reprs_headers_or_failures(
    pytester: pytest.Pytester, tmp_path: Path, backend: str
) -> None:
    """Reprs of the URL, engine, session and factory, the header and a failure hide it."""
    with support.database(backend, tmp_path) as database_url:
        run_and_check_the_password_is_hidden(pytester, database_url)


def run_and_check_the_password_is_hidden(pytester: pytest.Pytester, database_url: str) -> None:
    """Show every DB object and fail, on `database_url`; its password must not appear."""
    support.make_project(pytester, database_url)
    pytester.makepyfile(
        """
        async def test_shows_everything(db_url, db_engine, db_session, factory):
            print(repr(db_url), str(db_url), repr(db_engine), repr(db_engine.url))
            print(repr(db_session.bind), repr(factory))
            assert str(db_url) == repr(db_engine)
        """
    )
    result = pytester.runpytest("-s", "-l", "--tb=long", "-vv")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["oneloop: db=*://*:***@*", "*AssertionError*"])
    password = make_url(database_url).password
    assert password
    assert_never_shown(result, password)


@pytest.mark.parametrize("option", ["--reuse-db", "-o oneloop_db_reuse=true"])
def test_reuse_db_on_sqlite_changes_nothing(pytester: pytest.Pytester, option: str) -> None:
    """A SQLite file is made new each run: the option is accepted and the tests run as always."""
    support.make_project(pytester, None)
    pytester.makepyfile(
        """
        async def test_uses_the_database(db_session, db_engine):
            assert db_engine.url.database.endswith("test.db")
        """
    )
    pytester.runpytest(*option.split()).assert_outcomes(passed=1)


def test_with_pytest_django_installed_reuse_db_is_its_flag_and_ours_too(
    pytester: pytest.Pytester,
) -> None:
    """Both plugins declaring `--reuse-db` would stop pytest; with pytest-django, it is its flag.

    The stand-in `pytest_django` module declares the flag as pytest-django does
    (dest `reuse_db`); its being importable is what the plugin checks.
    """
    pytester.makepyfile(
        pytest_django="""
        def pytest_addoption(parser):
            parser.getgroup("django").addoption(
                "--reuse-db", action="store_true", dest="reuse_db", default=False
            )
        """,
        test_reuse="""
        from pytest_oneloop.sqlalchemy import _config

        def test_reuse(pytestconfig):
            print("REUSE", _config.reuse_db(pytestconfig))
        """,
    )
    pytester.syspathinsert()
    result = pytester.runpytest_subprocess("-p", "pytest_django", "-s")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*REUSE False"])
    result = pytester.runpytest_subprocess("-p", "pytest_django", "-s", "--reuse-db")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*REUSE True"])
