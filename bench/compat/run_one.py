"""Run one corpus package's own test suite under one async plugin.

    python bench/compat/run_one.py PACKAGE FLAVOUR [--plugin PATH] [--workdir DIR]

FLAVOUR is `pytest-asyncio` (the reference: pytest-asyncio as pinned below),
`oneloop` (the plugin tree at --plugin, default this repository, with
pytest-asyncio uninstalled) or `migrated` (the same, after `python -m
pytest_oneloop.migrate` has rewritten the unpacked sdist).

Each run starts from nothing in its work directory: a new venv, the sdist
downloaded with pip, the package and its test dependencies installed with
the versions of `constraints/PACKAGE.txt`, then the suite shipped in the
sdist runs with the arguments of `corpus.tsv`. Under `oneloop`, the only
help the suite gets is the `shim/pytest_asyncio` module, so that its
`import pytest_asyncio` lines resolve; the shim is importable, never loaded
as a plugin. Under `migrated` there is no shim: the command's own rewrite
is what lets the suite run (its output is in `migrate.log`). A test
dependency that imports pytest_asyncio itself (pytest-aiohttp) keeps
pytest-asyncio installed there, disabled with `-p no:asyncio`, as
docs/migrating.md tells users to do.

The work directory keeps `junit.xml`, `pytest.log`, `freeze.txt` and
`result.json` (the counts), and the last line printed is a summary.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import time
import tomllib
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from xml.etree import ElementTree as ET

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
CACHE = REPO / "bench" / ".cache" / "compat"
FLAVOURS = ("pytest-asyncio", "oneloop", "migrated")
ONELOOP_FLAVOURS = ("oneloop", "migrated")
PYTEST_SPEC = "pytest==9.2.0"
PYTEST_ASYNCIO_SPEC = "pytest-asyncio==1.5.0"
PIP_FLAGS = ("--disable-pip-version-check", "-q")
SUITE_TIMEOUT = 1200
CONFIG_FILES = ("pytest.ini", ".pytest.ini", "pytest.toml", ".pytest.toml")


@dataclass(frozen=True)
class Recipe:
    """How to install and run one package's suite (a line of `corpus.tsv`)."""

    package: str
    version: str
    extras: str
    deps: list[str]
    tests: str
    args: list[str]
    reference_args: list[str]
    recorded: str
    why_args: str


@dataclass
class Result:
    """Counts of one run, from its junit file."""

    package: str
    flavour: str
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    errors: int = 0
    xfailed: int = 0
    rc: int = 0
    seconds: float = 0.0
    async_passed: str = "?"
    problem: str = ""
    migrate: str = ""  # migrated: the command's exit status and summary


def _field(value: str) -> str:
    return "" if value == "-" else value


def load_corpus(path: Path = HERE / "corpus.tsv") -> dict[str, Recipe]:
    """The recipes, by package name, in file order."""
    recipes: dict[str, Recipe] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        package, version, extras, deps, tests, args, ref_args, recorded, why = (
            _field(value) for value in line.split("\t")
        )
        recipes[package] = Recipe(
            package=package,
            version=version,
            extras=extras,
            deps=deps.split(),
            tests=tests,
            args=shlex.split(args),
            reference_args=shlex.split(ref_args),
            recorded=recorded,
            why_args=why,
        )
    return recipes


def _run(cmd: list[str], **kwargs: object) -> None:
    print("+", shlex.join(cmd), flush=True)
    subprocess.run(cmd, check=True, **kwargs)  # type: ignore[call-overload]


def _extract(archive: Path, into: Path) -> Path:
    if archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(into)  # noqa: S202 - an sdist pip just downloaded from the registry
    else:
        with tarfile.open(archive) as tf:
            tf.extractall(into, filter="data")
    (top,) = [p for p in into.iterdir() if p.is_dir()]
    return top


def _isolate_config(src: Path) -> None:
    """Stop pytest's search for a config file at the sdist's root.

    Runs live inside this repository (under the git-ignored bench/.cache), so
    a suite whose sdist ships no pytest config would otherwise pick up this
    repository's pyproject.toml. An empty pytest.ini is what pytest finds
    instead: the same rootdir the sdist has on its own, and no settings.
    """
    has_config = (
        any((src / name).is_file() for name in CONFIG_FILES)
        or _has_pytest_table(src / "pyproject.toml")
        or _mentions(src / "tox.ini", "[pytest]")
        or _mentions(src / "setup.cfg", "[tool:pytest]")
    )
    if not has_config:
        (src / "pytest.ini").write_text("", encoding="utf-8")
        print(f"+ {src}: the sdist has no pytest config; wrote an empty pytest.ini", flush=True)


