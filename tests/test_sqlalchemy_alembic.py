from __future__ import annotations

import importlib
import json
import textwrap
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import make_url, text

import sqlalchemy_support as support

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

# Alembic is imported before any pytester run, as the drivers are (see
# sqlalchemy_support): an in-process run drops what it imported.
for _module in (
    "alembic.autogenerate",
    "alembic.command",
    "alembic.config",
    "alembic.runtime.migration",
    "alembic.script",
):
    importlib.import_module(_module)


@pytest.fixture(params=support.BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh empty database on each backend."""
    with support.database(request.param, tmp_path) as url:
        yield url


USERS = '''
"""users"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade():
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(50), nullable=False, unique=True),
        sa.Column("email", sa.String(100), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("role", sa.String(20), nullable=False, server_default="member"),
    )
'''

# The rest of support.MODELS; `extra` may add more.
POSTS = '''
"""posts"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade():
    {extra}
    op.create_table(
        "blog_posts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("title", sa.String(100), nullable=False),
        sa.Column("author_id", sa.Integer(), sa.ForeignKey("users.id"), nullable=False),
    )
    op.create_table(
        "tags",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(20), nullable=False),
        sa.Column("post_id", sa.Integer(), sa.ForeignKey("blog_posts.id"), nullable=False),
    )
    op.create_table(
        "profiles",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id"), nullable=False),
        {bio}
    )
'''
BIO = 'sa.Column("bio", sa.String(100), nullable=False),'
# A table db_metadata does not know, with an enum type (on PostgreSQL).
AUDIT = """op.create_table(
        "audit",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("mood", sa.Enum("calm", "busy", name="mood")),
    )"""


def alembic_project(
    pytester: pytest.Pytester,
    url: str | None,
    *ini_lines: str,
    env: str = support.ENV_PY,
    extra: str = "pass",
    bio: str = BIO,
) -> None:
    """The shared project, with its schema from two Alembic migrations of the same tables."""
    support.make_project(pytester, url, "oneloop_db_schema = alembic:alembic.ini", *ini_lines)
    (pytester.path / "alembic.ini").write_text(support.ALEMBIC_INI)
    versions = pytester.path / "migrations" / "versions"
    versions.mkdir(parents=True)
    (pytester.path / "migrations" / "env.py").write_text(env)
    (versions / "0001_users.py").write_text(USERS)
    (versions / "0002_posts.py").write_text(POSTS.format(extra=extra, bio=bio))


def pg_types(url: str) -> set[str]:
    """The names of the enum types in the database at `url`."""

    async def names() -> set[str]:
        from sqlalchemy.ext.asyncio import create_async_engine

        engine = create_async_engine(url)
        try:
            async with engine.connect() as connection:
                rows = await connection.scalars(
                    text("SELECT typname FROM pg_type WHERE typtype = 'e'")
                )
                return set(rows)
        finally:
            await engine.dispose()

    found: set[str] = support.run(names())
    return found


MIGRATED = """
import pytest
from sqlalchemy import text

from factories import BlogPostFactory
from helpers import count_users


async def test_the_migrations_built_the_schema(db_session):
    assert await db_session.scalar(text("SELECT version_num FROM alembic_version")) == "0002"
    assert await db_session.scalar(text("SELECT count(*) FROM audit")) == 0


async def test_the_fixtures_work_on_it(factory, db_session):
    post = await factory(BlogPostFactory, tags=["a"])
    assert post.author.role == "member"  # the migration's server default
    assert await count_users(db_session) == 1


@pytest.mark.db_commit
async def test_and_so_do_db_commit_tests(factory, db_session):
    await factory(BlogPostFactory)
    await db_session.commit()


async def test_sees_nothing(db_session):
    assert await count_users(db_session) == 0
"""


def test_the_schema_comes_from_the_migrations_and_everything_they_made_goes_at_the_end(
    pytester: pytest.Pytester, database_url: str
) -> None:
    """The upgrade builds the tables, the fixtures work on them; tables and types go at the end."""
    alembic_project(pytester, database_url, extra=AUDIT)
    pytester.makepyfile(test_inner=MIGRATED)
    pytester.runpytest().assert_outcomes(passed=4)
    assert support.row_counts(database_url) == {}
    if not database_url.startswith("sqlite"):
        assert "mood" not in pg_types(database_url)


def test_each_xdist_worker_migrates_a_database_of_its_own(
    pytester: pytest.Pytester, database_url: str
) -> None:
    """Under -n 2 each worker migrates its own database, checked clean and dropped at the end."""
    alembic_project(pytester, database_url, "oneloop_db_check_migrations = true")
    pytester.makeconftest(support.AUDIT_CONFTEST)
    pytester.makepyfile(
        test_inner="""
        import pytest
        from sqlalchemy import text

        @pytest.mark.parametrize("n", range(6))
        async def test_migrated(n, db_session, db_engine):
            version = text("SELECT version_num FROM alembic_version")
            assert await db_session.scalar(version) == "0002"
        """
    )
    pytester.runpytest_subprocess("-n", "2", timeout=300).assert_outcomes(passed=6)
    audits = [json.loads(path.read_text()) for path in pytester.path.glob("audit-gw*.json")]
    assert len(audits) == 2
    base = make_url(database_url).database
    assert base
    if not base.endswith(".db"):
        assert not {name for name in support.pg_databases() if name.startswith(f"{base}_gw")}
    assert support.row_counts(database_url) == {}


def test_a_failing_migration_fails_the_db_tests_naming_its_revision_without_the_password(
    pytester: pytest.Pytester, database_url: str
) -> None:
    """The revision, its message and the database's error, once per DB test; the rest runs."""
    alembic_project(pytester, database_url, extra='op.execute("SELECT * FROM nowhere")')
    result = support.run_inner(
        pytester,
        """
        async def test_plain():
            pass

        async def test_db(db_session):
            pass
        """,
        passed=1,
        errors=1,
    )
    result.stdout.fnmatch_lines(
        [
            "oneloop: the migration 0002 (posts) failed on '*': *Error: *nowhere*",
        ]
    )
    password = make_url(database_url).password
    if password:
        assert password not in result.stdout.str() + result.stderr.str()
        result.stdout.fnmatch_lines(["*failed on '*:***@*'*"])
    assert support.row_counts(database_url) == {}


