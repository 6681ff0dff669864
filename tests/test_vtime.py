"""Virtual time: the same programs, the same events, at exactly their nominal loop times.

The differential tests run a set of deterministic programs twice: in real
time with delays of a tenth of a second, and under virtual time
with the same delays scaled up to minutes. Each program records its events
with the offset from its start (in units of its delay) at which it expects
them; both runs must record the same events in the same order, and under
virtual time every offset must be exactly the nominal one. The real run's
offsets are not compared: they are wall time.
"""

from __future__ import annotations

import ast
import re

import pytest

HANG_LIMIT = 120  # seconds a subprocess may take before the test counts it as hung

PROGRAMS = '''
import asyncio
import sys
import time


class Recorder:
    """Events with their loop time offset, in units of the program's delay."""

    def __init__(self, unit):
        self.loop = asyncio.get_running_loop()
        self.start = self.loop.time()
        self.unit = unit
        self.events = []

    def __call__(self, event, nominal):
        self.events.append((event, (self.loop.time() - self.start) / self.unit, nominal))


async def call_later_chain(unit, record):
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def first():
        record("first", 1)
        loop.call_later(0.5 * unit, second)

    def second():
        record("second", 1.5)
        loop.call_later(1 * unit, third)

    def third():
        record("third", 2.5)
        done.set_result(None)

    loop.call_later(1 * unit, first)
    loop.call_at(loop.time() + 2 * unit, record, "call_at", 2)
    loop.call_soon(record, "soon", 0)
    await done


async def sleeps_in_tasks(unit, record):
    async def sleeper(name, delays):
        elapsed = 0
        for delay in delays:
            await asyncio.sleep(delay * unit)
            elapsed += delay
            record(f"{name} woke", elapsed)

    async with asyncio.TaskGroup() as tg:
        tg.create_task(sleeper("a", [3, 1]))
        tg.create_task(sleeper("b", [1, 1, 0.5]))
        tg.create_task(sleeper("c", [0.5, 3]))
    record("all done", 4)


async def wait_for_timing_out_and_not(unit, record):
    try:
        await asyncio.wait_for(asyncio.sleep(2 * unit), timeout=1 * unit)
    except TimeoutError:
        record("timed out", 1)
    result = await asyncio.wait_for(asyncio.sleep(1 * unit, "in time"), timeout=2 * unit)
    record(result, 2)


async def timeout_rescheduled(unit, record):
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(1 * unit) as scope:
        await asyncio.sleep(0.5 * unit)
        record("half way", 0.5)
        scope.reschedule(loop.time() + 2 * unit)
        await asyncio.sleep(1 * unit)
        record("past the first deadline", 1.5)
    try:
        async with asyncio.timeout(None) as scope:
            scope.reschedule(loop.time() + 1 * unit)
            await asyncio.sleep(10 * unit)
    except TimeoutError:
        record("timed out at the new deadline", 2.5)


async def periodic_task_cancelled(unit, record):
    async def tick():
        count = 0
        while True:
            await asyncio.sleep(1 * unit)
            count += 1
            record(f"tick {count}", count)

    task = asyncio.create_task(tick())
    await asyncio.sleep(3.5 * unit)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        record("cancelled", 3.5)


async def echo_server_with_delayed_replies(unit, record):
    async def handle(reader, writer):
        name, delay = (await reader.readline()).decode().split()
        await asyncio.sleep(float(delay) * unit)
        writer.write(f"{name}\\n".encode())
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]

    async def ask(name, delay, nominal):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"{name} {delay}\\n".encode())
        reply = (await reader.readline()).decode().strip()
        record(f"reply {reply}", nominal)
        writer.close()
        await writer.wait_closed()

    async with server:
        await asyncio.gather(ask("slow", 2, 2), ask("fast", 1, 1))
        await ask("next", 0.5, 2.5)


async def to_thread_work(unit, record):
    def work(count):
        time.sleep(0.005)  # real time: the clock must not jump past it
        return sum(range(count))

    async def sleeper():
        await asyncio.sleep(1 * unit)
        record("slept", 1)

    async with asyncio.TaskGroup() as tg:
        tg.create_task(sleeper())
        record(f"to_thread {await asyncio.to_thread(work, 10)}", 0)
        loop = asyncio.get_running_loop()
        record(f"run_in_executor {await loop.run_in_executor(None, work, 5)}", 0)
    await asyncio.sleep(0.5 * unit)
    record("after", 1.5)


async def subprocess_output(unit, record):
    async def sleeper():
        await asyncio.sleep(1 * unit)
        record("slept", 1)

    async with asyncio.TaskGroup() as tg:
        tg.create_task(sleeper())
        proc = await asyncio.create_subprocess_exec(
            "printf", "done", stdout=asyncio.subprocess.PIPE
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 2 * unit)
        record(f"subprocess {out.decode()} {proc.returncode}", 0)
        proc = await asyncio.create_subprocess_shell("exit 3")
        record(f"shell {await proc.wait()}", 0)


NAMES = [
    "call_later_chain",
    "sleeps_in_tasks",
    "wait_for_timing_out_and_not",
    "timeout_rescheduled",
    "periodic_task_cancelled",
    "echo_server_with_delayed_replies",
    "to_thread_work",
    "subprocess_output",
]
'''

