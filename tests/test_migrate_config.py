"""`pytest-oneloop migrate` on configuration and requirement files: input/output pairs."""

from __future__ import annotations

import textwrap

import pytest

from pytest_oneloop.migrate._config import (
    migrate_ini,
    migrate_requirements,
    migrate_toml,
    rename_requirement,
)
from pytest_oneloop.migrate._messages import locked_requirement, table_requirement
from pytest_oneloop.migrate._result import Finding, UnparsableError


def _ini(text: str, filename: str = "pytest.ini", *, keep_requirements: bool = False) -> str:
    source = textwrap.dedent(text).encode()
    outcome = migrate_ini(source, filename=filename, keep_requirements=keep_requirements)
    assert outcome.findings == ()
    again = migrate_ini(outcome.text, filename=filename, keep_requirements=keep_requirements)
    assert again.text == outcome.text, "a second pass changed the file"
    return outcome.text.decode()


def _toml(text: str, *, pyproject: bool = True, keep_requirements: bool = False) -> str:
    source = textwrap.dedent(text).encode()
    outcome = migrate_toml(source, pyproject=pyproject, keep_requirements=keep_requirements)
    again = migrate_toml(outcome.text, pyproject=pyproject, keep_requirements=keep_requirements)
    assert again.text == outcome.text, "a second pass changed the file"
    return outcome.text.decode()


def test_pytest_ini_loses_the_asyncio_keys_and_renames_asyncio_debug() -> None:
    """Dropped with their continuation lines; comments and other keys stay in place."""
    migrated = _ini(
        """\
        [pytest]
        # pytest-asyncio's settings
        asyncio_mode = auto
        asyncio_default_fixture_loop_scope =
            function
        testpaths = tests
        asyncio_default_test_loop_scope: module
        asyncio_debug = true
        addopts = -ra
        """
    )
    assert migrated == textwrap.dedent(
        """\
        [pytest]
        # pytest-asyncio's settings
        testpaths = tests
        oneloop_debug = true
        addopts = -ra
        """
    )


def test_asyncio_debug_is_dropped_when_oneloop_debug_is_already_set() -> None:
    """Two debug keys would be a duplicate; the project's own `oneloop_debug` wins."""
    assert _ini("[pytest]\nasyncio_debug = true\noneloop_debug = false\n") == (
        "[pytest]\noneloop_debug = false\n"
    )


def test_only_the_pytest_section_of_setup_cfg_and_tox_ini_is_touched() -> None:
    """`[tool:pytest]` in setup.cfg, `[pytest]` in tox.ini; other sections keep their keys."""
    setup_cfg = "[tool:pytest]\nasyncio_mode = strict\n\n[other]\nasyncio_mode = strict\n"
    assert _ini(setup_cfg, "setup.cfg") == "[tool:pytest]\n\n[other]\nasyncio_mode = strict\n"
    tox_ini = "[tox]\nasyncio_mode = x\n[pytest]\nasyncio_mode = auto\n"
    assert _ini(tox_ini, "tox.ini") == "[tox]\nasyncio_mode = x\n[pytest]\n"


def test_tox_deps_and_setup_cfg_requirements_name_pytest_oneloop() -> None:
    """Factors, markers and comments stay; versions and extras were pytest-asyncio's."""
    tox_ini = """\
        [testenv:py{311,312}]
        deps =
            pytest>=8
            py311: pytest-asyncio>=0.21  # async tests
            pytest-asyncio-cooperative
        """
    assert _ini(tox_ini, "tox.ini") == textwrap.dedent(tox_ini).replace(
        "py311: pytest-asyncio>=0.21", "py311: pytest-oneloop"
    )
    setup_cfg = """\
        [options]
        tests_require = pytest_asyncio[testing]==0.23

        [options.extras_require]
        test =
            pytest-asyncio ; python_version >= "3.11"
        """
    assert _ini(setup_cfg, "setup.cfg") == textwrap.dedent(setup_cfg).replace(
        "pytest_asyncio[testing]==0.23", "pytest-oneloop"
    ).replace("pytest-asyncio ;", "pytest-oneloop ;")
    assert _ini(tox_ini, "tox.ini", keep_requirements=True) == textwrap.dedent(tox_ini)


def test_an_ini_file_that_does_not_parse_is_reported_with_its_line() -> None:
    """The reason iniconfig gives, at its line (counted from 1)."""
    with pytest.raises(UnparsableError) as info:
        migrate_ini(b"[pytest]\nasyncio_mode = auto\nnot a key\n", filename="pytest.ini")
    assert (info.value.line, info.value.reason) == (3, "unexpected line: 'not a key'")


