"""pytest-oneloop and its peers on the same async suite, side by side, in wall time.

The same suite is generated in four flavours: `sync` (the floor: the same
tests and fixtures without `async`), `oneloop`, `pytest-asyncio` and `anyio`.
Each flavour runs in its own virtualenv under `bench/.cache/`, with the same
pinned pytest, and the flavours run interleaved (A B C D A B C D ...) so that
a noisy neighbour slows them all alike. Wall time is taken around each pytest
subprocess, with the CPU time it used beside it (steadier on a shared
machine); nothing is timed inside the tests. The report is each flavour's
ratio to the floor: a comparison, with no target to meet. The plugin's own
cost is counted in instructions by `bench/instructions.py`, which uses this
script's suite and venvs.

When `bench/db_isolation.py` exists, it runs last and its report is kept.

Run it with `make bench`, or `python3 bench/overhead.py --quick` for a smoke
run. The driver uses the standard library only.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
DB_SCRIPT = BENCH / "db_isolation.py"

# The one pin: every flavour runs exactly this pytest.
PYTEST = "pytest==9.2.0"
PIP = ("-m", "pip", "install", "--disable-pip-version-check", "-q")
RUN_TIMEOUT = 900
INSTALL_TIMEOUT = 900
DISTRIBUTIONS = ("pytest", "pytest-oneloop", "pytest-asyncio", "anyio")


@dataclasses.dataclass(frozen=True)
class Flavour:
    """One way of running the suite: its venv, what it installs, its plugin's distribution."""

    name: str
    install: tuple[str, ...]
    plugin: str
    ini: str


FLAVOURS = (
    Flavour("sync", (), "pytest", ""),
    Flavour("oneloop", (str(ROOT),), "pytest-oneloop", ""),
    # The session loop scope is pytest-asyncio's one-loop configuration: the
    # equivalent of what oneloop does, and its fastest.
    Flavour(
        "pytest-asyncio",
        ("pytest-asyncio",),
        "pytest-asyncio",
        "asyncio_mode = auto\n"
        "asyncio_default_fixture_loop_scope = session\n"
        "asyncio_default_test_loop_scope = session\n",
    ),
    Flavour("anyio", ("anyio",), "anyio", ""),
)
BY_NAME = {flavour.name: flavour for flavour in FLAVOURS}
#: Runs of a flavour's suite, in its venv, with extra pytest arguments: what an
#: option costs, in the same interleaved rounds (name -> flavour, arguments).
VARIANTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "oneloop --blocking 0.1": ("oneloop", ("--blocking", "0.1")),
}


# The suite ------------------------------------------------------------------

SYNC_CONFTEST = """\
import pytest


@pytest.fixture(scope="session")
def service():
    return {"calls": 0}


@pytest.fixture
def client(service):
    service["calls"] += 1
    yield service
    service["calls"] -= 1
"""

# The same fixtures, each an `async def`.
ASYNC_CONFTEST = SYNC_CONFTEST.replace("def ", "async def ")

ANYIO_BACKEND = """

@pytest.fixture(scope="session")
def anyio_backend():
    return "asyncio"
"""

SYNC_TEST = """

def test_{index:05}(client):
    assert client["calls"] == 1
"""

ASYNC_TEST = """

async def test_{index:05}(client):
    await asyncio.sleep(0)
    assert client["calls"] == 1
"""


def module_source(flavour: str, first: int, count: int) -> str:
    """One test module of `flavour` holding `count` tests numbered from `first`."""
    if flavour == "sync":
        head, test = "", SYNC_TEST
    elif flavour == "anyio":
        head, test = (
            "import asyncio\n\nimport pytest\n\npytestmark = pytest.mark.anyio\n",
            ASYNC_TEST,
        )
    else:
        head, test = "import asyncio\n", ASYNC_TEST
    return head + "".join(test.format(index=index) for index in range(first, first + count))


def write_suite(path: Path, flavour: str, tests: int, modules: int) -> None:
    """Write `tests` tests spread over `modules` modules, with conftest and pytest.ini."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    (path / "pytest.ini").write_text("[pytest]\n" + BY_NAME[flavour].ini)
    conftest = SYNC_CONFTEST if flavour == "sync" else ASYNC_CONFTEST
    if flavour == "anyio":
        conftest += ANYIO_BACKEND
    (path / "conftest.py").write_text(conftest)
    modules = max(1, min(modules, tests))
    first = 0
    for module in range(modules):
        count = tests // modules + (module < tests % modules)
        (path / f"test_m{module:03}.py").write_text(module_source(flavour, first, count))
        first += count


# Venvs and subprocesses -----------------------------------------------------


def clean_env() -> dict[str, str]:
    """The environment minus what would steer pytest or Python in the subprocesses."""
    dropped = ("PYTEST_", "PYTHON", "COV_", "COVERAGE_", "VIRTUAL_ENV")
    return {key: value for key, value in os.environ.items() if not key.startswith(dropped)}


def run(command: Sequence[str | Path], *, timeout: int = RUN_TIMEOUT) -> str:
    """Run `command` in the checkout; return its stdout, or stop with its output if it failed."""
    proc = subprocess.run(
        [str(part) for part in command],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        shown = " ".join(str(part) for part in command)
        sys.exit(f"bench: `{shown}` failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def python_of(venv: Path) -> Path:
    """The venv's interpreter."""
    return venv / "bin" / "python"