CONFTEST = """
import pytest


def pytest_addoption(parser):
    parser.addoption("--unit", type=float, required=True)


@pytest.fixture
def unit(request):
    return request.config.getoption("unit")
"""

RUN_PROGRAMS = """
import pytest

import programs


@pytest.mark.parametrize("name", programs.NAMES)
async def test_program(name, unit):
    record = programs.Recorder(unit)
    await getattr(programs, name)(unit, record)
    print("EVENTS", name, repr(record.events))
"""

#: Real time: a tenth of a second per unit (the runs take about 2 s); virtual: a minute.
REAL_UNIT = 0.1
VIRTUAL_UNIT = 60

Events = list[tuple[str, float]]


def _run_programs(pytester: pytest.Pytester, *args: str) -> dict[str, tuple[Events, Events]]:
    """Each program's (event, offset) and (event, nominal offset) lists, from one run."""
    pytester.makepyfile(programs=PROGRAMS, test_programs=RUN_PROGRAMS)
    pytester.makeconftest(CONFTEST)
    pytester.syspathinsert()
    result = pytester.runpytest("-s", "-p", "no:randomly", *args)
    result.assert_outcomes(passed=8)
    found = re.findall(r"EVENTS (\w+) (\[.*\])$", result.stdout.str(), re.MULTILINE)
    assert len(found) == 8, result.outlines
    runs = {}
    for name, text in found:
        recorded = ast.literal_eval(text)
        runs[name] = (
            [(event, offset) for event, offset, _ in recorded],
            [(event, nominal) for event, _, nominal in recorded],
        )
    return runs


def test_programs_record_the_same_events_under_real_and_virtual_time(
    pytester: pytest.Pytester,
) -> None:
    """Same events in the same order; under virtual time, at exactly their nominal offsets."""
    real = _run_programs(pytester, f"--unit={REAL_UNIT}")
    virtual = _run_programs(pytester, f"--unit={VIRTUAL_UNIT}", "--virtual-time")
    for name, (recorded, nominal) in virtual.items():
        assert [event for event, _ in recorded] == [event for event, _ in real[name][0]], name
        assert recorded == nominal, name


