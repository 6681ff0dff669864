"""The `pytest-oneloop migrate` command: files, modes, exit codes, and a whole project migrated."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from pytest_oneloop.migrate import cli
from pytest_oneloop.migrate._messages import sync_event_loop

CONFTEST = """\
import asyncio

import pytest
import pytest_asyncio

ASYNC_TESTS = []


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def server(event_loop):
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    assert event_loop.get_debug()  # asyncio_debug = true
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


def pytest_collection_modifyitems(items):
    ASYNC_TESTS.extend(item.name for item in items if pytest_asyncio.is_async_test(item))
"""

TESTS = """\
import asyncio

import pytest

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_connects(server, event_loop):
    reader, writer = await asyncio.open_connection("127.0.0.1", server)
    assert await reader.read() == b""
    writer.close()
    await writer.wait_closed()
    assert event_loop is asyncio.get_running_loop()


@pytest.mark.asyncio
async def test_is_on_the_servers_loop(event_loop):
    assert event_loop.get_debug()


def test_the_async_tests_were_found():
    from conftest import ASYNC_TESTS

    assert sorted(ASYNC_TESTS) == ["test_connects", "test_is_on_the_servers_loop"]
"""

PYTEST_INI = """\
[pytest]
asyncio_mode = strict
asyncio_default_fixture_loop_scope = function
asyncio_debug = true
filterwarnings = error
"""


def _migrate_command(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.run(sys.executable, "-m", "pytest_oneloop.migrate", *args, timeout=120)


def test_a_pytest_asyncio_project_passes_after_migration_with_no_pytest_asyncio(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Migrated by the command, the project's suite passes with pytest_asyncio unimportable."""
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_server=TESTS)
    pytester.makefile(".ini", pytest=PYTEST_INI)
    pytester.makefile(".txt", requirements="pytest>=8.4\npytest-asyncio==1.0.0\n")
    # A plugin that makes pytest_asyncio unimportable, in a directory the command skips.
    plugins = pytester.mkdir(".plugins")
    blocker = 'import sys\n\nsys.modules["pytest_asyncio"] = None\n'
    (plugins / "block_pytest_asyncio.py").write_text(blocker)
    monkeypatch.setenv("PYTHONPATH", str(plugins))
    run_suite = ("-p", "block_pytest_asyncio", "-p", "no:asyncio", "-p", "no:cacheprovider")

    before = pytester.runpytest_subprocess(*run_suite, timeout=120)
    assert before.ret != 0
    before.stderr.fnmatch_lines(["*import of pytest_asyncio halted*"])

    check = _migrate_command(pytester, "--check")
    assert check.ret == 1
    migrated = _migrate_command(pytester)
    assert migrated.ret == 0, migrated.stderr.str()
    migrated.stderr.fnmatch_lines(["rewrote conftest.py", "*4 files rewritten"])
    for path in ("conftest.py", "test_server.py", "pytest.ini", "requirements.txt"):
        assert "asyncio_mode" not in (pytester.path / path).read_text()
        assert "pytest_asyncio" not in (pytester.path / path).read_text()
        assert "pytest-asyncio" not in (pytester.path / path).read_text()

    after = pytester.runpytest_subprocess(*run_suite, "--strict-config", timeout=120)
    after.assert_outcomes(passed=3)
    again = _migrate_command(pytester, "--check")
    assert again.ret == 0
    again.stderr.fnmatch_lines(["nothing to rewrite"])


