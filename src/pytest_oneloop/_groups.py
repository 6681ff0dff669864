"""Opt-in test groups: `--integration` and the groups declared in `oneloop_groups`.

A group is a marker and a flag of the same name. With no group flag, the
tests in any group are skipped and the others run. With flags, only the
tests in the enabled groups run and every other test is deselected. A test
in several groups runs when any one of them is enabled: each marker says
what the test needs (a server, a browser, time), and a flag says "I have
that, run those tests"; requiring every group at once would hide the test
from each flag on its own.

The flags are added once the ini file is read and the initial conftest.py
files are loaded, so a group whose flag already exists is reported by name
instead of failing deep inside argparse.
"""

from __future__ import annotations

import keyword
import os
from typing import TYPE_CHECKING, NamedTuple

import pytest

from pytest_oneloop import _compat
from pytest_oneloop._markers import marker_names

if TYPE_CHECKING:
    from collections.abc import Generator, Iterable, Mapping, Sequence
    from pathlib import Path

BUILTIN_GROUP = "integration"
BUILTIN_DESCRIPTION = "talks to real services such as databases and servers"
DEFAULT_DESCRIPTION = "opt-in test group"
INI_NAME = "oneloop_groups"
ENV_NAME = "ONELOOP_GROUPS"

# Markers that already mean something to pytest or to the async plugins: a
# group of that name would pull in every test that uses the marker.
RESERVED_NAMES = frozenset(
    {"skip", "skipif", "xfail", "parametrize", "usefixtures", "filterwarnings"}
    | {"asyncio", "anyio", "trio"}
)


class GroupSelection(NamedTuple):
    """The groups of this session and which of them the user enabled."""

    declared: Mapping[str, str]
    """Group name -> description: the built-in group first, then ini order."""
    enabled: frozenset[str]
    all_groups: bool

    def groups_of(self, item: pytest.Item) -> list[str]:
        """The groups whose marker is on the test, its class or its module."""
        names = marker_names(item)
        return [name for name in self.declared if name in names]


_DECLARED_KEY = pytest.StashKey[dict[str, str]]()
SELECTION_KEY = pytest.StashKey[GroupSelection]()


def _option_group(parser: pytest.Parser) -> pytest.OptionGroup:
    return parser.getgroup("oneloop-groups", "opt-in test groups (pytest-oneloop)")


