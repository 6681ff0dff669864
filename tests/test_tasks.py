"""One careless test never harms the next: leaks, timeouts, Ctrl-C, loop misuse."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

HANG_LIMIT = 120  # seconds a subprocess may take before the test counts it as hung

LEAKY = """
import asyncio
import pytest

async def forever():
    await asyncio.Event().wait()

@pytest.fixture(scope="module")
async def server_task():
    task = asyncio.create_task(forever())
    yield task
    task.cancel()

held = []  # referenced, so the garbage collector cannot destroy them first

@pytest.fixture
async def leaky_fixture():
    held.append(asyncio.create_task(forever()))
    yield

async def test_leaks():
    held.append(asyncio.get_running_loop().create_task(forever(), name="left-behind"))

def test_leaks_through_fixture(leaky_fixture):
    pass

async def test_uses_module_task(server_task):
    assert not server_task.done()

async def test_next_sees_no_leftovers():
    mine = asyncio.current_task()
    others = [
        t for t in asyncio.all_tasks() if t is not mine and t.get_coro().__name__ == "forever"
    ]
    assert len(others) == 1  # only the module fixture's task
"""


def test_leaked_tasks_are_reported_against_their_test_and_cancelled(
    pytester: pytest.Pytester,
) -> None:
    """A test's leftover tasks give a warning naming it, then are gone before the next test."""
    pytester.makepyfile(LEAKY)
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=4, warnings=2)
    result.stdout.fnmatch_lines(
        [
            (
                "*LeakedTaskWarning: oneloop: test_leaked_tasks_are_reported*::test_leaks left "
                "1 task(s) pending after its teardown; they were cancelled:"
            ),
            "*- left-behind running forever() at *:5",
            "*(run with --asyncio-debug to see where it was created)",
            (
                "*Await or cancel the tasks you start (a TaskGroup does both), or set "
                "oneloop_leaked_tasks = ignore."
            ),
        ]
    )
    result.stdout.fnmatch_lines(["*::test_leaks_through_fixture left 1 task(s) pending*"])
    result.stdout.no_fnmatch_line("*test_uses_module_task left*")


def test_debug_mode_shows_where_a_leaked_task_was_created(pytester: pytest.Pytester) -> None:
    """Under --asyncio-debug the report includes the line that created the task."""
    pytester.makepyfile(LEAKY)
    result = pytester.runpytest("-p", "no:randomly", "--asyncio-debug", "-k", "test_leaks")
    result.stdout.fnmatch_lines(["*created at:*", "*create_task(forever(), name=*"])


def test_leaked_tasks_can_be_errors_or_ignored(pytester: pytest.Pytester) -> None:
    """`oneloop_leaked_tasks = error` fails the test's teardown; `ignore` says nothing."""
    pytester.makepyfile(LEAKY)
    pytester.makeini("[pytest]\noneloop_leaked_tasks = error\n")
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=4, errors=2)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_leaks*", "*left 1 task(s) pending*"])
    pytester.makeini("[pytest]\noneloop_leaked_tasks = ignore\n")
    result = pytester.runpytest("-p", "no:randomly", "-k", "test_leaks")
    assert result.parseoutcomes()["passed"] == 2
    result.stdout.no_fnmatch_line("*LeakedTaskWarning*")


def test_work_scheduled_by_the_last_step_runs_before_the_loop_stops(
    pytester: pytest.Pytester,
) -> None:
    """As with `run_until_complete`, callbacks the test's last step scheduled still run.

    A task started as the test returns gets its first step, so one that
    finishes there is not a leak; a `call_soon` callback runs before the
    next test begins.
    """
    pytester.makepyfile(
        """
        import asyncio

        ran = []

        async def quick():
            ran.append("task")

        async def test_starts_and_returns():
            asyncio.get_running_loop().call_soon(ran.append, "callback")
            held = asyncio.create_task(quick())
            test_starts_and_returns.held = held

        def test_both_ran_before_the_next_test():
            assert ran == ["callback", "task"]
            assert test_starts_and_returns.held.done()
        """
    )
    pytester.makeini("[pytest]\noneloop_leaked_tasks = error\n")
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=2)


