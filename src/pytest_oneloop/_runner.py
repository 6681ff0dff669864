"""The session runner: one event loop for the whole pytest session.

Every async test and async fixture runs on the loop of one `asyncio.Runner`
kept on `config.stash`. Coroutines are driven as tasks created with an
explicit context, and the loop runs until the task is done
(`_spin.run_until_done`: `loop.run_until_complete` without its extra turn,
where asyncio's loop allows it). `Runner.run(coro, context=...)` would run
the task in the given context too, but it also installs its own SIGINT
handler and cancels the task on Ctrl-C in its own way, and costs several
times as much per call; the runner is kept for making and closing the loop.

An async generator fixture is driven by one task for its whole life, so its
setup and its teardown run in the same task: a `TaskGroup`, `timeout()` or
anyio cancel scope held across the `yield` behaves as it would in plain
asyncio code.

Every wait on the loop goes through `SessionRunner._wait`, which gives the
same treatment to a timeout, a Ctrl-C and a loop stopped by user code.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import io
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, Protocol, TypeVar

import pytest

from pytest_oneloop._imports import import_callable
from pytest_oneloop._spin import PUBLIC, how_to_drive, run_until_done

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Callable, Coroutine
    from types import FrameType

T = TypeVar("T")

#: The test on whose behalf the current code runs, as seen by tasks it
#: creates. Function-scoped work carries the item; wider scopes carry None.
OWNER: contextvars.ContextVar[pytest.Item | None] = contextvars.ContextVar(
    "pytest_oneloop_owner", default=None
)


class AsyncFixtureError(Exception):
    """An async generator fixture broke the one-`yield` rule."""


class LoopSettings(NamedTuple):
    """How the session loop is made and driven: from the command line and the ini file."""

    factory: Callable[[], asyncio.AbstractEventLoop] | None
    factory_spec: str | None
    debug: bool
    #: False: always drive the loop through `run_until_complete` (`oneloop_fast_loop`).
    fast: bool = True


def load_loop_factory(spec: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """Import `module:callable`, or raise a usage error naming the value."""
    factory: Callable[[], asyncio.AbstractEventLoop] = import_callable(
        spec, what="loop factory", form="module:callable", example="uvloop:new_event_loop"
    )
    return factory


def describe_factory(factory: Callable[[], asyncio.AbstractEventLoop] | None) -> str:
    """What makes the loop, for the report header, without making one."""
    if factory is None:
        return (
            "asyncio.SelectorEventLoop" if sys.platform != "win32" else "asyncio.ProactorEventLoop"
        )
    module = getattr(factory, "__module__", None) or type(factory).__module__
    name = getattr(factory, "__qualname__", None) or type(factory).__qualname__
    return f"{module}.{name}"


def task_stack(task: asyncio.Task[Any]) -> str:
    """Where a pending task is waiting, innermost await last."""
    out = io.StringIO()
    task.print_stack(file=out)
    lines = out.getvalue().splitlines()
    return "\n".join(lines[1:]) if len(lines) > 1 else "(no Python frames)"


def _hide_unless_own_failure(excinfo: pytest.ExceptionInfo[BaseException]) -> bool:
    """Hide the runner's frame, except under its own message-only failures.

    pytest says "All traceback entries are hidden" when nothing is left to
    show; a message-only failure keeps this one frame so that only the
    message is printed.
    """
    return not isinstance(excinfo.value, pytest.fail.Exception)


class WaitLimits(Protocol):
    """Measures the time limits of waits in place of the loop's clock (`SessionRunner.limits`)."""

    def start(
        self,
        loop: asyncio.AbstractEventLoop,
        timeout: float | None,
        limit: float | None,
        expire: Callable[[str], None],
    ) -> Callable[[], object] | None:
        """Call `expire(why)` when the wait is over its limit; return what disarms that.

        `why` ends the sentence "... timed out after"; `limit` is the limit
        the message names (`timeout` when None).
        """


class _Wait:
    """What happened to the task being waited for: one record per wait."""

    __slots__ = ("expired_at", "interrupted", "task", "why")

    def __init__(self, task: asyncio.Task[Any]) -> None:
        """Nothing has happened yet."""
        self.task = task
        #: Where the task was waiting when its time limit expired.
        self.expired_at: str | None = None
        #: Whether Ctrl-C cancelled it.
        self.interrupted = False
        #: What its time limit was, when `WaitLimits` says it otherwise than "Ns".
        self.why: str | None = None


