"""What rollback isolation costs: db_session against no isolation and a schema per test.

Run it with the interpreter that has pytest-oneloop and its `[postgres]`
extra installed (the project's `.venv`):

    .venv/bin/python bench/db_isolation.py [--tests 500] [--rounds 5] [--tables 10]
        [--pg-url URL]

It generates a suite of `--tests` tests; each creates 5 rows through the
`factory` fixture and runs one query. The schema has `--tables` tables, as
a small application has: users, and tables with a foreign key to it, an
index, a unique constraint and a server default. The suite runs in three
flavours that differ only in the `db_session` fixture:

    rollback   the plugin's db_session: one connection, an outer transaction,
               SAVEPOINTs, rolled back after each test
    none       no isolation at all: a plain AsyncSession that commits, so rows
               pile up across the tests
    schema     a schema per test: create_all before each test, drop_all after

on SQLite (a file, aiosqlite) and on PostgreSQL (asyncpg, a scratch database
created for the run on the server named by --pg-url or ONELOOP_TEST_PG_URL
and dropped at the end). Each round runs the flavours one after the other,
after a warm-up round that is thrown away (it writes the bytecode caches,
which the runs are allowed to do), and the wall time of the whole
pytest subprocess is taken from outside: nothing is timed inside the tests.
A run that does not end with exactly `N passed` stops the benchmark. It
prints the ratios rollback / none and schema / rollback: a comparison,
with no target to meet.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

# The script's folder is on sys.path when it runs.
from scratch_db import add_pg_url, scratch_database

FLAVOURS = ("rollback", "none", "schema")
TESTS_PER_MODULE = 50

MODELS = """
from sqlalchemy import DateTime, ForeignKey, String, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50), index=True)
    email: Mapped[str] = mapped_column(String(100))
"""

# The other tables of the schema: what a small application has besides users.
EXTRA_TABLE = """

class Extra{index}(Base):
    __tablename__ = "extra_{index}"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    label: Mapped[str] = mapped_column(String(50), unique=True)
    created: Mapped[object] = mapped_column(DateTime, server_default=func.now())
"""

FACTORIES = """
import factory
from factory.alchemy import SQLAlchemyModelFactory

from models import User


class UserFactory(SQLAlchemyModelFactory):
    class Meta:
        model = User

    name = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.name}@example.com")
"""

TEST_MODULE = """
import pytest
from sqlalchemy import func, select

from factories import UserFactory
from models import User


@pytest.mark.parametrize("n", range({count}))
async def test_five_rows_and_a_query(n, factory, db_session):
    await factory.batch(UserFactory, 5)
    found = await db_session.scalar(select(func.count(User.id)).where(User.name.like("user%")))
    assert found >= 5
"""

CONFTESTS = {
    "rollback": "",
    "none": """
import pytest
from sqlalchemy.ext.asyncio import AsyncSession


@pytest.fixture
async def db_session(db_engine):
    async with AsyncSession(db_engine, expire_on_commit=False) as session:
        yield session
        await session.commit()
""",
    "schema": """
import pytest
from sqlalchemy.ext.asyncio import AsyncSession


@pytest.fixture
async def db_session(db_engine, db_metadata):
    async with db_engine.begin() as connection:
        await connection.run_sync(db_metadata.create_all)
    async with AsyncSession(db_engine, expire_on_commit=False) as session:
        yield session
        await session.commit()
    async with db_engine.begin() as connection:
        await connection.run_sync(db_metadata.drop_all)
""",
}


def write_suite(root: Path, url: str, flavour: str, tests: int, tables: int) -> None:
    """One project directory: models, factories, the flavour's conftest, the tests."""
    root.mkdir(parents=True)
    (root / "pytest.ini").write_text(
        f"[pytest]\npythonpath = .\noneloop_db_metadata = models:Base\noneloop_db_url = {url}\n"
    )
    extras = "".join(EXTRA_TABLE.format(index=index) for index in range(1, tables))
    (root / "models.py").write_text(MODELS + extras)
    (root / "factories.py").write_text(FACTORIES)
    (root / "conftest.py").write_text(CONFTESTS[flavour])
    for index, start in enumerate(range(0, tests, TESTS_PER_MODULE)):
        count = min(TESTS_PER_MODULE, tests - start)
        (root / f"test_rows_{index:03}.py").write_text(TEST_MODULE.format(count=count))