def ensure_venv(venv: Path, requirements: Sequence[str]) -> None:
    """Create `venv` when missing, or rebuild it when its base requirements changed."""
    stamp = venv / "bench-requirements.txt"
    wanted = "\n".join(requirements) + "\n"
    if python_of(venv).exists() and stamp.exists() and stamp.read_text() == wanted:
        return
    shutil.rmtree(venv, ignore_errors=True)
    run([sys.executable, "-m", "venv", venv], timeout=INSTALL_TIMEOUT)
    run([python_of(venv), *PIP, *requirements], timeout=INSTALL_TIMEOUT)
    stamp.write_text(wanted)


VERSIONS_SNIPPET = """\
import importlib.metadata, json, sys
found = {}
for name in sys.argv[1:]:
    try:
        found[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        pass
print(json.dumps(found))
"""


def prepare_flavour(venv: Path, flavour: Flavour) -> str:
    """Install `flavour` in its venv; return its plugin and version, e.g. `anyio 4.16.0`."""
    print(f"  {flavour.name}: {venv}", flush=True)
    ensure_venv(venv, [PYTEST])
    if flavour.name == "oneloop":
        # Non-editable and reinstalled on every run: the wheel of the current tree.
        run([python_of(venv), *PIP, "--force-reinstall", "--no-deps", *flavour.install])
    elif flavour.install:
        # The peers are measured at their latest release that supports the pin.
        run([python_of(venv), *PIP, "--upgrade", PYTEST, *flavour.install])
    versions = json.loads(run([python_of(venv), "-c", VERSIONS_SNIPPET, *DISTRIBUTIONS]))
    others = [name for name in DISTRIBUTIONS[1:] if name != flavour.plugin and name in versions]
    if others or versions.get("pytest") != PYTEST.partition("==")[2]:
        sys.exit(f"bench: the {flavour.name} venv holds the wrong packages: {versions}")
    return f"{flavour.plugin} {versions[flavour.plugin]}"


@dataclasses.dataclass(frozen=True)
class Timing:
    """One pytest run: wall time around the subprocess, and the CPU time it used."""

    wall: float
    cpu: float


