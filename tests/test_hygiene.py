"""What one test changes on the session loop is restored before the next, and reported.

Each test runs a small suite in a subprocess, where the loop, the event
loop policy and the signal handlers are the inner session's own: a test
changes a setting, a later one sees it restored, and the warning names the
test and the setting. Under `ONELOOP_TEST_LOOP_FACTORY=uvloop:...` the
settings uvloop keeps in private C fields are not checked, and their tests
are skipped; `test_on_uvloop_...` covers that case on every run.
"""

from __future__ import annotations

import os
import sys

import pytest

HANG_LIMIT = 120  # seconds a subprocess may take before the test counts it as hung

ON_UVLOOP = "uvloop" in os.environ.get("ONELOOP_TEST_LOOP_FACTORY", "")
asyncio_internals = pytest.mark.skipif(
    ON_UVLOOP,
    reason="uvloop keeps this state in private C fields, which the checkpoint cannot read",
)
unix_signals = pytest.mark.skipif(sys.platform == "win32", reason="add_signal_handler is Unix-only")

WARNING = "*LoopChangeWarning: oneloop: test_{module}.py::{test} {change}"


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """The inner suite, in file order, in a subprocess of its own."""
    return pytester.runpytest_subprocess("-p", "no:randomly", *args, timeout=HANG_LIMIT)


def add_ini(pytester: pytest.Pytester, line: str) -> None:
    """Add a line to the inner suite's ini file, keeping the loop factory set there."""
    ini = pytester.path / "tox.ini"
    ini.write_text(f"{ini.read_text().rstrip()}\n{line}\n")


def test_a_changed_exception_handler_is_restored_with_the_leak_checks_own(
    pytester: pytest.Pytester,
) -> None:
    """A test's handler is replaced by the one it found, so loop errors are reported again."""
    pytester.makepyfile(
        test_handler="""
        import asyncio

        found = []

        def quiet(loop, context):
            pass

        async def test_installs_a_handler():
            loop = asyncio.get_running_loop()
            found.append(loop.get_exception_handler())
            loop.set_exception_handler(quiet)

        async def test_has_the_old_handler_back():
            assert asyncio.get_running_loop().get_exception_handler() is found[0]

        async def test_callback_errors_are_reported_again():
            asyncio.get_running_loop().call_soon(lambda: 1 / 0)
            await asyncio.sleep(0)
        """
    )
    result = run(pytester)
    result.assert_outcomes(passed=3, warnings=2)
    result.stdout.fnmatch_lines(
        [
            WARNING.format(
                module="handler",
                test="test_installs_a_handler",
                change="changed the session loop's exception handler; it was restored",
            ),
            "*LoopExceptionWarning: oneloop: during *::test_callback_errors_are_reported_again*",
        ]
    )


def test_a_changed_task_factory_is_restored_and_leaks_are_found_again(
    pytester: pytest.Pytester,
) -> None:
    """After `eager_task_factory` (Python 3.12+; a plain factory before), tasks start lazily."""
    pytester.makepyfile(
        test_factory="""
        import asyncio

        def plain(loop, coro, **kwargs):
            return asyncio.Task(coro, loop=loop, **kwargs)

        factory = getattr(asyncio, "eager_task_factory", plain)
        held = []

        async def test_makes_tasks_eager():
            asyncio.get_running_loop().set_task_factory(factory)

        async def test_tasks_start_lazily_again():
            ran = []

            async def mark():
                ran.append(1)

            task = asyncio.create_task(mark())
            assert ran == []
            await task
            assert asyncio.get_running_loop().get_task_factory() is not factory

        async def test_leaks_a_task():
            held.append(asyncio.create_task(asyncio.Event().wait()))
        """
    )
    result = run(pytester)
    result.assert_outcomes(passed=3, warnings=2)
    result.stdout.fnmatch_lines(
        [
            WARNING.format(
                module="factory",
                test="test_makes_tasks_eager",
                change="changed the session loop's task factory; it was restored",
            ),
            "*LeakedTaskWarning: oneloop: *::test_leaks_a_task left 1 task(s) pending*",
        ]
    )