def test_a_task_factory_of_the_user_makes_every_task_and_leaks_are_still_found(
    pytester: pytest.Pytester,
) -> None:
    """Tests, fixtures and the tasks they start go through a task factory the user set.

    One set by the loop factory and one a fixture sets later alike; the
    leak check keeps working on top of the first.
    """
    pytester.syspathinsert()
    pytester.makepyfile(
        marked_loop="""
        import asyncio

        class Marked(asyncio.Task):
            pass

        class Other(asyncio.Task):
            pass

        def new_event_loop():
            loop = asyncio.new_event_loop()
            loop.set_task_factory(lambda loop, coro, **kw: Marked(coro, loop=loop, **kw))
            return loop
        """
    )
    pytester.makepyfile(
        test_factory="""
        import asyncio

        import pytest

        from marked_loop import Other

        def kind():
            return type(asyncio.current_task()).__name__

        @pytest.fixture
        async def fixture_kind():
            yield kind()

        async def test_marked(fixture_kind):
            assert (fixture_kind, kind()) == ("Marked", "Marked")
            started = asyncio.create_task(asyncio.sleep(0))
            assert type(started).__name__ == "Marked"
            await started

        async def test_leaks():
            asyncio.create_task(asyncio.Event().wait())

        @pytest.fixture(scope="module")
        async def user_factory_set_later():
            loop = asyncio.get_running_loop()
            loop.set_task_factory(lambda loop, coro, **kw: Other(coro, loop=loop, **kw))

        async def test_other(user_factory_set_later, fixture_kind):
            assert (fixture_kind, kind()) == ("Other", "Other")
        """
    )
    result = pytester.runpytest("--loop-factory", "marked_loop:new_event_loop", "-p", "no:randomly")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*test_leaks left 1 task(s) pending after its teardown*"])
    assert "test_marked left" not in result.stdout.str()


def test_task_names_and_keywords_reach_the_task_whatever_makes_it(
    pytester: pytest.Pytester,
) -> None:
    """Default names, `name=`, `context=` and a user's task factory all work with the leak check.

    Run on asyncio's loop and (in `make test`) on uvloop.
    """
    pytester.makepyfile(
        """
        import asyncio
        import contextvars

        var = contextvars.ContextVar("var", default="outer")

        async def value():
            return var.get()

        async def test_names_and_context():
            default = asyncio.create_task(asyncio.sleep(0))
            named = asyncio.create_task(asyncio.sleep(0), name="mine")
            context = contextvars.copy_context()
            context.run(var.set, "inner")
            in_context = asyncio.get_running_loop().create_task(value(), context=context)
            assert default.get_name().startswith("Task-")
            assert named.get_name() == "mine"
            assert await in_context == "inner"
            await asyncio.gather(default, named)

        async def test_leaks_keep_their_name():
            asyncio.create_task(asyncio.Event().wait(), name="the-leak")
        """
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=2, warnings=1)
    result.stdout.fnmatch_lines(
        ["*test_leaks_keep_their_name left 1 task(s)*", "*- the-leak running*"]
    )


@pytest.mark.skipif(
    not hasattr(__import__("asyncio"), "eager_task_factory"),
    reason="asyncio.eager_task_factory is new in Python 3.12",
)
def test_eager_task_factory_runs_tasks_eagerly_and_leaks_are_still_found(
    pytester: pytest.Pytester,
) -> None:
    """With 3.12's `eager_task_factory` from the loop factory, tasks start eagerly, leaks count."""
    pytester.syspathinsert()
    pytester.makepyfile(
        eager_loop="""
        import asyncio

        def new_event_loop():
            loop = asyncio.new_event_loop()
            loop.set_task_factory(asyncio.eager_task_factory)
            return loop
        """
    )
    pytester.makepyfile(
        test_eager="""
        import asyncio

        async def quick():
            return 1

        async def test_eager():
            task = asyncio.create_task(quick())
            assert task.done()

        async def test_leaks():
            asyncio.create_task(asyncio.Event().wait())
        """
    )
    result = pytester.runpytest("--loop-factory", "eager_loop:new_event_loop", "-p", "no:randomly")
    result.assert_outcomes(passed=2, warnings=1)
    result.stdout.fnmatch_lines(["*test_leaks left 1 task(s) pending after its teardown*"])


