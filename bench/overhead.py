"""Overhead of pytest-oneloop against its peers, measured side by side in one run.

The same suite is generated in four flavours: `sync` (the floor: the same
tests and fixtures without `async`), `oneloop`, `pytest-asyncio` and `anyio`.
Each flavour runs in its own virtualenv under `bench/.cache/`, with the same
pinned pytest, and the flavours run interleaved (A B C D A B C D ...) so that
a noisy neighbour slows them all alike. Wall time is taken around each pytest
subprocess, with the CPU time it used beside it (steadier on a shared
machine); nothing is timed inside the tests.

Also measured: the start-up cost of the plugin (`--collect-only` on a
one-test suite with and without `-p no:oneloop`), how oneloop's per-test cost
scales from 1,000 to 10,000 tests, and, when `bench/db_isolation.py` exists,
its own report.

Run it with `make bench`, or `python3 bench/overhead.py --quick` for a smoke
run. The driver uses the standard library only; matplotlib, for the chart,
lives in a tooling venv of its own.
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
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
DB_SCRIPT = BENCH / "db_isolation.py"

# The one pin: every flavour runs exactly this pytest.
PYTEST = "pytest==9.2.0"
MATPLOTLIB = "matplotlib>=3.8,<4"
PIP = ("-m", "pip", "install", "--disable-pip-version-check", "-q")
RUN_TIMEOUT = 900
INSTALL_TIMEOUT = 900
SCALING_TESTS_PER_MODULE = 100
DISTRIBUTIONS = ("pytest", "pytest-oneloop", "pytest-asyncio", "anyio")

ONELOOP_TARGET = 1.10
STARTUP_TARGET_MS = 30.0
SCALING_TARGET = 0.15


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

ASYNC_CONFTEST = """\
import pytest


@pytest.fixture(scope="session")
async def service():
    return {"calls": 0}


@pytest.fixture
async def client(service):
    service["calls"] += 1
    yield service
    service["calls"] -= 1
"""

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


def run(command: Sequence[str | Path], *, cwd: Path = ROOT, timeout: int = RUN_TIMEOUT) -> str:
    """Run `command`; return its stdout, or stop with its output if it failed."""
    proc = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
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


def prepare_flavour(venv: Path, flavour: Flavour) -> dict[str, str]:
    """Install `flavour` in its venv and return the versions of what is in it."""
    print(f"  {flavour.name}: {venv}", flush=True)
    ensure_venv(venv, [PYTEST])
    if flavour.name == "oneloop":
        # Non-editable and reinstalled on every run: the wheel of the current tree.
        run([python_of(venv), *PIP, "--force-reinstall", "--no-deps", *flavour.install])
    elif flavour.install:
        # The peers are measured at their latest release that supports the pin.
        run([python_of(venv), *PIP, "--upgrade", PYTEST, *flavour.install])
    versions = installed_versions(venv)
    others = [name for name in DISTRIBUTIONS[1:] if name != flavour.plugin and name in versions]
    if others or versions.get("pytest") != PYTEST.partition("==")[2]:
        sys.exit(f"bench: the {flavour.name} venv holds the wrong packages: {versions}")
    return versions


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


def installed_versions(venv: Path) -> dict[str, str]:
    """Which of the distributions that matter here the venv holds, by version."""
    output = run([python_of(venv), "-c", VERSIONS_SNIPPET, *DISTRIBUTIONS])
    versions: dict[str, str] = json.loads(output)
    return versions


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
class Stats:
    """Median, min and max of some durations, in seconds."""

    median: float
    low: float
    high: float
    #: Every measured round, in order: round i of one case ran beside round i of the others.
    samples: tuple[float, ...] = ()

    @classmethod
    def of(cls, samples: Sequence[float]) -> Stats:
        """Summarise `samples`."""
        return cls(statistics.median(samples), min(samples), max(samples), tuple(samples))


@dataclasses.dataclass(frozen=True)
class Measured:
    """The wall and CPU times of the measured rounds of one case."""

    wall: Stats
    cpu: Stats


@dataclasses.dataclass(frozen=True)
class Case:
    """One pytest command to time: in which venv, on which suite, and what it must report."""

    key: str
    venv: Path
    suite: Path
    expect: str
    extra: tuple[str, ...] = ()


def interleave(cases: Sequence[Case], rounds: int) -> dict[str, Measured]:
    """Run every case once per round, in order, after one warm-up round that is not kept."""
    samples: dict[str, list[Timing]] = {case.key: [] for case in cases}
    for round_ in range(rounds + 1):
        shown = []
        for case in cases:
            timing = run_pytest(case.venv, case.suite, case.extra, case.expect)
            shown.append(f"{case.key} {timing.wall:.3f}s")
            if round_:
                samples[case.key].append(timing)
        label = f"round {round_}/{rounds}" if round_ else "warm-up"
        print(f"  {label}: {', '.join(shown)}", flush=True)
    return {
        key: Measured(
            Stats.of([timing.wall for timing in timings]),
            Stats.of([timing.cpu for timing in timings]),
        )
        for key, timings in samples.items()
    }


@dataclasses.dataclass(frozen=True)
class Settings:
    """What to run, from the command line."""

    tests: int
    modules: int
    rounds: int
    side_rounds: int
    startup_rounds: int
    scaling_sizes: tuple[int, int]
    db_tests: int
    cache: Path
    out: Path


def measure_overhead(settings: Settings, venvs: dict[str, Path]) -> dict[str, Measured]:
    """Every flavour's suite, the flavours interleaved."""
    cases = []
    for flavour in FLAVOURS:
        suite = settings.cache / "suites" / f"overhead-{flavour.name}"
        write_suite(suite, flavour.name, settings.tests, settings.modules)
        cases.append(Case(flavour.name, venvs[flavour.name], suite, passed(settings.tests)))
    return interleave(cases, settings.rounds)