def test_debug_mode_and_slow_callback_duration_are_restored(pytester: pytest.Pytester) -> None:
    """Debug mode turned on in a running test is off again, its origin tracking too."""
    pytester.makepyfile(
        test_debug="""
        import asyncio
        import sys

        async def test_turns_debug_mode_on():
            loop = asyncio.get_running_loop()
            loop.set_debug(True)
            loop.slow_callback_duration = 5.0
            await asyncio.sleep(0)  # debug mode's origin tracking starts in this turn

        async def test_runs_without_it():
            loop = asyncio.get_running_loop()
            assert not loop.get_debug()
            assert loop.slow_callback_duration == 0.1
            assert sys.get_coroutine_origin_tracking_depth() == 0
        """
    )
    result = run(pytester)
    result.assert_outcomes(passed=2, warnings=2)
    result.stdout.fnmatch_lines(
        [
            WARNING.format(
                module="debug",
                test="test_turns_debug_mode_on",
                change="changed the session loop's debug mode; it was restored",
            ),
            WARNING.format(
                module="debug",
                test="test_turns_debug_mode_on",
                change="changed the session loop's slow_callback_duration; it was restored",
            ),
        ]
    )


@unix_signals
@asyncio_internals
def test_signal_handlers_a_test_added_or_replaced_are_restored(pytester: pytest.Pytester) -> None:
    """Added handlers are removed, a module fixture's handler is put back where replaced."""
    pytester.makepyfile(
        test_signals="""
        import asyncio
        import os
        import signal

        import pytest

        seen = []

        @pytest.fixture(scope="module")
        async def usr2_handler():
            loop = asyncio.get_running_loop()
            loop.add_signal_handler(signal.SIGUSR2, seen.append, "module")
            yield
            loop.remove_signal_handler(signal.SIGUSR2)

        REALTIME = getattr(signal, "SIGRTMIN", None)  # Linux: named by its number

        async def test_adds_and_replaces_handlers(usr2_handler):
            loop = asyncio.get_running_loop()
            loop.add_signal_handler(signal.SIGUSR1, seen.append, "test")
            loop.add_signal_handler(signal.SIGUSR2, seen.append, "test")
            if REALTIME is not None:
                loop.add_signal_handler(REALTIME + 1, seen.append, "test")

        async def test_removes_the_module_handler(usr2_handler):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGUSR2)

        async def test_has_the_module_handler_only(usr2_handler):
            assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL
            os.kill(os.getpid(), signal.SIGUSR2)
            for _ in range(100):
                if seen:
                    break
                await asyncio.sleep(0.01)
            assert seen == ["module"]
        """
    )
    result = run(pytester)
    result.assert_outcomes(passed=3, warnings=2)
    if sys.platform == "linux":
        result.stdout.fnmatch_lines(["*signal handlers (SIGUSR1, SIGUSR2, signal 3?);*"])
    result.stdout.fnmatch_lines(
        [
            WARNING.format(
                module="signals",
                test="test_adds_and_replaces_handlers",
                change="changed the session loop's signal handlers (SIGUSR1, SIGUSR2*); "
                "they were restored",
            ),
            WARNING.format(
                module="signals",
                test="test_removes_the_module_handler",
                change="changed the session loop's signal handlers (SIGUSR2); they were restored",
            ),
        ]
    )


@asyncio_internals
def test_the_next_test_gets_a_working_default_executor(pytester: pytest.Pytester) -> None:
    """After `set_default_executor()` or `shutdown_default_executor()`, asyncio's own is used.

    The executor asyncio makes on first use is not a change.
    """
    pytester.makepyfile(
        test_executor="""
        import asyncio
        import concurrent.futures
        import threading

        own = concurrent.futures.ThreadPoolExecutor(thread_name_prefix="own")

        def thread_name():
            return threading.current_thread().name

        async def test_sets_its_own():
            asyncio.get_running_loop().set_default_executor(own)

        async def test_uses_asyncio_s_own():
            name = await asyncio.get_running_loop().run_in_executor(None, thread_name)
            assert name.startswith("asyncio")
            own.shutdown()

        async def test_shuts_it_down():
            await asyncio.get_running_loop().shutdown_default_executor()

        def test_sync_code_shuts_it_down_too():
            loop = asyncio.get_event_loop()
            loop.run_until_complete(loop.run_in_executor(None, thread_name))
            loop.run_until_complete(loop.shutdown_default_executor())

        async def test_gets_a_new_one():
            name = await asyncio.get_running_loop().run_in_executor(None, thread_name)
            assert name.startswith("asyncio")
        """
    )
    result = run(pytester)
    result.assert_outcomes(passed=5, warnings=3)
    shut_down = (
        "shut down the session loop's default executor (loop.shutdown_default_executor()); "
        "a new one is made when next needed"
    )
    result.stdout.fnmatch_lines(
        [
            WARNING.format(
                module="executor",
                test="test_sets_its_own",
                change="changed the session loop's default executor; it was restored",
            ),
            WARNING.format(module="executor", test="test_shuts_it_down", change=shut_down),
            WARNING.format(
                module="executor", test="test_sync_code_shuts_it_down_too", change=shut_down
            ),
        ]
    )
    result.stdout.no_fnmatch_line("*test_uses_asyncio_s_own*LoopChangeWarning*")