def test_a_test_whose_fixture_teardown_failed_is_still_checked_for_leaks(
    pytester: pytest.Pytester,
) -> None:
    """When a fixture's teardown raised, the leak check still runs in that teardown.

    The task `test_first` leaked is cancelled before `test_second` runs, and
    in error mode its report is part of `test_first`'s teardown error, not
    a warning; the same holds for the last test of the session.
    """
    pytester.makepyfile(
        """
        import asyncio
        import pytest

        leaked = []

        @pytest.fixture
        def breaks_on_teardown():
            yield
            raise LookupError("teardown boom")

        async def test_first(breaks_on_teardown):
            leaked.append(asyncio.create_task(asyncio.Event().wait()))

        async def test_second():
            assert leaked[0].cancelled()

        async def test_last(breaks_on_teardown):
            # Held, as above: a pending task nobody holds may be collected
            # before the end of the session ("Task was destroyed but it is pending").
            leaked.append(asyncio.create_task(asyncio.Event().wait()))
        """
    )
    pytester.makeini("[pytest]\noneloop_leaked_tasks = error\n")
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=3, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*LookupError: teardown boom*",
            "*test_first left 1 task(s) pending after its teardown; they were cancelled*",
            "*test_last left 1 task(s) pending after its teardown; they were cancelled*",
        ]
    )
    result.stdout.no_fnmatch_line("*Warning*")


def test_asyncio_s_clean_up_of_a_dropped_async_generator_is_not_a_leak(
    pytester: pytest.Pytester,
) -> None:
    """Breaking out of `async for` leaves asyncio's `aclose()` task: it finishes, unreported."""
    pytester.makepyfile(
        """
        import asyncio

        closed = []

        async def agen():
            try:
                while True:
                    yield 1
                    await asyncio.sleep(0)
            finally:
                closed.append(True)

        async def test_break_out_of_async_for():
            async for _ in agen():
                break

        async def test_next():
            assert closed == [True]
        """
    )
    pytester.makeini("[pytest]\nfilterwarnings = error\noneloop_leaked_tasks = error\n")
    pytester.runpytest("-p", "no:randomly").assert_outcomes(passed=2)


def test_a_dropped_async_generator_whose_clean_up_hangs_is_still_a_leak(
    pytester: pytest.Pytester,
) -> None:
    """The same rule does not hide a real leak: a clean-up that never ends is reported."""
    pytester.makepyfile(
        """
        import asyncio

        async def agen():
            try:
                yield 1
            finally:
                await asyncio.Event().wait()

        async def test_break_out_of_async_for():
            async for _ in agen():
                break
        """
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(
        [
            "*test_break_out_of_async_for left 1 task(s) pending*",
            "*running aclose() of an async generator the test dropped (its clean-up never*",
        ]
    )


def test_invalid_leaked_tasks_value_is_a_usage_error(pytester: pytest.Pytester) -> None:
    """A misspelt mode stops the run and lists the valid ones."""
    pytester.makepyfile(LEAKY)
    pytester.makeini("[pytest]\noneloop_leaked_tasks = loud\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: oneloop: oneloop_leaked_tasks must be one of warn, error, ignore; got 'loud'"]
    )


TIMEOUTS = """
import asyncio
import pytest

torn_down = []

@pytest.fixture
async def resource():
    yield
    torn_down.append("resource")

@pytest.fixture
async def slow_setup():
    await asyncio.sleep(3600)
    yield

@pytest.mark.async_timeout(0.05)
async def test_marker_limit(resource):
    await asyncio.sleep(3600)

async def test_default_limit():
    await asyncio.Event().wait()

@pytest.mark.async_timeout(0.05)
async def test_fixture_setup_limit(slow_setup):
    pass

async def test_after():
    assert torn_down == ["resource"]
"""


def test_timeouts_cancel_the_test_name_the_await_and_the_session_goes_on(
    pytester: pytest.Pytester,
) -> None:
    """Marker and --async-timeout limits fail the test with where it was stuck."""
    pytester.makepyfile(TIMEOUTS)
    result = pytester.runpytest_subprocess(
        "-p", "no:randomly", "--async-timeout", "0.1", timeout=HANG_LIMIT
    )
    result.assert_outcomes(passed=1, failed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            (
                "*test *::test_marker_limit timed out after 0.05s and was cancelled; "
                "it was waiting at:"
            ),
            '  File "*", line 18, in test_marker_limit',
            "    await asyncio.sleep(3600)",
        ]
    )
    result.stdout.fnmatch_lines(["*::test_default_limit timed out after 0.1s*"])
    result.stdout.fnmatch_lines(
        ["setup of async fixture 'slow_setup' timed out after 0.05s and was cancelled*"]
    )


