"""Run every corpus package under pytest-asyncio, under pytest-oneloop, and migrated.

    python bench/compat/run_all.py [PACKAGE ...] [--reuse-reference] [--plugin PATH]
    python bench/compat/run_all.py --speed ROUNDS [PACKAGE ...]

Packages run one at a time, each flavour in a fresh venv (see run_one.py).
Then every test's outcome under oneloop, and after `pytest-oneloop migrate`
(the `migrated` flavour), is compared with its outcome under
pytest-asyncio, and `bench/compat/results.md` gets one table row per package
and one line per test whose outcome differs. A difference is explained by a
line of `differences.tsv` (package, test pattern, reason); a difference that
no line explains is marked UNEXPLAINED with the test's own message, and the
command exits non-zero. With `--speed`, nothing is installed: the venvs of
the earlier runs time each suite under both plugins (see speed.py).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import platform
import shlex
import sys
from pathlib import Path

import run_one
import speed

HERE = Path(__file__).resolve().parent
RUN = "(the whole run)"
OUTCOME_WORDS = {
    "passed": "passed",
    "failure": "failed",
    "error": "error",
    "skipped": "skipped",
    "xfailed": "xfailed",
}


def load_reasons(path: Path = HERE / "differences.tsv") -> list[tuple[str, str, str]]:
    """(package, test pattern, reason) lines; a pattern is an fnmatch glob on the test id."""
    reasons = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            package, pattern, reason = line.split("\t")
            reasons.append((package, pattern, reason))
    return reasons


def _load(package: str, flavour: str) -> tuple[run_one.Result, dict[str, tuple[str, str]]]:
    work = run_one.workdir(package, flavour)
    try:
        data = json.loads((work / "result.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return run_one.Result(package, flavour, rc=99, problem="not run"), {}
    return run_one.Result(**data), run_one.read_junit(work / "junit.xml")


def _word(outcome: str) -> str:
    return "+".join(OUTCOME_WORDS.get(part, part) for part in outcome.split("+"))


def _counts(result: run_one.Result) -> str:
    text = f"{result.passed} / {result.failed} / {result.skipped} / {result.errors}"
    if result.problem:
        text += f" ({result.problem})"
    return text


def compare(
    package: str,
    reference: dict[str, tuple[str, str]],
    oneloop: dict[str, tuple[str, str]],
    reasons: list[tuple[str, str, str]],
) -> list[tuple[str, str, str, str]]:
    """(test, outcome under pytest-asyncio, under oneloop, reason) for each difference."""
    rows = []
    for test in sorted(reference.keys() | oneloop.keys()):
        ref, _ = reference.get(test, ("absent", ""))
        one, message = oneloop.get(test, ("absent", ""))
        if ref == one:
            continue
        reason = next(
            (
                why
                for pkg, pattern, why in reasons
                if pkg == package and fnmatch.fnmatchcase(test, pattern)
            ),
            None,
        )
        if reason is None:
            reason = f"UNEXPLAINED: {message}" if message else "UNEXPLAINED"
        rows.append((test, _word(ref), _word(one), reason))
    return rows


def _last_error(package: str, flavour: str) -> str:
    """The last line of the run's log that says what stopped it."""
    log = run_one.workdir(package, flavour) / "pytest.log"
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines() if log.is_file() else []
    errors = [line for line in lines if line.startswith(("ERROR", "INTERNALERROR> E", "E  "))]
    for line in reversed(errors or lines):
        if line.strip():
            return line.strip()
    return "no output"


def _recorded(ref: run_one.Result, recipe: run_one.Recipe) -> str:
    """Whether the reference run matches corpus.tsv's recorded passed/failed/skipped."""
    now = f"{ref.passed}/{ref.failed}/{ref.skipped}"
    return "yes" if now == recipe.recorded else f"**no**: recorded {recipe.recorded}"


