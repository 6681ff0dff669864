"""Waiting on the loop: turns without a poll change nothing a test can see.

`_spin` may run the queued callbacks without polling when a poll could not
find anything: no timers, no signal handlers, no file descriptor watched
but the loop's own wake-up pipe. Each test here has one of those three
waiting and checks that it is handled as asyncio's own turns would handle
it: a socket that became readable before the test began is read before the
test's second step, as asyncio's first turn polls before running the first
step; a due timer and a signal's handler run while the test yields.
"""

from __future__ import annotations

import pytest


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