def test_timeout_from_ini_and_invalid_values(pytester: pytest.Pytester) -> None:
    """`oneloop_timeout` sets the default; non-positive values are clear errors."""
    pytester.makepyfile(TIMEOUTS)
    pytester.makeini("[pytest]\noneloop_timeout = 0.1\n")
    result = pytester.runpytest_subprocess("-p", "no:randomly", timeout=HANG_LIMIT)
    result.stdout.fnmatch_lines(["*::test_default_limit timed out after 0.1s*"])
    result = pytester.runpytest_subprocess("--async-timeout", "soon", timeout=HANG_LIMIT)
    result.stderr.fnmatch_lines(
        ["ERROR: oneloop: --async-timeout must be a positive number of seconds, got 'soon'"]
    )
    pytester.makepyfile(
        test_bad_marker="""
        import pytest

        @pytest.mark.async_timeout(-1)
        async def test_bad():
            pass
        """
    )
    result = pytester.runpytest("test_bad_marker.py")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            (
                "@pytest.mark.async_timeout on test_bad_marker.py::test_bad must be a positive "
                "number of seconds, got -1"
            )
        ]
    )


# A background job of a non-interactive shell (`make test &`) starts with
# SIGINT ignored, and children inherit that: the child pytest gets Python's
# usual SIGINT handler back first, as it has when started from a terminal.
_PYTEST_WITH_SIGINT = (
    "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "import pytest; sys.exit(pytest.console_main())"
)