ASYNCGENS_SHUT_DOWN = """
import asyncio, warnings
import pytest

@pytest.fixture
async def afix():
    return 1

def test_sync_code_shuts_down_asyncgens(afix):
    loop = asyncio.get_event_loop()
    loop.run_until_complete(loop.shutdown_asyncgens())

async def agen():
    yield 1

async def test_later_async_generator():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        async for _ in agen():
            pass
"""


@asyncio_internals
def test_shutdown_asyncgens_from_sync_code_does_not_poison_later_generators(
    pytester: pytest.Pytester,
) -> None:
    """Issue 16's second repro: later async generators run; without the checkpoint, they fail."""
    pytester.makepyfile(test_agens=ASYNCGENS_SHUT_DOWN)
    result = run(pytester)
    result.assert_outcomes(passed=2, warnings=1)
    result.stdout.fnmatch_lines(
        [
            WARNING.format(
                module="agens",
                test="test_sync_code_shuts_down_asyncgens",
                change="shut down the session loop's async generators (loop.shutdown_asyncgens()); "
                "later async generators work again, those it closed stay closed",
            )
        ]
    )
    result = run(pytester, "-p", "no:pytest_oneloop._hygiene")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*was scheduled after loop.shutdown_asyncgens() call*"])


@asyncio_internals
def test_a_stop_requested_outside_the_loop_is_cancelled(pytester: pytest.Pytester) -> None:
    """`loop.stop()` from sync code would end the next test's first turn; it is cancelled."""
    pytester.makepyfile(
        test_stop="""
        import asyncio

        import pytest

        @pytest.fixture(scope="session")
        async def session_loop():
            return asyncio.get_running_loop()

        def test_stops_the_loop_from_sync_code(session_loop):
            session_loop.stop()

        async def test_runs_several_turns():
            for _ in range(3):
                await asyncio.sleep(0)
        """
    )
    result = run(pytester)
    result.assert_outcomes(passed=2, warnings=1)
    result.stdout.fnmatch_lines(
        [
            WARNING.format(
                module="stop",
                test="test_stops_the_loop_from_sync_code",
                change="stopped the session loop while it was not running (loop.stop()), which "
                "would have stopped the next test's first turn; the stop was cancelled",
            )
        ]
    )


def test_the_session_loop_is_the_current_loop_again_after_each_test(
    pytester: pytest.Pytester,
) -> None:
    """Only another open loop left current is reported; `asyncio.run()` and the like are not."""
    pytester.makepyfile(
        test_current="""
        import asyncio

        import pytest

        other = []

        @pytest.fixture(scope="session")
        async def session_loop():
            return asyncio.get_running_loop()

        def test_clears_the_current_loop(session_loop):
            asyncio.set_event_loop(None)

        def test_runs_asyncio_run(session_loop):
            assert asyncio.get_event_loop() is session_loop
            assert asyncio.run(asyncio.sleep(0, 1)) == 1

        def test_sets_and_closes_its_own_loop(session_loop):
            assert asyncio.get_event_loop() is session_loop
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            loop.close()

        def test_leaves_another_loop_current(session_loop):
            assert asyncio.get_event_loop() is session_loop
            other.append(asyncio.new_event_loop())
            asyncio.set_event_loop(other[0])

        def test_sees_the_session_loop(session_loop):
            assert asyncio.get_event_loop() is session_loop
            other[0].close()
        """
    )
    result = run(pytester)
    result.assert_outcomes(passed=5, warnings=1)
    result.stdout.fnmatch_lines(
        [
            WARNING.format(
                module="current",
                test="test_leaves_another_loop_current",
                change="changed the thread's current event loop; it was restored",
            )
        ]
    )


