"""The session runner: one event loop for the whole pytest session.

Every async test and async fixture runs on the loop of one `asyncio.Runner`
kept on `config.stash`. Coroutines are driven with `loop.run_until_complete`
on a task created with an explicit context: `Runner.run` costs about three
times as much per call and copies its own context, which is not the
semantics the fixtures need (see `_hooks`).

An async generator fixture is driven by one task for its whole life, so its
setup and its teardown run in the same task: a `TaskGroup`, `timeout()` or
anyio cancel scope held across the `yield` behaves as it would in plain
asyncio code.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import pytest

if TYPE_CHECKING:
    import contextvars
    from collections.abc import AsyncGenerator, Callable, Coroutine

T = TypeVar("T")


class AsyncFixtureError(Exception):
    """An async generator fixture broke the one-`yield` rule."""


@dataclass(frozen=True)
class LoopSettings:
    """How the session loop is made: from `--loop-factory` and `--asyncio-debug`."""

    factory: Callable[[], asyncio.AbstractEventLoop] | None
    factory_spec: str | None
    debug: bool


def load_loop_factory(spec: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """Import `module:callable`, or raise a usage error naming the value."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise pytest.UsageError(
            f"oneloop: invalid loop factory {spec!r}: expected 'module:callable', "
            "for example 'uvloop:new_event_loop'"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise pytest.UsageError(
            f"oneloop: invalid loop factory {spec!r}: cannot import module {module_name!r} ({exc})"
        ) from None
    target: Any = module
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise pytest.UsageError(
                f"oneloop: invalid loop factory {spec!r}: module {module_name!r} "
                f"has no attribute {attr!r}"
            ) from None
    if not callable(target):
        raise pytest.UsageError(f"oneloop: invalid loop factory {spec!r}: {attr!r} is not callable")
    factory: Callable[[], asyncio.AbstractEventLoop] = target
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


class SessionRunner:
    """The session's `asyncio.Runner`, created on first use and closed at the end."""

    def __init__(self, settings: LoopSettings) -> None:
        """Remember how to make the loop; nothing is created yet."""
        self.settings = settings
        self._runner: asyncio.Runner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The session loop, created on first access."""
        loop = self._loop
        if loop is None:
            runner = asyncio.Runner(debug=self.settings.debug, loop_factory=self.settings.factory)
            loop = self._loop = runner.get_loop()
            self._runner = runner
        return loop

    def use_loop_factory(self, factory: Callable[[], asyncio.AbstractEventLoop], spec: str) -> None:
        """Make the session loop with `factory`; only before the loop exists."""
        if self._loop is not None:
            msg = f"the session loop already exists; cannot switch to {spec!r}"
            raise RuntimeError(msg)
        self.settings = dataclasses.replace(self.settings, factory=factory, factory_spec=spec)

    @property
    def started(self) -> bool:
        """Whether the loop has been created."""
        return self._loop is not None

    def run(self, coro: Coroutine[Any, Any, T], context: contextvars.Context) -> T:
        """Run `coro` to completion as a task in `context`; return its result."""
        __tracebackhide__ = True
        loop = self.loop
        task = loop.create_task(coro, context=context)
        return loop.run_until_complete(task)

    def start_asyncgen(
        self, agen: AsyncGenerator[T, None], context: contextvars.Context, name: str
    ) -> AsyncGenFixture[T]:
        """Run an async generator fixture to its `yield` in a task of its own."""
        __tracebackhide__ = True
        return AsyncGenFixture(self.loop, agen, context, name)

    def close(self) -> None:
        """Cancel what is left, shut down async generators and close the loop."""
        runner, self._runner, self._loop = self._runner, None, None
        if runner is not None:
            runner.close()


class AsyncGenFixture(Generic[T]):
    """One async generator fixture, driven by one task from setup to teardown."""

    __slots__ = ("_agen", "_loop", "_name", "_resume", "_task", "context", "value")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        agen: AsyncGenerator[T, None],
        context: contextvars.Context,
        name: str,
    ) -> None:
        """Start the driving task and run it until the generator yields."""
        __tracebackhide__ = True
        self._loop = loop
        self._agen = agen
        self._name = name
        self.context = context
        self._resume: asyncio.Future[None] = loop.create_future()
        ready: asyncio.Future[T] = loop.create_future()
        self._task = loop.create_task(self._drive(ready), context=context)
        self.value: T = loop.run_until_complete(ready)

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
        if not self._resume.done():
            self._resume.set_result(None)
        self._loop.run_until_complete(self._task)


STASH_KEY = pytest.StashKey[SessionRunner]()


def get_runner(config: pytest.Config) -> SessionRunner:
    """The session runner of this pytest process."""
    return config.stash[STASH_KEY]
