"""The `pytest-oneloop` command: `pytest-oneloop migrate [PATH ...]`.

Exit status: 0 when nothing is left to do (the files are written, or were
already migrated); 1 with `--check` when a file would change; 2 when a case
needs a person (each printed as `path:line: what to do`), a file cannot be
parsed, or on a usage error. A diff goes to standard output, everything
else to standard error.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_oneloop.migrate._result import Outcome, UnparsableError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

MISSING_DEPENDENCIES = (
    "pytest-oneloop migrate needs libcst and tomlkit: pip install 'pytest-oneloop[migrate]'"
)
INI_FILES = frozenset({"pytest.ini", ".pytest.ini", "tox.ini", "setup.cfg"})
TOML_FILES = frozenset({"pyproject.toml", "pytest.toml", ".pytest.toml"})
SKIPPED_DIRECTORIES = frozenset({"__pycache__", "node_modules", "site-packages"})


@dataclass
class _Run:
    """The options, and what the run has found so far."""

    diff: bool
    check: bool
    keep_markers: bool
    keep_requirements: bool
    changed: list[Path] = field(default_factory=list)
    to_do: int = 0


def parser() -> argparse.ArgumentParser:
    """The parser of `pytest-oneloop COMMAND ...`; the one command is `migrate`."""
    top = argparse.ArgumentParser(prog="pytest-oneloop")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_arguments(commands.add_parser("migrate", help="rewrite a pytest-asyncio suite"))
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """`pytest-oneloop migrate [PATH ...]`: the console script."""
    return _migrate(parser().parse_args(argv))


def migrate_main(argv: Sequence[str] | None = None) -> int:
    """`python -m pytest_oneloop.migrate [PATH ...]`."""
    alone = argparse.ArgumentParser(prog="python -m pytest_oneloop.migrate")
    _add_arguments(alone)
    return _migrate(alone.parse_args(argv))


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Rewrite a test suite written for pytest-asyncio so that it runs with "
        "pytest-oneloop and without pytest-asyncio: Python files, pytest "
        "configuration and requirements. Files are written in place."
    )
    parser.add_argument(
        "paths", nargs="*", type=Path, default=[Path()], metavar="PATH", help="default: ."
    )
    parser.add_argument("--diff", action="store_true", help="print a diff, write nothing")
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if a file would change"
    )
    parser.add_argument(
        "--keep-markers", action="store_true", help="leave @pytest.mark.asyncio and pytestmark"
    )
    parser.add_argument(
        "--keep-requirements", action="store_true", help="leave pytest-asyncio requirements"
    )


def _migrate(args: argparse.Namespace) -> int:
    try:
        from pytest_oneloop.migrate import _code, _config  # noqa: F401 (only to check)
    except ImportError as exc:
        if (exc.name or "").split(".")[0] not in {"libcst", "tomlkit"}:
            raise
        _say(MISSING_DEPENDENCIES)
        return 2
    missing = [path for path in args.paths if not path.exists()]
    for path in missing:
        _say(f"{path}: no such file or directory")
    unknown = [path for path in args.paths if path.is_file() and _migration(path, args) is None]
    for path in unknown:
        _say(f"{path}: not a Python, pytest configuration or requirements file")
    if missing or unknown:
        return 2
    run = _Run(args.diff, args.check, args.keep_markers, args.keep_requirements)
    for path in _files(args.paths):
        _migrate_file(run, path, _migration(path, args))
    return _summary(run)


def _migration(path: Path, args: argparse.Namespace) -> Callable[[bytes], Outcome] | None:
    """The function that migrates this kind of file, None for any other file."""
    from pytest_oneloop.migrate import _code, _config

    name = path.name.lower()
    keep = args.keep_requirements
    if path.suffix == ".py":
        return lambda source: _code.migrate_python(source, keep_markers=args.keep_markers)
    if name in INI_FILES:
        return lambda source: _config.migrate_ini(source, filename=name, keep_requirements=keep)
    if name in TOML_FILES:
        pyproject = name == "pyproject.toml"
        return lambda s: _config.migrate_toml(s, pyproject=pyproject, keep_requirements=keep)
    requirements = "requirements" in name or path.parent.name == "requirements"
    if requirements and path.suffix in {".txt", ".in"} and not keep:
        return _config.migrate_requirements
    return None


def _files(paths: Sequence[Path]) -> Iterator[Path]:
    """The files under `paths`, skipping hidden directories, caches and virtualenvs."""
    for path in paths:
        if path.is_file():
            yield path
            continue
        for directory, subdirectories, names in os.walk(path):
            subdirectories[:] = sorted(
                name
                for name in subdirectories
                if not name.startswith(".")
                and name not in SKIPPED_DIRECTORIES
                and not (Path(directory, name) / "pyvenv.cfg").exists()
            )
            yield from (Path(directory, name) for name in sorted(names))


def _migrate_file(run: _Run, path: Path, migration: Callable[[bytes], Outcome] | None) -> None:
    if migration is None:
        return
    source = path.read_bytes()
    try:
        outcome = migration(source)
    except UnparsableError as exc:
        _say(f"{path}:{exc.line}: cannot be parsed, left unchanged: {exc.reason}")
        run.to_do += 1
        return
    changed = outcome.text != source
    if changed:
        run.changed.append(path)
        if run.diff:
            _print_diff(path, source, outcome)
        elif run.check:
            _say(f"would rewrite {path}")
        else:
            path.write_bytes(outcome.text)
            _say(f"rewrote {path}")
            if outcome.findings:  # report them at their lines in the file as it is now
                outcome = migration(outcome.text)
    for finding in outcome.findings:
        _say(f"{path}:{finding.line}: {finding.message}")
    run.to_do += len(outcome.findings)


def _say(line: str) -> None:
    sys.stderr.write(f"{line}\n")


def _print_diff(path: Path, source: bytes, outcome: Outcome) -> None:
    old = source.decode(outcome.encoding, errors="replace").splitlines(keepends=True)
    new = outcome.text.decode(outcome.encoding, errors="replace").splitlines(keepends=True)
    for line in difflib.unified_diff(old, new, f"{path}", f"{path}"):
        sys.stdout.write(line if line.endswith("\n") else f"{line}\n\\ No newline at end of file\n")


def _summary(run: _Run) -> int:
    count = len(run.changed)
    files = "1 file" if count == 1 else f"{count} files"
    if run.diff or run.check:
        _say(f"{files} would be rewritten" if count else "nothing to rewrite")
    else:
        _say(f"{files} rewritten" if count else "nothing to rewrite")
    if run.to_do:
        cases = "1 case needs" if run.to_do == 1 else f"{run.to_do} cases need"
        _say(f"{cases} a person: see above")
        return 2
    return 1 if run.check and count else 0
