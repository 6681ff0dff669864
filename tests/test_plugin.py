"""The entry point: options, header, markers, and refusing to share with pytest-asyncio."""

from __future__ import annotations

import pytest

from pytest_oneloop.plugin import FEATURES, PYTEST_ASYNCIO_CONFLICT

ASYNC_TEST = """
import asyncio

async def test_loop():
    loop = asyncio.get_running_loop()
    print("LOOP", type(loop).__module__, type(loop).__name__, "DEBUG", loop.get_debug())
"""


def test_header_names_the_default_loop_and_debug_flag(pytester: pytest.Pytester) -> None:
    """The report header shows the loop in use and whether debug mode is on."""
    pytester.makepyfile(ASYNC_TEST)
    result = pytester.runpytest("-s")
    result.stdout.fnmatch_lines(
        [
            "oneloop: loop=asyncio.SelectorEventLoop debug=False",
            "*LOOP asyncio.unix_events _UnixSelectorEventLoop DEBUG False*",
        ]
    )


def test_debug_mode_from_flag_and_from_ini(pytester: pytest.Pytester) -> None:
    """`--asyncio-debug` and `oneloop_debug = true` both turn on asyncio debug mode."""
    pytester.makepyfile(ASYNC_TEST)
    result = pytester.runpytest("-s", "--asyncio-debug")
    result.stdout.fnmatch_lines(["oneloop: loop=* debug=True", "*DEBUG True*"])
    pytester.makeini("[pytest]\naddopts = -p no:cacheprovider\noneloop_debug = true\n")
    result = pytester.runpytest("-s")
    result.stdout.fnmatch_lines(["oneloop: loop=* debug=True", "*DEBUG True*"])


def test_loop_factory_from_ini_and_command_line(pytester: pytest.Pytester) -> None:
    """A `module:callable` factory makes the session loop; the flag beats the ini."""
    pytester.makepyfile(
        myloops="""
        import asyncio

        class CountingLoop(asyncio.SelectorEventLoop):
            pass

        class OtherLoop(asyncio.SelectorEventLoop):
            pass

        def counting():
            return CountingLoop()
        """
    )
    pytester.syspathinsert()
    pytester.makepyfile(ASYNC_TEST)
    pytester.makeini(
        "[pytest]\naddopts = -p no:cacheprovider\noneloop_loop_factory = myloops:counting\n"
    )
    result = pytester.runpytest("-s", "-p", "no:randomly")
    result.stdout.fnmatch_lines(
        ["oneloop: loop=myloops.counting debug=False", "*LOOP myloops CountingLoop*"]
    )
    result = pytester.runpytest("-s", "--loop-factory", "myloops:OtherLoop")
    result.stdout.fnmatch_lines(
        ["oneloop: loop=myloops.OtherLoop debug=False", "*LOOP myloops OtherLoop*"]
    )


def test_uvloop_factory_runs_the_suite_on_uvloop(pytester: pytest.Pytester) -> None:
    """`uvloop:new_event_loop` is accepted and the tests really run on uvloop."""
    pytest.importorskip("uvloop")
    pytester.makepyfile(ASYNC_TEST)
    result = pytester.runpytest("-s", "--loop-factory", "uvloop:new_event_loop")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*LOOP uvloop Loop*"])


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("nocolon", "expected 'module:callable', for example 'uvloop:new_event_loop'"),
        ("no_such_module_xyz:make", "cannot import module 'no_such_module_xyz'"),
        ("asyncio:no_such_factory", "module 'asyncio' has no attribute 'no_such_factory'"),
        ("asyncio:__name__", "'__name__' is not callable"),
    ],
)
def test_bad_loop_factory_is_a_usage_error_naming_the_value(
    pytester: pytest.Pytester, value: str, message: str
) -> None:
    """A loop factory that cannot be used stops the run with the value in the message."""
    pytester.makepyfile(ASYNC_TEST)
    result = pytester.runpytest("--loop-factory", value)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: oneloop: invalid loop factory {value!r}: {message}*"])