class SessionRunner:
    """The session's `asyncio.Runner`, created on first use and closed at the end."""

    def __init__(self, settings: LoopSettings) -> None:
        """Remember how to make the loop; nothing is created yet."""
        self.settings = settings
        self._runner: asyncio.Runner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._how = PUBLIC
        self._current: _Wait | None = None
        self._old_sigint: Any = None
        #: The time limit of the test being run, in seconds (None: none). Set by
        #: `_tasks` as each test's setup begins, read by `_hooks`: one test runs at a time.
        self.item_timeout: float | None = None
        #: Called with each new loop, e.g. to install a task factory.
        self.on_new_loop: list[Callable[[asyncio.AbstractEventLoop], None]] = []
        #: While set, measures the waits' time limits instead of a timer on the
        #: loop's clock: `_vtime` sets it while that clock is virtual.
        self.limits: WaitLimits | None = None

    def use_loop_factory(self, factory: Callable[[], asyncio.AbstractEventLoop], spec: str) -> None:
        """Make the session loop with `factory`; only before the loop exists."""
        if self._loop is not None:
            msg = f"the session loop already exists; cannot switch to {spec!r}"
            raise RuntimeError(msg)
        self.settings = self.settings._replace(factory=factory, factory_spec=spec)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The session loop, created on first access (and again if user code closed it)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            loop = self._new_loop()
        return loop

    @property
    def driver(self) -> str:
        """How the loop is driven: `_spin`'s `setup`, `inline` or `public`."""
        return self._how

    @property
    def made_loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop made last, even if user code has closed it; None before the first."""
        return self._loop

    def _new_loop(self) -> asyncio.AbstractEventLoop:
        runner = asyncio.Runner(debug=self.settings.debug, loop_factory=self.settings.factory)
        loop = runner.get_loop()
        if self.settings.factory is not None:
            # asyncio.Runner sets only the default loop as the current one;
            # sync code calling get_event_loop() sees the session loop either way.
            asyncio.set_event_loop(loop)
        self._runner, self._loop = runner, loop
        self._how = how_to_drive(loop, fast=self.settings.fast)
        for callback in self.on_new_loop:
            callback(loop)
        self._install_sigint()
        return loop

    def _install_sigint(self) -> None:
        """Let Ctrl-C cancel the running test instead of tearing through the loop."""
        if (
            self._old_sigint is None
            and threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler
        ):
            self._old_sigint = signal.signal(signal.SIGINT, self._on_sigint)

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        current = self._current
        if current is None or current.interrupted or current.task.done():
            signal.default_int_handler(signum, frame)  # raises KeyboardInterrupt
        current.interrupted = True
        current.task.cancel()
        self.loop.call_soon_threadsafe(lambda: None)

    def run(
        self,
        coro: Coroutine[Any, Any, T],
        context: contextvars.Context,
        *,
        timeout: float | None = None,
        label: str = "",
        limit: float | None = None,
    ) -> T:
        """Run `coro` to completion as a task in `context`; return its result.

        `timeout` is how long it may take, `limit` the time limit a timeout's
        message names (`timeout` unless said otherwise).
        """
        __tracebackhide__ = True
        loop = self.loop
        task = loop.create_task(coro, context=context)
        return self._wait(task, task, timeout, label, limit=limit)

    def _wait(
        self,
        until: asyncio.Future[T],
        task: asyncio.Task[Any],
        timeout: float | None,
        label: str,
        *,
        limit: float | None = None,
    ) -> T:
        """Run the task's loop until `until` is done; `task` is what a timeout or Ctrl-C cancels."""
        __tracebackhide__ = _hide_unless_own_failure
        loop = task.get_loop()
        state = self._current = _Wait(task)
        if self.limits is not None:
            disarm = self.limits.start(loop, timeout, limit, functools.partial(self._expire, state))
        elif timeout is not None:
            disarm = loop.call_later(timeout, self._expire, state).cancel
        else:
            disarm = None
        try:
            result = run_until_done(loop, until, self._how)
        except asyncio.CancelledError:
            if state.interrupted:
                raise KeyboardInterrupt from None
            if state.expired_at is not None:
                why = state.why or f"{limit or timeout:g}s"
                raise pytest.fail.Exception(
                    f"{label} timed out after {why} and was cancelled; "
                    f"it was waiting at:\n{state.expired_at}",
                    pytrace=False,
                ) from None
            raise
        except RuntimeError:
            if until.done() or loop.is_closed():
                raise
            self._abandon(task)
            raise pytest.fail.Exception(
                f"{label} stopped the session event loop (loop.stop()) before it "
                "finished; it was cancelled. Let the test return instead of "
                "stopping the loop.",
                pytrace=False,
            ) from None
        finally:
            self._current = None
            if disarm is not None:
                disarm()
        if state.interrupted:
            raise KeyboardInterrupt
        return result

    def _expire(self, state: _Wait, why: str | None = None) -> None:
        state.why = why
        state.expired_at = task_stack(state.task)
        state.task.cancel()

    def _abandon(self, task: asyncio.Task[Any]) -> None:
        """Cancel a task that can no longer be waited for normally."""
        if not task.done():
            task.cancel()
            self.loop.run_until_complete(asyncio.wait({task}))

    def close(self) -> None:
        """Cancel what is left, shut down async generators and close the loop."""
        runner, self._runner, self._loop = self._runner, None, None
        if self._old_sigint is not None:
            if signal.getsignal(signal.SIGINT) == self._on_sigint:
                signal.signal(signal.SIGINT, self._old_sigint)
            self._old_sigint = None
        if runner is not None and not runner.get_loop().is_closed():
            runner.close()
            if self.settings.factory is not None:
                asyncio.set_event_loop(None)


