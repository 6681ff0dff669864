"""pytest-asyncio's surface: ini keys, options, port fixtures and the loop-factory hook."""

from __future__ import annotations

import pytest

from pytest_oneloop.plugin import PYTEST_ASYNCIO_CONFLICT

LOOP_TEST = """
import asyncio

async def test_loop():
    loop = asyncio.get_running_loop()
    print("LOOP", type(loop).__name__, "DEBUG", loop.get_debug())
"""

LOOPS = """
import asyncio

class LoopA(asyncio.SelectorEventLoop):
    pass

class LoopB(asyncio.SelectorEventLoop):
    pass
"""

# A conftest whose hook offers every test two loops.
TWO_FACTORIES = """
import loops

def pytest_asyncio_loop_factories():
    return {"a": loops.LoopA, "b": loops.LoopB}
"""

# What pytest-asyncio 1.5 declares when it is registered, and nothing else.
FAKE_PYTEST_ASYNCIO = """
import pytest

class Specs:
    @pytest.hookspec(firstresult=True)
    def pytest_asyncio_loop_factories(self, config, item):
        pass

def pytest_addoption(parser, pluginmanager):
    pluginmanager.add_hookspecs(Specs)
    group = parser.getgroup("asyncio")
    group.addoption("--asyncio-mode", dest="asyncio_mode", default=None)
    group.addoption("--asyncio-debug", dest="asyncio_debug", action="store_true", default=None)
    parser.addini("asyncio_mode", help="mode", default="strict")
    parser.addini("asyncio_debug", help="debug", type="bool", default="false")
    parser.addini("asyncio_default_fixture_loop_scope", help="scope", default=None)
    parser.addini("asyncio_default_test_loop_scope", help="scope", default="function")
"""


def _ini(pytester: pytest.Pytester, *lines: str) -> None:
    pytester.makeini("\n".join(["[pytest]", "addopts = -p no:cacheprovider", *lines, ""]))


def _assert_stops_with(result: pytest.RunResult, message: str) -> None:
    """The run stopped before its tests with the usage error `message` (a glob)."""
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])


def _loops(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(loops=LOOPS)
    pytester.syspathinsert()


def test_a_strict_suite_keeps_its_pytest_asyncio_ini_keys(pytester: pytest.Pytester) -> None:
    """With --strict-config and filterwarnings=error, pytest-asyncio's ini keys do not stop it."""
    _ini(
        pytester,
        "asyncio_mode = strict",
        "asyncio_default_fixture_loop_scope = function",
        "asyncio_default_test_loop_scope = module",
        "asyncio_debug = false",
        "filterwarnings = error",
    )
    pytester.makepyfile(LOOP_TEST)
    result = pytester.runpytest("--strict-config", "--strict-markers")
    result.assert_outcomes(passed=1)


def test_asyncio_mode_option_is_accepted_and_readable_but_changes_nothing(
    pytester: pytest.Pytester,
) -> None:
    """`--asyncio-mode` parses, `getoption("asyncio_mode")` works, unmarked tests still run."""
    pytester.makeconftest(
        """
        def pytest_configure(config):
            print("MODE", config.getoption("asyncio_mode"), config.getini("asyncio_mode"))
        """
    )
    pytester.makepyfile(LOOP_TEST)
    result = pytester.runpytest("-s", "--asyncio-mode=strict")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["MODE strict auto"])
    result = pytester.runpytest("-s")
    result.stdout.fnmatch_lines(["MODE None auto"])


def test_asyncio_debug_ini_turns_on_debug_mode_of_the_session_loop(
    pytester: pytest.Pytester,
) -> None:
    """`asyncio_debug = true` is honoured: the header and the running loop say debug."""
    _ini(pytester, "asyncio_debug = true")
    pytester.makepyfile(LOOP_TEST)
    result = pytester.runpytest("-s")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["oneloop: loop=* debug=True", "*LOOP * DEBUG True"])


