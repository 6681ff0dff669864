"""Async tests and async fixtures run on the session loop with no markers."""

from __future__ import annotations

import pytest


def test_async_function_runs_without_marker_or_config(pytester: pytest.Pytester) -> None:
    """A bare `async def` test runs and its assertions count."""
    pytester.makepyfile(
        """
        import asyncio

        async def test_passes():
            await asyncio.sleep(0)

        async def test_fails():
            await asyncio.sleep(0)
            assert 1 == 2
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*assert 1 == 2*"])


def test_async_methods_staticmethods_classmethods_and_parametrize_run(
    pytester: pytest.Pytester,
) -> None:
    """Methods, static and class methods and parametrized async tests all run."""
    pytester.makepyfile(
        """
        import asyncio
        import pytest

        seen = []

        class TestKinds:
            async def test_method(self):
                seen.append("method")

            @staticmethod
            async def test_static():
                seen.append("static")

            @classmethod
            async def test_class(cls):
                seen.append(cls.__name__)

            @pytest.mark.parametrize("n", [1, 2, 3])
            async def test_param(self, n):
                await asyncio.sleep(0)
                seen.append(n)

        def test_all_ran():
            assert sorted(map(str, seen)) == ["1", "2", "3", "TestKinds", "method", "static"]
        """
    )
    pytester.runpytest("-p", "no:randomly").assert_outcomes(passed=7)


def test_skip_xfail_and_unittest_skiptest_behave_as_for_sync_tests(
    pytester: pytest.Pytester,
) -> None:
    """Skip and xfail marks, pytest.skip() and unittest.SkipTest inside async tests."""
    pytester.makepyfile(
        """
        import unittest
        import pytest

        @pytest.mark.skip(reason="marked")
        async def test_marked_skip():
            raise AssertionError

        @pytest.mark.xfail(reason="known", strict=True)
        async def test_xfail():
            assert False

        @pytest.mark.xfail(reason="fixed", strict=False)
        async def test_xpass():
            pass

        async def test_imperative_skip():
            pytest.skip("imperative")

        async def test_unittest_skip():
            raise unittest.SkipTest("unittest")
        """
    )
    result = pytester.runpytest("-rsx")
    result.assert_outcomes(skipped=3, xfailed=1, xpassed=1)
    result.stdout.fnmatch_lines(["*marked*", "*imperative*", "*unittest*"])


def test_async_fixtures_of_every_scope_run_once_per_scope(pytester: pytest.Pytester) -> None:
    """Coroutine and async generator fixtures of each scope set up and tear down per scope."""
    pytester.makeconftest(
        """
        import pytest

        events = []

        @pytest.fixture(scope="session")
        async def sess():
            events.append("session-up")
            yield "s"
            events.append("session-down")
            print("EVENTS", events)

        @pytest.fixture(scope="package")
        async def pkg():
            events.append("package")
            return "p"

        @pytest.fixture(scope="module")
        async def mod(sess):
            events.append("module-up")
            yield sess + "m"
            events.append("module-down")

        @pytest.fixture(scope="class")
        async def cls_(mod):
            events.append("class")
            return mod + "c"

        @pytest.fixture
        async def func(cls_, pkg):
            events.append("function-up")
            yield cls_ + "f" + pkg
            events.append("function-down")
        """
    )
    pytester.makepyfile(
        test_one="""
        class TestA:
            async def test_a(self, func):
                assert func == "smcfp"

            def test_b(self, func):
                assert func == "smcfp"
        """,
        test_two="""
        async def test_c(func):
            assert func == "smcfp"
        """,
    )
    result = pytester.runpytest("-s", "-p", "no:randomly")
    result.assert_outcomes(passed=3)
    expected = (
        "EVENTS ['session-up', 'package', 'module-up', 'class', 'function-up', "
        "'function-down', 'function-up', 'function-down', 'module-down', "
        "'module-up', 'class', 'function-up', 'function-down', 'module-down', "
        "'session-down']"
    )
    assert expected in result.stdout.str()


def test_autouse_params_indirect_and_request_work_for_async_fixtures(
    pytester: pytest.Pytester,
) -> None:
    """Autouse, `params=`, indirect parametrisation and `request` reach async fixtures."""
    pytester.makepyfile(
        """
        import pytest

        calls = []

        @pytest.fixture(autouse=True)
        async def auto():
            calls.append("auto")

        @pytest.fixture(params=[1, 2])
        async def number(request):
            return request.param * 10

        @pytest.fixture
        async def doubled(request):
            yield request.param * 2

        async def test_params(number):
            assert number in (10, 20)

        @pytest.mark.parametrize("doubled", [3, 4], indirect=True)
        async def test_indirect(doubled):
            assert doubled in (6, 8)

        async def test_request_node(request):
            assert request.node.name == "test_request_node"

        def test_autouse_ran_every_time():
            assert calls.count("auto") == 6
        """
    )
    pytester.runpytest("-p", "no:randomly").assert_outcomes(passed=6)


def test_fixture_methods_see_the_tests_instance(pytester: pytest.Pytester) -> None:
    """An async fixture method's `self` is the instance the test method runs on."""
    pytester.makepyfile(
        """
        import pytest

        class TestSelf:
            @pytest.fixture
            async def me(self):
                self.value = 42
                return self

            @pytest.fixture
            async def gen_me(self):
                yield self

            async def test_same_instance(self, me, gen_me):
                assert me is self
                assert gen_me is self
                assert self.value == 42

            def test_sync_same_instance(self, me):
                assert me is self
        """
    )
    pytester.runpytest().assert_outcomes(passed=2)


def test_async_fixture_overrides_and_sync_tests_using_async_fixtures(
    pytester: pytest.Pytester,
) -> None:
    """A module's async fixture overrides a conftest one and can use the overridden value."""
    pytester.makeconftest(
        """
        import pytest

        @pytest.fixture
        async def name():
            return "conftest"
        """
    )
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture
        async def name(name):
            yield name + "+module"

        def test_sync(name):
            assert name == "conftest+module"

        async def test_async(name):
            assert name == "conftest+module"
        """
    )
    pytester.runpytest().assert_outcomes(passed=2)


def test_one_loop_serves_every_test_fixture_and_module(pytester: pytest.Pytester) -> None:
    """A queue, a future and a server made by a session fixture work in every module."""
    pytester.makeconftest(
        """
        import asyncio
        import pytest

        @pytest.fixture(scope="session")
        async def loop_seen():
            return asyncio.get_running_loop()

        @pytest.fixture(scope="session")
        async def queue():
            return asyncio.Queue()

        @pytest.fixture(scope="session")
        async def future():
            return asyncio.get_running_loop().create_future()

        @pytest.fixture(scope="session")
        async def server():
            async def echo(reader, writer):
                writer.write(await reader.readline())
                await writer.drain()
                writer.close()
            srv = await asyncio.start_server(echo, "127.0.0.1", 0)
            yield srv.sockets[0].getsockname()[1]
            srv.close()
            await srv.wait_closed()
        """
    )
    body = """
        import asyncio

        async def test_loop(loop_seen):
            assert asyncio.get_running_loop() is loop_seen

        async def test_queue(queue):
            await queue.put(1)
            assert await queue.get() == 1

        async def test_future(future):
            if not future.done():
                future.set_result("done")
            assert await future == "done"

        async def test_server(server):
            reader, writer = await asyncio.open_connection("127.0.0.1", server)
            writer.write(b"ping\\n")
            assert await reader.readline() == b"ping\\n"
            writer.close()
            await writer.wait_closed()
    """
    pytester.makepyfile(test_first=body, test_second=body)
    pytester.runpytest().assert_outcomes(passed=8)


def test_sync_fixtures_and_tests_asking_for_the_loop_get_the_session_loop(
    pytester: pytest.Pytester,
) -> None:
    """`asyncio.get_event_loop()` in sync code, before any async test, is the session loop.

    With warnings as errors: asking for the loop when none is set is
    deprecated on 3.12 and an error on 3.14.
    """
    pytester.makeconftest(
        """
        import asyncio
        import pytest

        seen = []

        @pytest.fixture(scope="session")
        def sync_session_fixture():
            seen.append(asyncio.get_event_loop())

        @pytest.fixture
        def sync_fixture(sync_session_fixture):
            seen.append(asyncio.get_event_loop())
        """
    )
    pytester.makepyfile(
        """
        import asyncio
        from conftest import seen

        def test_sync_first(sync_fixture):
            seen.append(asyncio.get_event_loop())
            assert not seen[0].is_closed()

        async def test_async_later(sync_fixture):
            assert seen == [asyncio.get_running_loop()] * 4
        """
    )
    for args in ((), ("--loop-factory", "asyncio:new_event_loop")):
        result = pytester.runpytest("-p", "no:randomly", "-W", "error", *args)
        result.assert_outcomes(passed=2)


def test_contextvars_flow_from_fixtures_and_never_leak_between_tests(
    pytester: pytest.Pytester,
) -> None:
    """Fixture-set ContextVars reach dependants, are reset at teardown, and tests don't leak."""
    pytester.makepyfile(
        """
        import contextvars
        import pytest

        var = contextvars.ContextVar("var", default="unset")
        sync_var = contextvars.ContextVar("sync_var", default="unset")

        @pytest.fixture
        async def async_sets():
            var.set("from-async")

        @pytest.fixture
        async def async_gen_sets():
            token = var.set("from-gen")
            yield
            assert var.get() == "from-gen"
            var.reset(token)

        @pytest.fixture
        def sync_sets():
            token = sync_var.set("from-sync")
            yield
            sync_var.reset(token)

        @pytest.fixture
        async def reads(async_sets, sync_sets):
            return var.get(), sync_var.get()

        async def test_async_fixture_visible(async_sets, reads):
            assert reads == ("from-async", "from-sync")
            assert var.get() == "from-async"

        def test_async_fixture_undone():
            assert var.get() == "unset"

        def test_sync_test_sees_async_gen(async_gen_sets):
            assert var.get() == "from-gen"

        async def test_async_test_sees_sync(sync_sets):
            assert sync_var.get() == "from-sync"

        async def test_sets_inside_test():
            var.set("from-test")

        async def test_not_visible_in_next_test():
            assert var.get() == "unset"

        def test_not_visible_in_sync_test():
            assert var.get() == "unset"
            assert sync_var.get() == "unset"
        """
    )
    pytester.runpytest("-p", "no:randomly").assert_outcomes(passed=7)


def test_taskgroup_timeout_and_cancel_scope_may_be_held_across_yield(
    pytester: pytest.Pytester,
) -> None:
    """Setup and teardown share one task, and a fixture's task group runs during the test."""
    pytester.makepyfile(
        """
        import asyncio
        import anyio
        import pytest

        @pytest.fixture
        async def ticker():
            ticks = []
            async def tick():
                while True:
                    ticks.append(1)
                    await asyncio.sleep(0)
            async with asyncio.TaskGroup() as tg:
                task = tg.create_task(tick())
                yield ticks
                task.cancel()

        @pytest.fixture
        async def deadline():
            async with asyncio.timeout(60):
                yield asyncio.current_task()

        @pytest.fixture
        async def scope():
            with anyio.CancelScope() as cs:
                yield cs

        async def test_task_group_runs_during_test(ticker):
            before = len(ticker)
            for _ in range(5):
                await asyncio.sleep(0)
            assert len(ticker) > before

        async def test_timeout_and_scope(deadline, scope):
            assert deadline is not asyncio.current_task()
            assert not scope.cancel_called
        """
    )
    pytester.runpytest().assert_outcomes(passed=2)


def test_teardown_order_matches_sync_fixtures_even_when_things_raise(
    pytester: pytest.Pytester,
) -> None:
    """Mixed sync and async fixtures tear down in reverse setup order, through errors."""
    pytester.makepyfile(
        """
        import pytest

        order = []

        @pytest.fixture
        def sync_outer():
            order.append("sync_outer-up")
            yield
            order.append("sync_outer-down")

        @pytest.fixture
        async def async_middle(sync_outer):
            order.append("async_middle-up")
            yield
            order.append("async_middle-down")
            raise RuntimeError("teardown boom")

        @pytest.fixture
        def sync_inner(async_middle):
            order.append("sync_inner-up")
            yield
            order.append("sync_inner-down")

        async def test_raises(sync_inner):
            raise ValueError("test boom")

        def test_order():
            assert order == [
                "sync_outer-up", "async_middle-up", "sync_inner-up",
                "sync_inner-down", "async_middle-down", "sync_outer-down",
            ]
        """
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=1, errors=1)
    result.stdout.fnmatch_lines(["*RuntimeError: teardown boom*"])
    result.stdout.fnmatch_lines(["*ValueError: test boom*"])


def test_failing_async_setup_is_an_error_and_the_next_test_still_runs(
    pytester: pytest.Pytester,
) -> None:
    """An exception in async fixture setup errors that test only; teardown of others runs."""
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture
        async def broken():
            raise LookupError("setup boom")

        @pytest.fixture
        async def broken_gen():
            raise KeyError("gen setup boom")
            yield

        async def test_uses_broken(broken):
            pass

        def test_uses_broken_gen(broken_gen):
            pass

        async def test_next():
            pass
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, errors=2)
    result.stdout.fnmatch_lines(["*LookupError: setup boom*", "*KeyError: 'gen setup boom'*"])


