"""Instructions per test, counted by valgrind: the yardstick for the plugin's own cost.

Wall time on a shared machine moves by 10 to 20 % from one run to the next,
more than most changes to the plugin's hot path are worth. This counts the
instructions the CPU executes instead (`I refs` of valgrind's cachegrind,
user space only), which do not depend on how busy the machine is: the same
tree gives the same count to a fraction of a percent, so a change can be
judged by one run.

It generates the overhead suite of `bench/overhead.py` (the same shape,
fewer tests) in the `sync` and `oneloop` flavours, runs each at one test and
at `--tests` tests in the venvs `make bench` made (the oneloop venv is
reinstalled from this tree first), and prints the instructions per test,
without pytest's fixed start-up, and their ratio.

    python3 bench/instructions.py [--tests 400] [--args="--blocking 0.1"]

`--args` counts the oneloop suite once more with those pytest arguments,
and prints what they cost per test over the run without them.

It needs valgrind (Debian: `apt-get install valgrind`) and the venvs of a
previous `make bench` or `python3 bench/overhead.py --quick`. Instructions
are not time: a cache miss or a system call costs more than its count says,
which is why `make bench` compares the plugin with its peers in wall time.
"""

from __future__ import annotations

import argparse
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import overhead  # the sibling script, found through the path set above

FLAVOURS = ("sync", "oneloop")
TESTS_PER_MODULE = 100
MIN_TESTS = 2  # the per-test figure is a difference from the one-test run
WITH = "oneloop+args"  # the oneloop suite run with `--args`
IREFS = re.compile(r"I\s+refs:\s+([\d,]+)")


def count(venv: Path, suite: Path, tests: int, extra: tuple[str, ...] = ()) -> int:
    """Instructions of one `pytest -q` run of `suite` (plus `extra`), which must pass `tests`."""
    env = overhead.clean_env() | {"PYTHONHASHSEED": "0"}
    command = [
        "valgrind",
        "--tool=cachegrind",
        "--cache-sim=no",
        "--cachegrind-out-file=/dev/null",
        str(overhead.python_of(venv)),
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-q",
        *extra,
    ]
    proc = subprocess.run(command, cwd=suite, env=env, capture_output=True, text=True, check=False)
    found = IREFS.search(proc.stderr)
    lines = proc.stdout.strip().splitlines()
    if (
        proc.returncode != 0
        or found is None
        or not lines
        or not lines[-1].startswith(f"{overhead.passed(tests)} in ")
    ):
        sys.exit(f"bench: {suite} under valgrind:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def measure(
    venvs: dict[str, Path], tests: int, extra: tuple[str, ...] = ()
) -> dict[tuple[str, int], int]:
    """Instructions of each flavour (and oneloop with `extra`) at one test and at `tests`."""
    cache = venvs["oneloop"].parent
    oneloop_python = overhead.python_of(venvs["oneloop"])
    overhead.run([oneloop_python, *overhead.PIP, "--force-reinstall", "--no-deps", overhead.ROOT])
    irefs: dict[tuple[str, int], int] = {}
    for name in FLAVOURS:
        for size in (1, tests):
            suite = cache / "suites" / f"instructions-{name}-{size}"
            overhead.write_suite(suite, name, size, max(1, size // TESTS_PER_MODULE))
            # Once without valgrind: writes the bytecode caches the counted run reads.
            overhead.run_pytest(venvs[name], suite, (), overhead.passed(size))
            irefs[name, size] = count(venvs[name], suite, size)
            print(f"  {name} at {size} test(s): {irefs[name, size]:,} instructions", flush=True)
            if name == "oneloop" and extra:
                irefs[WITH, size] = count(venvs[name], suite, size, extra)
                print(f"  {WITH} at {size} test(s): {irefs[WITH, size]:,} instructions", flush=True)
    return irefs


def main(argv: list[str] | None = None) -> None:
    """Count, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tests", type=int, default=400, help="tests in the larger suite (400)")
    parser.add_argument(
        "--cache-dir", type=Path, default=overhead.BENCH / ".cache", help="make bench's venvs"
    )
    parser.add_argument(
        "--args", default="", help="pytest arguments to count the oneloop suite with, too"
    )
    args = parser.parse_args(argv)
    if args.tests < MIN_TESTS:
        parser.error(f"--tests must be at least {MIN_TESTS}")
    if shutil.which("valgrind") is None:
        sys.exit("bench: valgrind is not installed (Debian: apt-get install valgrind)")
    cache = args.cache_dir.resolve()
    venvs = {name: cache / f"venv-{name}" for name in FLAVOURS}
    missing = [str(venv) for venv in venvs.values() if not overhead.python_of(venv).exists()]
    if missing:
        sys.exit(f"bench: run `make bench` (or overhead.py --quick) first; missing {missing}")
    with overhead.locked(cache):  # a running `make bench` owns the venvs until it ends
        irefs = measure(venvs, args.tests, tuple(shlex.split(args.args)))
    names = (*FLAVOURS, WITH) if args.args else FLAVOURS
    per_test = {
        name: (irefs[name, args.tests] - irefs[name, 1]) / (args.tests - 1) for name in names
    }
    print(f"\nInstructions (valgrind I refs) at 1 and {args.tests} tests")
    print(f"{'flavour':12} {'1 test':>15} {f'{args.tests} tests':>15} {'per test':>12}")
    for name in names:
        print(
            f"{name:12} {irefs[name, 1]:>15,} {irefs[name, args.tests]:>15,} "
            f"{per_test[name]:>12,.0f}"
        )
    print(
        f"\noneloop / sync per test: {per_test['oneloop'] / per_test['sync']:.3f}x "
        f"(+{per_test['oneloop'] - per_test['sync']:,.0f} instructions per test); "
        f"start-up and one test: {irefs['oneloop', 1] - irefs['sync', 1]:+,} instructions; "
        f"whole run: {irefs['oneloop', args.tests] / irefs['sync', args.tests]:.3f}x"
    )
    if args.args:
        extra = per_test[WITH] - per_test["oneloop"]
        print(
            f"with {args.args!r}: {per_test[WITH] / per_test['oneloop']:.4f}x per oneloop test "
            f"({extra:+,.0f} instructions per test); whole run: "
            f"{irefs[WITH, args.tests] / irefs['oneloop', args.tests]:.4f}x"
        )


if __name__ == "__main__":
    main()