def test_unused_port_fixtures_give_ports_nothing_listens_on(pytester: pytest.Pytester) -> None:
    """The four port fixtures exist; their ports can be bound; a factory never repeats."""
    pytester.makepyfile(
        """
        import socket

        def bind(kind, port):
            with socket.socket(type=kind) as sock:
                sock.bind(("127.0.0.1", port))

        def test_single(unused_tcp_port, unused_udp_port):
            bind(socket.SOCK_STREAM, unused_tcp_port)
            bind(socket.SOCK_DGRAM, unused_udp_port)

        SEEN = []

        def test_factories(unused_tcp_port_factory, unused_udp_port_factory):
            tcp = [unused_tcp_port_factory() for _ in range(5)]
            udp = [unused_udp_port_factory() for _ in range(5)]
            assert len(set(tcp)) == 5 and len(set(udp)) == 5
            bind(socket.SOCK_STREAM, tcp[0])
            bind(socket.SOCK_DGRAM, udp[0])
            SEEN.append(unused_tcp_port_factory)

        def test_factory_is_session_scoped(unused_tcp_port_factory):
            assert SEEN == [unused_tcp_port_factory]
        """
    )
    pytester.runpytest("-p", "no:randomly").assert_outcomes(passed=3)


def test_the_loop_factory_hook_makes_the_session_loop(pytester: pytest.Pytester) -> None:
    """A conftest's `pytest_asyncio_loop_factories` (even without arguments) picks the loop."""
    _loops(pytester)
    pytester.makeconftest(
        """
        import loops

        def pytest_asyncio_loop_factories():
            return {"custom": loops.LoopA}
        """
    )
    pytester.makepyfile(
        """
        import asyncio
        import loops

        def test_sync():
            pass

        async def test_one():
            assert isinstance(asyncio.get_running_loop(), loops.LoopA)

        async def test_two():
            assert isinstance(asyncio.get_running_loop(), loops.LoopA)
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        ["oneloop: loop='custom' (loops.LoopA) from pytest_asyncio_loop_factories"]
    )


def test_the_loop_factory_hook_receives_config_and_item(pytester: pytest.Pytester) -> None:
    """The hook is called with `config` and each async `item`, as pytest-asyncio calls it."""
    _loops(pytester)
    pytester.makeconftest(
        """
        import loops

        def pytest_asyncio_loop_factories(config, item):
            print("HOOK", type(config).__name__, item.name)
            return {"b": loops.LoopB}
        """
    )
    pytester.makepyfile(LOOP_TEST)
    result = pytester.runpytest("-s")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*HOOK Config test_loop*", "*LOOP LoopB DEBUG False"])


def test_the_loop_factory_hook_makes_each_xdist_workers_loop(pytester: pytest.Pytester) -> None:
    """Under pytest-xdist every worker asks the hook and runs its tests on that loop."""
    pytest.importorskip("xdist")
    _loops(pytester)
    pytester.makeconftest(
        """
        import loops

        def pytest_asyncio_loop_factories():
            return {"a": loops.LoopA}
        """
    )
    pytester.makepyfile(
        """
        import asyncio
        import loops
        import pytest

        @pytest.mark.parametrize("n", range(4))
        async def test_on_a(n):
            assert isinstance(asyncio.get_running_loop(), loops.LoopA)
        """
    )
    pytester.runpytest_subprocess("-n", "2", timeout=120).assert_outcomes(passed=4)


def test_tests_given_different_loops_by_the_hook_stop_the_run_naming_them(
    pytester: pytest.Pytester,
) -> None:
    """Two directories whose conftests name different loops cannot share one session."""
    _loops(pytester)
    for name in ("a", "b"):
        pytester.mkdir(name)
        pytester.path.joinpath(name, "conftest.py").write_text(
            f"import loops\n\ndef pytest_asyncio_loop_factories():\n"
            f"    return {{{name!r}: loops.Loop{name.upper()}}}\n"
        )
        pytester.path.joinpath(name, f"test_{name}.py").write_text(LOOP_TEST)
    result = pytester.runpytest()
    _assert_stops_with(
        result,
        (
            "oneloop: pytest_asyncio_loop_factories gives the selected tests different "
            "event loops: 'a' (loops.LoopA) for a/test_a.py::test_loop; "
            "'b' (loops.LoopB) for b/test_b.py::test_loop. pytest-oneloop runs every test "
            "of a session on one loop: run these tests in separate pytest sessions, "
            "or make the hook return the same factory."
        ),
    )
    result = pytester.runpytest("b", "-s")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*LOOP LoopB DEBUG False"])


def test_a_hook_naming_several_factories_for_a_test_is_a_usage_error(
    pytester: pytest.Pytester,
) -> None:
    """pytest-asyncio would run the test on each loop; one session loop cannot, and says so."""
    _loops(pytester)
    pytester.makeconftest(TWO_FACTORIES)
    pytester.makepyfile(LOOP_TEST)
    result = pytester.runpytest()
    _assert_stops_with(
        result,
        (
            "oneloop: pytest_asyncio_loop_factories names 2 loop factories for "
            "test_*.py::test_loop ('a', 'b'); pytest-asyncio would run the test once on each. "
            "pytest-oneloop runs every test on one session loop: make the hook return one "
            "factory (for example chosen by a command-line option of your conftest), "
            "or choose the loop with --loop-factory."
        ),
    )


def test_a_hook_returning_no_mapping_is_a_usage_error(pytester: pytest.Pytester) -> None:
    """A hook result that is not a non-empty name-to-callable mapping is reported."""
    pytester.makeconftest(
        """
        def pytest_asyncio_loop_factories(item):
            return None if item.name == "test_loop" else {}
        """
    )
    pytester.makepyfile(LOOP_TEST)
    result = pytester.runpytest()
    _assert_stops_with(
        result,
        (
            "oneloop: pytest_asyncio_loop_factories returned None for "
            "test_*.py::test_loop: it must return a non-empty mapping of factory names "
            "to callables that make event loops."
        ),
    )


def test_the_loop_factories_marker_selects_one_factory_or_skips(
    pytester: pytest.Pytester,
) -> None:
    """`mark.asyncio(loop_factories=[...])` narrows the hook's choice; none available skips."""
    _loops(pytester)
    pytester.makeconftest(TWO_FACTORIES)
    pytester.makepyfile(
        """
        import asyncio
        import pytest
        import loops

        pytestmark = pytest.mark.asyncio(loop_factories=["b"])

        async def test_on_b():
            assert isinstance(asyncio.get_running_loop(), loops.LoopB)

        @pytest.mark.asyncio(loop_factories=["trio"])
        async def test_on_trio():
            pass
        """
    )
    result = pytester.runpytest("-rs")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(
        [
            (
                "SKIPPED * None of the loop factories in mark.asyncio(loop_factories=...) "
                "is available. Available factories: a, b."
            )
        ]
    )


def test_an_explicit_loop_factory_option_wins_over_the_hook(pytester: pytest.Pytester) -> None:
    """`--loop-factory` is the user's choice for this run; the hook is not consulted."""
    _loops(pytester)
    pytester.makeconftest(
        """
        def pytest_asyncio_loop_factories():
            raise AssertionError("not called")
        """
    )
    pytester.makepyfile(LOOP_TEST)
    result = pytester.runpytest("-s", "--loop-factory", "loops:LoopB")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*LOOP LoopB DEBUG False"])


@pytest.mark.parametrize("order", ["before oneloop", "after oneloop"])
def test_pytest_asyncio_declaring_the_same_options_stops_with_the_conflict_message(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, order: str
) -> None:
    """Both plugins declare `--asyncio-mode` and the hook: still one clear message, no crash."""
    pytester.syspathinsert()
    pytester.mkpydir("pytest_asyncio")
    pytester.path.joinpath("pytest_asyncio", "plugin.py").write_text(FAKE_PYTEST_ASYNCIO)
    pytester.makeconftest("def pytest_asyncio_loop_factories():\n    return None\n")
    pytester.makepyfile(LOOP_TEST)
    if order == "before oneloop":  # -p plugins are registered before entry points.
        result = pytester.runpytest("-p", "pytest_asyncio.plugin", "--asyncio-mode=auto")
    else:  # PYTEST_PLUGINS ones after them.
        monkeypatch.setenv("PYTEST_PLUGINS", "pytest_asyncio.plugin")
        result = pytester.runpytest("--asyncio-mode=auto")
    _assert_stops_with(result, PYTEST_ASYNCIO_CONFLICT)
    assert "Traceback" not in result.stderr.str()
