"""Wall time of each corpus suite under pytest-asyncio and under pytest-oneloop.

    python bench/compat/run_all.py --speed ROUNDS [PACKAGE ...]

Reuses the venvs that the `pytest-asyncio` and `oneloop` runs of run_one.py
left in bench/.cache/compat (it installs nothing) and times the pytest
process of each suite, with the same command as those runs less the
harness's junit and counting options. The two flavours are interleaved in
one run: each round times every package under both, and every other round
puts oneloop first, so that drift in the machine's speed falls on both. A
timing whose exit status is not the one of the flavour's recorded run stops
the measurement, since a suite that broke is not the suite that was timed.
The times are merged into `speed.json` beside the runs, by package, and
results.md shows the median of each and their ratio.
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import time
from typing import TYPE_CHECKING

import run_one

if TYPE_CHECKING:
    from collections.abc import Iterable

SPEED_FILE = run_one.CACHE / "speed.json"
SPEED_FLAVOURS = ("pytest-asyncio", "oneloop")

Times = dict[str, dict[str, list[float]]]


class SpeedError(RuntimeError):
    """A suite cannot be timed: not installed, or it did not end as its recorded run did."""


def _recorded_rc(package: str, flavour: str) -> int:
    work = run_one.workdir(package, flavour)
    try:
        data = json.loads((work / "result.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        msg = f"{package} has no {flavour} run to reuse: run `run_all.py {package}` first"
        raise SpeedError(msg) from None
    rc = int(data["rc"])
    if rc > 1:
        msg = f"the {flavour} run of {package} did not complete (rc={rc}): nothing to time"
        raise SpeedError(msg)
    return rc


def time_once(recipe: run_one.Recipe, flavour: str) -> tuple[float, int]:
    """Seconds of one pytest process of the suite under `flavour`, and its exit status."""
    work = run_one.workdir(recipe.package, flavour)
    extra_file = work / "extra_args.json"
    extra = json.loads(extra_file.read_text(encoding="utf-8")) if extra_file.is_file() else []
    cmd = run_one.pytest_command(recipe, flavour, work, extra)
    start = time.perf_counter()
    proc = subprocess.run(
        cmd,
        cwd=run_one.source_dir(work),
        env=run_one.pytest_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=run_one.SUITE_TIMEOUT,
        check=False,
    )
    return time.perf_counter() - start, proc.returncode


def measure(recipes: dict[str, run_one.Recipe], packages: list[str], rounds: int) -> Times:
    """Time every package under both flavours, `rounds` times, interleaved."""
    expected = {(p, f): _recorded_rc(p, f) for p in packages for f in SPEED_FLAVOURS}
    times: Times = {p: {f: [] for f in SPEED_FLAVOURS} for p in packages}
    for number in range(rounds):
        order: Iterable[str] = SPEED_FLAVOURS if number % 2 == 0 else reversed(SPEED_FLAVOURS)
        order = list(order)
        for package in packages:
            for flavour in order:
                seconds, rc = time_once(recipes[package], flavour)
                if rc != expected[package, flavour]:
                    msg = (
                        f"{package} under {flavour} exited {rc}, its recorded run "
                        f"{expected[package, flavour]}: not timed"
                    )
                    raise SpeedError(msg)
                times[package][flavour].append(round(seconds, 2))
                print(f"round {number + 1}: {package} {flavour} {seconds:.2f} s", flush=True)
    saved = load()
    saved.update(times)
    SPEED_FILE.write_text(json.dumps(saved, indent=1, sort_keys=True), encoding="utf-8")
    return times


def load() -> Times:
    """The times on disk, by package and flavour ({} when nothing was timed)."""
    try:
        data: Times = json.loads(SPEED_FILE.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    return data


def ratio(times: dict[str, list[float]]) -> float:
    """Median wall time under oneloop over the median under pytest-asyncio."""
    return statistics.median(times["oneloop"]) / statistics.median(times["pytest-asyncio"])


def geometric_mean(ratios: list[float]) -> float:
    """The geometric mean of per-package ratios (each package weighs the same)."""
    return math.exp(sum(math.log(r) for r in ratios) / len(ratios))


def report(packages: list[str], times: Times) -> list[str]:
    """The Speed section of results.md (no lines when no package was timed)."""
    timed = [p for p in packages if p in times and all(times[p].get(f) for f in SPEED_FLAVOURS)]
    if not timed:
        return []
    rounds = min(len(times[p][f]) for p in timed for f in SPEED_FLAVOURS)
    lines = [
        "",
        "## Speed",
        "",
        "Wall time of the suite's pytest process, the same command as the runs above, in the",
        "venvs they left (`python3 bench/compat/run_all.py --speed 3`). The flavours are",
        f"interleaved, {rounds} or more rounds each; a cell is the median, the ratio is",
        "oneloop over pytest-asyncio. Wall time on a shared machine moves by ±20 % between",
        "runs.",
        "",
        "| package | pytest-asyncio s | oneloop s | ratio | rounds (pytest-asyncio; oneloop) |",
        "|---|---|---|---|---|",
    ]
    ratios = []
    for package in timed:
        ref, one = times[package]["pytest-asyncio"], times[package]["oneloop"]
        ratios.append(ratio(times[package]))
        lines.append(
            f"| {package} | {statistics.median(ref):.2f} | {statistics.median(one):.2f} "
            f"| {ratios[-1]:.2f} | {' '.join(map(str, ref))}; {' '.join(map(str, one))} |"
        )
    mean = geometric_mean(ratios)
    lines += ["", f"Geometric mean of the ratios, {len(timed)} packages: **{mean:.2f}**."]
    return lines