def test_the_clock_stands_still_while_code_runs_and_moves_only_by_jumps(
    pytester: pytest.Pytester,
) -> None:
    """Blocking work takes no virtual time; each sleep is one jump; `clock` counts them."""
    pytester.makepyfile(
        """
        import asyncio
        import time

        import pytest
        import pytest_oneloop

        @pytest.mark.virtual_time
        async def test_jumps(clock):
            assert isinstance(clock, pytest_oneloop.Clock)
            loop = asyncio.get_running_loop()
            start = loop.time()
            assert start == int(start)  # a whole second: dyadic delays add up exactly
            time.sleep(0.01)
            assert loop.time() == start == clock.time()
            await asyncio.sleep(0)
            assert clock.jumps == 0
            await asyncio.sleep(3600)
            await asyncio.sleep(0.25)
            assert loop.time() - start == 3600.25
            assert clock.jumps == 2
            assert repr(clock) == f"<Clock time={loop.time():g} jumps=2>"
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_the_fixture_clock_advances_and_runs_what_falls_due_before_returning(
    pytester: pytest.Pytester,
) -> None:
    """`advance` fires the timers due on the way, chained ones included, and what they start."""
    pytester.makepyfile(
        """
        import asyncio

        import pytest

        @pytest.mark.virtual_time
        async def test_advance(clock):
            loop = asyncio.get_running_loop()
            start = clock.time()
            seen = []

            async def woken():
                seen.append(("task", loop.time() - start))

            def at_ten():
                seen.append(("timer", loop.time() - start))
                loop.call_later(5, lambda: seen.append(("chained", loop.time() - start)))
                asyncio.ensure_future(woken())

            loop.call_later(10, at_ten)
            loop.call_later(30, seen.append, ("too late", None))
            await clock.advance(20)
            assert seen == [("timer", 10), ("task", 10), ("chained", 15)]
            assert clock.time() - start == 20
            assert clock.jumps == 3
            await clock.advance(0)
            assert clock.time() - start == 20
            await clock.advance(10)
            assert seen[-1] == ("too late", None)
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_function_scoped_fixtures_are_virtual_and_wider_scopes_keep_real_time(
    pytester: pytest.Pytester,
) -> None:
    """A function fixture's set-up and teardown run on the virtual clock; a module fixture's not."""
    pytester.makepyfile(
        """
        import asyncio
        import time

        import pytest

        seen = {}

        def stands_still():
            loop = asyncio.get_running_loop()
            before = loop.time()
            time.sleep(0.01)
            return loop.time() == before

        @pytest.fixture(scope="module")
        async def module_fixture():
            seen["module set-up"] = stands_still()
            yield
            seen["module teardown"] = stands_still()

        @pytest.fixture
        async def function_fixture(module_fixture):
            seen["function set-up"] = stands_still()
            loop = asyncio.get_running_loop()
            yield
            start = loop.time()
            await asyncio.sleep(120)
            seen["function teardown"] = stands_still() and loop.time() - start == 120

        @pytest.mark.virtual_time
        async def test_virtual(function_fixture):
            seen["test"] = stands_still()

        def test_after():
            assert seen == {
                "module set-up": False,
                "function set-up": True,
                "test": True,
                "function teardown": True,
            }
        """
    )
    pytester.runpytest("-p", "no:randomly").assert_outcomes(passed=2)


def test_after_the_test_the_loop_s_time_goes_on_from_where_the_test_left_it(
    pytester: pytest.Pytester,
) -> None:
    """No step back, no jump undone: later tests, virtual or not, start where the last ended."""
    pytester.makepyfile(
        """
        import asyncio
        import time

        import pytest

        ends = []

        @pytest.mark.virtual_time
        async def test_first():
            await asyncio.sleep(3600)
            ends.append(asyncio.get_running_loop().time())

        async def test_real_time_again():
            loop = asyncio.get_running_loop()
            start = loop.time()
            assert ends[-1] <= start < ends[-1] + 60
            time.sleep(0.01)
            assert loop.time() > start
            ends.append(loop.time())

        @pytest.mark.virtual_time
        async def test_virtual_again():
            start = asyncio.get_running_loop().time()
            assert ends[-1] <= start < ends[-1] + 60
        """
    )
    pytester.runpytest("-p", "no:randomly").assert_outcomes(passed=3)


def test_timers_of_wider_scoped_fixtures_see_the_jump(pytester: pytest.Pytester) -> None:
    """A session fixture's timer due within a virtual test's sleep fires during that sleep."""
    pytester.makepyfile(
        """
        import asyncio

        import pytest

        @pytest.fixture(scope="session")
        async def heartbeat():
            beats = []
            loop = asyncio.get_running_loop()
            handle = loop.call_later(30, beats.append, "beat")
            yield beats
            handle.cancel()

        @pytest.mark.virtual_time
        async def test_sleeps_past_it(heartbeat):
            await asyncio.sleep(60)
            assert heartbeat == ["beat"]
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_markers_on_classes_and_modules_and_the_option_with_opt_outs(
    pytester: pytest.Pytester,
) -> None:
    """The closest marker wins; `--virtual-time` and the ini option turn it on for every test."""
    pytester.makepyfile(
        test_markers="""
        import asyncio
        import time

        import pytest

        pytestmark = pytest.mark.virtual_time

        def virtual():
            loop = asyncio.get_running_loop()
            before = loop.time()
            time.sleep(0.01)
            return loop.time() == before

        async def test_module_marker():
            assert virtual()

        @pytest.mark.virtual_time(False)
        async def test_opted_out():
            assert not virtual()

        @pytest.mark.virtual_time(False)
        class TestOptedOut:
            async def test_class_marker(self):
                assert not virtual()

            @pytest.mark.virtual_time(True)
            async def test_back_in(self):
                assert virtual()
        """,
        test_options="""
        import asyncio
        import time
        import os

        import pytest

        def virtual():
            loop = asyncio.get_running_loop()
            before = loop.time()
            time.sleep(0.01)
            return loop.time() == before

        async def test_unmarked():
            assert virtual() == (os.environ["EXPECT"] == "virtual")

        @pytest.mark.virtual_time(False)
        async def test_opted_out():
            assert not virtual()
        """,
    )
    with pytest.MonkeyPatch.context() as env:
        env.setenv("EXPECT", "real")
        pytester.runpytest().assert_outcomes(passed=6)
        env.setenv("EXPECT", "virtual")
        pytester.runpytest("--virtual-time").assert_outcomes(passed=6)
        pytester.makeini("[pytest]\noneloop_virtual_time = true\n")
        pytester.runpytest().assert_outcomes(passed=6)


def test_a_sync_test_s_async_fixtures_and_a_custom_selector_or_the_public_driver(
    pytester: pytest.Pytester,
) -> None:
    """A sync test's async fixtures, a selector of the user's, `run_until_complete`, debug mode."""
    pytester.makepyfile(
        loops="""
        import asyncio
        import selectors

        class Wrapped(selectors.BaseSelector):
            def __init__(self):
                self._inner = selectors.DefaultSelector()

            def register(self, fileobj, events, data=None):
                return self._inner.register(fileobj, events, data)

            def unregister(self, fileobj):
                return self._inner.unregister(fileobj)

            def select(self, timeout=None):
                return self._inner.select(timeout)

            def get_map(self):
                return self._inner.get_map()

            def close(self):
                self._inner.close()

        def own_selector():
            return asyncio.SelectorEventLoop(Wrapped())
        """,
        test_sync="""
        import asyncio

        import pytest

        @pytest.fixture
        async def waited():
            loop = asyncio.get_running_loop()
            start = loop.time()
            await asyncio.sleep(600)
            return loop.time() - start

        @pytest.mark.virtual_time
        def test_sync(waited):
            assert waited == 600

        @pytest.mark.virtual_time
        async def test_async(waited):
            await asyncio.wait_for(asyncio.sleep(600), 601)
            assert waited == 600
        """,
    )
    pytester.syspathinsert()
    pytester.runpytest().assert_outcomes(passed=2)
    pytester.runpytest("--loop-factory", "loops:own_selector").assert_outcomes(passed=2)
    pytester.runpytest("-o", "oneloop_fast_loop=false").assert_outcomes(passed=2)
    pytester.runpytest("--asyncio-debug").assert_outcomes(passed=2)


def test_a_leaked_task_of_a_virtual_test_is_reported_and_cancelled(
    pytester: pytest.Pytester,
) -> None:
    """The leak check runs in real time after the test and still finds a periodic task."""
    pytester.makepyfile(
        """
        import asyncio

        import pytest

        async def tick():
            while True:
                await asyncio.sleep(1)

        held = []

        @pytest.mark.virtual_time
        async def test_leaks():
            held.append(asyncio.create_task(tick(), name="ticker"))
            await asyncio.sleep(10)

        def test_next():
            assert held[0].cancelled()
        """
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=2, warnings=1)
    result.stdout.fnmatch_lines(
        ["*::test_leaks left 1 task(s) pending*", "*- ticker running tick()*"]
    )


def test_a_periodic_task_stops_after_24_hours_of_virtual_time_without_a_limit(
    pytester: pytest.Pytester,
) -> None:
    """Without `oneloop_timeout`, 24 hours of virtual time end the test, named with its jumps."""
    pytester.makepyfile(
        """
        import asyncio

        import pytest

        async def tick():
            while True:
                await asyncio.sleep(60)

        @pytest.mark.virtual_time
        async def test_never_ends():
            async with asyncio.TaskGroup() as tg:
                tg.create_task(tick())
                await asyncio.Event().wait()

        async def test_next():
            await asyncio.sleep(0)
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly", timeout=HANG_LIMIT)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            (
                "test test_a_periodic_task_stops_after_24_hours*.py::test_never_ends timed out "
                "after 24 hours of virtual time (the virtual clock moved 86400s in 1440 jumps); "
                "that is the limit of a test under virtual time without oneloop_timeout and "
                "was cancelled; it was waiting at:"
            ),
        ]
    )


