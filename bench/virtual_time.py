"""Virtual time beside real time and beside the same suite with its sleeps removed.

The suite: `--tests` tests (200) that each sleep or time out for `--delay`
seconds (0.5): half `await asyncio.sleep(DELAY)`, half a
`wait_for(..., DELAY)` that times out; 100 s of waiting in real time. It is
run by pytest-oneloop from this checkout (installed into a venv of its own
under `bench/.cache/`, with the pytest that `bench/overhead.py` pins) three
ways:

- `virtual`: `-o oneloop_virtual_time=true`;
- `real`: as written;
- `floor`: the same suite with `DELAY = 0` (the sleeps removed).

When looptime installs (in another venv there, with pytest-asyncio and the
same pytest), the suite also runs under pytest-asyncio with `--looptime`,
beside pytest-asyncio's own floor.

The virtual and floor runs (and looptime's) are interleaved for `--rounds`
rounds so that a busy neighbour slows them alike; the real run takes
`--tests * --delay` seconds and runs once. The figures are the wall time of
each pytest subprocess (median over the rounds) and the CPU time it used;
nothing is timed inside the tests. Issue 18 set the goal: virtual time at
most 1.2x the floor.

    python3 bench/virtual_time.py [--tests 200] [--delay 0.5] [--rounds 5] [--no-looptime]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import shutil
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from overhead import PYTEST  # the one pytest every benchmark runs

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "bench" / ".cache" / "virtual_time"
RUN_TIMEOUT = 1800
#: One test of each kind.
MIN_TESTS = 2
INSTALL_TIMEOUT = 900

SUITE = """
import asyncio

import pytest

DELAY = {delay!r}


@pytest.mark.parametrize("n", range({sleeps}))
async def test_sleeps(n):
    await asyncio.sleep(DELAY)