def test_checking_the_migrations_lists_what_db_metadata_has_and_they_do_not(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    """A column the migrations forgot, a table they add: the DB tests fail with the list."""
    with support.database("sqlite", tmp_path) as url:
        alembic_project(pytester, url, "oneloop_db_check_migrations = true", bio="", extra=AUDIT)
        result = support.run_inner(pytester, "async def test_db(db_session):\n    pass\n", errors=1)
        assert support.row_counts(url) == {}
    result.stdout.fnmatch_lines(
        [
            (
                "oneloop: the schema the migrations of '*alembic.ini' build differs from "
                "db_metadata (oneloop_db_check_migrations = true). What `alembic revision "
                "--autogenerate` would write:"
            ),
            "  remove_table audit",
            "  add_column profiles.bio",
        ]
    )


def test_an_env_py_that_migrates_another_database_is_caught(pytester: pytest.Pytester) -> None:
    """If the test database has no version after the upgrade, the message says why."""
    other = pytester.path / "other.db"
    env = support.ENV_PY.replace(
        "config.get_section(config.config_ini_section, {}),",
        f"{{'sqlalchemy.url': 'sqlite+aiosqlite:///{other}'}},",
    )
    alembic_project(pytester, None, env=env)
    result = support.run_inner(pytester, "async def test_db(db_session):\n    pass\n", errors=1)
    result.stdout.fnmatch_lines(
        [
            (
                "oneloop: alembic upgrade head ran, but 'sqlite+aiosqlite:///*test.db' has no "
                "Alembic version afterwards. env.py must connect with the URL the plugin sets, "
                "config.get_main_option('sqlalchemy.url') (as `alembic init -t async` writes "
                "it), not one of its own."
            )
        ]
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "alembc:alembic.ini",
            (
                "oneloop: invalid oneloop_db_schema 'alembc:alembic.ini': expected 'metadata' "
                "(create the tables of db_metadata) or 'alembic:PATH' (run the migrations of PATH, "
                "an alembic.ini), for example 'alembic:alembic.ini'"
            ),
        ),
        (
            "alembic:db/alembic.ini",
            (
                "oneloop: oneloop_db_schema 'alembic:db/alembic.ini' names no file: "
                "*db/alembic.ini does not exist. Give the path of alembic.ini, relative to the "
                "directory of the pytest configuration file."
            ),
        ),
    ],
)
def test_a_wrong_schema_setting_fails_the_db_tests_saying_what_is_expected(
    pytester: pytest.Pytester, value: str, message: str
) -> None:
    """A misspelt kind and a missing alembic.ini are each named; tests without the DB run."""
    support.make_project(pytester, None, f"oneloop_db_schema = {value}")
    result = support.run_inner(
        pytester,
        "async def test_plain():\n    pass\n\nasync def test_db(db_session):\n    pass\n",
        passed=1,
        errors=1,
    )
    result.stdout.fnmatch_lines([message])


def test_without_alembic_installed_the_setting_names_what_to_install(
    pytester: pytest.Pytester,
) -> None:
    """The DB tests fail with the pip command; nothing else is needed from Alembic."""
    alembic_project(pytester, None)
    pytester.makeconftest("import sys\nsys.modules['alembic'] = None\n")
    pytester.makepyfile(test_inner="async def test_db(db_session):\n    pass\n")
    result = pytester.runpytest_subprocess(timeout=120)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            (
                "oneloop: oneloop_db_schema needs 'alembic', which cannot be imported (import of "
                "alembic halted; None in sys.modules): pip install alembic"
            )
        ]
    )


def test_a_metadata_schema_is_the_default_and_its_spelling_is_accepted(
    pytester: pytest.Pytester,
) -> None:
    """`oneloop_db_schema = metadata` creates db_metadata's tables, as no setting does."""
    support.make_project(pytester, None, "oneloop_db_schema = metadata")
    support.run_inner(pytester, textwrap.dedent(support.HELPERS), support.SEES_NOTHING)