def test_oneloop_timeout_is_real_seconds_under_virtual_time(pytester: pytest.Pytester) -> None:
    """A limit is not jumped to: a long virtual sleep passes, a test spinning for real fails."""
    pytester.makepyfile(
        """
        import asyncio

        import pytest

        @pytest.mark.virtual_time
        @pytest.mark.async_timeout(1)
        async def test_sleeps_longer_than_its_limit():
            await asyncio.sleep(3600)

        @pytest.mark.virtual_time
        @pytest.mark.async_timeout(0.2)
        async def test_spins():
            async def tick():
                while True:
                    await asyncio.sleep(1)

            async with asyncio.TaskGroup() as tg:
                tg.create_task(tick())
                await asyncio.Event().wait()
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly", timeout=HANG_LIMIT)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            (
                "test *::test_spins timed out after 0.2s of real time (the virtual clock "
                "moved *s in * jumps) and was cancelled; it was waiting at:"
            ),
        ]
    )


@pytest.mark.parametrize(
    ("start", "stop", "held"),
    [
        (
            "asyncio.ensure_future(asyncio.to_thread(stop.wait))",
            "stop.set(); await work",
            "1 executor job",
        ),
        (
            'await asyncio.create_subprocess_exec("sleep", "30")',
            "work.kill(); await work.wait()",
            "1 subprocess",
        ),
    ],
    ids=["executor job", "subprocess"],
)
def test_work_that_never_ends_holds_the_clock_only_so_long(
    pytester: pytest.Pytester, start: str, stop: str, held: str
) -> None:
    """A job or process that keeps a timer waiting ends the wait after the hold limit."""
    pytester.makeconftest(
        """
        from pytest_oneloop import _vclock

        _vclock.HOLD_LIMIT = 0.2  # a minute, in the plugin
        """
    )
    pytester.makepyfile(
        f"""
        import asyncio
        import threading

        import pytest

        stop = threading.Event()

        @pytest.fixture
        async def server():
            work = {start}
            yield
            {stop}

        @pytest.mark.virtual_time
        async def test_sleeps(server):
            await asyncio.sleep(1)
        """
    )
    result = pytester.runpytest_subprocess(timeout=HANG_LIMIT)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            (
                f"test *::test_sleeps timed out after 0.2s of real time during which {held} "
                "held the virtual clock still (the virtual clock moved 0s in 0 jumps); a job "
                "or a process that runs for the whole test, such as a server, stops virtual "
                "time: start it in a wider-scoped fixture, or set oneloop_timeout and was "
                "cancelled; it was waiting at:"
            ),
        ]
    )


def test_the_grace_period_lets_another_thread_s_data_arrive_before_a_jump(
    pytester: pytest.Pytester,
) -> None:
    """With a socket registered, data sent within the grace period beats the timeout."""
    pytester.makepyfile(
        """
        import asyncio
        import os
        import socket
        import threading

        import pytest

        @pytest.mark.virtual_time
        async def test_reply():
            ours, theirs = socket.socketpair()
            sender = threading.Timer(0.05, theirs.send, [b"hi"])
            reader, writer = await asyncio.open_connection(sock=ours)
            sender.start()
            try:
                data = await asyncio.wait_for(reader.read(2), 10)
            except TimeoutError:
                data = None
            sender.join()
            writer.close()
            theirs.close()
            assert data == (b"hi" if os.environ["EXPECT"] == "reply" else None)
        """
    )
    with pytest.MonkeyPatch.context() as env:
        env.setenv("EXPECT", "reply")
        pytester.runpytest("-o", "oneloop_virtual_time_grace=5").assert_outcomes(passed=1)
        env.setenv("EXPECT", "timeout")
        pytester.runpytest("-o", "oneloop_virtual_time_grace=0").assert_outcomes(passed=1)


def test_a_loop_that_cannot_be_made_virtual_is_a_usage_error_naming_the_test(
    pytester: pytest.Pytester,
) -> None:
    """A loop with its own turns (or uvloop) fails each virtual test's set-up with what to do."""
    pytester.makepyfile(
        loops="""
        import asyncio

        class OwnTurns(asyncio.SelectorEventLoop):
            def _run_once(self):
                super()._run_once()
        """,
        test_loop="""
        import asyncio

        import pytest

        @pytest.mark.virtual_time
        async def test_virtual():
            await asyncio.sleep(60)

        async def test_real():
            await asyncio.sleep(0)
        """,
    )
    pytester.syspathinsert()
    result = pytester.runpytest("--loop-factory", "loops:OwnTurns")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            (
                "oneloop: test_loop.py::test_virtual runs under virtual time, but the session "
                "loop cannot be made virtual: loops.OwnTurns overrides asyncio's turn of the "
                "loop (_run_once). Virtual time needs asyncio's own event loop: run these "
                "tests without --loop-factory / oneloop_loop_factory, or mark them "
                "@pytest.mark.virtual_time(False)."
            ),
        ]
    )
    pytest.importorskip("uvloop")
    result = pytester.runpytest("--loop-factory", "uvloop:new_event_loop")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            (
                "*cannot be made virtual: uvloop.Loop is not asyncio's selector event loop, "
                "so its clock and its wait for I/O cannot be replaced. Virtual time needs*"
            ),
        ]
    )


