"""Driving the loop: what `_spin` chooses for each loop, and that its turns are asyncio's.

`_spin` drives asyncio's own selector loop without `run_until_complete`'s
extra turn, and any other loop through `run_until_complete`. The tests
here check which way each kind of loop is driven, and that the turns
change nothing a test can see: ready I/O, due timers, signals and
callbacks from threads are handled as asyncio's own turns handle them.
"""

from __future__ import annotations

import asyncio
import re

import pytest

from pytest_oneloop import _spin

LOOPS = """
import asyncio
import selectors


class OwnTurns(asyncio.SelectorEventLoop):
    def _run_once(self):
        super()._run_once()


class OwnEvents(asyncio.SelectorEventLoop):
    def _process_events(self, event_list):
        super()._process_events(event_list)


class Wrapped(selectors.BaseSelector):
    \"\"\"A selector of the user's own, without the standard selectors' internals.\"\"\"

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
"""

DRIVER_TEST = """
import asyncio

from pytest_oneloop._runner import STASH_KEY


async def test_driver(request):
    await asyncio.sleep(0.01)
    print("DRIVER", request.config.stash[STASH_KEY].driver)
"""


def test_ready_io_timers_and_signals_are_handled_within_the_first_yield(
    pytester: pytest.Pytester,
) -> None:
    """What a full turn would run before the test's next step still runs before it."""
    pytester.makepyfile(
        """
        import asyncio
        import os
        import signal
        import socket
        import sys

        import pytest

        async def settle(seen):
            # Yield a bounded number of times: a starved callback fails the
            # test instead of hanging it.
            for _ in range(3):
                if seen:
                    return
                await asyncio.sleep(0)

        @pytest.fixture
        async def ping():
            # Sent before the test's wait begins: the first turn's poll finds it.
            loop = asyncio.get_running_loop()
            reader, writer = socket.socketpair()
            seen = []
            loop.add_reader(reader.fileno(), lambda: seen.append(reader.recv(10)))
            writer.send(b"ping")
            yield seen
            loop.remove_reader(reader.fileno())
            reader.close()
            writer.close()

        async def test_readable_socket(ping):
            await asyncio.sleep(0)
            assert ping == [b"ping"]

        async def test_due_timer():
            seen = []
            asyncio.get_running_loop().call_later(0, seen.append, "timer")
            await settle(seen)
            assert seen == ["timer"]

        @pytest.mark.skipif(sys.platform == "win32", reason="add_signal_handler is Unix-only")
        async def test_signal_handler():
            loop = asyncio.get_running_loop()
            seen = []
            loop.add_signal_handler(signal.SIGUSR1, seen.append, "signal")
            try:
                os.kill(os.getpid(), signal.SIGUSR1)
                await settle(seen)
                assert seen == ["signal"]
            finally:
                loop.remove_signal_handler(signal.SIGUSR1)
        """
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=3)


def test_callbacks_queued_from_threads_run_in_order(pytester: pytest.Pytester) -> None:
    """Callbacks from `call_soon_threadsafe` run in the order they were queued."""
    pytester.makepyfile(
        """
        import asyncio
        import threading

        async def test_from_thread():
            loop = asyncio.get_running_loop()
            seen = []
            done = loop.create_future()

            def work():
                for number in range(5):
                    loop.call_soon_threadsafe(seen.append, number)
                loop.call_soon_threadsafe(done.set_result, None)

            thread = threading.Thread(target=work)
            thread.start()
            await done
            thread.join()
            assert seen == [0, 1, 2, 3, 4]
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def _driver_of(pytester: pytest.Pytester, *args: str) -> str:
    pytester.makepyfile(loops=LOOPS, test_driver=DRIVER_TEST)
    pytester.syspathinsert()
    # The driver is what is tested here, whatever ONELOOP_TEST_FAST_LOOP says.
    result = pytester.runpytest("-s", "-p", "no:randomly", "-o", "oneloop_fast_loop=true", *args)
    result.assert_outcomes(passed=1)
    found = re.findall(r"DRIVER (\w+)", result.stdout.str())
    assert len(found) == 1, result.outlines
    return str(found[0])


#: How asyncio's own loop is driven on this Python.
OWN = "setup" if hasattr(asyncio.BaseEventLoop, "_run_forever_setup") else "inline"


def test_asyncio_s_own_loop_is_driven_through_run_forever_s_own_steps(
    pytester: pytest.Pytester,
) -> None:
    """3.13+ uses `_run_forever_setup`; 3.11 and 3.12, which lack it, the inline copy."""
    assert _driver_of(pytester) == OWN
    assert _driver_of(pytester, "--asyncio-debug") == OWN


def test_a_custom_selector_is_driven_like_the_standard_ones(pytester: pytest.Pytester) -> None:
    """A selector without the standard selectors' internals changes nothing.

    The choice is made per loop: a loop of the same type with a standard
    selector, driven first in the same process, decides nothing for it.
    """
    assert _driver_of(pytester) == OWN
    assert _driver_of(pytester, "--loop-factory", "loops:own_selector") == OWN


@pytest.mark.parametrize("loop", ["OwnTurns", "OwnEvents"])
def test_a_loop_that_overrides_its_turns_is_driven_through_run_until_complete(
    pytester: pytest.Pytester, loop: str
) -> None:
    """A subclass with its own `_run_once` or `_process_events` gets the public path."""
    assert _driver_of(pytester, "--loop-factory", f"loops:{loop}") == "public"


def test_fast_loop_false_uses_run_until_complete(pytester: pytest.Pytester) -> None:
    """`oneloop_fast_loop = false` turns the private path off."""
    assert _driver_of(pytester, "-o", "oneloop_fast_loop=false") == "public"


def test_uvloop_is_driven_through_run_until_complete(pytester: pytest.Pytester) -> None:
    """A loop that is not asyncio's selector loop gets the public path."""
    pytest.importorskip("uvloop")
    assert _driver_of(pytester, "--loop-factory", "uvloop:new_event_loop") == "public"


@pytest.mark.parametrize("name", ["_ready", "_stopping", "_thread_id"])
def test_a_loop_lacking_a_name_the_driver_needs_gets_the_public_path(name: str) -> None:
    """Feature detection: without a private name its driver needs, `run_until_complete` is used.

    `_ready` and `_stopping` every driver needs; `_thread_id` only the
    inline copy of `run_forever` (3.11, 3.12).
    """
    loop = asyncio.new_event_loop()
    saved = loop.__dict__.pop(name)
    try:
        needed_by_all = name in {"_ready", "_stopping"}
        assert _spin.how_to_drive(loop) == ("public" if needed_by_all or OWN == "inline" else OWN)
    finally:
        setattr(loop, name, saved)
        loop.close()