def _has_pytest_table(path: Path) -> bool:
    """Whether pytest reads `path` as its config.

    That is `[tool.pytest.ini_options]`, even empty, or a `[tool.pytest]`
    with a key: pytest 9 ignores an empty `[tool.pytest]`.
    """
    if not path.is_file():
        return False
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return False
    table = data.get("tool", {}).get("pytest", {})
    return isinstance(table, dict) and ("ini_options" in table or bool(table))


def _mentions(path: Path, text: str) -> bool:
    return path.is_file() and text in path.read_text(encoding="utf-8", errors="replace")


def _site_packages(python: Path) -> Path:
    out = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    )
    return Path(out.stdout.strip())


def _install(
    recipe: Recipe, flavour: str, plugin: Path, work: Path, python: Path
) -> tuple[Path, list[str]]:
    """Make the venv with the package, its test deps and the flavour.

    Returns the source directory and the pytest arguments the flavour adds.
    """
    pip = [str(python), "-m", "pip", *PIP_FLAGS]
    sdist = work / "sdist"
    _run([*pip, "download", "--no-deps", "--no-binary", recipe.package,
          f"{recipe.package}=={recipe.version}", "-d", str(sdist)])  # fmt: skip
    (archive,) = list(sdist.iterdir())
    src = _extract(archive, work / "src")
    _isolate_config(src)
    constraints = HERE / "constraints" / f"{recipe.package}.txt"
    cons = ["-c", str(constraints)] if constraints.is_file() else []
    target = f"{src}[{recipe.extras}]" if recipe.extras else str(src)
    reference = [PYTEST_ASYNCIO_SPEC] if flavour == "pytest-asyncio" else []
    _run([*pip, "install", *cons, target, PYTEST_SPEC, *recipe.deps, *reference])
    extra_args: list[str] = []
    if flavour in ONELOOP_FLAVOURS:
        spec = f"{plugin}[migrate]" if flavour == "migrated" else str(plugin)
        _run([*pip, "install", *cons, spec])
        # Test dependencies such as pytest-aiohttp pull pytest-asyncio in.
        _run([*pip, "uninstall", "-y", "-q", "pytest-asyncio"])
        check = "import importlib.metadata as m; m.distribution('pytest-asyncio')"
        if (
            subprocess.run([str(python), "-c", check], capture_output=True, check=False).returncode
            == 0
        ):
            msg = "pytest-asyncio is still installed"
            raise RuntimeError(msg)
        if flavour == "oneloop":
            shim = HERE / "shim" / "pytest_asyncio"
            shutil.copytree(shim, _site_packages(python) / "pytest_asyncio")
        elif _needs_pytest_asyncio(python):
            _run([*pip, "install", *cons, PYTEST_ASYNCIO_SPEC])
            extra_args = ["-p", "no:asyncio"]
    freeze = subprocess.run([*pip, "freeze"], check=True, capture_output=True, text=True)
    (work / "freeze.txt").write_text(freeze.stdout, encoding="utf-8")
    return src, extra_args


def _needs_pytest_asyncio(python: Path) -> bool:
    """Whether an installed distribution (pytest-aiohttp) requires pytest-asyncio."""
    pip_check = [str(python), "-m", "pip", "--disable-pip-version-check", "check"]  # not -q
    check = subprocess.run(pip_check, capture_output=True, text=True, check=False)
    return "requires pytest-asyncio" in check.stdout.lower()


def _migrate(python: Path, src: Path, work: Path) -> str:
    """`python -m pytest_oneloop.migrate` on the unpacked sdist: its exit status and summary."""
    cmd = [str(python), "-m", "pytest_oneloop.migrate", "."]
    print("+ cd", src, "&&", shlex.join(cmd), flush=True)
    proc = subprocess.run(cmd, cwd=src, capture_output=True, text=True, check=False)
    (work / "migrate.log").write_text(proc.stdout + proc.stderr, encoding="utf-8")
    endings = ("rewritten", "nothing to rewrite", "a person: see above")
    summary = [line for line in proc.stderr.splitlines() if line.endswith(endings)]
    return f"rc={proc.returncode}: {'; '.join(summary)}"


def read_junit(path: Path) -> dict[str, tuple[str, str]]:
    """Outcome and first message line of every test case, by `classname::name`."""
    outcomes: dict[str, tuple[str, str]] = {}
    if not path.is_file():
        return outcomes
    for case in ET.parse(path).getroot().iter("testcase"):  # noqa: S314 - our own pytest's output
        key = f"{case.get('classname', '')}::{case.get('name', '')}"
        children = {child.tag: child for child in case}
        outcome, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            if tag in children:
                outcome = tag
                message = children[tag].get("message") or ""
                if tag == "skipped" and children[tag].get("type") == "pytest.xfail":
                    outcome = "xfailed"
                break
        if key in outcomes and outcome == "error":
            # A teardown error is reported as a second test case of the same name.
            outcome = f"{outcomes[key][0]}+error"
        outcomes[key] = (outcome, message.strip().splitlines()[0] if message.strip() else "")
    return outcomes