def test_ctrl_c_stops_a_hung_async_test_like_a_sync_one(pytester: pytest.Pytester) -> None:
    """SIGINT during a hung async test: KeyboardInterrupt summary, teardown, prompt exit."""
    pytester.makepyfile(
        """
        import asyncio
        import pytest

        @pytest.fixture
        async def resource():
            yield
            print("TEARDOWN RAN", flush=True)

        async def test_hangs(resource):
            print("HANGING", flush=True)
            await asyncio.Event().wait()

        async def test_never_runs():
            pass
        """
    )
    proc = subprocess.Popen(  # noqa: S603 - the command is the constant above
        [sys.executable, "-c", _PYTEST_WITH_SIGINT, "-s", "-p", "no:cacheprovider"],
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
    output = "".join(seen) + rest
    assert proc.returncode == pytest.ExitCode.INTERRUPTED
    assert "TEARDOWN RAN" in output
    assert "KeyboardInterrupt" in output
    assert "test_never_runs" not in output


def test_loop_misuse_does_not_break_later_tests(pytester: pytest.Pytester) -> None:
    """asyncio.run in tests, replaced or closed policy loops, and loop.stop() are survived."""
    pytester.makepyfile(
        """
        import asyncio
        import pytest

        @pytest.fixture(scope="session")
        async def session_loop():
            return asyncio.get_running_loop()

        async def test_asyncio_run_inside_async_test():
            async def noop():
                pass
            coro = noop()
            with pytest.raises(RuntimeError, match="cannot be called from a running event loop"):
                asyncio.run(coro)
            coro.close()

        def test_sync_asyncio_run():
            async def noop():
                return 1
            assert asyncio.run(noop()) == 1

        def test_sync_set_event_loop_none():
            asyncio.set_event_loop(None)

        def test_sync_own_loop():
            loop = asyncio.new_event_loop()
            loop.run_until_complete(asyncio.sleep(0))
            loop.close()

        async def test_still_same_loop(session_loop):
            assert asyncio.get_running_loop() is session_loop

        async def test_stops_loop():
            asyncio.get_running_loop().stop()
            await asyncio.sleep(3600)

        async def test_after_stop(session_loop):
            assert asyncio.get_running_loop() is session_loop
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly", timeout=HANG_LIMIT)
    result.assert_outcomes(passed=6, failed=1)
    result.stdout.fnmatch_lines(
        [
            (
                "test *::test_stops_loop stopped the session event loop (loop.stop()) before it "
                "finished; it was cancelled. Let the test return instead of stopping the loop."
            )
        ]
    )


def test_closing_the_session_loop_is_reported_and_a_fresh_loop_follows(
    pytester: pytest.Pytester,
) -> None:
    """A test that closes the session loop gets an error; later async tests still run."""
    pytester.makepyfile(
        """
        import asyncio

        async def test_before():
            await asyncio.sleep(0)

        def test_closes_policy_loop():
            asyncio.get_event_loop().close()

        async def test_after():
            await asyncio.sleep(0)
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly", timeout=HANG_LIMIT)
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(
        [
            (
                "oneloop: *::test_closes_policy_loop closed the session event loop. A new loop "
                "is used from the next test on; objects made on the old loop by wider-scoped "
                "async fixtures no longer work. Close only loops you created."
            )
        ]
    )


def test_getfixturevalue_of_async_fixture_in_running_test_is_one_clear_error(
    pytester: pytest.Pytester,
) -> None:
    """Re-entering the loop is refused with advice, never a hang; sync fixtures still work."""
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture
        async def async_value():
            return 1

        @pytest.fixture
        def sync_value():
            return 2

        async def test_reenters(request):
            request.getfixturevalue("async_value")

        async def test_sync_fixture_is_fine(request):
            assert request.getfixturevalue("sync_value") == 2
        """
    )
    result = pytester.runpytest_subprocess(timeout=HANG_LIMIT)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            (
                "async fixture 'async_value' was requested with request.getfixturevalue() while "
                "the event loop is running (inside an async test or fixture). Request "
                "'async_value' as an argument of the test or fixture instead."
            )
        ]
    )


def test_async_generator_mistakes_get_pytest_style_messages(pytester: pytest.Pytester) -> None:
    """Two yields, no yield, and an async generator test are each reported clearly."""
    pytester.makepyfile(
        """
        import pytest

        cleaned = []

        @pytest.fixture
        async def twice():
            try:
                yield 1
                yield 2
            finally:
                cleaned.append("twice")

        @pytest.fixture
        async def never():
            if False:
                yield

        async def test_twice(twice):
            pass

        async def test_never(never):
            pass

        async def test_is_generator():
            yield

        def test_cleanup_ran():
            assert cleaned == ["twice"]
        """
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=2, failed=1, errors=2)
    result.stdout.fnmatch_lines(["async fixture 'twice' has more than one 'yield'", "*.py:5"])
    result.stdout.fnmatch_lines(["async fixture 'never' did not yield a value", "*.py:13"])
    result.stdout.fnmatch_lines(
        [
            (
                "*::test_is_generator is an async generator function: a test must not "
                "yield. Move the code around the 'yield' into a fixture."
            )
        ]
    )


def test_hypothesis_runs_every_example_on_the_session_loop(pytester: pytest.Pytester) -> None:
    """`@given` async tests run on the one loop, shrink, and report the falsifying example."""
    pytester.makepyfile(
        """
        import asyncio
        import pytest
        from hypothesis import given, settings, strategies as st

        loops = set()

        @pytest.fixture(scope="session")
        async def session_loop():
            return asyncio.get_running_loop()

        @settings(max_examples=30)
        @given(st.integers())
        async def test_all_examples_on_one_loop(session_loop, n):
            loops.add(asyncio.get_running_loop())
            assert loops == {session_loop}

        @given(st.integers(min_value=0))
        async def test_shrinks(n):
            await asyncio.sleep(0)
            assert n < 10
        """
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*test_shrinks(*", "*n=10,*"])


def test_each_case_of_a_parametrized_given_test_owns_its_own_tasks(
    pytester: pytest.Pytester,
) -> None:
    """A task leaked by the second case of a parametrized `@given` test is blamed on that case."""
    pytester.makepyfile(
        """
        import asyncio
        import pytest
        from hypothesis import given, settings, strategies as st

        held = []

        @pytest.mark.parametrize("case", ["a", "b"])
        @settings(max_examples=2, database=None)
        @given(st.integers())
        async def test_h(case, n):
            if case == "b" and not held:
                held.append(asyncio.create_task(asyncio.Event().wait()))
        """
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=2, warnings=1)
    result.stdout.fnmatch_lines(["*test_h[[]b[]] left 1 task(s) pending after its teardown*"])
    assert "test_h[a] left" not in result.stdout.str()


def test_a_given_test_keeps_its_time_limit_across_its_examples(pytester: pytest.Pytester) -> None:
    """`async_timeout` bounds an async `@given` test: its examples share the test's limit."""
    pytester.makepyfile(
        """
        import asyncio
        import pytest
        from hypothesis import given, settings, strategies as st

        @pytest.mark.async_timeout(0.5)
        @settings(max_examples=3, deadline=None, database=None)
        @given(st.integers())
        async def test_slow(n):
            await asyncio.sleep(2)
        """
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*test_slow timed out after 0.5s and was cancelled*"])


def test_xdist_gives_each_worker_its_own_loop_with_the_same_results(
    pytester: pytest.Pytester,
) -> None:
    """`-n 2` runs the suite with one session loop per worker and the same outcomes."""
    pytester.makeconftest(
        """
        import asyncio
        import os
        import pytest

        @pytest.fixture(scope="session")
        async def session_loop():
            return asyncio.get_running_loop()

        @pytest.fixture(scope="session")
        async def worker_queue():
            queue = asyncio.Queue()
            await queue.put(os.environ.get("PYTEST_XDIST_WORKER", "main"))
            return queue
        """
    )
    body = """
        import asyncio
        import os
        import pytest

        @pytest.mark.parametrize("i", range(10))
        async def test_same_loop(session_loop, worker_queue, i):
            assert asyncio.get_running_loop() is session_loop
            name = await worker_queue.get()
            assert name == os.environ.get("PYTEST_XDIST_WORKER", "main")
            await worker_queue.put(name)
    """
    pytester.makepyfile(test_a=body, test_b=body)
    plain = pytester.runpytest_subprocess(timeout=HANG_LIMIT)
    plain.assert_outcomes(passed=20)
    distributed = pytester.runpytest_subprocess("-n", "2", timeout=HANG_LIMIT)
    distributed.assert_outcomes(passed=20)


def test_loop_callback_errors_are_attached_to_the_test(pytester: pytest.Pytester) -> None:
    """A raising call_soon callback and an unretrieved task error become the test's warnings."""
    pytester.makepyfile(
        """
        import asyncio

        def boom():
            raise ValueError("callback boom")

        async def fails():
            raise KeyError("never retrieved")

        async def test_callback():
            asyncio.get_running_loop().call_soon(boom)
            await asyncio.sleep(0)

        async def test_unretrieved():
            task = asyncio.create_task(fails())
            await asyncio.sleep(0)
            assert task.done()

        async def test_clean():
            await asyncio.sleep(0)
        """
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=3, warnings=2)
    result.stdout.fnmatch_lines(
        [
            "*::test_callback",
            "*LoopExceptionWarning: oneloop: during *::test_callback: Exception in callback *boom*",
            "*ValueError: callback boom",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*::test_unretrieved",
            (
                "*LoopExceptionWarning: oneloop: during *::test_unretrieved: Task exception was "
                "never retrieved"
            ),
            "*KeyError: 'never retrieved'",
        ]
    )
    strict = pytester.runpytest(
        "-p", "no:randomly", "-W", "error::pytest_oneloop.LoopExceptionWarning"
    )
    strict.assert_outcomes(passed=3, errors=2)


def test_a_socket_closed_behind_its_transport_does_not_poison_the_next_test(
    pytester: pytest.Pytester,
) -> None:
    """The dead descriptor is dropped, so a new socket with the same number works."""
    pytester.makepyfile(
        """
        import asyncio
        import socket

        async def test_closes_socket_behind_transport():
            loop = asyncio.get_running_loop()
            server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
            with socket.socket() as sock:
                sock.connect(server.sockets[0].getsockname())
                await loop.create_connection(asyncio.Protocol, sock=sock)
            server.close()

        async def test_next_connection_works():
            async def greet(reader, writer):
                writer.write(b"hi\\n")
                await writer.drain()
            server = await asyncio.start_server(greet, "127.0.0.1", 0)
            reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname())
            assert await reader.readline() == b"hi\\n"
            writer.close()
            server.close()
        """
    )
    pytester.runpytest_subprocess("-p", "no:randomly", timeout=HANG_LIMIT).assert_outcomes(passed=2)


def test_loop_errors_still_reach_the_asyncio_logger(pytester: pytest.Pytester) -> None:
    """Besides the warning, asyncio's own handler logs the error, as without the plugin."""
    pytester.makepyfile(
        """
        import asyncio
        import gc
        import logging

        async def test_logged(caplog):
            caplog.set_level(logging.ERROR, logger="asyncio")
            async def boom():
                raise RuntimeError("boom")
            task = asyncio.get_running_loop().create_task(boom())
            await asyncio.sleep(0)
            del task
            gc.collect()
            assert "Task exception was never retrieved" in caplog.text
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(["*LoopExceptionWarning*Task exception was never retrieved*"])
