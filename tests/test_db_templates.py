"""Worker databases copied from a template on PostgreSQL, stale ones dropped, `--reuse-db`.

Each test works on a scratch database of its own on the test server (the
configured database of its inner sessions), so the templates and worker
databases the plugin makes from it (`<name>_tpl_<fingerprint>`,
`<name>_gw<N>`, `<name>_main`) belong to that test alone. Another
session's hold on a database is a real PostgreSQL connection holding the
same advisory lock a session of the plugin would.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from sqlalchemy import make_url

import sqlalchemy_support as support
from pytest_oneloop.sqlalchemy import _templates

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.integration

# Each test notes which database it ran on (its OID tells a copy made for
# this session from one kept from the last), and what it found there.
RECORDING_TESTS = """
import json
import os
import pathlib

import pytest
from sqlalchemy import inspect, text

from factories import UserFactory
from helpers import count_users

DATABASE = text(
    "SELECT oid, datname FROM pg_database WHERE datname = current_database()"
)
TEMPLATES = text("SELECT datname FROM pg_database WHERE datname LIKE '%\\\\_tpl\\\\_%'")


@pytest.mark.parametrize("n", range({count}))
async def test_records_its_database(n, factory, db_session):
    await factory(UserFactory)
    assert await count_users(db_session) == 1
    oid, name = (await db_session.execute(DATABASE)).one()
    connection = await db_session.connection()
    columns = await connection.run_sync(
        lambda sync: [column["name"] for column in inspect(sync).get_columns("users")]
    )
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    seen = {{
        "database": name,
        "oid": oid,
        "templates": sorted((await db_session.scalars(TEMPLATES)).all()),
        "columns": columns,
    }}
    pathlib.Path(__file__).with_name(f"seen-{{worker}}-{{n}}.json").write_text(json.dumps(seen))
"""

# A migration that notes each time it runs, and in which process, in the
# project's directory.
COUNTED_REVISION = '''
"""users"""
import os
import pathlib

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade():
    with (pathlib.Path(__file__).parents[2] / "ran.txt").open("a") as ran:
        ran.write(os.environ.get("PYTEST_XDIST_WORKER", "not a worker") + "\\n")
    {fail}
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(50), nullable=False, unique=True),
        sa.Column("email", sa.String(100), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("role", sa.String(20), nullable=False, server_default="member"),
        {extra}
    )
'''

# A session that dies, as a killed CI job does, once its database is made:
# the controller and its workers, all at once, with no teardown.
CRASH_CONFTEST = """
import os
import signal

import pytest


@pytest.fixture(scope="session", autouse=True)
async def crash(db_engine):
    os.killpg(0, signal.SIGKILL)
"""


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    """A scratch PostgreSQL database; whatever the plugin made from it is dropped afterwards."""
    with support.database("postgresql", tmp_path) as url:
        try:
            yield url
        finally:
            leftovers = made_from(url)
            support.autocommit(
                server_of(url), *(f'DROP DATABASE "{name}" WITH (FORCE)' for name in leftovers)
            )


def server_of(url: str) -> str:
    """The test server's own database, from which the scratch ones are made and dropped."""
    return support.full_url(make_url(url).set(database=make_url(support.pg_server_url()).database))


def made_from(url: str) -> dict[str, tuple[int, str | None]]:
    """The databases named after the one at `url`, each with its OID and comment."""
    base = make_url(url).database
    rows = query(
        url,
        "SELECT datname, oid, shobj_description(oid, 'pg_database') FROM pg_database",
    )
    return {name: (oid, comment) for name, oid, comment in rows if name.startswith(f"{base}_")}


def libpq(url: str) -> str:
    """`url` as psycopg connects to it."""
    return support.full_url(make_url(url).set(drivername="postgresql"))


def query(url: str, sql: str) -> list[Any]:
    """The rows of `sql` run on the database at `url`."""
    with psycopg.connect(libpq(url), autocommit=True) as connection:
        return list(connection.execute(sql.encode()).fetchall())