def report(packages: list[str], recipes: dict[str, run_one.Recipe]) -> tuple[str, int]:
    """The markdown of results.md, and how many differences nothing explains."""
    lines = [
        "# Compatibility corpus: pytest-asyncio vs pytest-oneloop",
        "",
        "Written by `make compat` (`bench/compat/run_all.py`). Each package's own test suite,",
        f"from its sdist, on CPython {platform.python_version()}, {run_one.PYTEST_SPEC}: once with",
        f"{run_one.PYTEST_ASYNCIO_SPEC}; once with pytest-oneloop (this tree) and pytest-asyncio",
        "uninstalled, where the harness's `pytest_asyncio` import shim is the only help (never",
        "loaded as a plugin); and once *migrated*: `pytest-oneloop migrate` applied to the",
        "unpacked sdist, pytest-asyncio uninstalled, no shim (a test dependency that imports",
        "pytest_asyncio itself, such as pytest-aiohttp, keeps it installed there, disabled with",
        "`-p no:asyncio`, as docs/migrating.md says). Counts are passed / failed / skipped /",
        "errors.",
        "",
        (
            "| package | pytest-asyncio | oneloop | migrated | async tests passed "
            "| same tests pass (oneloop, migrated) | reference as recorded |"
        ),
        "|---|---|---|---|---|---|---|",
    ]
    details: list[str] = []
    migrations: list[str] = []
    unexplained = 0
    for package in packages:
        recipe = recipes[package]
        ref, ref_outcomes = _load(package, "pytest-asyncio")
        cells, same, passed = [], [], [ref.async_passed]
        for flavour in run_one.ONELOOP_FLAVOURS:
            result, outcomes = _load(package, flavour)
            rows = _differences(package, flavour, (ref, ref_outcomes), (result, outcomes))
            cells.append(_counts(result))
            passed.append(result.async_passed)
            ref_passing = {t for t, (o, _) in ref_outcomes.items() if o == "passed"}
            passing = {t for t, (o, _) in outcomes.items() if o == "passed"}
            same.append("yes" if ref_passing == passing and ref_outcomes else "**no**")
            if flavour == "migrated" and result.migrate:
                migrations.append(f"| {package} | {result.migrate} |")
            if rows:
                count = f"{len(rows)} {'difference' if len(rows) == 1 else 'differences'}"
                details += ["", f"### {package}, {flavour}: {count}", ""]
                details += [f"| test | pytest-asyncio | {flavour} | why |", "|---|---|---|---|"]
                for test, ref_word, word, why in rows:
                    unexplained += why.startswith(
                        ("UNEXPLAINED", *(f"{f} run failed" for f in run_one.FLAVOURS))
                    )
                    details.append(f"| `{test}` | {ref_word} | {word} | {why} |")
        lines.append(
            f"| {package} {recipe.version} | {_counts(ref)} | {' | '.join(cells)} "
            f"| {' → '.join(passed)} | {', '.join(same)} | {_recorded(ref, recipe)} |"
        )
    lines += ["", "## Differences"]
    lines += details or ["", "None: every test has the same outcome under all three runs."]
    if migrations:
        lines += [
            "",
            "## What `pytest-oneloop migrate` said",
            "",
            "| package | exit status: summary |",
        ]
        lines += ["|---|---|", *migrations]
    lines += speed.report(packages, speed.load())
    lines += ["", "## Arguments", "", "| package | pytest arguments | why |", "|---|---|---|"]
    for package in packages:
        recipe = recipes[package]
        args = shlex.join(recipe.args)
        ref_only = shlex.join(recipe.reference_args)
        if ref_only:
            args += f" (pytest-asyncio run only: {ref_only})"
        lines.append(f"| {package} | `{args}` | {recipe.why_args or '-'} |")
    return "\n".join(lines) + "\n", unexplained


Loaded = tuple[run_one.Result, dict[str, tuple[str, str]]]


def _differences(
    package: str, flavour: str, reference: Loaded, current: Loaded
) -> list[tuple[str, str, str, str]]:
    """The rows of one flavour's differences; a run that did not start explains them all."""
    (ref, ref_outcomes), (result, outcomes) = reference, current
    broken = [(f, r) for f, r in (("pytest-asyncio", ref), (flavour, result)) if r.rc > 1]
    if broken:
        return [
            (RUN, "", f"rc={r.rc}", f"{f} run failed: {_last_error(package, f)}") for f, r in broken
        ]
    return compare(package, ref_outcomes, outcomes, load_reasons())


def _run_corpus(
    recipes: dict[str, run_one.Recipe], packages: list[str], plugin: Path, *, reuse_reference: bool
) -> None:
    for package in packages:
        for flavour in run_one.FLAVOURS:
            work = run_one.workdir(package, flavour)
            reuse = flavour == "pytest-asyncio" and reuse_reference
            if reuse and (work / "result.json").is_file():
                continue
            result = run_one.run(recipes[package], flavour, plugin, work)
            print(f"== {package} {flavour}: {_counts(result)} rc={result.rc}", flush=True)


def main() -> int:
    """Command line: run the corpus, write results.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("packages", nargs="*", help="default: every package of corpus.tsv")
    parser.add_argument("--plugin", type=Path, default=run_one.REPO, help="plugin tree")
    parser.add_argument(
        "--reuse-reference",
        action="store_true",
        help="keep an earlier pytest-asyncio run of a package when there is one",
    )
    parser.add_argument("--report-only", action="store_true", help="rewrite results.md only")
    parser.add_argument(
        "--speed",
        type=int,
        metavar="ROUNDS",
        help="time the suites under both plugins, ROUNDS rounds, in the venvs of earlier runs",
    )
    parser.add_argument("--out", type=Path, default=HERE / "results.md")
    ns = parser.parse_args()
    recipes = run_one.load_corpus()
    packages = ns.packages or list(recipes)
    for package in packages:
        if package not in recipes:
            parser.error(f"{package!r} is not in corpus.tsv")
    if ns.speed is not None:
        if ns.speed < 1:
            parser.error("--speed needs at least one round")
        try:
            speed.measure(recipes, packages, ns.speed)
        except speed.SpeedError as exc:
            print(f"speed: {exc}", file=sys.stderr)
            return 1
    elif not ns.report_only:
        _run_corpus(recipes, packages, ns.plugin.resolve(), reuse_reference=ns.reuse_reference)
    text, unexplained = report(packages, recipes)
    ns.out.write_text(text, encoding="utf-8")
    print(text)
    if unexplained:
        print(f"{unexplained} differences are not explained in differences.tsv", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