@pytest.mark.parametrize("n", range({timeouts}))
async def test_times_out(n):
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(asyncio.Event().wait(), DELAY)
"""

ASYNCIO_INI = "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"


@dataclasses.dataclass(frozen=True)
class Run:
    """One way of running the suite: which interpreter, which suite, which options."""

    name: str
    python: str
    suite: Path
    args: tuple[str, ...] = ()


@dataclasses.dataclass
class Timing:
    """Wall and CPU seconds of each round of a run."""

    wall: list[float] = dataclasses.field(default_factory=list)
    cpu: list[float] = dataclasses.field(default_factory=list)


def write_suite(where: Path, tests: int, delay: float, ini: str) -> Path:
    """The suite with its delay, in a folder of its own with its ini file."""
    shutil.rmtree(where, ignore_errors=True)
    where.mkdir(parents=True)
    sleeps = tests // 2
    code = SUITE.format(delay=delay, sleeps=sleeps, timeouts=tests - sleeps)
    (where / "test_suite.py").write_text(textwrap.dedent(code))
    (where / "pytest.ini").write_text(ini or "[pytest]\n")
    return where


def measure(run: Run, tests: int, timing: Timing) -> None:
    """Run pytest once; add its wall and CPU time; stop unless exactly `tests` passed."""
    command = [run.python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *run.args]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(
        command, cwd=run.suite, capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    last = proc.stdout.strip().splitlines()[-1:] or [""]
    if proc.returncode != 0 or not last[0].startswith(f"{tests} passed") or "warning" in last[0]:
        sys.exit(f"{run.name}: expected '{tests} passed', got:\n{proc.stdout}{proc.stderr}")
    timing.wall.append(wall)
    timing.cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)


def make_venv(name: str, packages: list[str], *, fresh: list[str]) -> str | None:
    """A venv under bench/.cache holding `packages`, made once; `fresh` reinstalled each time.

    Returns its interpreter, or None (saying why) when pip cannot install them.
    """
    venv = CACHE / name
    python = venv / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    steps = []
    if not (venv / ".installed").exists():
        shutil.rmtree(venv, ignore_errors=True)
        steps += [[sys.executable, "-m", "venv", str(venv)], [*pip, *packages]]
    if fresh:
        steps.append([*pip, "--force-reinstall", "--no-deps", *fresh])
    for step in steps:
        proc = subprocess.run(
            step, capture_output=True, text=True, timeout=INSTALL_TIMEOUT, check=False
        )
        if proc.returncode != 0:
            print(f"{name}: not installed: {proc.stderr.strip().splitlines()[-1:]}")
            return None
    (venv / ".installed").touch()
    return str(python)


def version(python: str, distribution: str) -> str:
    """The version of `distribution` in the venv of `python`."""
    code = f"import importlib.metadata as m; print(m.version({distribution!r}))"
    proc = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    return proc.stdout.strip()


def main() -> None:
    """Run the suite every way and print the figures and their ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tests", type=int, default=200)
    parser.add_argument("--delay", type=float, default=0.5)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-looptime", action="store_true", help="skip the looptime runs")
    options = parser.parse_args()
    if options.tests < MIN_TESTS or options.rounds < 1 or not options.delay > 0:
        parser.error("--tests must be 2 or more, --rounds 1 or more, --delay above 0")
    tests, delay = options.tests, options.delay
    python = make_venv("oneloop-venv", [PYTEST, str(ROOT)], fresh=[str(ROOT)])
    if python is None:
        sys.exit("pytest-oneloop could not be installed from this checkout")
    timed = write_suite(CACHE / "suite", tests, delay, "")
    floor = write_suite(CACHE / "floor", tests, 0.0, "")
    rounds = [
        Run("oneloop, virtual time", python, timed, ("-o", "oneloop_virtual_time=true")),
        Run("oneloop, sleeps removed (floor)", python, floor),
    ]
    looptime = (
        None
        if options.no_looptime
        else make_venv("looptime-venv", [PYTEST, "pytest-asyncio", "looptime"], fresh=[])
    )
    if looptime is not None:
        rounds += [
            Run(
                "looptime on pytest-asyncio",
                looptime,
                write_suite(CACHE / "asyncio-suite", tests, delay, ASYNCIO_INI),
                ("--looptime",),
            ),
            Run(
                "pytest-asyncio, sleeps removed (floor)",
                looptime,
                write_suite(CACHE / "asyncio-floor", tests, 0.0, ASYNCIO_INI),
            ),
        ]
    real = Run("oneloop, real time", python, timed)
    timings = {run.name: Timing() for run in [*rounds, real]}
    print(
        f"{tests} tests, each sleeping or timing out for {delay:g}s "
        f"({tests * delay:g}s of waiting in real time); pytest {version(python, 'pytest')}, "
        f"pytest-oneloop {version(python, 'pytest-oneloop')}, "
        f"Python {sys.version.split()[0]}, load {os.getloadavg()[0]:.2f}"
    )
    if looptime is not None:
        print(
            f"looptime {version(looptime, 'looptime')}, "
            f"pytest-asyncio {version(looptime, 'pytest-asyncio')}"
        )
    for _ in range(options.rounds):
        for run in rounds:
            measure(run, tests, timings[run.name])
    measure(real, tests, timings[real.name])
    medians = {name: statistics.median(timing.wall) for name, timing in timings.items()}
    print(f"\n{'run':<40} {'median (s)':>10} {'CPU (s)':>8} {'rounds':>6}")
    for name, timing in timings.items():
        cpu = statistics.median(timing.cpu)
        print(f"{name:<40} {medians[name]:>10.2f} {cpu:>8.2f} {len(timing.wall):>6}")
    virtual, base = medians[rounds[0].name], medians[rounds[1].name]
    print("\nratios (of the medians)")
    print(f"  virtual time / floor:  {virtual / base:.2f}x")
    print(f"  real time / floor:     {medians[real.name] / base:.2f}x")
    print(f"  real time / virtual:   {medians[real.name] / virtual:.2f}x")
    if looptime is not None:
        theirs, their_floor = medians[rounds[2].name], medians[rounds[3].name]
        print(f"  looptime / its floor:  {theirs / their_floor:.2f}x")
        print(f"  looptime / virtual:    {theirs / virtual:.2f}x")


if __name__ == "__main__":
    main()