@contextlib.contextmanager
def holding(url: str, name: str, *, shared: bool = False) -> Iterator[None]:
    """Hold the advisory lock a live session of the plugin holds on `name`, for the block."""
    function = "pg_advisory_lock_shared" if shared else "pg_advisory_lock"
    with psycopg.connect(libpq(url), autocommit=True) as connection:
        key = _templates.lock_key(name)
        connection.execute(f"SELECT {function}({_templates.LOCK_CLASS}, {key})".encode())
        yield


def project(pytester: pytest.Pytester, url: str, *ini_lines: str, count: int = 4) -> None:
    """The shared models, and tests that record what they ran on."""
    support.make_project(pytester, url, *ini_lines)
    pytester.makepyfile(test_inner=RECORDING_TESTS.format(count=count))


def migrated_project(
    pytester: pytest.Pytester, url: str, extra: str = "", *, fail: str = ""
) -> None:
    """The same, with the users table from a migration that notes its runs in ran.txt."""
    project(pytester, url, "oneloop_db_schema = alembic:alembic.ini")
    (pytester.path / "alembic.ini").write_text(support.ALEMBIC_INI)
    versions = pytester.path / "migrations" / "versions"
    versions.mkdir(parents=True, exist_ok=True)
    (pytester.path / "migrations" / "env.py").write_text(support.ENV_PY)
    (versions / "0001_users.py").write_text(COUNTED_REVISION.format(extra=extra, fail=fail))


def run(pytester: pytest.Pytester, *args: str, passed: int = 4) -> dict[str, Any]:
    """Run the inner session in a subprocess; what each worker's tests saw, by worker."""
    for path in pytester.path.glob("seen-*.json"):
        path.unlink()
    result = pytester.runpytest_subprocess(*args, timeout=300)
    result.assert_outcomes(passed=passed)
    seen: dict[str, Any] = {}
    for path in pytester.path.glob("seen-*.json"):
        record = json.loads(path.read_text())
        # Only this test's templates: other tests make theirs on the same server.
        base = record["database"].rpartition("_")[0]
        record["templates"] = [t for t in record["templates"] if t.startswith(f"{base}_tpl_")]
        seen.setdefault(path.name.split("-")[1], record)
    return seen


def migrations_ran_in(pytester: pytest.Pytester) -> list[str]:
    """The process each run of the counted migration ran in, in every session so far."""
    ran = pytester.path / "ran.txt"
    return ran.read_text().splitlines() if ran.exists() else []


def runs_of_the_migration(pytester: pytest.Pytester) -> int:
    """How many times the counted migration ran, in every session so far."""
    return len(migrations_ran_in(pytester))


def test_xdist_workers_copy_one_template_and_everything_is_dropped_at_the_end(
    pytester: pytest.Pytester, database_url: str
) -> None:
    """Under -n 3 the migrations run once, in the template; each worker has a copy; all go."""
    migrated_project(pytester, database_url)
    seen = run(pytester, "-n", "3", passed=4)
    base = make_url(database_url).database
    assert runs_of_the_migration(pytester) == 1
    assert len(seen) >= 2
    for worker, record in seen.items():
        assert record["database"] == f"{base}_{worker}"
        [template] = record["templates"]
        assert template.startswith(f"{base}_tpl_")
    assert made_from(database_url) == {}
    assert support.row_counts(database_url) == {}


def test_with_oneloop_db_templates_false_each_worker_runs_the_migrations(
    pytester: pytest.Pytester, database_url: str
) -> None:
    """`oneloop_db_templates = false`: no template, each worker migrates its own database."""
    migrated_project(pytester, database_url)
    seen = run(pytester, "-n", "2", "-o", "oneloop_db_templates=false")
    assert runs_of_the_migration(pytester) == len(seen) == 2
    assert all(record["templates"] == [] for record in seen.values())
    assert made_from(database_url) == {}