def run_pytest(venv: Path, suite: Path, extra: Sequence[str], expect: str) -> Timing:
    """Time one pytest run of `suite`, checked to have done exactly `expect`."""
    command = [str(venv / "bin" / "pytest"), "-p", "no:cacheprovider", "-q", *extra]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(
        command,
        cwd=suite,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    lines = proc.stdout.strip().splitlines()
    last = lines[-1] if lines else ""
    # A warning, skip or failure would make the run measure something else.
    if proc.returncode != 0 or not re.fullmatch(rf"{re.escape(expect)} in [^,]*", last):
        sys.exit(
            f"bench: {' '.join(command)} in {suite} did not end with '{expect} in ...' "
            f"(exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return Timing(wall, cpu)


def passed(tests: int) -> str:
    """The `-q` summary of a run where `tests` tests passed."""
    return f"{tests} passed"


@contextlib.contextmanager
def locked(cache: Path) -> Iterator[None]:
    """Hold the cache for this run: two runs must not reinstall each other's venvs."""
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


# Measurements ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Settings:
    """What to run, from the command line."""

    tests: int
    modules: int
    rounds: int
    db_rounds: int
    db_tests: int
    cache: Path
    out: Path


def measure(settings: Settings, venvs: dict[str, Path]) -> dict[str, list[Timing]]:
    """Every flavour's suite once per round, in order, after one warm-up round that is not kept."""
    suites = {}
    for flavour in FLAVOURS:
        suites[flavour.name] = settings.cache / "suites" / f"overhead-{flavour.name}"
        write_suite(suites[flavour.name], flavour.name, settings.tests, settings.modules)
    runs: list[tuple[str, str, tuple[str, ...]]] = [(name, name, ()) for name in suites]
    runs += [(name, base, args) for name, (base, args) in VARIANTS.items()]
    timings: dict[str, list[Timing]] = {name: [] for name, _, _ in runs}
    for round_ in range(settings.rounds + 1):
        shown = []
        for name, base, args in runs:
            timing = run_pytest(venvs[base], suites[base], args, passed(settings.tests))
            shown.append(f"{name} {timing.wall:.3f}s")
            if round_:
                timings[name].append(timing)
        label = f"round {round_}/{settings.rounds}" if round_ else "warm-up"
        print(f"  {label}: {', '.join(shown)}", flush=True)
    return timings


def prepare_db_venv(venv: Path) -> None:
    """The SQLAlchemy benchmark's venv: this checkout with its `[postgres]` extra."""
    print(f"  db isolation: {venv}", flush=True)
    ensure_venv(venv, [PYTEST])
    run([python_of(venv), *PIP, PYTEST, f"{ROOT}[postgres]"], timeout=INSTALL_TIMEOUT)
    run([python_of(venv), *PIP, "--force-reinstall", "--no-deps", ROOT], timeout=INSTALL_TIMEOUT)


class DbReport(NamedTuple):
    """What `bench/db_isolation.py` printed, and the command that printed it."""

    command: str
    output: str
    ok: bool


def run_db_isolation(settings: Settings, venv: Path) -> DbReport:
    """Run `bench/db_isolation.py` in its venv; its report is kept as it printed it."""
    print("DB isolation", flush=True)
    args = ["--tests", str(settings.db_tests), "--rounds", str(settings.db_rounds)]
    proc = subprocess.run(
        [str(python_of(venv)), str(DB_SCRIPT), *args],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT * 4,
        check=False,
    )
    output = proc.stdout.rstrip()
    if proc.returncode != 0:
        output += f"\n\nexit status {proc.returncode}\n" + proc.stderr.rstrip()[-3000:]
    return DbReport(" ".join(["bench/db_isolation.py", *args]), output, proc.returncode == 0)


# Reports --------------------------------------------------------------------

HEADER = (
    "flavour",
    "version",
    "median (s)",
    "min (s)",
    "max (s)",
    "µs/test over sync",
    "CPU ratio",
    "ratio per round: median (min-max)",
)


def ratios(timings: dict[str, list[Timing]], name: str, kind: str = "wall") -> list[float]:
    """`name` over the sync floor round by round: the two ran side by side each round.

    A slow spell of the machine slows both runs of a round alike, so the
    median of these is steadier than the ratio of the two medians.
    """
    pairs = zip(timings[name], timings["sync"], strict=True)
    return [getattr(own, kind) / getattr(sync, kind) for own, sync in pairs]


def variant_costs(timings: dict[str, list[Timing]]) -> list[str]:
    """What each of `VARIANTS` adds to its flavour, round by round, in wall and CPU time."""
    lines = []
    for name, (flavour, _) in VARIANTS.items():
        pairs = list(zip(timings[name], timings[flavour], strict=True))
        wall = [own.wall / base.wall for own, base in pairs]
        cpu = [own.cpu / base.cpu for own, base in pairs]
        lines.append(
            f"`{name}` over `{flavour}`, per round: wall {statistics.median(wall):.3f}x "
            f"({min(wall):.3f}-{max(wall):.3f}), CPU {statistics.median(cpu):.3f}x "
            f"({min(cpu):.3f}-{max(cpu):.3f})"
        )
    return lines


def rows(timings: dict[str, list[Timing]], versions: dict[str, str], tests: int) -> list[list[str]]:
    """One row per flavour, its wall-time ratio to the floor last."""
    floor = statistics.median(timing.wall for timing in timings["sync"])
    table = []
    for name, runs in timings.items():
        walls = [timing.wall for timing in runs]
        wall = ratios(timings, name)
        table.append(
            [
                name,
                versions[VARIANTS[name][0] if name in VARIANTS else name],
                f"{statistics.median(walls):.3f}",
                f"{min(walls):.3f}",
                f"{max(walls):.3f}",
                f"{(statistics.median(walls) - floor) / tests * 1e6:+.0f}",
                f"{statistics.median(ratios(timings, name, 'cpu')):.2f}x",
                f"{statistics.median(wall):.2f}x ({min(wall):.2f}-{max(wall):.2f})",
            ]
        )
    return table


def text_table(table: Sequence[Sequence[str]]) -> str:
    """Columns padded for a terminal: the first left-aligned, the others right-aligned."""
    widths = [max(len(row[col]) for row in [HEADER, *table]) for col in range(len(HEADER))]
    lines = []
    for row in [HEADER, *table]:
        cells = [row[0].ljust(widths[0])] + [
            cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def markdown(
    settings: Settings,
    table: Sequence[Sequence[str]],
    conditions: str,
    db: DbReport | None,
    variants: Sequence[str] = (),
) -> str:
    """`results.md`: the table, the conditions it was measured in, the DB report if any."""
    parts = [
        "# Benchmark results",
        "",
        f"{conditions} [How to read this](README.md).",
        "",
        "## pytest-oneloop and its peers against the sync floor",
        "",
        (
            f"{settings.tests:,} tests in {settings.modules} modules; each awaits "
            "`asyncio.sleep(0)` and uses a function-scoped async generator fixture that "
            "depends on a session-scoped async fixture (sync: the same without `async`). "
            f"Wall time of `pytest -p no:cacheprovider -q`, {settings.rounds} interleaved "
            "rounds after a warm-up round. Ratio per round: each flavour's time over the "
            "sync floor's in the same round (they ran side by side). CPU ratio: the median "
            "of the same per-round ratios with user + system CPU time."
        ),
        "",
        "| " + " | ".join(HEADER) + " |",
        "|---|" + "---:|" * (len(HEADER) - 1),
        *("| " + " | ".join(row) + " |" for row in table),
        "",
        *(f"- {line}" for line in variants),
        "",
    ]
    if db is not None:
        status = "" if db.ok else " (it FAILED)"
        parts += ["## DB isolation", "", f"`{db.command}`{status}:", "", "```text", db.output]
        parts += ["```", ""]
    return "\n".join(parts)


# Command line ---------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> Settings:
    """Settings from the command line; `--quick` makes every default tiny."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tests", type=int, help="tests in the suite (2000)")
    parser.add_argument("--modules", type=int, help="modules they are spread over (20)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds of the suite (15)")
    parser.add_argument("--db-rounds", type=int, help="rounds of the DB isolation runs (5)")
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: 50 tests, 2 modules, one round"
    )
    parser.add_argument(
        "--cache-dir", type=Path, default=BENCH / ".cache", help="venvs and generated suites"
    )
    parser.add_argument("--out", type=Path, default=BENCH, help="where results.md goes")
    args = parser.parse_args(argv)

    def count(given: int | None, quick_default: int, default: int) -> int:
        """A count from the command line (0 included, so it is refused below), else a default."""
        if given is not None:
            return given
        return quick_default if args.quick else default

    settings = Settings(
        tests=count(args.tests, 50, 2000),
        modules=count(args.modules, 2, 20),
        rounds=count(args.rounds, 1, 15),
        db_rounds=count(args.db_rounds, 1, 5),
        db_tests=20 if args.quick else 500,
        cache=args.cache_dir.resolve(),
        out=args.out.resolve(),
    )
    if min(settings.tests, settings.modules, settings.rounds, settings.db_rounds) < 1:
        parser.error("--tests, --modules, --rounds and --db-rounds must be at least 1")
    return settings


def main(argv: Sequence[str] | None = None) -> None:
    """Prepare the venvs, measure, print the table and write results.md."""
    settings = parse_args(argv)
    started = datetime.now(tz=UTC)
    start_load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    with locked(settings.cache):
        print("Preparing venvs", flush=True)
        venvs = {flavour.name: settings.cache / f"venv-{flavour.name}" for flavour in FLAVOURS}
        versions = {f.name: prepare_flavour(venvs[f.name], f) for f in FLAVOURS}
        if DB_SCRIPT.exists():
            prepare_db_venv(settings.cache / "venv-db")
        print(f"Suite: {settings.tests} tests, {settings.rounds} rounds", flush=True)
        timings = measure(settings, venvs)
        table = rows(timings, versions, settings.tests)
        variants = variant_costs(timings)
        print(
            f"\n{settings.tests:,} tests in {settings.modules} modules, "
            f"{settings.rounds} interleaved rounds, wall time\n{text_table(table)}"
        )
        print("\n".join(variants))
        end_load = " ".join(f"{value:.2f}" for value in os.getloadavg())
        conditions = (
            f"Written by `bench/overhead.py` on {started:%Y-%m-%d %H:%M} UTC: "
            f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, "
            f"Python {platform.python_version()}, {PYTEST.replace('==', ' ')} in every flavour. "
            f"Load average (1, 5, 15 min) at start {start_load}, at end {end_load}."
        )
        write_results(settings, markdown(settings, table, conditions, None, variants))
        # Last, so that a failure there cannot lose the measurements above.
        if not DB_SCRIPT.exists():
            return
        db = run_db_isolation(settings, settings.cache / "venv-db")
        print(f"\nDB isolation ({db.command})\n{db.output}")
        write_results(settings, markdown(settings, table, conditions, db, variants))
        if not db.ok:
            sys.exit("bench: bench/db_isolation.py failed; its output is in results.md")


def write_results(settings: Settings, text: str) -> None:
    """Write results.md."""
    settings.out.mkdir(parents=True, exist_ok=True)
    (settings.out / "results.md").write_text(text)
    print(f"Wrote {settings.out / 'results.md'}", flush=True)


if __name__ == "__main__":
    main()
