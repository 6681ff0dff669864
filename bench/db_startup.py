"""How long pytest-xdist workers wait for their PostgreSQL databases.

Run it with the interpreter that has pytest-oneloop, its `[postgres]` extra,
Alembic and pytest-xdist installed (the project's `.venv`):

    .venv/bin/python bench/db_startup.py [--workers 4] [--migrations 50]
        [--rounds 3] [--pg-url URL]

It generates a project whose schema comes from `--migrations` Alembic
revisions, one table each (six columns, an index, a foreign key to the
table before), with the async env.py of `alembic init -t async`, and
`oneloop_db_schema = alembic:alembic.ini`; its tests do nothing but take
`db_session`. Five ways of starting a session of `-n --workers` on a
scratch database of the server named by --pg-url or ONELOOP_TEST_PG_URL:

    no-template   oneloop_db_templates = false: each worker runs the
                  migrations in its own database
    template      the default: one worker runs them in a template database,
                  each copies it (CREATE DATABASE ... TEMPLATE)
    prebuild      oneloop_db_prebuild = true: the xdist controller builds
                  the template while the workers start; each copies it
    reuse-first   --reuse-db after the kept databases were dropped: as
                  template, and the databases are kept at the end
    reuse-second  --reuse-db again: the kept databases are used as they are

The figure is the start-up of the slowest worker: from the moment it sets
up `db_url` (the first of the database fixtures) to the start of its first
test, which includes waiting for another worker to build the template.
pytest's and xdist's own start-up, and importing SQLAlchemy, asyncpg and
Alembic (in the generated conftest.py), come before it and are the same
for every way, so they are left out; the time from the launch of pytest to the
last worker's first test is printed beside it. Each round runs the five
ways in turn after a warm-up round; the report prints the median over the
rounds and the ratios template / no-template, prebuild / no-template and
reuse-second / reuse-first, and the two first ones for the time from
launch to the last worker's first test. A run that does not end with
exactly `N passed` stops the benchmark.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

# The script's folder is on sys.path when it runs.
from scratch_db import add_pg_url, drop_made_from, scratch_database

WAYS = ("no-template", "template", "prebuild", "reuse-first", "reuse-second")
ARGS = {
    "no-template": ["-o", "oneloop_db_templates=false"],
    "template": [],
    "prebuild": ["-o", "oneloop_db_prebuild=true"],
    "reuse-first": ["--reuse-db"],
    "reuse-second": ["--reuse-db"],
}
TESTS_PER_WORKER = 2

ALEMBIC_INI = """\
[alembic]
script_location = %(here)s/migrations
prepend_sys_path = .
path_separator = os
sqlalchemy.url = driver://user:pass@localhost/dbname
"""

ENV_PY = """\
import asyncio

from alembic import context
from sqlalchemy import pool
from sqlalchemy.ext.asyncio import async_engine_from_config

config = context.config


def do_run_migrations(connection):
    context.configure(connection=connection, target_metadata=None)
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

REVISION = '''\
"""table t{index}"""
import sqlalchemy as sa
from alembic import op

revision = "{index:04d}"
down_revision = {previous}


def upgrade():
    op.create_table(
        "t{index}",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(50), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created", sa.DateTime(timezone=True), server_default=sa.func.now()),
        sa.Column("parent_id", sa.Integer(), {foreign_key}nullable=True),
    )
    op.create_index("ix_t{index}_name", "t{index}", ["name"])
'''

MODELS = """\
from sqlalchemy import Column, DateTime, ForeignKey, Integer, MetaData, String, Table, Text, func

metadata = MetaData()
for index in range({count}):
    Table(
        f"t{{index}}",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("name", String(50), nullable=False, index=True),
        Column("value", Integer, nullable=False, server_default="0"),
        Column("note", Text),
        Column("created", DateTime(timezone=True), server_default=func.now()),
        Column("parent_id", Integer, *([ForeignKey(f"t{{index - 1}}.id")] if index else [])),
    )
"""

# db_url is the first database fixture a worker sets up: its set-up is when
# the worker starts on its database; each test notes when it starts. The
# libraries are imported first, as a project's conftest.py usually does:
# importing them costs every way the same.
CONFTEST = """\
import json
import os
import pathlib
import time

import alembic.command
import asyncpg
import pytest
import sqlalchemy.dialects.postgresql.asyncpg
import sqlalchemy.ext.asyncio

HERE = pathlib.Path(__file__).parent


@pytest.fixture(scope="session")
def db_url(request):
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    (HERE / f"start-{worker}.json").write_text(json.dumps(time.time()))
    return request.config.getoption("oneloop_db_url")


@pytest.fixture(autouse=True)
def ready(db_session):
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    path = HERE / f"ready-{worker}.json"
    if not path.exists():
        path.write_text(json.dumps(time.time()))
"""

TEST_MODULE = """\
import pytest


@pytest.mark.parametrize("n", range({count}))
async def test_takes_the_database(n, db_session):
    pass
"""


