"""The benchmarks still run end to end, at a size too small to measure anything.

The smoke run of `bench/overhead.py` installs the four flavours' venvs from
PyPI into `bench/.cache/smoke` (reused by later runs) and writes its results
to a temporary folder, so the committed `bench/results.md` is left alone. It
is one test, not several sharing a fixture, so that pytest-xdist never
starts the run twice. `bench/virtual_time.py` gets a four-test run. The
command lines' checks are tested on their own: they stop the scripts before
they prepare anything.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FLAVOURS = ("sync", "oneloop", "pytest-asyncio", "anyio")
#: The last column: the per-round ratio's median, then its lowest and highest round.
RATIO = r"\d+\.\d\dx \(\d+\.\d\d-\d+\.\d\d\)"


@pytest.mark.integration
def test_the_benchmark_compares_every_flavour_and_judges_none(tmp_path: Path) -> None:
    """A one-round run at 50 tests prints and writes a ratio row per flavour, and no verdict."""
    command = [
        sys.executable,
        str(ROOT / "bench" / "overhead.py"),
        "--quick",
        "--tests=50",
        "--modules=2",
        "--rounds=1",
        f"--out={tmp_path}",
        f"--cache-dir={ROOT / 'bench' / '.cache' / 'smoke'}",
    ]
    proc = subprocess.run(  # noqa: S603 - our own script, run by this interpreter
        command, capture_output=True, text=True, timeout=1800, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = (tmp_path / "results.md").read_text()
    for flavour in FLAVOURS:
        name = re.escape(flavour)
        assert re.search(rf"^{name}\s.*\s{RATIO}$", proc.stdout, re.MULTILINE), proc.stdout
        assert re.search(rf"^\| {name} \|.*\| {RATIO} \|$", results, re.MULTILINE), results
    assert "## DB isolation" in results
    for verdict in ("target", "met", "MISSED"):
        assert not re.search(rf"\b{verdict}\b", proc.stdout + results), verdict


@pytest.mark.parametrize("option", ["--rounds", "--db-rounds"])
def test_a_count_of_zero_is_refused(option: str) -> None:
    """Zero rounds is an error, not a silent fall-back to the default count."""
    proc = subprocess.run(  # noqa: S603 - our own script, run by this interpreter
        [sys.executable, str(ROOT / "bench" / "overhead.py"), f"{option}=0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "--tests, --modules, --rounds and --db-rounds must be at least 1" in proc.stderr


@pytest.mark.integration
def test_the_virtual_time_benchmark_prints_each_run_and_the_ratios() -> None:
    """A one-round run of four tests prints the three runs and their ratios."""
    proc = subprocess.run(  # noqa: S603 - our own script, run by this interpreter
        [
            sys.executable,
            str(ROOT / "bench" / "virtual_time.py"),
            "--tests=4",
            "--delay=0.01",
            "--rounds=1",
            "--no-looptime",
        ],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for run in ("oneloop, virtual time", "oneloop, sleeps removed (floor)", "oneloop, real time"):
        row = rf"^{re.escape(run)}\s+\d+\.\d\d\s+\d+\.\d\d\s+1$"
        assert re.search(row, proc.stdout, re.MULTILINE), proc.stdout
    for ratio in ("virtual time / floor", "real time / floor", "real time / virtual"):
        assert re.search(rf"^  {ratio}:\s+\d+\.\d\dx$", proc.stdout, re.MULTILINE), proc.stdout


def test_the_virtual_time_benchmark_refuses_a_suite_without_both_kinds_of_test() -> None:
    """One test cannot both sleep and time out: `--tests 1` is an error, before any install."""
    proc = subprocess.run(  # noqa: S603 - our own script, run by this interpreter
        [sys.executable, str(ROOT / "bench" / "virtual_time.py"), "--tests=1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "--tests must be 2 or more, --rounds 1 or more, --delay above 0" in proc.stderr