@dataclasses.dataclass(frozen=True)
class Startup:
    """Collect-only times on a one-test suite, with the plugin and without."""

    with_plugin: Measured
    without_plugin: Measured

    def cost_ms(self, kind: str = "wall") -> float:
        """What loading the plugin adds, in milliseconds: the median of the rounds' differences.

        Each round ran the two side by side, so a slow spell of the machine
        falls on both; the `wall` or `cpu` time.
        """
        with_plugin = getattr(self.with_plugin, kind).samples
        without_plugin = getattr(self.without_plugin, kind).samples
        pairs = zip(with_plugin, without_plugin, strict=True)
        return statistics.median(mine - bare for mine, bare in pairs) * 1000


def measure_startup(settings: Settings, venv: Path) -> Startup:
    """`pytest --collect-only -q` with and without `-p no:oneloop`, interleaved."""
    suite = settings.cache / "suites" / "startup"
    write_suite(suite, "oneloop", 1, 1)
    expect = "1 test collected"
    cases = [
        Case("oneloop", venv, suite, expect, ("--collect-only",)),
        Case("no:oneloop", venv, suite, expect, ("--collect-only", "-p", "no:oneloop")),
    ]
    measured = interleave(cases, settings.startup_rounds)
    return Startup(measured["oneloop"], measured["no:oneloop"])


@dataclasses.dataclass(frozen=True)
class Scaling:
    """One flavour's times at one test and at the two suite sizes."""

    flavour: str
    sizes: tuple[int, int]
    fixed: Measured
    small: Measured
    large: Measured

    def per_test_us(self, kind: str = "wall") -> tuple[float, float]:
        """Cost of one test at each size, in microseconds, without the fixed start-up.

        The one-test run's median is taken off, so pytest's fixed start-up
        does not make the larger suite look cheaper per test.
        """
        fixed = getattr(self.fixed, kind).median
        return (
            (getattr(self.small, kind).median - fixed) / (self.sizes[0] - 1) * 1e6,
            (getattr(self.large, kind).median - fixed) / (self.sizes[1] - 1) * 1e6,
        )

    def change(self, kind: str = "wall") -> float:
        """Relative change of the per-test cost from the small to the large size."""
        small, large = self.per_test_us(kind)
        return large / small - 1