class AsyncGenFixture(Generic[T]):
    """One async generator fixture, driven by one task from setup to teardown."""

    __slots__ = ("_agen", "_loop", "_name", "_resume", "_runner", "_task", "context", "value")

    def __init__(
        self,
        runner: SessionRunner,
        agen: AsyncGenerator[T, None],
        context: contextvars.Context,
        name: str,
        timeout: float | None,
    ) -> None:
        """Start the driving task and run it until the generator yields."""
        __tracebackhide__ = True
        self._runner = runner
        self._loop = loop = runner.loop
        self._agen = agen
        self._name = name
        self.context = context
        self._resume: asyncio.Future[None] = loop.create_future()
        ready: asyncio.Future[T] = loop.create_future()
        self._task = loop.create_task(self._drive(ready), context=context)
        label = f"setup of async fixture {name!r}"
        self.value: T = runner._wait(ready, self._task, timeout, label)  # noqa: SLF001

    async def _drive(self, ready: asyncio.Future[T]) -> None:
        agen = self._agen
        try:
            value = await anext(agen)
        except StopAsyncIteration:
            ready.set_exception(
                AsyncFixtureError(f"async fixture {self._name!r} did not yield a value")
            )
            return
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting setup
            ready.set_exception(exc)
            return
        ready.set_result(value)
        try:
            await self._resume
        except asyncio.CancelledError:
            # A timeout or task group held across the yield cancelled this
            # task: deliver the cancellation where the user's code waits.
            await agen.athrow(asyncio.CancelledError())
        else:
            try:
                await anext(agen)
            except StopAsyncIteration:
                return
        await agen.aclose()
        raise AsyncFixtureError(f"async fixture {self._name!r} has more than one 'yield'")

    def finish(self) -> None:
        """Resume the generator after its `yield` and run its teardown."""
        __tracebackhide__ = True
        loop = self._loop
        if loop.is_closed():
            pytest.fail(
                f"teardown of async fixture {self._name!r} could not run: its event "
                "loop was closed by the code under test",
                pytrace=False,
            )
        if not self._resume.done():
            self._resume.set_result(None)
        label = f"teardown of async fixture {self._name!r}"
        self._runner._wait(self._task, self._task, None, label)  # noqa: SLF001


STASH_KEY = pytest.StashKey[SessionRunner]()


def get_runner(config: pytest.Config) -> SessionRunner:
    """The session runner of a config."""
    return config.stash[STASH_KEY]
