"""Run every corpus package under pytest-asyncio and under pytest-oneloop.

    python bench/compat/run_all.py [PACKAGE ...] [--reuse-reference] [--plugin PATH]

Packages run one at a time, each flavour in a fresh venv (see run_one.py).
Then every test's outcome under oneloop is compared with its outcome under
pytest-asyncio, and `bench/compat/results.md` gets one table row per package
and one line per test whose outcome differs. A difference is explained by a
line of `differences.tsv` (package, test pattern, reason); a difference that
no line explains is marked UNEXPLAINED with the test's own message, and the
command exits non-zero.
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
    reasons = load_reasons()
    lines = [
        "# Compatibility corpus: pytest-asyncio vs pytest-oneloop",
        "",
        "Written by `make compat` (`bench/compat/run_all.py`). Each package's own test suite,",
        f"from its sdist, on CPython {platform.python_version()}, {run_one.PYTEST_SPEC}: once with",
        f"{run_one.PYTEST_ASYNCIO_SPEC}, once with pytest-oneloop (this tree) and pytest-asyncio",
        "uninstalled; the harness's `pytest_asyncio` import shim is the only help (never loaded",
        "as a plugin). Counts are passed / failed / skipped / errors.",
        "",
        (
            "| package | pytest-asyncio | oneloop | async tests passed | same tests pass "
            "| reference as recorded |"
        ),
        "|---|---|---|---|---|---|",
    ]
    details: list[str] = []
    unexplained = 0
    for package in packages:
        recipe = recipes[package]
        ref, ref_outcomes = _load(package, "pytest-asyncio")
        one, one_outcomes = _load(package, "oneloop")
        rows = compare(package, ref_outcomes, one_outcomes, reasons)
        broken = [
            (flavour, r) for flavour, r in (("pytest-asyncio", ref), ("oneloop", one)) if r.rc > 1
        ]
        if broken:
            # A run that did not get to the tests explains every difference at once.
            rows = [
                (RUN, "", f"rc={r.rc}", f"{flavour} run failed: {_last_error(package, flavour)}")
                for flavour, r in broken
            ]
        ref_passing = {t for t, (o, _) in ref_outcomes.items() if o == "passed"}
        one_passing = {t for t, (o, _) in one_outcomes.items() if o == "passed"}
        same = "yes" if ref_passing == one_passing and ref_outcomes else "**no**"
        lines.append(
            f"| {package} {recipe.version} | {_counts(ref)} | {_counts(one)} "
            f"| {ref.async_passed} → {one.async_passed} | {same} | {_recorded(ref, recipe)} |"
        )
        if rows:
            details += [
                "",
                f"### {package}: {len(rows)} {'difference' if len(rows) == 1 else 'differences'}",
                "",
            ]
            details += ["| test | pytest-asyncio | oneloop | why |", "|---|---|---|---|"]
            for test, ref_word, one_word, why in rows:
                unexplained += why.startswith(
                    ("UNEXPLAINED", "pytest-asyncio run failed", "oneloop run failed")
                )
                details.append(f"| `{test}` | {ref_word} | {one_word} | {why} |")
    lines += ["", "## Differences"]
    lines += details or ["", "None: every test has the same outcome under both plugins."]
    lines += ["", "## Arguments", "", "| package | pytest arguments | why |", "|---|---|---|"]
    for package in packages:
        recipe = recipes[package]
        args = shlex.join(recipe.args)
        ref_only = shlex.join(recipe.reference_args)
        if ref_only:
            args += f" (pytest-asyncio run only: {ref_only})"
        lines.append(f"| {package} | `{args}` | {recipe.why_args or '-'} |")
    return "\n".join(lines) + "\n", unexplained


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
    parser.add_argument("--out", type=Path, default=HERE / "results.md")
    ns = parser.parse_args()
    recipes = run_one.load_corpus()
    packages = ns.packages or list(recipes)
    for package in packages:
        if package not in recipes:
            parser.error(f"{package!r} is not in corpus.tsv")
    if not ns.report_only:
        for package in packages:
            for flavour in run_one.FLAVOURS:
                work = run_one.workdir(package, flavour)
                reuse = flavour == "pytest-asyncio" and ns.reuse_reference
                if reuse and (work / "result.json").is_file():
                    continue
                result = run_one.run(recipes[package], flavour, ns.plugin.resolve(), work)
                print(f"== {package} {flavour}: {_counts(result)} rc={result.rc}", flush=True)
    text, unexplained = report(packages, recipes)
    ns.out.write_text(text, encoding="utf-8")
    print(text)
    if unexplained:
        print(f"{unexplained} differences are not explained in differences.tsv", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