def test_a_changed_event_loop_policy_is_restored(pytester: pytest.Pytester) -> None:
    """A new policy, or none, is replaced by the old one, whose loop is the session loop."""
    pytester.makepyfile(
        test_policy="""
        import asyncio

        import pytest

        found = []

        class BarePolicy(asyncio.AbstractEventLoopPolicy):
            def get_event_loop(self):
                raise RuntimeError("no loops here")

        @pytest.fixture(scope="session")
        async def session_loop():
            found.append(asyncio.get_event_loop_policy())
            return asyncio.get_running_loop()

        def test_sets_a_new_policy(session_loop):
            asyncio.set_event_loop_policy(asyncio.DefaultEventLoopPolicy())

        def test_sets_a_policy_of_its_own(session_loop):
            assert asyncio.get_event_loop_policy() is found[0]
            asyncio.set_event_loop_policy(BarePolicy())

        def test_unsets_the_policy(session_loop):
            assert asyncio.get_event_loop_policy() is found[0]
            asyncio.set_event_loop(None)
            asyncio.set_event_loop_policy(None)

        def test_has_the_old_policy_and_loop(session_loop):
            assert asyncio.get_event_loop_policy() is found[0]
            assert asyncio.get_event_loop() is session_loop
        """
    )
    result = run(pytester)
    result.assert_outcomes(passed=4, warnings=3)
    for test in (
        "test_sets_a_new_policy",
        "test_sets_a_policy_of_its_own",
        "test_unsets_the_policy",
    ):
        result.stdout.fnmatch_lines(
            [
                WARNING.format(
                    module="policy",
                    test=test,
                    change="changed the event loop policy; it was restored",
                )
            ]
        )


def test_wider_fixtures_set_the_baseline_and_may_undo_it(pytester: pytest.Pytester) -> None:
    """Session, module and class fixtures change the loop unwarned; tests under them are reset."""
    pytester.makeconftest(
        """
        import asyncio

        import pytest

        def session_handler(loop, context):
            loop.default_exception_handler(context)

        @pytest.fixture(scope="session", autouse=True)
        async def session_settings():
            loop = asyncio.get_running_loop()
            loop.set_exception_handler(session_handler)
            loop.set_debug(True)
            yield
        """
    )
    pytester.makepyfile(
        test_class="""
        import asyncio

        import pytest

        @pytest.fixture(scope="class")
        def slow():
            loop = asyncio.get_event_loop()
            loop.slow_callback_duration = 2.0
            yield
            loop.slow_callback_duration = 0.1

        @pytest.mark.usefixtures("slow")
        class TestUnderAClassFixture:
            async def test_sees_the_class_value(self):
                assert asyncio.get_running_loop().slow_callback_duration == 2.0

            async def test_changes_it(self):
                asyncio.get_running_loop().slow_callback_duration = 9.0

            async def test_has_the_class_value_back(self):
                assert asyncio.get_running_loop().slow_callback_duration == 2.0
        """,
        test_module="""
        import asyncio

        import pytest

        def module_handler(loop, context):
            loop.default_exception_handler(context)

        @pytest.fixture(scope="module", autouse=True)
        async def handler():
            loop = asyncio.get_running_loop()
            old = loop.get_exception_handler()
            loop.set_exception_handler(module_handler)
            yield
            loop.set_exception_handler(old)

        async def test_changes_the_handler():
            asyncio.get_running_loop().set_exception_handler(None)

        async def test_has_the_module_handler_back():
            assert asyncio.get_running_loop().get_exception_handler() is module_handler
        """,
        test_z_session="""
        import asyncio

        async def test_sees_the_session_settings():
            loop = asyncio.get_running_loop()
            assert loop.get_exception_handler().__name__ == "session_handler"
            assert loop.get_debug()
            assert loop.slow_callback_duration == 0.1
        """,
    )
    result = run(pytester)
    result.assert_outcomes(passed=6, warnings=2)
    result.stdout.fnmatch_lines(
        [
            WARNING.format(
                module="class",
                test="TestUnderAClassFixture::test_changes_it",
                change="changed the session loop's slow_callback_duration; it was restored",
            ),
            WARNING.format(
                module="module",
                test="test_changes_the_handler",
                change="changed the session loop's exception handler; it was restored",
            ),
        ]
    )


def test_a_function_fixture_s_change_counts_as_its_test_s(pytester: pytest.Pytester) -> None:
    """A function-scoped fixture may undo its change; if it does not, its test is named."""
    pytester.makepyfile(
        test_fixtures="""
        import asyncio

        import pytest

        @pytest.fixture
        async def tidy():
            loop = asyncio.get_running_loop()
            loop.set_debug(True)
            yield
            loop.set_debug(False)

        @pytest.fixture
        def untidy():
            asyncio.get_event_loop().slow_callback_duration = 1.0

        async def test_with_tidy(tidy):
            assert asyncio.get_running_loop().get_debug()

        def test_with_untidy(tidy, untidy):
            pass

        async def test_after_them():
            loop = asyncio.get_running_loop()
            assert (loop.get_debug(), loop.slow_callback_duration) == (False, 0.1)
        """
    )
    result = run(pytester)
    result.assert_outcomes(passed=3, warnings=1)
    result.stdout.fnmatch_lines(
        [
            WARNING.format(
                module="fixtures",
                test="test_with_untidy",
                change="changed the session loop's slow_callback_duration; it was restored",
            )
        ]
    )