def test_pytest_asyncio_in_the_same_session_stops_with_one_message(
    pytester: pytest.Pytester,
) -> None:
    """With pytest-asyncio's plugin active, the run stops at start-up and says how to choose."""
    pytester.syspathinsert()
    pytester.mkpydir("pytest_asyncio")
    pytester.path.joinpath("pytest_asyncio", "plugin.py").write_text("")
    pytester.makepyfile(ASYNC_TEST)
    result = pytester.runpytest("-p", "pytest_asyncio.plugin")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {PYTEST_ASYNCIO_CONFLICT}"])
    assert "Traceback" not in result.stderr.str()


def test_disabling_the_plugin_leaves_async_tests_to_pytest(pytester: pytest.Pytester) -> None:
    """`-p no:oneloop` turns everything off: pytest then fails async tests itself."""
    pytester.makepyfile(ASYNC_TEST)
    result = pytester.runpytest("-p", "no:oneloop")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*async def functions are not natively supported*"])
    result.stdout.no_fnmatch_line("oneloop:*")


def test_feature_modules_are_plugins_of_their_own_that_can_be_disabled(
    pytester: pytest.Pytester,
) -> None:
    """Each feature module is registered under its name; `-p no:<module>` drops that one."""
    assert {"pytest_oneloop._hooks", "pytest_oneloop._groups"} <= set(FEATURES)
    pytester.makepyfile(
        """
        import asyncio

        from pytest_oneloop.plugin import FEATURES

        def test_registered(pytestconfig):
            names = [
                name for name in FEATURES if pytestconfig.pluginmanager.get_plugin(name)
            ]
            print("REGISTERED", " ".join(names))

        async def test_async():
            await asyncio.sleep(0)
        """
    )
    result = pytester.runpytest("-s")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([f"*REGISTERED {' '.join(FEATURES)}*"])
    result = pytester.runpytest("-s", "-p", "no:pytest_oneloop._groups", "--integration")
    result.stderr.fnmatch_lines(["*unrecognized arguments: --integration*"])
    result = pytester.runpytest("-s", "-p", "no:pytest_oneloop._groups")
    result.assert_outcomes(passed=2)
    rest = [name for name in FEATURES if name != "pytest_oneloop._groups"]
    result.stdout.fnmatch_lines([f"*REGISTERED {' '.join(rest)}*"])


def test_importing_the_plugin_imports_no_database_or_migration_packages(
    pytester: pytest.Pytester,
) -> None:
    """Start-up stays cheap: no SQLAlchemy, factory_boy, driver, libcst or tomlkit is imported."""
    pytester.makepyfile(
        """
        import sys

        def test_modules():
            heavy = {"sqlalchemy", "factory", "aiosqlite", "asyncpg", "libcst", "tomlkit"}
            assert heavy.isdisjoint(sys.modules)
            assert "pytest_oneloop.migrate" not in sys.modules
        """
    )
    pytester.runpytest_subprocess("-p", "no:faker").assert_outcomes(passed=1)


def test_assertion_rewriting_can_be_skipped_for_a_package(pytester: pytest.Pytester) -> None:
    """What keeps pytest from rewriting the plugin's own modules, on a package of the test's.

    The plugin's modules have no asserts; pytest would otherwise load each
    of them through its rewriting hook, which costs start-up time.
    """
    check = "def check(value):\n    assert value == 2\n"
    pytester.mkpydir("rewritten").joinpath("__init__.py").write_text(check)
    pytester.mkpydir("plain").joinpath("__init__.py").write_text(check)
    pytester.makeconftest(
        """
        import pytest

        from pytest_oneloop import _compat

        pytest.register_assert_rewrite("rewritten", "plain")

        def pytest_configure(config):
            _compat.skip_assertion_rewriting(config.pluginmanager, "plain")
        """
    )
    pytester.makepyfile(
        """
        import plain
        import rewritten

        def test_rewritten():
            rewritten.check(1)

        def test_plain():
            plain.check(1)
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*def check(value):*", ">*assert value == 2", "E*assert 1 == 2"])
    output = result.stdout.str()
    plain_failure = output.split("_ test_plain _")[1].split("short test summary")[0]
    assert "assert 1 == 2" not in plain_failure
    assert "E       AssertionError" in plain_failure