def test_pyproject_ini_options_keep_formatting_and_comments() -> None:
    """tomlkit: the renamed key keeps its place and comment; the dropped ones go."""
    migrated = _toml(
        """\
        [tool.pytest.ini_options]
        # async settings
        asyncio_mode = "auto"
        asyncio_debug = true  # loud
        asyncio_default_fixture_loop_scope = "function"
        testpaths = ["tests"]

        [tool.ruff]
        line-length = 100
        """
    )
    assert migrated == textwrap.dedent(
        """\
        [tool.pytest.ini_options]
        # async settings
        oneloop_debug = true  # loud
        testpaths = ["tests"]

        [tool.ruff]
        line-length = 100
        """
    )


def test_pytest_9_native_tables_are_rewritten_too() -> None:
    """`[tool.pytest]` in pyproject.toml and `[pytest]` in pytest.toml."""
    assert _toml('[tool.pytest]\nasyncio_mode = "auto"\nasyncio_debug = true\n') == (
        "[tool.pytest]\noneloop_debug = true\n"
    )
    pytest_toml = '[pytest]\nasyncio_mode = "auto"\nminversion = "9.0"\n'
    assert _toml(pytest_toml, pyproject=False) == '[pytest]\nminversion = "9.0"\n'


def test_pyproject_dependency_lists_and_groups_name_pytest_oneloop() -> None:
    """Project dependencies, extras and PEP 735 groups; markers and quotes stay."""
    source = """\
        [project]
        dependencies = ["httpx"]

        [project.optional-dependencies]
        test = [
            "pytest>=8",
            'pytest-asyncio>=0.23; python_version >= "3.11"',  # async tests
        ]

        [dependency-groups]
        dev = ["Pytest_Asyncio[testing]==0.21", {include-group = "test"}]
        both = ["pytest-asyncio", "pytest-oneloop"]

        [tool.other]
        names = ["pytest-asyncio"]
        """
    migrated = _toml(source)
    assert migrated == textwrap.dedent(source).replace(
        """'pytest-asyncio>=0.23; python_version >= "3.11"'""",
        """'pytest-oneloop; python_version >= "3.11"'""",
    ).replace('"Pytest_Asyncio[testing]==0.21"', '"pytest-oneloop"').replace(
        '["pytest-asyncio", "pytest-oneloop"]', '["pytest-oneloop"]'
    )
    assert _toml(source, keep_requirements=True) == textwrap.dedent(source)


def test_a_poetry_dependency_table_is_a_manual_case() -> None:
    """A `pytest-asyncio = "^0.21"` key is reported at its line, not guessed at."""
    source = b'[tool.poetry.group.dev.dependencies]\npytest = "^8"\npytest-asyncio = "^0.21"\n'
    outcome = migrate_toml(source, pyproject=True)
    assert outcome.text == source
    assert outcome.findings == (
        Finding(3, table_requirement("tool.poetry.group.dev.dependencies")),
    )


def test_a_toml_file_that_does_not_parse_is_reported_with_its_line() -> None:
    """The line and message tomlkit gives."""
    with pytest.raises(UnparsableError) as info:
        migrate_toml(b'[tool.pytest.ini_options]\nasyncio_mode = "auto\n', pyproject=True)
    assert info.value.line == 2


def test_requirements_files_name_pytest_oneloop_once() -> None:
    """Renamed with its comment kept; dropped when pytest-oneloop is already there."""
    source = b"pytest==8.3\npytest-asyncio==0.23.5  # via -r requirements.in\n"
    assert migrate_requirements(source).text == (
        b"pytest==8.3\npytest-oneloop  # via -r requirements.in\n"
    )
    both = b"pytest-asyncio>=0.21\npytest-oneloop\n"
    assert migrate_requirements(both).text == b"pytest-oneloop\n"


def test_a_requirement_pinned_with_hashes_is_a_manual_case() -> None:
    """A lock file cannot be edited by name: it is regenerated."""
    source = b"pytest-asyncio==0.23.5 \\\n    --hash=sha256:abc\n"
    outcome = migrate_requirements(source)
    assert outcome.text == source
    assert outcome.findings == (Finding(1, locked_requirement("pytest-asyncio==0.23.5")),)


@pytest.mark.parametrize(
    ("line", "renamed"),
    [
        ("pytest-asyncio", "pytest-oneloop"),
        ("pytest_asyncio>=0.21,<2\n", "pytest-oneloop\n"),
        (
            "PyTest.AsyncIO[testing] ; sys_platform != 'win32'",
            "pytest-oneloop ; sys_platform != 'win32'",
        ),
        ("pytest-asyncio @ git+https://example.invalid/p.git#egg=x", "pytest-oneloop"),
        ("  py312: pytest-asyncio==1.0  # pinned", "  py312: pytest-oneloop  # pinned"),
        ("pytest-asyncio-cooperative", None),
        ("pytest-asyncios", None),
        ("-r other.txt", None),
    ],
)
def test_a_requirement_is_renamed_only_when_it_names_pytest_asyncio(
    line: str, renamed: str | None
) -> None:
    """Any spelling of the name; not a package whose name merely starts with it."""
    assert rename_requirement(line) == renamed