def test_a_fixture_another_plugin_set_up_is_set_up_afresh_next_time(
    pytester: pytest.Pytester,
) -> None:
    """A set-up that never calls the plugin's stand-in leaves nothing stale.

    Here a conftest's `pytest_fixture_setup` provides `spawner` itself for
    the first test, after the plugin put its stand-in in place. The next
    test's `spawner` must still belong to that next test (its leaked task is
    reported against it), and a hook reading `fixturedef.func` sees the
    fixture's own function through `__wrapped__`.
    """
    pytester.makeconftest(
        """
        import inspect

        seen = []

        def pytest_fixture_setup(fixturedef, request):
            if fixturedef.argname != "spawner":
                return None
            if request.node.name == "test_first":
                value = "from a plugin"
                fixturedef.cached_result = (value, fixturedef.cache_key(request), None)
                return value
            seen.append(inspect.unwrap(fixturedef.func).__name__)
            return None
        """
    )
    pytester.makepyfile(
        """
        import asyncio
        import pytest
        from conftest import seen

        @pytest.fixture
        async def spawner():
            asyncio.get_running_loop().create_task(asyncio.sleep(3600))
            return "ok"

        async def test_first(spawner):
            assert spawner == "from a plugin"

        async def test_second(spawner):
            assert spawner == "ok"

        def test_hooks_saw_the_fixture_function():
            assert seen == ["spawner"]
        """
    )
    result = pytester.runpytest("-W", "error::pytest_oneloop.LeakedTaskWarning")
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(["*test_second left 1 task(s) pending after its teardown*"])