def write_project(root: Path, migrations: int, tests: int) -> None:
    """The project: alembic.ini, env.py, the revisions, the models and the tests."""
    versions = root / "migrations" / "versions"
    versions.mkdir(parents=True)
    (root / "alembic.ini").write_text(ALEMBIC_INI)
    (root / "migrations" / "env.py").write_text(ENV_PY)
    for index in range(migrations):
        previous = repr(f"{index - 1:04d}") if index else "None"
        foreign_key = f'sa.ForeignKey("t{index - 1}.id"), ' if index else ""
        revision = REVISION.format(index=index, previous=previous, foreign_key=foreign_key)
        (versions / f"{index:04d}_t{index}.py").write_text(revision)
    (root / "models.py").write_text(MODELS.format(count=migrations))
    (root / "conftest.py").write_text(CONFTEST)
    (root / "test_startup.py").write_text(TEST_MODULE.format(count=tests))
    (root / "pytest.ini").write_text(
        "[pytest]\npythonpath = .\noneloop_db_metadata = models:metadata\n"
        "oneloop_db_schema = alembic:alembic.ini\n"
    )


def run_once(root: Path, url: str, workers: int, way: str) -> tuple[float, float]:
    """One session: the slowest worker's start-up, and launch to its first test, in seconds."""
    for path in [*root.glob("start-*.json"), *root.glob("ready-*.json")]:
        path.unlink()
    tests = workers * TESTS_PER_WORKER
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ONELOOP_", "PYTEST_"))}
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"]
    command += ["-n", str(workers), "--db-url", url, *ARGS[way]]
    launched = time.time()
    done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, check=False)
    lines = done.stdout.strip().splitlines()
    summary = lines[-1] if lines else ""
    if done.returncode != 0 or not summary.startswith(f"{tests} passed in "):
        sys.exit(f"{way}: expected '{tests} passed', got:\n{done.stdout}\n{done.stderr}")
    starts = {p.name[6:-5]: json.loads(p.read_text()) for p in root.glob("start-*.json")}
    readies = {p.name[6:-5]: json.loads(p.read_text()) for p in root.glob("ready-*.json")}
    if len(readies) != workers or set(starts) != set(readies):
        sys.exit(f"{way}: expected {workers} workers to report, got {sorted(readies)}")
    startup = max(readies[worker] - starts[worker] for worker in readies)
    return startup, max(readies.values()) - launched


def measure(root: Path, server_url: str, workers: int, rounds: int) -> None:
    """Run the four ways in turn for `rounds` rounds; print the medians and the ratios."""
    startups: dict[str, list[float]] = {way: [] for way in WAYS}
    walls: dict[str, list[float]] = {way: [] for way in WAYS}
    with scratch_database(server_url) as (name, url):
        for round_ in range(rounds + 1):  # the first is a warm-up: bytecode caches
            for way in WAYS:
                if way == "reuse-first":
                    drop_made_from(server_url, name)
                startup, wall = run_once(root, url, workers, way)
                if round_:
                    startups[way].append(startup)
                    walls[way].append(wall)
            drop_made_from(server_url, name)
    median = {way: statistics.median(values) for way, values in startups.items()}
    wall = {way: statistics.median(values) for way, values in walls.items()}
    print(f"\n{workers} workers, median of {rounds} rounds (spread in brackets)")
    print(f"  {'':<13} {'start-up':>9} {'':<15} {'launch to ready':>15}")
    for way in WAYS:
        spread = f"({min(startups[way]):.2f}-{max(startups[way]):.2f})"
        print(f"  {way:<13} {median[way]:>8.2f}s {spread:<15} {wall[way]:>14.2f}s")
    print(f"  template / no-template      = {median['template'] / median['no-template']:.2f}")
    print(f"  prebuild / no-template      = {median['prebuild'] / median['no-template']:.2f}")
    print(f"  reuse-second / reuse-first  = {median['reuse-second'] / median['reuse-first']:.2f}")
    print(
        f"  launch to ready: template / no-template = {wall['template'] / wall['no-template']:.2f}"
        f", prebuild / no-template = {wall['prebuild'] / wall['no-template']:.2f}"
    )


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments, generate the project and measure."""
    parser = argparse.ArgumentParser(description=textwrap.dedent(__doc__ or "").split("\n")[0])
    parser.add_argument("--workers", type=int, default=4, help="pytest-xdist workers (4)")
    parser.add_argument("--migrations", type=int, default=50, help="revisions, one table each")
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds (3)")
    add_pg_url(parser)
    args = parser.parse_args(argv)
    if min(args.workers, args.migrations, args.rounds) < 1:
        parser.error("--workers, --migrations and --rounds must be at least 1")
    if not args.pg_url:
        parser.error("needs PostgreSQL: pass --pg-url or set ONELOOP_TEST_PG_URL")
    print(
        f"python {sys.version.split()[0]}, {args.migrations} migrations, "
        f"{args.workers} workers x {TESTS_PER_WORKER} tests, {args.rounds} rounds"
    )
    root = Path(tempfile.mkdtemp(prefix="oneloop-startup-bench-"))
    try:
        write_project(root, args.migrations, args.workers * TESTS_PER_WORKER)
        measure(root, args.pg_url, args.workers, args.rounds)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
