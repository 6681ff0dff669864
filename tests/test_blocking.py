"""Code that blocks the event loop is found and reported at the user's line."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading

import pytest

HANG_LIMIT = 120  # seconds a subprocess may take before the test counts it as hung
HINT = (
    "*The loop could run nothing else for over 0.1 s (oneloop_blocking) each time. Use an "
    "async version of the call, run it in a thread with asyncio.to_thread()"
)


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """Run the inner session in a process of its own: it has a thread of its own."""
    return pytester.runpytest_subprocess("-p", "no:randomly", *args, timeout=HANG_LIMIT)


def test_a_blocking_call_is_reported_with_its_line_its_stack_and_what_to_do(
    pytester: pytest.Pytester,
) -> None:
    """The warning names the test, the episodes, the longest, the user's line and the call."""
    pytester.makepyfile(
        test_orders="""
        import time

        def charge():
            time.sleep(0.5)  # a sync HTTP call, say

        async def test_sync():
            charge()
        """
    )
    result = run(pytester, "--blocking", "0.1")
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(
        [
            (
                "*test_orders.py:6: BlockingWarning: oneloop: test_orders.py::test_sync blocked "
                "the event loop once, longest *.* s, at test_orders.py:4 in charge -> time.sleep"
            ),
            "*.* s, innermost frame first:",
            "*test_orders.py:4 in charge -> time.sleep",
            "*test_orders.py:7 in test_sync",
            HINT + ", or mark the test @pytest.mark.allow_blocking.",
        ]
    )


def test_sleep_busy_loop_socket_and_sqlite3_are_each_reported_at_the_users_line(
    pytester: pytest.Pytester,
) -> None:
    """C calls that release the GIL and pure Python spinning are all found, at their line."""
    pytester.makepyfile(
        test_kinds="""
        import socket
        import sqlite3
        import threading
        import time

        import pytest

        async def test_sleeps():
            time.sleep(0.5)

        async def test_spins():
            end = time.monotonic() + 0.5
            while time.monotonic() < end:
                pass

        async def test_receives():
            left, right = socket.socketpair()
            threading.Timer(0.5, right.send, (b"x",)).start()
            assert left.recv(1) == b"x"
            left.close()
            right.close()

        @pytest.fixture
        def big_table():
            db = sqlite3.connect(":memory:")
            db.execute("CREATE TABLE big (n INTEGER)")
            db.executemany("INSERT INTO big VALUES (?)", ((n,) for n in range(200_000)))
            yield db
            db.close()

        async def test_queries(big_table):
            big_table.execute(
                "SELECT sum(a.n * b.n) FROM big AS a, (SELECT n FROM big LIMIT 40) AS b"
            ).fetchall()
        """
    )
    result = run(pytester, "--blocking", "0.1")
    result.assert_outcomes(passed=4, warnings=4)
    for name, where in [
        ("test_sleeps", "test_kinds.py:9 in test_sleeps -> time.sleep"),
        ("test_spins", "test_kinds.py:13 in test_spins*"),
        ("test_receives", "test_kinds.py:19 in test_receives -> left.recv"),
        ("test_queries", "test_kinds.py:32 in test_queries -> big_table.execute"),
    ]:
        result.stdout.fnmatch_lines([f"*::{name} blocked the event loop once, * at {where}"])


def test_waiting_sync_code_outside_the_loop_and_imports_are_never_reported(
    pytester: pytest.Pytester,
) -> None:
    """`await asyncio.sleep` of the same length, sync tests and fixtures, and imports pass."""
    pytester.makepyfile(slow_module="import time\n\ntime.sleep(0.5)\n")
    pytester.makepyfile(
        """
        import asyncio
        import time

        import pytest

        @pytest.fixture
        def slow_sync():
            time.sleep(0.5)

        async def test_awaits():
            await asyncio.sleep(0.5)

        async def test_after_a_slow_sync_fixture(slow_sync):
            await asyncio.sleep(0)

        def test_sync_sleeps():
            time.sleep(0.5)

        async def test_imports_a_slow_module():
            import slow_module  # noqa: F401
        """
    )
    result = run(pytester, "--blocking", "0.25")
    result.assert_outcomes(passed=4)
    result.stdout.no_fnmatch_line("*BlockingWarning*")


def test_blocking_shorter_than_the_threshold_is_never_reported(pytester: pytest.Pytester) -> None:
    """Short blocks, even many of them in a row of awaits, stay under the threshold."""
    pytester.makepyfile(
        """
        import asyncio
        import time

        async def test_short_blocks():
            for _ in range(5):
                time.sleep(0.05)
                await asyncio.sleep(0)
        """
    )
    result = run(pytester, "--blocking", "1")
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*BlockingWarning*")