def test_the_metadata_schema_is_copied_from_a_template_too(
    pytester: pytest.Pytester, database_url: str
) -> None:
    """With the schema from db_metadata, the workers' databases are copies of a template."""
    project(pytester, database_url)
    seen = run(pytester, "-n", "2")
    templates = {template for record in seen.values() for template in record["templates"]}
    assert len(templates) == 1
    assert all("email" in record["columns"] for record in seen.values())
    assert made_from(database_url) == {}


def test_reuse_db_keeps_the_databases_and_the_next_run_uses_them_as_they_are(
    pytester: pytest.Pytester, database_url: str
) -> None:
    """--reuse-db: kept, marked with the fingerprint; the second run copies and migrates nothing."""
    migrated_project(pytester, database_url)
    first = run(pytester, "-n", "2", "--reuse-db")
    kept = made_from(database_url)
    base = make_url(database_url).database
    [template] = [name for name in kept if name.startswith(f"{base}_tpl_")]
    fingerprint = template.removeprefix(f"{base}_tpl_")
    assert kept[f"{base}_gw0"][1] == f"pytest-oneloop 1 reusable {fingerprint}"
    assert kept[template][1] == f"pytest-oneloop 1 template {fingerprint}"
    second = run(pytester, "-n", "2", "--reuse-db")
    assert {w: r["oid"] for w, r in second.items()} == {w: r["oid"] for w, r in first.items()}
    assert runs_of_the_migration(pytester) == 1
    assert made_from(database_url) == kept
    run(pytester, "-n", "2")
    assert made_from(database_url) == {}


def test_reuse_db_rebuilds_the_databases_when_a_migration_changes(
    pytester: pytest.Pytester, database_url: str
) -> None:
    """An edited revision (same head) changes the fingerprint: migrated again, old template gone."""
    migrated_project(pytester, database_url)
    first = run(pytester, "-n", "2", "--reuse-db")
    [old_template] = first["gw0"]["templates"]
    migrated_project(pytester, database_url, extra='sa.Column("bio", sa.Text()),')
    second = run(pytester, "-n", "2", "--reuse-db")
    assert runs_of_the_migration(pytester) == 2
    assert all("bio" in record["columns"] for record in second.values())
    assert {r["oid"] for r in second.values()}.isdisjoint(r["oid"] for r in first.values())
    [new_template] = second["gw0"]["templates"]
    assert new_template != old_template
    assert old_template not in made_from(database_url)


def test_reuse_db_rebuilds_the_databases_when_the_metadata_changes(
    pytester: pytest.Pytester, database_url: str
) -> None:
    """A column added to the models changes db_metadata's fingerprint: a new template is built."""
    project(pytester, database_url)
    first = run(pytester, "-n", "2", "--reuse-db")
    models = pytester.path / "models.py"
    email = "    email: Mapped[str] = mapped_column(String(100))\n"
    bio = "    bio: Mapped[str | None] = mapped_column(String(100))\n"
    models.write_text(models.read_text().replace(email, email + bio, 1))
    second = run(pytester, "-n", "2", "--reuse-db")
    assert all("bio" in record["columns"] for record in second.values())
    assert {r["oid"] for r in second.values()}.isdisjoint(r["oid"] for r in first.values())
    assert first["gw0"]["templates"] != second["gw0"]["templates"]
    assert len(made_from(database_url)) == 3  # the two workers' and the new template


def test_the_ini_option_oneloop_db_reuse_keeps_a_database_without_xdist(
    pytester: pytest.Pytester, database_url: str
) -> None:
    """`oneloop_db_reuse = true` without xdist: the tests run in `<name>_main`, which is kept."""
    project(pytester, database_url, "oneloop_db_reuse = true")
    first = run(pytester)
    base = make_url(database_url).database
    assert first["main"]["database"] == f"{base}_main"
    assert run(pytester)["main"]["oid"] == first["main"]["oid"]
    assert (
        run(pytester, "-n", "1", "-o", "oneloop_db_reuse=false")["gw0"]["oid"]
        != (first["main"]["oid"])
    )
    assert made_from(database_url) == {}