def test_tracebacks_point_at_user_code_not_at_the_plugin(pytester: pytest.Pytester) -> None:
    """Failures in async tests and fixtures show the user's lines, not the runner's."""
    pytester.makepyfile(
        """
        import pytest

        async def helper():
            raise ValueError("deep")

        @pytest.fixture
        async def bad():
            await helper()

        async def test_fails():
            await helper()

        async def test_bad_fixture(bad):
            pass
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1, errors=1)
    output = result.stdout.str()
    assert "await helper()" in output
    assert 'raise ValueError("deep")' in output
    assert "pytest_oneloop" not in output
    assert "base_events.py" not in output


def test_asyncio_marker_is_accepted_and_ignored(pytester: pytest.Pytester) -> None:
    """`@pytest.mark.asyncio`, with or without arguments, and as pytestmark, changes nothing."""
    pytester.makepyfile(
        """
        import asyncio
        import pytest

        pytestmark = pytest.mark.asyncio

        @pytest.mark.asyncio
        async def test_plain():
            await asyncio.sleep(0)

        @pytest.mark.asyncio(loop_scope="module")
        async def test_loop_scope():
            await asyncio.sleep(0)
        """
    )
    pytester.runpytest("--strict-markers", "-W", "error").assert_outcomes(passed=2)


def test_anyio_tests_are_left_to_anyio(pytester: pytest.Pytester) -> None:
    """Tests marked anyio or requesting anyio_backend run under anyio, on trio too."""
    pytester.makepyfile(
        """
        import asyncio
        import pytest
        import sniffio

        @pytest.fixture(scope="session")
        async def ours():
            return asyncio.get_running_loop()

        @pytest.fixture
        async def backend_name(anyio_backend):
            return sniffio.current_async_library()

        @pytest.mark.anyio
        @pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
        async def test_anyio_backends(anyio_backend, backend_name):
            assert sniffio.current_async_library() == anyio_backend == backend_name

        async def test_ours(ours):
            assert asyncio.get_running_loop() is ours
        """
    )
    pytester.runpytest("-p", "anyio").assert_outcomes(passed=3)


def test_isolated_asyncio_testcase_runs_as_unittest_runs_it(pytester: pytest.Pytester) -> None:
    """IsolatedAsyncioTestCase keeps its own loop and its own asyncSetUp."""
    pytester.makepyfile(
        """
        import asyncio
        import unittest

        import pytest

        @pytest.fixture(scope="session")
        async def session_loop():
            return asyncio.get_running_loop()

        async def test_ours(session_loop):
            assert asyncio.get_running_loop() is session_loop

        class Case(unittest.IsolatedAsyncioTestCase):
            async def asyncSetUp(self):
                self.loop = asyncio.get_running_loop()

            async def test_own_loop(self):
                assert asyncio.get_running_loop() is self.loop

            async def test_fails(self):
                self.assertEqual(1, 2)
        """
    )
    pytester.runpytest().assert_outcomes(passed=2, failed=1)


def test_no_warnings_under_warnings_as_errors(pytester: pytest.Pytester) -> None:
    """A typical async suite emits no warning, so `-W error` passes."""
    pytester.makepyfile(
        """
        import asyncio
        import pytest

        @pytest.fixture(scope="module")
        async def res():
            yield asyncio.Event()

        async def test_one(res):
            res.set()
            await res.wait()

        def test_two(res):
            assert res.is_set()
        """
    )
    pytester.runpytest("-W", "error").assert_outcomes(passed=2)