def test_only_the_longest_three_of_many_episodes_are_shown(pytester: pytest.Pytester) -> None:
    """Every episode is counted; the three longest are shown, the longest first."""
    pytester.makepyfile(
        test_many="""
        import asyncio
        import time

        async def test_blocks_four_times():
            for _ in range(3):
                time.sleep(0.3)
                await asyncio.sleep(0)
            time.sleep(0.7)
        """
    )
    result = run(pytester, "--blocking", "0.1")
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(
        [
            "*blocked the event loop 4 times, longest *, at test_many.py:8 in *",
            "*.* s, innermost frame first:",
            "*test_many.py:8 in test_blocks_four_times -> time.sleep",
            "*.* s, innermost frame first:",
            "*test_many.py:6 in test_blocks_four_times -> time.sleep",
        ]
    )
    assert result.stdout.str().count("innermost frame first") == 3


def test_error_mode_fails_the_test_or_the_setup_that_blocked(pytester: pytest.Pytester) -> None:
    """`oneloop_blocking_mode = error`: the call fails, a blocking setup is an error."""
    pytester.makeini(
        "[pytest]\naddopts = -p no:cacheprovider\noneloop_blocking = 0.1\n"
        "oneloop_blocking_mode = error\n"
    )
    pytester.makepyfile(
        test_strict="""
        import asyncio
        import time

        import pytest

        @pytest.fixture
        async def connection():
            time.sleep(0.5)

        async def test_blocks():
            time.sleep(0.5)

        async def test_blocking_fixture(connection):
            pass

        async def test_awaits():
            await asyncio.sleep(0)
        """
    )
    result = run(pytester)
    result.assert_outcomes(passed=1, failed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at setup of test_blocking_fixture*",
            (
                "oneloop: test_strict.py::test_blocking_fixture blocked the event loop once, * at "
                "test_strict.py:8 in connection -> time.sleep"
            ),
            "*_ test_blocks _*",
            (
                "oneloop: test_strict.py::test_blocks blocked the event loop once, * at "
                "test_strict.py:11 in test_blocks -> time.sleep"
            ),
        ]
    )
    result.stdout.no_fnmatch_line("*BlockingWarning*")


def test_a_warning_filter_that_makes_it_an_error_fails_with_the_message_alone(
    pytester: pytest.Pytester,
) -> None:
    """`-W error::pytest_oneloop.BlockingWarning` fails the teardown, with no traceback."""
    pytester.makepyfile(
        test_filtered="""
        import time

        async def test_blocks():
            time.sleep(0.5)
        """
    )
    result = run(pytester, "--blocking", "0.1", "-W", "error::pytest_oneloop.BlockingWarning")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_blocks*",
            (
                "oneloop: test_filtered.py::test_blocks blocked the event loop once, * at "
                "test_filtered.py:4 in test_blocks -> time.sleep"
            ),
        ]
    )
    result.stdout.no_fnmatch_line("*_blocking.py*")


def test_the_allow_blocking_marker_exempts_a_test(pytester: pytest.Pytester) -> None:
    """A marked test is not reported, and `--strict-markers` knows the marker."""
    pytester.makepyfile(
        """
        import time

        import pytest

        @pytest.mark.allow_blocking
        async def test_allowed():
            time.sleep(0.5)

        async def test_not_allowed():
            time.sleep(0.5)
        """
    )
    result = run(pytester, "--blocking", "0.1", "--strict-markers")
    result.assert_outcomes(passed=2, warnings=1)
    result.stdout.fnmatch_lines(["*::test_not_allowed blocked the event loop once*"])
    result.stdout.no_fnmatch_line("*::test_allowed blocked*")


def test_a_wider_fixtures_setup_is_reported_against_that_fixture(
    pytester: pytest.Pytester,
) -> None:
    """Session and module fixtures are named; a function fixture's blocking is its test's."""
    pytester.makepyfile(
        test_server="""
        import time

        import pytest

        @pytest.fixture(scope="session")
        async def server():
            time.sleep(0.5)
            yield "server"

        @pytest.fixture(scope="module")
        async def schema():
            time.sleep(0.5)

        @pytest.fixture
        async def client(server):
            time.sleep(0.5)
            return server

        async def test_uses_server(server, schema):
            assert server == "server"

        async def test_uses_client(client):
            assert client == "server"
        """
    )
    result = run(pytester, "--blocking", "0.1", "-p", "no:randomly")
    result.assert_outcomes(passed=2, warnings=3)
    result.stdout.fnmatch_lines(
        [
            (
                "*test_server.py:5: BlockingWarning: oneloop: fixture 'server' (session scope) "
                "blocked the event loop once, * at test_server.py:7 in server -> time.sleep"
            ),
            "*fixture 'schema' (module scope) blocked the event loop once, * at test_server.py:12*",
            "*::test_uses_client blocked the event loop once, * at test_server.py:16 in client*",
        ]
    )
    result.stdout.no_fnmatch_line("*::test_uses_server blocked*")
    result.stdout.fnmatch_lines([HINT + "."])  # a fixture cannot be marked: no such advice