def test_a_crashed_session_leaves_databases_that_the_next_session_drops(
    pytester: pytest.Pytester, database_url: str
) -> None:
    """After a SIGKILL mid-run nothing it left is reused, and stale databases of any worker go."""
    project(pytester, database_url, "oneloop_db_reuse = true")
    base = make_url(database_url).database
    pytester.makeconftest(CRASH_CONFTEST)
    crashed = pytester.popen(
        [sys.executable, "-m", "pytest", "-n", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    assert crashed.wait(timeout=300) == -signal.SIGKILL
    left = made_from(database_url)
    [template] = [name for name in left if name.startswith(f"{base}_tpl_")]
    assert set(left) == {f"{base}_gw0", template}
    assert left[f"{base}_gw0"][1] is None  # not marked reusable: the session never finished
    # What a crashed session with more workers would have left too.
    support.autocommit(server_of(database_url), f'CREATE DATABASE "{base}_gw7"')
    (pytester.path / "conftest.py").unlink()
    seen = run(pytester, "-n", "2")
    assert left[f"{base}_gw0"][0] not in {record["oid"] for record in seen.values()}
    assert set(made_from(database_url)) == {f"{base}_gw0", f"{base}_gw1", template}
    run(pytester, "-n", "2", "-o", "oneloop_db_reuse=false")
    assert made_from(database_url) == {}


def test_a_live_sessions_template_and_worker_database_are_left_alone(
    pytester: pytest.Pytester, database_url: str
) -> None:
    """What another running session holds is not stale: kept while held, dropped once free."""
    base = make_url(database_url).database
    other_template, other_worker = f"{base}_tpl_0123456789ab", f"{base}_gw5"
    support.autocommit(
        server_of(database_url),
        f'CREATE DATABASE "{other_template}"',
        f"COMMENT ON DATABASE \"{other_template}\" IS 'pytest-oneloop 1 template 0123456789ab'",
        f'CREATE DATABASE "{other_worker}"',
    )
    project(pytester, database_url)
    with (
        holding(database_url, other_template, shared=True),
        holding(database_url, other_worker),
    ):
        run(pytester, "-n", "2")
        assert set(made_from(database_url)) == {other_template, other_worker}
    run(pytester, "-n", "2")
    assert made_from(database_url) == {}


def test_a_worker_database_that_another_session_holds_is_refused_with_a_message(
    pytester: pytest.Pytester, database_url: str
) -> None:
    """Two sessions on one database: the second fails saying so, and drops nothing."""
    project(pytester, database_url, count=1)
    base = make_url(database_url).database
    with holding(database_url, f"{base}_gw0"):
        result = pytester.runpytest_subprocess("-n", "1", timeout=300)
    result.assert_outcomes(errors=1)
    masked = support.full_url(database_url).replace(support.pg_password(), "***")
    result.stdout.fnmatch_lines(
        [
            (
                f"*oneloop: the database '{base}_gw0' on '{masked}' is in use by another pytest "
                "session that is still running (it holds the database's advisory lock). Wait for "
                "it to end, or give this session a database of its own with --db-url."
            ),
        ]
    )
    assert support.pg_password() not in result.stdout.str()


def test_waiting_too_long_for_another_session_building_a_template_fails_with_a_message(
    pytester: pytest.Pytester, database_url: str
) -> None:
    """The build lock is waited for up to lock_timeout (the database's own here: 1 s)."""
    project(pytester, database_url, count=1)
    base = make_url(database_url).database
    support.autocommit(
        server_of(database_url), f"ALTER DATABASE \"{base}\" SET lock_timeout = '1s'"
    )
    with holding(database_url, _templates.build_lock_name(base or "")):
        result = pytester.runpytest_subprocess("-n", "1", timeout=300)
    result.assert_outcomes(errors=1)
    masked = support.full_url(database_url).replace(support.pg_password(), "***")
    result.stdout.fnmatch_lines(
        [
            (
                "*oneloop: waited 1s (lock_timeout) for another pytest session or xdist worker to "
                f"finish with the template databases of '{masked}' (building one, or dropping "
                "stale ones). It is still at it, or stuck: pg_stat_activity shows what it runs."
            ),
        ]
    )
    assert made_from(database_url) == {}


def test_a_connection_left_open_to_the_template_fails_the_copy_with_a_message(
    pytester: pytest.Pytester, database_url: str
) -> None:
    """PostgreSQL copies no database someone is connected to; the message says what to close."""
    project(pytester, database_url, "oneloop_db_reuse = true", count=1)
    [template] = run(pytester, "-n", "1", passed=1)["gw0"]["templates"]
    base = make_url(database_url).database
    support.autocommit(server_of(database_url), f'DROP DATABASE "{base}_gw0"')
    template_url = support.full_url(make_url(database_url).set(database=template))
    with psycopg.connect(libpq(template_url)):
        result = pytester.runpytest_subprocess("-n", "1", timeout=300)
    result.assert_outcomes(errors=1)
    masked = support.full_url(database_url).replace(support.pg_password(), "***")
    result.stdout.fnmatch_lines(
        [
            (
                f"*oneloop: cannot create the pytest-xdist worker database '{base}_gw0' from the "
                f"template '{template}' with '{masked}': *source database*is being accessed by "
                f"other users*. A connection to '{template}' that the plugin did not open is in "
                "the way: close it (pg_stat_activity shows it)."
            ),
        ]
    )


def test_a_failing_migration_in_the_template_fails_the_tests_and_leaves_nothing(
    pytester: pytest.Pytester, database_url: str
) -> None:
    """The template's migration error is the usual message; the half-built template is dropped."""
    migrated_project(pytester, database_url, extra='sa.Column("id", sa.Integer()),')
    result = pytester.runpytest_subprocess("-n", "2", timeout=300)
    result.assert_outcomes(errors=4)
    base = make_url(database_url).database
    result.stdout.fnmatch_lines(
        [f"*oneloop: the migration 0001 (users) failed on '*/{base}_tpl_*': *id*"]
    )
    assert made_from(database_url) == {}


PREBUILD_SUMMARY = (
    "oneloop: oneloop_db_prebuild: the template database was not built in advance: {problem}"
)


def test_with_oneloop_db_prebuild_the_controller_builds_the_template_the_workers_copy(
    pytester: pytest.Pytester, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The migrations run once, in the xdist controller; the workers only copy; all is dropped."""
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)  # the controller has none
    migrated_project(pytester, database_url)
    seen = run(pytester, "-n", "2", "-o", "oneloop_db_prebuild=true")
    assert migrations_ran_in(pytester) == ["not a worker"]
    assert len({template for record in seen.values() for template in record["templates"]}) == 1
    assert all("email" in record["columns"] for record in seen.values())
    assert made_from(database_url) == {}


# One test, so one xdist worker: it notes the worker databases it sees
# beside its own, with their comments.
SEEING_TESTS = """
import json
import pathlib

from sqlalchemy import text

DATABASES = text(
    "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database"
)


async def test_sees_the_worker_databases(db_session):
    own = (await db_session.execute(text("SELECT current_database()"))).scalar_one()
    base = own.rpartition("_")[0]
    seen = {{
        name: comment
        for name, comment in (await db_session.execute(DATABASES)).all()
        if name.startswith(f"{{base}}_gw")
    }}
    pathlib.Path(__file__).with_name("databases.json").write_text(
        json.dumps({{"own": own, "seen": seen}})
    )
"""


def test_the_controller_copies_each_workers_database_and_drops_the_one_not_taken(
    pytester: pytest.Pytester, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each worker finds its database made; a worker that runs no database test leaves its own."""
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    migrated_project(pytester, database_url)
    pytester.makepyfile(test_inner=SEEING_TESTS.format())
    result = pytester.runpytest_subprocess("-n", "2", "-o", "oneloop_db_prebuild=true", timeout=300)
    result.assert_outcomes(passed=1)
    assert migrations_ran_in(pytester) == ["not a worker"]
    base = make_url(database_url).database
    record = json.loads((pytester.path / "databases.json").read_text())
    own = record["own"]
    [other] = {f"{base}_gw0", f"{base}_gw1"} - {own}
    assert record["seen"][own] is None
    assert record["seen"][other].startswith("pytest-oneloop 1 copy ")
    assert made_from(database_url) == {}


def test_a_prebuilt_template_is_kept_with_reuse_db_and_the_next_run_builds_nothing(
    pytester: pytest.Pytester, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--reuse-db: the controller's template is kept too, and found finished the next time."""
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    migrated_project(pytester, database_url)
    prebuild = ("-o", "oneloop_db_prebuild=true")
    first = run(pytester, "-n", "2", "--reuse-db", *prebuild)
    kept = made_from(database_url)
    second = run(pytester, "-n", "2", "--reuse-db", *prebuild)
    assert migrations_ran_in(pytester) == ["not a worker"]
    assert {w: r["oid"] for w, r in second.items()} == {w: r["oid"] for w, r in first.items()}
    assert made_from(database_url) == kept
    run(pytester, "-n", "2")
    assert made_from(database_url) == {}


def test_a_template_the_controller_cannot_build_is_left_to_the_workers_which_report_it(
    pytester: pytest.Pytester, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failing migration fails the controller's build quietly and each worker's test loudly."""
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    migrated_project(pytester, database_url, fail='raise RuntimeError("no such column: nowhere")')
    result = pytester.runpytest_subprocess("-n", "2", "-o", "oneloop_db_prebuild=true", timeout=300)
    result.assert_outcomes(errors=4)
    failure = "oneloop: the migration 0001 (users) failed on '*': RuntimeError: no such column: *"
    result.stdout.fnmatch_lines([failure, PREBUILD_SUMMARY.format(problem=failure)])
    assert support.pg_password() not in result.stdout.str()
    ran = migrations_ran_in(pytester)
    assert ran.count("not a worker") == 1
    assert len(ran) >= 2  # and a worker tried again
    assert made_from(database_url) == {}


def test_the_summary_says_why_the_controller_built_no_template(
    pytester: pytest.Pytester, database_url: str
) -> None:
    """Where there is nothing to build in advance the tests run as without the option."""
    project(pytester, database_url, "oneloop_db_prebuild = true", count=2)
    result = pytester.runpytest_subprocess(
        "-n", "2", "-o", "oneloop_db_templates=false", timeout=300
    )
    result.assert_outcomes(passed=2)
    problem = "oneloop_db_templates is false, so there is no template to build"
    result.stdout.fnmatch_lines([PREBUILD_SUMMARY.format(problem=problem)])
    pytester.makepyfile(
        test_inner="""
        async def test_takes_the_database(db_session):
            pass
        """
    )
    sqlite = f"sqlite+aiosqlite:///{pytester.path / 'test.db'}"
    result = pytester.runpytest_subprocess("-n", "2", "--db-url", sqlite, timeout=300)
    result.assert_outcomes(passed=1)
    problem = f"templates are made on PostgreSQL only, and the database is '{sqlite}'"
    result.stdout.fnmatch_lines([PREBUILD_SUMMARY.format(problem=problem)])


def test_without_xdist_or_tests_to_run_the_option_does_nothing(
    pytester: pytest.Pytester, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No controller, or nothing to run: no template is built in advance."""
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    migrated_project(pytester, database_url)
    ini = pytester.path / "tox.ini"
    ini.write_text(ini.read_text().rstrip() + "\noneloop_db_prebuild = true\n")
    result = pytester.runpytest_subprocess("-n", "2", "--collect-only", timeout=300)
    assert result.ret == 0
    assert migrations_ran_in(pytester) == []
    seen = run(pytester)
    assert seen["main"]["templates"] == []
    assert made_from(database_url) == {}