def measure_scaling(settings: Settings, venvs: dict[str, Path]) -> dict[str, Scaling]:
    """The oneloop flavour and the sync floor at one test and at both sizes, interleaved."""
    sizes = (1, *settings.scaling_sizes)
    names = ("sync", "oneloop")
    cases = []
    for name in names:
        for size in sizes:
            suite = settings.cache / "suites" / f"scaling-{name}-{size}"
            write_suite(suite, name, size, max(1, size // SCALING_TESTS_PER_MODULE))
            cases.append(Case(f"{name}@{size}", venvs[name], suite, passed(size)))
    measured = interleave(cases, settings.side_rounds)
    return {
        name: Scaling(name, settings.scaling_sizes, *(measured[f"{name}@{size}"] for size in sizes))
        for name in names
    }


@dataclasses.dataclass(frozen=True)
class DbIsolation:
    """What `bench/db_isolation.py` printed, and the command that printed it."""

    command: str
    output: str
    ok: bool


def prepare_db_venv(venv: Path) -> None:
    """The SQLAlchemy benchmark's venv: this checkout with its `[postgres]` extra."""
    print(f"  db isolation: {venv}", flush=True)
    ensure_venv(venv, [PYTEST])
    run([python_of(venv), *PIP, PYTEST, f"{ROOT}[postgres]"], timeout=INSTALL_TIMEOUT)
    run([python_of(venv), *PIP, "--force-reinstall", "--no-deps", ROOT], timeout=INSTALL_TIMEOUT)


def run_db_isolation(settings: Settings, venv: Path) -> DbIsolation:
    """Run `bench/db_isolation.py` in its venv; its report is kept as it printed it."""
    print("DB isolation", flush=True)
    args = ["--tests", str(settings.db_tests), "--rounds", str(settings.side_rounds)]
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
    command = " ".join(["bench/db_isolation.py", *args])
    return DbIsolation(command, output, proc.returncode == 0)


# Reports --------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Results:
    """Everything one run measured, and in what conditions."""

    settings: Settings
    versions: dict[str, dict[str, str]]
    overhead: dict[str, Measured]
    startup: Startup
    scaling: dict[str, Scaling]
    db_isolation: DbIsolation | None
    started: datetime
    load: tuple[tuple[float, float, float], tuple[float, float, float]]

    def ratio(self, name: str, kind: str = "wall") -> float:
        """Median time of `name` over the sync floor's, in wall or CPU time."""
        floor = getattr(self.overhead["sync"], kind).median
        return float(getattr(self.overhead[name], kind).median / floor)

    def round_ratios(self, name: str, kind: str = "wall") -> list[float]:
        """`name` over the sync floor round by round: the two ran side by side each round.

        A slow spell of the machine slows both runs of a round alike, so the
        median of these is steadier than the ratio of the two medians.
        """
        floor = getattr(self.overhead["sync"], kind).samples
        own = getattr(self.overhead[name], kind).samples
        return [mine / sync for mine, sync in zip(own, floor, strict=True)]

    def paired_ratio(self, name: str, kind: str = "wall") -> float:
        """The median of `round_ratios`: what the targets are judged on."""
        return statistics.median(self.round_ratios(name, kind))

    def version(self, name: str) -> str:
        """`name`'s plugin and its version, e.g. `pytest-asyncio 1.5.0`."""
        plugin = BY_NAME[name].plugin
        return f"{plugin} {self.versions[name][plugin]}"


def verdict(met: bool) -> str:
    """How a target line ends."""
    return "met" if met else "MISSED"


OVERHEAD_HEADER = (
    "flavour",
    "version",
    "median (s)",
    "min (s)",
    "max (s)",
    "µs/test over sync",
    "CPU ratio",
    "ratio of medians",
    "ratio per round: median (min-max)",
)


def overhead_rows(results: Results) -> list[list[str]]:
    """The ratio table: one row per flavour, the wall-time ratio last."""
    sync = results.overhead["sync"].wall.median
    rows = []
    for flavour in FLAVOURS:
        wall = results.overhead[flavour.name].wall
        rows.append(
            [
                flavour.name,
                results.version(flavour.name),
                f"{wall.median:.3f}",
                f"{wall.low:.3f}",
                f"{wall.high:.3f}",
                f"{(wall.median - sync) / results.settings.tests * 1e6:+.0f}",
                f"{results.paired_ratio(flavour.name, 'cpu'):.2f}x",
                f"{results.ratio(flavour.name):.2f}x",
                spread(results, flavour.name),
            ]
        )
    return rows


def spread(results: Results, name: str) -> str:
    """The per-round ratio of `name`: median, and lowest to highest round."""
    ratios = results.round_ratios(name)
    return f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"


def startup_rows(results: Results) -> list[list[str]]:
    """Collect-only times with and without the plugin, and their difference."""
    startup = results.startup
    rows = [
        [
            label,
            *(f"{value * 1000:.1f}" for value in (m.wall.median, m.wall.low, m.wall.high)),
            f"{m.cpu.median * 1000:.1f}",
        ]
        for label, m in (
            ("with oneloop", startup.with_plugin),
            ("-p no:oneloop", startup.without_plugin),
        )
    ]
    rows.append(
        [
            "difference (median of the rounds' differences)",
            f"{startup.cost_ms():+.1f}",
            "",
            "",
            f"{startup.cost_ms('cpu'):+.1f}",
        ]
    )
    return rows


STARTUP_HEADER = ("run", "median (ms)", "min (ms)", "max (ms)", "CPU median (ms)")


def scaling_header(results: Results) -> list[str]:
    """Column names of the scaling table, with the sizes written out."""
    small, large = sizes_label(results)
    return [
        "flavour",
        "1 test (s)",
        f"{small} tests (s)",
        f"{large} tests (s)",
        f"µs/test at {small}",
        f"µs/test at {large}",
        "change (CPU)",
        "change",
    ]


def scaling_rows(results: Results) -> list[list[str]]:
    """Median wall times and per-test cost of oneloop and of the floor at both sizes."""
    rows = []
    for scaling in results.scaling.values():
        small, large = scaling.per_test_us()
        rows.append(
            [
                scaling.flavour,
                f"{scaling.fixed.wall.median:.3f}",
                f"{scaling.small.wall.median:.3f}",
                f"{scaling.large.wall.median:.3f}",
                f"{small:.0f}",
                f"{large:.0f}",
                f"{scaling.change('cpu'):+.1%}",
                f"{scaling.change():+.1%}",
            ]
        )
    return rows


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded for a terminal: the first left-aligned, the others right-aligned."""
    widths = [max(len(row[col]) for row in [header, *rows]) for col in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [row[0].ljust(widths[0])] + [
            cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub table, numbers right-aligned."""
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def sizes_label(results: Results) -> tuple[str, str]:
    """The two scaling sizes, written out."""
    small, large = results.settings.scaling_sizes
    return f"{small:,}", f"{large:,}"


def target_lines(results: Results) -> list[str]:
    """Each target, its measured value (wall time, CPU time beside) and whether it was met."""
    ratio, cpu_ratio = results.paired_ratio("oneloop"), results.paired_ratio("oneloop", "cpu")
    cost, cpu_cost = results.startup.cost_ms(), results.startup.cost_ms("cpu")
    scaling = results.scaling["oneloop"]
    change, cpu_change = scaling.change(), scaling.change("cpu")
    small, large = sizes_label(results)
    return [
        f"oneloop / sync: {ratio:.2f}x (CPU {cpu_ratio:.2f}x), "
        f"target <= {ONELOOP_TARGET:.2f}x: " + verdict(ratio <= ONELOOP_TARGET),
        f"start-up over -p no:oneloop: {cost:+.1f} ms (CPU {cpu_cost:+.1f} ms), "
        f"target <= {STARTUP_TARGET_MS:.0f} ms: " + verdict(cost <= STARTUP_TARGET_MS),
        f"oneloop per-test cost at {large} vs {small} tests: {change:+.1%} "
        f"(CPU {cpu_change:+.1%}), target within {SCALING_TARGET:.0%}: "
        + verdict(abs(change) <= SCALING_TARGET),
    ]


def print_report(results: Results) -> None:
    """The tables, on stdout."""
    settings = results.settings
    small, large = sizes_label(results)
    print(
        f"\nOverhead: {settings.tests:,} tests in {settings.modules} modules, "
        f"{settings.rounds} interleaved rounds, wall time"
    )
    print(text_table(OVERHEAD_HEADER, overhead_rows(results)))
    print(f"\nStart-up: pytest --collect-only -q on one test, median of {settings.startup_rounds}")
    print(text_table(STARTUP_HEADER, startup_rows(results)))
    print(f"\nScaling: {small} vs {large} tests, {SCALING_TESTS_PER_MODULE} per module")
    print(text_table(scaling_header(results), scaling_rows(results)))
    print("\nTargets")
    for line in target_lines(results):
        print(f"  {line}")


def markdown(results: Results) -> str:
    """`results.md`: the same tables, with the conditions they were measured in."""
    settings = results.settings
    start_load, end_load = (" ".join(f"{value:.2f}" for value in load) for load in results.load)
    parts = [
        "# Benchmark results",
        "",
        (
            f"Written by `bench/overhead.py` on {results.started:%Y-%m-%d %H:%M} UTC: "
            f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, "
            f"Python {platform.python_version()}, {PYTEST.replace('==', ' ')} in every flavour. "
            f"Load average (1, 5, 15 min) at start {start_load}, at end {end_load}. "
            "[How to read this](README.md)."
        ),
        "",
        "## Overhead against the sync floor",
        "",
        (
            f"{settings.tests:,} tests in {settings.modules} modules; each awaits "
            "`asyncio.sleep(0)` and uses a function-scoped async generator fixture that "
            "depends on a session-scoped async fixture (sync: the same without `async`). "
            f"Wall time of `pytest -p no:cacheprovider -q`, {settings.rounds} interleaved "
            "rounds after a warm-up round. Ratio per round: each flavour's time over the "
            "sync floor's in the same round (they ran side by side); its median is what the "
            "target is judged on, being steadier on a shared machine than the ratio of the "
            "medians, shown beside it. CPU ratio: the per-round median with user + system "
            "CPU time."
        ),
        "",
        markdown_table(OVERHEAD_HEADER, overhead_rows(results)),
        "",
        "## Start-up",
        "",
        (
            "`pytest --collect-only -q` on a one-test suite in the oneloop venv, with and "
            f"without `-p no:oneloop`, {settings.startup_rounds} interleaved rounds."
        ),
        "",
        markdown_table(STARTUP_HEADER, startup_rows(results)),
        "",
        "## Scaling",
        "",
        (
            f"Medians of {settings.side_rounds} interleaved rounds, {SCALING_TESTS_PER_MODULE} "
            "tests per module. Per-test cost: (wall time - wall time of the one-test suite) "
            "/ (tests - 1), so pytest's fixed start-up does not flatter the larger suite."
        ),
        "",
        markdown_table(scaling_header(results), scaling_rows(results)),
        "",
        "## Targets",
        "",
        *(f"- {line}" for line in target_lines(results)),
        "",
    ]
    db = results.db_isolation
    if db is not None:
        status = "" if db.ok else " (it FAILED)"
        parts += ["## DB isolation", "", f"`{db.command}`{status}:", "", "```text"]
        parts += [db.output, "```", ""]
    return "\n".join(parts)


CHART_SCRIPT = """\
import json, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

data = json.load(sys.stdin)
names = [bar["name"] for bar in data["bars"]]
ratios = [bar["ratio"] for bar in data["bars"]]
low = [bar["ratio"] - bar["low"] for bar in data["bars"]]
high = [bar["high"] - bar["ratio"] for bar in data["bars"]]
colours = ["#9e9e9e", "#2e7d32", "#1565c0", "#6a1b9a"]
fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
bars = ax.bar(names, ratios, color=colours[: len(names)], yerr=[low, high], capsize=4)
ax.bar_label(bars, labels=[f"{r:.2f}x" for r in ratios], label_type="center", color="white",
             fontweight="bold")
ax.axhline(data["target"], color="#2e7d32", linestyle="--", linewidth=1,
           label=f"oneloop target {data['target']:.2f}x")
ax.legend(loc="upper left", frameon=False, fontsize=8)
ax.set_ylabel("wall time / sync floor (median; bars: min-max)")
ax.set_ylim(0, max(r + h for r, h in zip(ratios, high)) * 1.2)
ax.set_title(data["title"], fontsize=10)
ax.spines[["top", "right"]].set_visible(False)
fig.tight_layout()
fig.savefig(data["path"])
"""


def write_chart(results: Results, tools: Path, path: Path) -> None:
    """`results.png`: the ratios as bars, drawn by matplotlib in the tooling venv."""
    settings = results.settings
    rounds = f"{settings.rounds} round{'s' if settings.rounds > 1 else ''}"
    data = {
        "path": str(path),
        "target": ONELOOP_TARGET,
        "title": f"{settings.tests:,} async tests, {rounds} "
        f"({PYTEST.replace('==', ' ')}, Python {platform.python_version()}): lower is better",
        "bars": [
            {
                "name": flavour.name,
                "ratio": results.paired_ratio(flavour.name),
                "low": min(results.round_ratios(flavour.name)),
                "high": max(results.round_ratios(flavour.name)),
            }
            for flavour in FLAVOURS
        ],
    }
    subprocess.run(
        [str(python_of(tools)), "-c", CHART_SCRIPT],
        input=json.dumps(data),
        env=clean_env(),
        text=True,
        timeout=RUN_TIMEOUT,
        check=True,
    )


# Command line ---------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> Settings:
    """Settings from the command line; `--quick` makes every default tiny."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tests", type=int, help="tests in the overhead suite (2000)")
    parser.add_argument("--modules", type=int, help="modules they are spread over (20)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds of the overhead suite (15)")
    parser.add_argument(
        "--side-rounds", type=int, help="rounds of the scaling and DB isolation runs (5)"
    )
    parser.add_argument(
        "--startup-rounds", type=int, help="interleaved rounds of the start-up runs (30)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: 50 tests, 2 modules, one round"
    )
    parser.add_argument(
        "--cache-dir", type=Path, default=BENCH / ".cache", help="venvs and generated suites"
    )
    parser.add_argument(
        "--out", type=Path, default=BENCH, help="where results.md and results.png go"
    )
    args = parser.parse_args(argv)
    quick = args.quick

    def count(given: int | None, quick_default: int, default: int) -> int:
        """A count from the command line (0 included, so it is refused below), else a default."""
        if given is not None:
            return given
        return quick_default if quick else default

    settings = Settings(
        tests=count(args.tests, 50, 2000),
        modules=count(args.modules, 2, 20),
        rounds=count(args.rounds, 1, 15),
        side_rounds=count(args.side_rounds, 1, 5),
        startup_rounds=count(args.startup_rounds, 3, 30),
        scaling_sizes=(50, 200) if quick else (1000, 10000),
        db_tests=20 if quick else 500,
        cache=args.cache_dir.resolve(),
        out=args.out.resolve(),
    )
    counts = (
        settings.tests,
        settings.modules,
        settings.rounds,
        settings.side_rounds,
        settings.startup_rounds,
    )
    if min(counts) < 1:
        parser.error(
            "--tests, --modules, --rounds, --side-rounds and --startup-rounds must be at least 1"
        )
    return settings


def main(argv: Sequence[str] | None = None) -> None:
    """Prepare the venvs, measure, print, and write results.md and results.png."""
    settings = parse_args(argv)
    started = datetime.now(tz=UTC)
    start_load = os.getloadavg()
    cache = settings.cache
    with locked(cache):
        print("Preparing venvs", flush=True)
        venvs = {flavour.name: cache / f"venv-{flavour.name}" for flavour in FLAVOURS}
        versions = {f.name: prepare_flavour(venvs[f.name], f) for f in FLAVOURS}
        ensure_venv(cache / "venv-tools", [MATPLOTLIB])
        if DB_SCRIPT.exists():
            prepare_db_venv(cache / "venv-db")
        print(f"Overhead: {settings.tests} tests, {settings.rounds} rounds", flush=True)
        overhead = measure_overhead(settings, venvs)
        print("Start-up", flush=True)
        startup = measure_startup(settings, venvs["oneloop"])
        small, large = settings.scaling_sizes
        print(f"Scaling: {small} vs {large} tests", flush=True)
        scaling = measure_scaling(settings, venvs)
        results = Results(
            settings,
            versions,
            overhead,
            startup,
            scaling,
            None,
            started,
            (start_load, os.getloadavg()),
        )
        print_report(results)
        write_results(results, cache / "venv-tools")
        # Last, so that a failure there cannot lose the measurements above.
        if not DB_SCRIPT.exists():
            print("\nDB isolation: bench/db_isolation.py does not exist yet, skipped")
            return
        db = run_db_isolation(settings, cache / "venv-db")
        print(f"\nDB isolation ({db.command})\n{db.output}")
        write_results(dataclasses.replace(results, db_isolation=db), cache / "venv-tools")
        if not db.ok:
            sys.exit("bench: bench/db_isolation.py failed; its output is in results.md")


def write_results(results: Results, tools: Path) -> None:
    """Write results.md and results.png."""
    out = results.settings.out
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.md").write_text(markdown(results))
    write_chart(results, tools, out / "results.png")
    print(f"Wrote {out / 'results.md'} and {out / 'results.png'}", flush=True)


if __name__ == "__main__":
    main()
