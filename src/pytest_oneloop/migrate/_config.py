"""Rewrite pytest configuration and requirement files written for pytest-asyncio.

The ini files (`pytest.ini`, `tox.ini`, `setup.cfg`) and requirement files
are rewritten line by line, so every other line stays as it was; TOML goes
through tomlkit, which keeps formatting and comments. pytest-asyncio's keys
are dropped (they have no effect here) or renamed (`asyncio_debug`), and a
`pytest-asyncio` requirement becomes `pytest-oneloop`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

import iniconfig
import tomlkit
import tomlkit.exceptions
from tomlkit.items import Array, String, Table

from pytest_oneloop.migrate._messages import locked_requirement, table_requirement
from pytest_oneloop.migrate._result import Finding, Outcome, UnparsableError

if TYPE_CHECKING:
    from collections.abc import MutableMapping

DROPPED = frozenset(
    {"asyncio_mode", "asyncio_default_fixture_loop_scope", "asyncio_default_test_loop_scope"}
)
RENAMED = {"asyncio_debug": "oneloop_debug"}
PYTEST_SECTIONS = frozenset({"pytest", "tool:pytest"})
#: (section, key) of the requirement lists of tox.ini and setup.cfg; "*" is any.
INI_REQUIREMENTS = (
    ("testenv", "deps"),
    ("options", "install_requires"),
    ("options", "tests_require"),
    ("options.extras_require", "*"),
)

_LEAD = re.compile(r"\s*(?:[\w{},.!-]+:\s+)?")  # indentation and a tox factor (`py311: `)
_ASYNCIO = re.compile(r"pytest[-_.]+asyncio(?![\w.-])", re.IGNORECASE)
_ONELOOP = re.compile(r"pytest[-_.]+oneloop(?![\w.-])", re.IGNORECASE)
_KEEP = re.compile(r"\s*;|\s+#|\s*$")  # where a requirement's marker or comment starts
_SECTION = re.compile(r"\[(?P<name>[^\]]+)\]")


def rename_requirement(line: str) -> str | None:
    """`line` with its pytest-asyncio requirement now pytest-oneloop, or None if it has none.

    Extras, versions and URLs go (they were pytest-asyncio's); environment
    markers and comments stay.
    """
    lead = _LEAD.match(line)
    start = lead.end() if lead else 0
    name = _ASYNCIO.match(line, start)
    if name is None:
        return None
    rest = line[name.end() :]
    keep = _KEEP.search(rest)
    return f"{line[:start]}pytest-oneloop{rest[keep.start() if keep else len(rest) :]}"


def _names_oneloop(line: str) -> bool:
    lead = _LEAD.match(line)
    return _ONELOOP.match(line, lead.end() if lead else 0) is not None


def _decode(source: bytes) -> str:
    try:
        return source.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = source[: exc.start].count(b"\n") + 1
        raise UnparsableError(line, "not UTF-8") from None


def migrate_requirements(source: bytes) -> Outcome:
    """A requirements file with pytest-oneloop in place of pytest-asyncio."""
    lines = _decode(source).splitlines(keepends=True)
    has_oneloop = any(_names_oneloop(line) for line in lines)
    kept: list[str] = []
    findings: list[Finding] = []
    for number, line in enumerate(lines, 1):
        renamed = rename_requirement(line)
        if renamed is not None and line.rstrip().endswith("\\"):
            findings.append(Finding(number, locked_requirement(line.split()[0])))
        elif renamed is not None:
            if not has_oneloop:
                kept.append(renamed)
            continue
        kept.append(line)
    return Outcome("".join(kept).encode(), tuple(findings))


def migrate_ini(source: bytes, *, filename: str, keep_requirements: bool = False) -> Outcome:
    """An ini file (`pytest.ini`, `tox.ini`, `setup.cfg`) rewritten for pytest-oneloop."""
    text = _decode(source)
    try:
        iniconfig.IniConfig(filename, data=text)
    except iniconfig.ParseError as exc:
        raise UnparsableError(exc.lineno + 1, exc.msg) from None
    lines = text.splitlines(keepends=True)
    entries = list(_ini_entries(lines))
    pytest_keys = {key for section, key, _, _ in entries if section in PYTEST_SECTIONS}
    for section, key, start, end in reversed(entries):
        if section in PYTEST_SECTIONS and key in DROPPED | RENAMED.keys():
            new = RENAMED.get(key)
            if new is None or new in pytest_keys:
                del lines[start:end]
            else:
                lines[start] = lines[start].replace(key, new, 1)
        elif not keep_requirements and _lists_requirements(section, key):
            _rename_in_entry(lines, start, end)
    return Outcome("".join(lines).encode())


def _ini_entries(lines: list[str]) -> list[tuple[str, str, int, int]]:
    """(section, key, first line, end) of each key, continuation lines included, as iniconfig."""
    entries: list[tuple[str, str, int, int]] = []
    section = ""
    for index, line in enumerate(lines):
        if not line.strip() or line.lstrip()[0] in "#;":
            continue
        if line[0].isspace():
            if entries:
                entries[-1] = (*entries[-1][:3], index + 1)
            continue
        header = _SECTION.match(line)
        if header:
            section = header["name"].strip()
            continue
        name, equals, _ = line.partition("=")
        if not equals or ":" in name:
            name = line.partition(":")[0]
        entries.append((section, name.strip(), index, index + 1))
    return entries


def _lists_requirements(section: str, key: str) -> bool:
    return any(
        (section == name or section.startswith(f"{name}:")) and want in {key, "*"}
        for name, want in INI_REQUIREMENTS
    )


def _rename_in_entry(lines: list[str], start: int, end: int) -> None:
    has_oneloop = any(_names_oneloop(line) for line in lines[start + 1 : end])
    separator = min(i for i in (lines[start].find("="), lines[start].find(":")) if i >= 0)
    head, value = lines[start][: separator + 1], lines[start][separator + 1 :]
    renamed = rename_requirement(value)
    if renamed is not None:
        lines[start] = head + renamed
    for index in reversed(range(start + 1, end)):
        renamed = rename_requirement(lines[index])
        if renamed is not None and has_oneloop:
            del lines[index]
        elif renamed is not None:
            lines[index] = renamed


def migrate_toml(source: bytes, *, pyproject: bool, keep_requirements: bool = False) -> Outcome:
    """`pyproject.toml` or pytest 9's `pytest.toml`, rewritten for pytest-oneloop."""
    text = _decode(source)
    try:
        document = tomlkit.parse(text)
    except tomlkit.exceptions.ParseError as exc:
        raise UnparsableError(exc.line, str(exc)) from None
    changed = False
    tables = (
        [_get(document, "tool", "pytest", "ini_options"), _get(document, "tool", "pytest")]
        if pyproject
        else [_get(document, "pytest")]
    )
    for table in tables:
        if table is not None:
            changed |= _rewrite_keys(table)
    findings: list[Finding] = []
    if pyproject and not keep_requirements:
        changed |= _rewrite_requirements(document, (), text, findings)
    new = tomlkit.dumps(document) if changed else text
    return Outcome(new.encode(), tuple(findings))


def _get(document: Mapping[str, object], *keys: str) -> MutableMapping[str, object] | None:
    item: object = document
    for key in keys:
        if not isinstance(item, Mapping) or key not in item:
            return None
        item = item[key]
    return item if isinstance(item, Table | tomlkit.TOMLDocument) else None


def _rewrite_keys(table: MutableMapping[str, object]) -> bool:
    changed = False
    for key in [key for key in table if key in DROPPED | RENAMED.keys()]:
        new = RENAMED.get(key)
        changed = True
        if new is None or new in table:
            del table[key]
        elif isinstance(table, Table):
            # tomlkit has no public rename that keeps the key's place and comment.
            table.value._replace(key, new, table[key])
        else:
            table[new] = table.pop(key)
    return changed


def _rewrite_requirements(
    item: object, path: tuple[str, ...], text: str, findings: list[Finding]
) -> bool:
    """Rename pytest-asyncio in every dependency list under `item`; report Poetry's tables."""
    is_dependencies = path[:1] == ("dependency-groups",) or any(
        "dependencies" in part for part in path
    )
    if isinstance(item, Mapping):
        changed = False
        for key, value in item.items():
            if is_dependencies and isinstance(key, str) and _ASYNCIO.fullmatch(key):
                findings.append(Finding(_line_of_key(text), table_requirement(".".join(path))))
                continue
            changed |= _rewrite_requirements(value, (*path, str(key)), text, findings)
        return changed
    if not isinstance(item, Array) or not is_dependencies:
        return False
    has_oneloop = any(isinstance(value, str) and _names_oneloop(value) for value in item)
    changed = False
    for index in reversed(range(len(item))):
        value = item[index]
        renamed = rename_requirement(value) if isinstance(value, String) else None
        if renamed is None:
            continue
        changed = True
        if has_oneloop:
            del item[index]
        else:
            item[index] = String.from_raw(renamed, value.type)
    return changed


def _line_of_key(text: str) -> int:
    pattern = re.compile(r"""^\s*["']?pytest[-_.]+asyncio["']?\s*=""", re.IGNORECASE)
    lines = text.splitlines()
    return next((n for n, line in enumerate(lines, 1) if pattern.match(line)), 1)