def run_suite(root: Path, tests: int) -> tuple[float, float]:
    """Wall and CPU seconds of one pytest run of the suite in `root`."""
    # Bytecode is written (PYTHONDONTWRITEBYTECODE is dropped) so that the
    # warm-up round caches it, as on a developer's machine: otherwise every
    # run compiles and assertion-rewrites the same modules again.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ONELOOP_", "PYTEST_")) and k != "PYTHONDONTWRITEBYTECODE"
    }
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    if done.returncode != 0 or not summary.startswith(f"{tests} passed in "):
        sys.exit(f"{root.name}: expected '{tests} passed', got:\n{done.stdout}\n{done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


@dataclass(frozen=True)
class Plan:
    """How big the suite is and how often it runs."""

    tests: int
    rounds: int
    tables: int


def measure(workdir: Path, backend: str, url: str, plan: Plan) -> None:
    """Run the flavours interleaved for `plan.rounds` rounds and print medians and ratios."""
    roots = {flavour: workdir / f"{backend}-{flavour}" for flavour in FLAVOURS}
    for flavour, root in roots.items():
        write_suite(root, url, flavour, plan.tests, plan.tables)
    for flavour in FLAVOURS:  # warm-up: writes the bytecode caches
        run_suite(roots[flavour], plan.tests)
    walls: dict[str, list[float]] = {flavour: [] for flavour in FLAVOURS}
    cpus: dict[str, list[float]] = {flavour: [] for flavour in FLAVOURS}
    for _ in range(plan.rounds):
        for flavour in FLAVOURS:
            wall, cpu = run_suite(roots[flavour], plan.tests)
            walls[flavour].append(wall)
            cpus[flavour].append(cpu)
    wall = {flavour: statistics.median(values) for flavour, values in walls.items()}
    cpu = {flavour: statistics.median(values) for flavour, values in cpus.items()}
    print(f"\n{backend}: {plan.tests} tests, {plan.tables} tables, median of {plan.rounds} rounds")
    print(f"  {'flavour':<10} {'wall s':>8} {'cpu s':>8}")
    for flavour in FLAVOURS:
        print(f"  {flavour:<10} {wall[flavour]:>8.2f} {cpu[flavour]:>8.2f}")
    overhead = wall["rollback"] / wall["none"]
    speedup = wall["schema"] / wall["rollback"]
    cpu_overhead = cpu["rollback"] / cpu["none"]
    cpu_speedup = cpu["schema"] / cpu["rollback"]
    print(f"  rollback / none   = {overhead:.2f} wall, {cpu_overhead:.2f} cpu")
    print(f"  schema / rollback = {speedup:.2f} wall, {cpu_speedup:.2f} cpu")


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments and measure on SQLite, then on PostgreSQL when a URL is given."""
    parser = argparse.ArgumentParser(description=textwrap.dedent(__doc__ or "").split("\n")[0])
    parser.add_argument("--tests", type=int, default=500, help="tests in the suite (500)")
    parser.add_argument("--rounds", type=int, default=5, help="measured rounds (5)")
    parser.add_argument(
        "--tables", type=int, default=10, help="tables in the schema, users included (10)"
    )
    add_pg_url(parser)
    args = parser.parse_args(argv)
    plan = Plan(tests=args.tests, rounds=args.rounds, tables=max(1, args.tables))
    print(
        f"python {sys.version.split()[0]}, {plan.tests} tests x 5 rows, "
        f"{plan.tables} tables, {plan.rounds} rounds"
    )
    workdir = Path(tempfile.mkdtemp(prefix="oneloop-db-bench-"))
    try:
        measure(workdir, "sqlite", f"sqlite+aiosqlite:///{workdir / 'bench.db'}", plan)
        if args.pg_url:
            with scratch_database(args.pg_url) as (_, url):
                measure(workdir, "postgresql", url, plan)
        else:
            print("\npostgresql: not measured: pass --pg-url or set ONELOOP_TEST_PG_URL")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