THREADS = """
import threading

def test_threads():
    names = [thread.name for thread in threading.enumerate()]
    print("WATCHDOG", "oneloop-blocking" in names)
"""


def test_it_is_off_by_default_and_its_thread_lives_only_as_long_as_the_session(
    pytester: pytest.Pytester,
) -> None:
    """No option (or 0): no thread; with one, the thread runs the tests and ends with them."""
    pytester.makepyfile(THREADS)
    pytester.runpytest("-s").stdout.fnmatch_lines(["*WATCHDOG False*"])
    pytester.runpytest("-s", "--blocking", "0").stdout.fnmatch_lines(["*WATCHDOG False*"])
    pytester.runpytest("-s", "--blocking", "5").stdout.fnmatch_lines(["*WATCHDOG True*"])
    assert "oneloop-blocking" not in [thread.name for thread in threading.enumerate()]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--blocking", "soon"],
            "*oneloop: --blocking must be a number of seconds (0: off), got 'soon'",
        ),
        (
            ["-o", "oneloop_blocking=-1"],
            "*oneloop: oneloop_blocking must be a number of seconds (0: off), got '-1'",
        ),
        (
            ["-o", "oneloop_blocking_mode=loud"],
            "*oneloop: oneloop_blocking_mode must be one of warn, error; got 'loud'",
        ),
    ],
)
def test_bad_values_are_usage_errors_naming_them(
    pytester: pytest.Pytester, args: list[str], message: str
) -> None:
    """A threshold that is not a number of seconds, or an unknown mode, stops the run."""
    pytester.makepyfile(THREADS)
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


@pytest.mark.parametrize(
    "args", [["--loop-factory", "uvloop:new_event_loop"], ["--asyncio-debug"]], ids=str
)
def test_it_works_on_uvloop_and_in_debug_mode(pytester: pytest.Pytester, args: list[str]) -> None:
    """Public loop API only: any loop, and asyncio's debug mode, report the same line."""
    pytester.makepyfile(
        test_loops="""
        import time

        async def test_sleeps():
            time.sleep(0.5)
        """
    )
    result = run(pytester, "--blocking", "0.1", *args)
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(["*at test_loops.py:4 in test_sleeps -> time.sleep"])


def test_each_xdist_worker_reports_the_tests_it_ran(pytester: pytest.Pytester) -> None:
    """Under pytest-xdist every worker watches its own loop; the warnings reach the summary."""
    for name in ("test_one", "test_two"):
        pytester.makepyfile(
            **{name: "import time\n\nasync def test_sleeps():\n    time.sleep(0.5)\n"}
        )
    result = run(pytester, "--blocking", "0.1", "-n", "2")
    result.assert_outcomes(passed=2, warnings=2)
    result.stdout.fnmatch_lines(["*test_one.py:4 in test_sleeps -> time.sleep"])
    result.stdout.fnmatch_lines(["*test_two.py:4 in test_sleeps -> time.sleep"])


def test_a_test_that_blocks_then_hangs_is_reported_and_timed_out(
    pytester: pytest.Pytester,
) -> None:
    """With `--async-timeout`, the time limit still fires and the blocking is still reported."""
    pytester.makepyfile(
        test_hangs="""
        import asyncio
        import time

        async def test_blocks_then_hangs():
            time.sleep(0.5)
            await asyncio.Event().wait()
        """
    )
    result = run(pytester, "--blocking", "0.1", "--async-timeout", "1.5")
    result.assert_outcomes(failed=1, warnings=1)
    result.stdout.fnmatch_lines(["*timed out after 1.5s and was cancelled*"])
    result.stdout.fnmatch_lines(["*at test_hangs.py:5 in test_blocks_then_hangs -> time.sleep"])


# A background job of a non-interactive shell starts with SIGINT ignored;
# the child pytest gets Python's usual handler back first (as in test_tasks.py).
_PYTEST_WITH_SIGINT = (
    "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "import pytest; sys.exit(pytest.console_main())"
)


def test_ctrl_c_stops_a_hung_test_promptly_with_the_watchdog_running(
    pytester: pytest.Pytester,
) -> None:
    """SIGINT during a hung async test ends the session as usual; the thread does not hold it."""
    pytester.makepyfile(
        """
        import asyncio
        import time

        async def test_hangs():
            time.sleep(0.3)
            print("HANGING", flush=True)
            await asyncio.Event().wait()
        """
    )
    command = [sys.executable, "-c", _PYTEST_WITH_SIGINT, "-s", "-p", "no:cacheprovider"]
    proc = subprocess.Popen(  # noqa: S603 - the command is the constant above
        [*command, "--blocking", "0.1"],
        cwd=pytester.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if "HANGING" in line:
            proc.send_signal(signal.SIGINT)
            break
    rest, _ = proc.communicate(timeout=HANG_LIMIT)
    assert proc.returncode == pytest.ExitCode.INTERRUPTED
    assert "KeyboardInterrupt" in "".join(seen) + rest