def _project(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


OLD_TEST = "import pytest\n\n@pytest.mark.asyncio\nasync def test_a():\n    pass\n"
NEW_TEST = "import pytest\n\nasync def test_a():\n    pass\n"


def test_check_exits_1_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--check` names each file that would change, for CI."""
    _project(tmp_path, {"tests/test_a.py": OLD_TEST, "pytest.ini": "[pytest]\nasyncio_mode=auto\n"})
    monkeypatch.chdir(tmp_path)
    assert cli.main(["migrate", "--check"]) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "would rewrite pytest.ini",
        f"would rewrite {Path('tests', 'test_a.py')}",
        "2 files would be rewritten",
    ]
    assert (tmp_path / "tests/test_a.py").read_text() == OLD_TEST


def test_diff_prints_a_unified_diff_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The diff goes to standard output, the summary to standard error."""
    _project(tmp_path, {"test_a.py": OLD_TEST})
    assert cli.main(["migrate", "--diff", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    path = tmp_path / "test_a.py"
    assert out.splitlines()[:2] == [f"--- {path}", f"+++ {path}"]
    assert "-@pytest.mark.asyncio" in out.splitlines()
    assert err == "1 file would be rewritten\n"
    assert path.read_text() == OLD_TEST


def test_a_second_run_changes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Idempotent: the written files are already migrated."""
    _project(tmp_path, {"test_a.py": OLD_TEST})
    assert cli.main(["migrate", str(tmp_path)]) == 0
    assert (tmp_path / "test_a.py").read_text() == NEW_TEST
    assert cli.main(["migrate", "--check", str(tmp_path)]) == 0
    assert capsys.readouterr().err.splitlines()[-1] == "nothing to rewrite"


def test_manual_cases_exit_2_at_their_line_in_the_written_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`path:line: what to do`, the line counted in the file as written; the rest is migrated."""
    source = OLD_TEST + "\n\ndef test_sync(event_loop):\n    pass\n"
    _project(tmp_path, {"test_a.py": source})
    monkeypatch.chdir(tmp_path)
    assert cli.main(["migrate"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "rewrote test_a.py",
        f"test_a.py:7: {sync_event_loop('test_sync')}",
        "1 file rewritten",
        "1 case needs a person: see above",
    ]
    assert (tmp_path / "test_a.py").read_text().startswith(NEW_TEST)


def test_a_file_that_does_not_parse_is_reported_and_the_others_are_migrated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The broken file is left as it is, named with its line; the run exits 2."""
    broken = "import asyncio\n\ndef broken(:\n    pass\n"
    _project(tmp_path, {"a_broken.py": broken, "test_a.py": OLD_TEST})
    monkeypatch.chdir(tmp_path)
    assert cli.main(["migrate"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("a_broken.py:")
    assert ": cannot be parsed, left unchanged: " in err[0]
    assert err[1:] == ["rewrote test_a.py", "1 file rewritten", "1 case needs a person: see above"]
    assert (tmp_path / "a_broken.py").read_text() == broken
    assert (tmp_path / "test_a.py").read_text() == NEW_TEST


def test_hidden_directories_caches_and_virtualenvs_are_skipped(tmp_path: Path) -> None:
    """Only the project's own files: not `.tox`, `__pycache__` or a directory with pyvenv.cfg."""
    skipped = [".tox/test_a.py", "__pycache__/test_a.py", "venv/test_a.py"]
    _project(tmp_path, {**dict.fromkeys(skipped, OLD_TEST), "venv/pyvenv.cfg": ""})
    assert cli.main(["migrate", "--check", str(tmp_path)]) == 0


def test_keep_options_leave_markers_and_requirements(tmp_path: Path) -> None:
    """`--keep-markers` and `--keep-requirements` leave those in place."""
    _project(tmp_path, {"test_a.py": OLD_TEST, "requirements.txt": "pytest-asyncio\n"})
    arguments = ["migrate", "--keep-markers", "--keep-requirements", str(tmp_path)]
    assert cli.main(arguments) == 0
    assert (tmp_path / "test_a.py").read_text() == OLD_TEST
    assert (tmp_path / "requirements.txt").read_text() == "pytest-asyncio\n"


def test_a_missing_path_or_a_file_of_another_kind_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit 2 before anything is written, naming the path."""
    (tmp_path / "README.md").write_text("pytest-asyncio\n")
    missing, other = tmp_path / "nowhere", tmp_path / "README.md"
    assert cli.main(["migrate", str(missing), str(other)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"{missing}: no such file or directory",
        f"{other}: not a Python, pytest configuration or requirements file",
    ]


def test_the_command_needs_a_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    """`pytest-oneloop` alone is a usage error, with argparse's exit code 2."""
    with pytest.raises(SystemExit) as info:
        cli.main([])
    assert info.value.code == 2
    assert "required: COMMAND" in capsys.readouterr().err


def test_without_libcst_the_command_says_what_to_install(pytester: pytest.Pytester) -> None:
    """One line naming the extra, exit 2, when libcst or tomlkit cannot be imported."""
    program = (
        "import sys; sys.modules['libcst'] = None\n"
        "from pytest_oneloop.migrate.cli import migrate_main\n"
        "raise SystemExit(migrate_main([]))\n"
    )
    result = pytester.run(sys.executable, "-c", program, timeout=60)
    assert result.ret == 2
    assert result.errlines == [cli.MISSING_DEPENDENCIES]
    assert cli.MISSING_DEPENDENCIES == (
        "pytest-oneloop migrate needs libcst and tomlkit: pip install 'pytest-oneloop[migrate]'"
    )