def _dest(name: str) -> str:
    return f"oneloop_group_{name}"


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register `oneloop_groups` and `--all-groups`; group flags come once the ini is read."""
    parser.addini(
        INI_NAME,
        "More opt-in test groups, one 'name: description' per line; "
        "each gets a marker and a --name flag.",
        type="linelist",
        default=[],
    )
    _option_group(parser).addoption(
        "--all-groups",
        dest="oneloop_all_groups",
        action="store_true",
        default=False,
        help="Run every test, whether it is in a group or not.",
    )


@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(
    early_config: pytest.Config, parser: pytest.Parser
) -> Generator[None, None, None]:
    """Add one flag per group, after the initial conftest.py files added theirs."""
    yield
    declared = declare_groups(early_config.getini(INI_NAME))
    existing = _compat.option_names(parser)
    options = _option_group(parser)
    for name, description in declared.items():
        if f"--{name}" in existing:
            raise pytest.UsageError(_clash_message(name))
        options.addoption(
            f"--{name}",
            dest=_dest(name),
            action="store_true",
            default=False,
            # argparse formats help text with %, and descriptions are the user's.
            help=f"Run only the tests marked {name}: {description.replace('%', '%%')}. "
            "Several group flags run the tests of every group named.",
        )
    early_config.stash[_DECLARED_KEY] = declared


def declare_groups(lines: Iterable[str]) -> dict[str, str]:
    """The built-in group and those of `oneloop_groups`, validated, in order."""
    declared = {BUILTIN_GROUP: BUILTIN_DESCRIPTION}
    seen: set[str] = set()
    for line in lines:
        name, _, description = line.partition(":")
        name, description = name.strip(), description.strip()
        if not name.isidentifier() or keyword.iskeyword(name):
            raise pytest.UsageError(
                f"oneloop: invalid group name {name!r} in {INI_NAME}: a group name becomes "
                "a marker (@pytest.mark.NAME) and a flag (--NAME), so it must be letters, "
                "digits and underscores, not start with a digit and not be a Python keyword "
                "(for example 'slow' or 'e2e')"
            )
        if name in RESERVED_NAMES:
            raise pytest.UsageError(
                f"oneloop: group name {name!r} in {INI_NAME} is a marker that pytest or "
                "another plugin already uses; choose another name"
            )
        if name in seen:
            raise pytest.UsageError(f"oneloop: group {name!r} is declared twice in {INI_NAME}")
        seen.add(name)
        declared[name] = description or declared.get(name, DEFAULT_DESCRIPTION)
    return declared


def _clash_message(name: str) -> str:
    if name == BUILTIN_GROUP:
        return (
            f"oneloop: the option --{name} is already defined by a plugin or a conftest.py; "
            f"remove that option, since pytest-oneloop provides --{name} and the "
            f"'{name}' marker (or disable pytest-oneloop with -p no:oneloop)"
        )
    return (
        f"oneloop: group {name!r} in {INI_NAME} needs the flag --{name}, but pytest, "
        "a plugin or a conftest.py already defines that option; rename the group"
    )


def enabled_from_env(value: str, declared: Iterable[str]) -> frozenset[str]:
    """The groups named in `ONELOOP_GROUPS` (comma-separated), all of them known."""
    names = [part.strip() for part in value.split(",") if part.strip()]
    known = list(declared)
    unknown = [name for name in names if name not in known]
    if unknown:
        listed = ", ".join(repr(name) for name in unknown)
        plural = "s" if len(unknown) > 1 else ""
        raise pytest.UsageError(
            f"oneloop: unknown group{plural} {listed} in {ENV_NAME}; "
            f"the groups are: {', '.join(known)} (declare more in the {INI_NAME} ini option)"
        )
    return frozenset(names)


def pytest_configure(config: pytest.Config) -> None:
    """Register a marker per group and work out which groups this run enables."""
    declared = config.stash.get(_DECLARED_KEY, None)
    if declared is None:
        # Loaded after the initial conftests (from a conftest's pytest_plugins):
        # the groups exist as markers, but only ONELOOP_GROUPS can enable them.
        declared = declare_groups(config.getini(INI_NAME))
    for name, description in declared.items():
        config.addinivalue_line(
            "markers", f"{name}: {description} (opt-in group: runs with --{name} or --all-groups)"
        )
    flagged = {name for name in declared if config.getoption(_dest(name), default=False)}
    from_env = enabled_from_env(os.environ.get(ENV_NAME, ""), declared)
    config.stash[SELECTION_KEY] = GroupSelection(
        declared=declared,
        enabled=frozenset(flagged) | from_env,
        all_groups=bool(config.getoption("oneloop_all_groups", default=False)),
    )


def skip_reason(groups: Sequence[str]) -> str:
    """`need --integration option to run`, naming every flag that would run the test."""
    flags = " or ".join(f"--{name}" for name in groups)
    return f"need {flags} option to run"


# After -m and -k (and pytest's other filters), so they see the tests as
# written, without the skip marker added here, and count their own deselections.
@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip grouped tests by default; with group flags, deselect the tests outside them."""
    selection = config.stash[SELECTION_KEY]
    if selection.all_groups:
        return
    named = named_on_command_line(config)
    kept: list[pytest.Item] = []
    deselected: list[pytest.Item] = []
    for item in items:
        groups = selection.groups_of(item)
        if named and is_named(item, named):
            kept.append(item)
        elif selection.enabled:
            (kept if selection.enabled.intersection(groups) else deselected).append(item)
        else:
            if groups:
                item.add_marker(pytest.mark.skip(reason=skip_reason(groups)))
            kept.append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept


def named_on_command_line(config: pytest.Config) -> list[tuple[Path, str]]:
    """The nodes the command line names by id (`path::name`), as (file, name) pairs.

    A test named this way runs whatever its groups: the user asked for it.
    A file or directory alone names no test.
    """
    named: list[tuple[Path, str]] = []
    for arg in config.args:
        path, sep, name = arg.partition("::")
        if sep and name:
            named.append(((config.invocation_params.dir / path).resolve(), name))
    return named


def is_named(item: pytest.Item, named: Iterable[tuple[Path, str]]) -> bool:
    """Whether the item is one of the named nodes or inside one (a class, a parametrized test)."""
    _, _, own = item.nodeid.partition("::")
    if not own:
        return False
    path = item.path.resolve()
    return any(
        path == file and (own == name or own.startswith((f"{name}::", f"{name}[")))
        for file, name in named
    )