def count(result: Result, outcomes: dict[str, tuple[str, str]]) -> None:
    """Fill `result` with the junit counts, as pytest's summary would show them."""
    for outcome, _ in outcomes.values():
        if outcome == "passed":
            result.passed += 1
        elif outcome == "failure":
            result.failed += 1
        elif outcome == "xfailed":
            result.xfailed += 1
        elif outcome == "skipped":
            result.skipped += 1
        else:
            result.errors += 1


def run(recipe: Recipe, flavour: str, plugin: Path, work: Path) -> Result:
    """Install and run one package under one flavour; write `result.json`."""
    if flavour not in FLAVOURS:
        msg = f"unknown flavour {flavour!r}: expected one of {FLAVOURS}"
        raise ValueError(msg)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    result = Result(recipe.package, flavour)
    subprocess.run([sys.executable, "-m", "venv", str(work / "venv")], check=True)
    python = work / "venv" / "bin" / "python"
    try:
        src, extra_args = _install(recipe, flavour, plugin, work, python)
        if flavour == "migrated":
            result.migrate = _migrate(python, src, work)
            # The rewrite can empty the only pytest table (pytest-httpx's `[tool.pytest]`),
            # which pytest then ignores.
            _isolate_config(src)
    except (subprocess.CalledProcessError, RuntimeError, ValueError) as exc:
        result.problem = f"install failed: {exc}"
        result.rc = 99
        _save(work, result)
        return result
    (work / "extra_args.json").write_text(json.dumps(extra_args), encoding="utf-8")
    cmd = [*pytest_command(recipe, flavour, work, extra_args), "-rfE", "-p", "count_async",
           f"--junitxml={work / 'junit.xml'}"]  # fmt: skip
    env = pytest_env() | {"COMPAT_COUNT_OUT": str(work / "async.json")}
    print("+ cd", src, "&&", shlex.join(cmd), flush=True)
    start = time.perf_counter()
    with (work / "pytest.log").open("w", encoding="utf-8") as log:
        try:
            proc = subprocess.run(
                cmd, cwd=src, env=env, stdout=log, stderr=subprocess.STDOUT,
                timeout=SUITE_TIMEOUT, check=False,
            )  # fmt: skip
            result.rc = proc.returncode
        except subprocess.TimeoutExpired:
            result.rc = 124
            result.problem = f"timed out after {SUITE_TIMEOUT} s"
    result.seconds = round(time.perf_counter() - start, 1)
    count(result, read_junit(work / "junit.xml"))
    try:
        counts = json.loads((work / "async.json").read_text(encoding="utf-8"))
        result.async_passed = "{}/{}".format(*counts["async"])
    except (OSError, ValueError, KeyError):
        pass
    _save(work, result)
    return result


def pytest_command(recipe: Recipe, flavour: str, work: Path, extra_args: list[str]) -> list[str]:
    """The suite's pytest command in the venv of `work`, before the harness's reporting options."""
    args = [*recipe.args, *(recipe.reference_args if flavour == "pytest-asyncio" else [])]
    python = work / "venv" / "bin" / "python"
    return [str(python), "-m", "pytest", recipe.tests, *args, *extra_args]


def pytest_env() -> dict[str, str]:
    """A suite's environment: no PYTEST* variables, no outer venv, the harness on the path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env["PYTHONPATH"] = str(HERE)
    env.pop("VIRTUAL_ENV", None)
    return env


def source_dir(work: Path) -> Path:
    """The unpacked sdist of a run (the directory its suite runs in)."""
    (top,) = [p for p in (work / "src").iterdir() if p.is_dir()]
    return top


def _save(work: Path, result: Result) -> None:
    (work / "result.json").write_text(json.dumps(asdict(result), indent=1), encoding="utf-8")


def workdir(package: str, flavour: str) -> Path:
    """Where a run keeps its files: under the git-ignored bench/.cache."""
    return CACHE / f"{package}-{flavour}"


def main() -> int:
    """Command line: run one package under one flavour."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package")
    parser.add_argument("flavour", choices=FLAVOURS)
    parser.add_argument("--plugin", type=Path, default=REPO, help="plugin tree (oneloop)")
    parser.add_argument("--workdir", type=Path, default=None)
    ns = parser.parse_args()
    recipe = load_corpus()[ns.package]
    work = ns.workdir or workdir(ns.package, ns.flavour)
    result = run(recipe, ns.flavour, ns.plugin.resolve(), work)
    print(
        f"RESULT {result.package} {result.flavour}: {result.passed} passed, "
        f"{result.failed} failed, {result.skipped} skipped, {result.errors} errors, "
        f"rc={result.rc}, async {result.async_passed}, {result.seconds} s {result.problem}"
        + (f" migrate {result.migrate}" if result.migrate else "")
    )
    return 0 if result.rc in {0, 1} else 1


if __name__ == "__main__":
    sys.exit(main())