CHANGES_DEBUG_MODE = """
import asyncio

async def test_changes_debug_mode():
    asyncio.get_running_loop().set_debug(True)

async def test_next():
    assert not asyncio.get_running_loop().get_debug()
"""


def test_loop_changes_can_be_teardown_errors(pytester: pytest.Pytester) -> None:
    """`oneloop_loop_changes = error` fails the test's teardown with the message."""
    pytester.makepyfile(test_error=CHANGES_DEBUG_MODE)
    add_ini(pytester, "oneloop_loop_changes = error")
    result = run(pytester)
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_changes_debug_mode*",
            (
                "oneloop: test_error.py::test_changes_debug_mode changed the session loop's "
                "debug mode; it was restored"
            ),
        ]
    )


def test_loop_changes_can_be_restored_silently(pytester: pytest.Pytester) -> None:
    """`oneloop_loop_changes = ignore`, or filtering the warning class, still restores."""
    pytester.makepyfile(test_ignore=CHANGES_DEBUG_MODE)
    result = run(pytester, "-W", "ignore::pytest_oneloop.LoopChangeWarning")
    result.assert_outcomes(passed=2)
    add_ini(pytester, "oneloop_loop_changes = ignore")
    result = run(pytester)
    result.assert_outcomes(passed=2)
    result.stdout.no_fnmatch_line("*LoopChangeWarning*")


def test_an_unknown_mode_is_a_usage_error(pytester: pytest.Pytester) -> None:
    """A value other than warn, error or ignore stops the run with the value named."""
    pytester.makepyfile("def test_nothing():\n    pass\n")
    add_ini(pytester, "oneloop_loop_changes = loud")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*oneloop: oneloop_loop_changes must be one of warn, error, ignore; got 'loud'"]
    )


def test_a_closed_loop_is_left_to_the_leak_check_and_its_successor_is_checked(
    pytester: pytest.Pytester,
) -> None:
    """Closing the loop is reported once; the next loop is compared with how it was made."""
    pytester.makepyfile(
        test_closed="""
        import asyncio

        def test_changes_the_policy():
            asyncio.set_event_loop_policy(None)

        async def test_makes_the_loop():
            pass

        def test_closes_the_loop():
            loop = asyncio.get_event_loop()
            loop.set_debug(True)
            loop.close()

        async def test_on_a_new_loop():
            asyncio.get_running_loop().set_debug(True)

        async def test_after_it():
            assert not asyncio.get_running_loop().get_debug()
        """
    )
    result = run(pytester)
    result.assert_outcomes(passed=5, errors=1, warnings=2)
    result.stdout.fnmatch_lines(
        [
            "*oneloop: *::test_closes_the_loop closed the session event loop*",
            "*::test_changes_the_policy changed the event loop policy; it was restored",
            WARNING.format(
                module="closed",
                test="test_on_a_new_loop",
                change="changed the session loop's debug mode; it was restored",
            ),
        ]
    )


def test_on_uvloop_the_settings_it_exposes_are_restored_and_the_rest_are_left(
    pytester: pytest.Pytester,
) -> None:
    """On uvloop, whose private state has no Python attributes, those settings go unchecked."""
    pytest.importorskip("uvloop")
    pytester.makepyfile(
        test_uvloop="""
        import asyncio
        import signal

        async def test_changes_public_and_private_settings():
            loop = asyncio.get_running_loop()
            loop.set_debug(True)
            loop.slow_callback_duration = 3.0
            loop.add_signal_handler(signal.SIGUSR1, print)
            await loop.shutdown_asyncgens()

        async def test_public_ones_are_back():
            loop = asyncio.get_running_loop()
            assert (loop.get_debug(), loop.slow_callback_duration) == (False, 0.1)
            assert loop.remove_signal_handler(signal.SIGUSR1)
        """
    )
    # Without the leak check's task factory: on Python 3.13, uvloop 0.23 passes it
    # `eager_start`, which it does not accept yet, and the session's close fails.
    add_ini(pytester, "oneloop_leaked_tasks = ignore")
    result = run(pytester, "--loop-factory", "uvloop:new_event_loop")
    result.assert_outcomes(passed=2, warnings=2)
    result.stdout.fnmatch_lines(
        ["*test_changes_public_and_private_settings changed the session loop's debug mode*"]
    )
    result.stdout.no_fnmatch_line("*signal handlers*")