def test_the_clock_fixture_outside_virtual_time_is_one_clear_error(
    pytester: pytest.Pytester,
) -> None:
    """Requesting `clock` without virtual time says how to turn it on."""
    pytester.makepyfile(
        """
        import pytest

        async def test_plain(clock):
            pass

        @pytest.mark.virtual_time(False)
        def test_opted_out(clock):
            pass
        """
    )
    result = pytester.runpytest("--virtual-time")
    result.assert_outcomes(passed=1, errors=1)
    result = pytester.runpytest()
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(
        [
            (
                "oneloop: test_the_clock_fixture_outside*.py::test_plain requests the clock "
                "fixture, but it does not run under virtual time. Mark it "
                "@pytest.mark.virtual_time, or turn virtual time on for every test with "
                "oneloop_virtual_time = true (ini) or --virtual-time."
            ),
        ]
    )


def test_misused_markers_options_and_clocks_get_one_message_each(
    pytester: pytest.Pytester,
) -> None:
    """A bad marker argument, a bad grace, and `clock.advance()` misuse each say what is wrong."""
    pytester.makepyfile(
        """
        import asyncio

        import pytest

        kept = []

        @pytest.mark.virtual_time("yes")
        async def test_bad_marker():
            pass

        @pytest.mark.virtual_time
        async def test_bad_advances(clock):
            kept.append(clock)
            with pytest.raises(ValueError) as negative:
                await clock.advance(-1)
            assert str(negative.value) == (
                "clock.advance() takes a finite number of seconds, 0 or more; got -1"
            )
            with pytest.raises(TypeError) as text:
                await clock.advance("1")
            assert str(text.value) == "clock.advance() takes a number of seconds; got '1'"
            with pytest.raises(RuntimeError) as twice:
                await asyncio.gather(clock.advance(1), clock.advance(2))
            assert str(twice.value) == (
                "clock.advance() is already running in another task; await one at a time"
            )

        @pytest.mark.virtual_time
        async def test_a_kept_clock():
            with pytest.raises(RuntimeError) as late:
                await kept[0].advance(1)
            assert str(late.value) == (
                "the clock of test_misused_markers_options_and_clocks_get_one_message_each.py"
                "::test_bad_advances was used after that test ended; request the clock "
                "fixture in the test that uses it"
            )
        """
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            (
                "oneloop: @pytest.mark.virtual_time on test_misused*.py::test_bad_marker takes "
                "one optional argument, True or False; got virtual_time('yes')"
            ),
        ]
    )
    result = pytester.runpytest("-o", "oneloop_virtual_time_grace=soon")
    result.stderr.fnmatch_lines(
        [
            (
                "ERROR: oneloop: oneloop_virtual_time_grace must be a number of seconds, "
                "0 or more; got 'soon'"
            ),
        ]
    )


def test_a_test_that_closes_the_session_loop_keeps_its_time_limit_on_the_next_loop(
    pytester: pytest.Pytester,
) -> None:
    """A wait on the loop made after the virtual one was closed is limited in its own time."""
    pytester.makepyfile(
        """
        import asyncio

        import pytest

        @pytest.fixture
        async def slow():
            await asyncio.sleep(3600)

        @pytest.mark.virtual_time
        @pytest.mark.async_timeout(0.2)
        def test_closes_the_loop(request):
            asyncio.get_event_loop().close()
            request.getfixturevalue("slow")
        """
    )
    result = pytester.runpytest_subprocess(timeout=HANG_LIMIT)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["setup of async fixture 'slow' timed out after 0.2s and was cancelled; *"]
    )
