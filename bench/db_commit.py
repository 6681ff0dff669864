"""What a `db_commit` test costs next to a rolled-back one.

Run it with the interpreter that has pytest-oneloop and its `[postgres]`
extra installed (the project's `.venv`):

    .venv/bin/python bench/db_commit.py [--tests 200] [--rounds 5] [--tables 10]
        [--pg-url URL]

It generates one suite of `--tests` tests in two flavours that differ only
in the marker: each test creates 5 users through `factory`, commits
`db_session` and runs one query.

    rollback   the plugin's db_session: the commit releases a SAVEPOINT, and
               the outer transaction is rolled back after the test
    commit     the same tests marked `db_commit`: the commit is a COMMIT, and
               the tables holding rows are emptied after the test (TRUNCATE on
               PostgreSQL, DELETE on SQLite)

The schema is bench/db_isolation.py's: `--tables` tables, users and tables
with a foreign key to it. On SQLite (aiosqlite) twice: the default database,
a file in pytest's temporary directory whose commits do not wait for the
disk, and a file configured with `oneloop_db_url`, whose commits do; and on
PostgreSQL (asyncpg, a scratch database created for the run on the server
named by --pg-url or ONELOOP_TEST_PG_URL and dropped at the end).

What is compared is the time of one test, set-up and teardown included, as
pytest measures it (the generated conftest.py adds up each test's phases):
pytest's start-up, collection and the session's schema are left out, as
they are the same for both. Each round
runs both flavours after a warm-up round; the figure of a round is the
median test of its run, and the report prints the median over the rounds
and the ratio commit / rollback. A run that does not end with exactly
`N passed` stops the benchmark.
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
from pathlib import Path

# The script's folder is on sys.path when it runs: the schema is db_isolation's.
from db_isolation import EXTRA_TABLE, FACTORIES, MODELS, Plan
from scratch_db import add_pg_url, scratch_database

FLAVOURS = ("rollback", "commit")

TEST_MODULE = """
import pytest
from sqlalchemy import func, select

from factories import UserFactory
from models import User

{marker}

@pytest.mark.parametrize("n", range({count}))
async def test_five_rows_a_commit_and_a_query(n, factory, db_session):
    await factory.batch(UserFactory, 5)
    await db_session.commit()
    found = await db_session.scalar(select(func.count(User.id)).where(User.name.like("user%")))
    assert found == 5
"""
MARKERS = {"rollback": "", "commit": "pytestmark = pytest.mark.db_commit"}

# pytest's own duration of each test's set-up, call and teardown, summed per
# test and written out at the end: the junit report rounds them to 1 ms.
CONFTEST = """
import collections
import json
import pathlib

DURATIONS = collections.Counter()


def pytest_runtest_logreport(report):
    DURATIONS[report.nodeid] += report.duration


def pytest_sessionfinish(session):
    pathlib.Path(__file__).with_name("durations.json").write_text(json.dumps(DURATIONS))
"""


def write_suite(root: Path, url: str | None, flavour: str, tests: int, tables: int) -> None:
    """One project directory: models, factories and the flavour's test module."""
    root.mkdir(parents=True)
    ini = "[pytest]\npythonpath = .\noneloop_db_metadata = models:Base\n"
    (root / "pytest.ini").write_text(ini + (f"oneloop_db_url = {url}\n" if url else ""))
    extras = "".join(EXTRA_TABLE.format(index=index) for index in range(1, tables))
    (root / "models.py").write_text(MODELS + extras)
    (root / "factories.py").write_text(FACTORIES)
    module = TEST_MODULE.format(marker=MARKERS[flavour], count=tests)
    (root / "test_rows.py").write_text(module)
    (root / "conftest.py").write_text(CONFTEST)


def run_suite(root: Path, tests: int) -> float:
    """The median time of one test in a pytest run of the suite in `root`, in seconds."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ONELOOP_", "PYTEST_"))}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    summary = lines[-1] if lines else ""
    if done.returncode != 0 or not summary.startswith(f"{tests} passed in "):
        sys.exit(f"{root.name}: expected '{tests} passed', got:\n{done.stdout}\n{done.stderr}")
    durations = json.loads((root / "durations.json").read_text())
    return statistics.median(durations.values())


def measure(workdir: Path, backend: str, url: str | None, plan: Plan) -> None:
    """Run both flavours interleaved for `plan.rounds` rounds; print the medians and the ratio."""
    tests, rounds, tables = plan.tests, plan.rounds, plan.tables
    slug = backend.split(maxsplit=1)[0] + ("-default" if url is None else "")
    roots = {flavour: workdir / f"{slug}-{flavour}" for flavour in FLAVOURS}
    for flavour, root in roots.items():
        write_suite(root, url, flavour, tests, tables)
    for flavour in FLAVOURS:  # warm-up: writes the bytecode caches
        run_suite(roots[flavour], tests)
    medians: dict[str, list[float]] = {flavour: [] for flavour in FLAVOURS}
    for _ in range(rounds):
        for flavour in FLAVOURS:
            medians[flavour].append(run_suite(roots[flavour], tests))
    per_test = {flavour: statistics.median(values) for flavour, values in medians.items()}
    ratios = [c / r for c, r in zip(medians["commit"], medians["rollback"], strict=True)]
    print(f"\n{backend}: {tests} tests, {tables} tables, median of {rounds} rounds")
    for flavour in FLAVOURS:
        spread = f"{min(medians[flavour]) * 1000:.2f}-{max(medians[flavour]) * 1000:.2f}"
        print(f"  {flavour:<9} {per_test[flavour] * 1000:>7.2f} ms per test ({spread})")
    print(
        f"  commit / rollback = {per_test['commit'] / per_test['rollback']:.2f} "
        f"(per round: {min(ratios):.2f}-{max(ratios):.2f})"
    )


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments and measure on SQLite, then on PostgreSQL when a URL is given."""
    parser = argparse.ArgumentParser(description=textwrap.dedent(__doc__ or "").split("\n")[0])
    parser.add_argument("--tests", type=int, default=200, help="tests in the suite (200)")
    parser.add_argument("--rounds", type=int, default=5, help="measured rounds (5)")
    parser.add_argument(
        "--tables", type=int, default=10, help="tables in the schema, users included (10)"
    )
    add_pg_url(parser)
    args = parser.parse_args(argv)
    if min(args.tests, args.rounds, args.tables) < 1:
        parser.error("--tests, --rounds and --tables must be at least 1")
    plan = Plan(tests=args.tests, rounds=args.rounds, tables=args.tables)
    print(f"python {sys.version.split()[0]}, {plan.tests} tests x 5 rows, {plan.rounds} rounds")
    workdir = Path(tempfile.mkdtemp(prefix="oneloop-commit-bench-"))
    try:
        measure(workdir, "sqlite (the default file, in pytest's temporary directory)", None, plan)
        sqlite_url = f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
        measure(workdir, "sqlite (a configured file)", sqlite_url, plan)
        if not args.pg_url:
            print("\npostgresql: not measured: pass --pg-url or set ONELOOP_TEST_PG_URL")
            return
        with scratch_database(args.pg_url) as (_, url):
            measure(workdir, "postgresql", url, plan)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
