"""One careless test must not harm the next: leaked tasks, loop errors, timeouts.

Tasks are attributed to the test whose code created them: the runner marks
the context of a test and of its function-scoped fixtures with `OWNER`, and
a task factory records the owner of each new task. After a test's teardown,
its tasks still pending are reported and cancelled; tasks of wider-scoped
fixtures (a server's accept loop, say) are never blamed on the tests that
merely use them.
"""

from __future__ import annotations

import asyncio
import traceback
import warnings
import weakref
from typing import TYPE_CHECKING, Any

import pytest

from pytest_oneloop import _spin
from pytest_oneloop._markers import marker_names
from pytest_oneloop._runner import OWNER, get_runner
from pytest_oneloop._warnings import LeakedTaskWarning, LoopExceptionWarning

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Generator, Mapping

    from pytest_oneloop._runner import SessionRunner

LEAK_MODES = ("warn", "error", "ignore")
TIMEOUT_MARKER = "async_timeout"
#: How long cancelled leftovers get to finish; a bound, so a task that
#: ignores cancellation cannot hang the session.
CANCEL_GRACE = 5.0
#: How long asyncio's own clean-up of an async generator the test dropped
#: (`aclose()`, run as a task) gets to finish before it counts as a leak.
FINALIZER_GRACE = 1.0

#: Whether a task tells the context it runs in (`Task.get_context`, Python
#: 3.12+): its owner is then read from there. Without it (3.11), a task
#: factory records the owner of each new task.
TASKS_KNOW_CONTEXT = hasattr(asyncio.Task, "get_context")


async def _agen() -> Any:
    yield


def _aclose_type() -> type:
    """The type of what `agen.aclose()` returns, which asyncio's finalizer runs as a task."""
    agen = _agen()
    closing = agen.aclose()
    kind = type(closing)
    closing.close()
    return kind


_ACLOSE = _aclose_type()


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register `oneloop_leaked_tasks`, `oneloop_timeout` and `--async-timeout`."""
    parser.addini(
        "oneloop_leaked_tasks",
        "What to do with tasks a test leaves pending: warn (default), error or ignore.",
        default="warn",
    )
    parser.addini(
        "oneloop_timeout",
        "Seconds an async test (and its async fixtures' setup) may take; empty: no limit.",
        default="",
    )
    parser.getgroup("oneloop").addoption(
        "--async-timeout",
        dest="oneloop_timeout",
        metavar="SECONDS",
        default=None,
        help="Limit for each async test and async fixture setup (ini: oneloop_timeout).",
    )


def _seconds(value: object, where: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        seconds = -1.0
    if not seconds > 0:
        raise pytest.UsageError(
            f"oneloop: {where} must be a positive number of seconds, got {value!r}"
        )
    return seconds


def pytest_configure(config: pytest.Config) -> None:
    """Validate the options and watch every loop the runner makes."""
    config.addinivalue_line(
        "markers",
        "async_timeout(seconds): fail this async test if it (or its async fixtures' "
        "setup) runs longer than `seconds`.",
    )
    mode = str(config.getini("oneloop_leaked_tasks")).strip() or "warn"
    if mode not in LEAK_MODES:
        raise pytest.UsageError(
            f"oneloop: oneloop_leaked_tasks must be one of warn, error, ignore; got {mode!r}"
        )
    default = _seconds(config.getoption("oneloop_timeout"), "--async-timeout")
    if default is None:
        default = _seconds(config.getini("oneloop_timeout"), "oneloop_timeout")
    runner = get_runner(config)
    watch = TaskWatch(mode, default, runner)
    config.stash[WATCH_KEY] = watch
    runner.on_new_loop.append(watch.install)


class TaskWatch:
    """Per-session record of who owns which task and what went wrong in callbacks."""

    def __init__(self, mode: str, default_timeout: float | None, runner: SessionRunner) -> None:
        """Nothing is watched until the runner makes a loop."""
        self.mode = mode
        self.default_timeout = default_timeout
        self.runner = runner
        #: Each test's tasks, held weakly (3.11 only: see `TASKS_KNOW_CONTEXT`).
        self.owned: dict[pytest.Item, list[weakref.ref[asyncio.Task[Any]]]] = {}
        self.current: pytest.Item | None = None
        self.errors: list[dict[str, Any]] = []

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        """Attribute loop errors to tests and, where needed, record task owners.

        The watch's exception handler and task factory wrap whatever the loop
        has: one a loop factory installed keeps working inside them. Called
        for each new loop. A handler or factory a wider-scoped fixture sets
        later replaces them for the tests under it (see `_hygiene`).
        """
        handler = loop.get_exception_handler()
        if not (isinstance(handler, _Handler) and handler.watch is self):
            loop.set_exception_handler(_Handler(self, handler))
        if self.mode == "ignore" or TASKS_KNOW_CONTEXT:
            return
        factory: Any = loop.get_task_factory()
        if not (isinstance(factory, _Recorder) and factory.owned is self.owned):
            loop.set_task_factory(_Recorder(self.owned, factory))  # type: ignore[arg-type]

    def pending(
        self, item: pytest.Item, loop: asyncio.AbstractEventLoop
    ) -> list[asyncio.Task[Any]]:
        """The tasks `item` owns that are still pending."""
        if self.mode == "ignore":
            return []
        if TASKS_KNOW_CONTEXT:
            return [task for task in asyncio.all_tasks(loop) if _owner(task) is item]
        tasks = (task_ref() for task_ref in self.owned.pop(item, ()))
        return [task for task in tasks if task is not None and not task.done()]


def _owner(task: asyncio.Task[Any]) -> object:
    get_context = getattr(task, "get_context", None)  # a task type of the user's may lack it
    return None if get_context is None else get_context().get(OWNER)


class _Handler:
    """The loop's exception handler: the one it had, then a note for the current test."""

    __slots__ = ("previous", "watch")

    def __init__(self, watch: TaskWatch, previous: Callable[..., object] | None) -> None:
        self.watch = watch
        self.previous = previous

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        # asyncio's own handler still logs it (to the `asyncio` logger, which
        # pytest captures); the test it happened in gets a warning too.
        if self.previous is None:
            loop.default_exception_handler(context)
        else:
            self.previous(loop, context)
        if self.watch.current is not None:
            self.watch.errors.append(context)


class _Recorder:
    """A task factory that records the owner of each new task (Python 3.11).

    Every keyword `create_task` passes (`context`, and `name` or
    `eager_start` where a loop passes them) goes on unchanged to the
    factory it wraps, or to `asyncio.Task`.
    """

    __slots__ = ("owned", "previous")

    def __init__(
        self,
        owned: dict[pytest.Item, list[weakref.ref[asyncio.Task[Any]]]],
        previous: Callable[..., asyncio.Future[Any]] | None,
    ) -> None:
        self.owned = owned
        self.previous = previous

    def __call__(
        self, loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any], **kwargs: Any
    ) -> asyncio.Future[Any]:
        if self.previous is None:
            task: asyncio.Future[Any] = asyncio.Task(coro, loop=loop, **kwargs)
        else:
            task = self.previous(loop, coro, **kwargs)
        context = kwargs.get("context")
        owner = OWNER.get() if context is None else context.get(OWNER)
        if owner is not None and isinstance(task, asyncio.Task):
            self.owned.setdefault(owner, []).append(weakref.ref(task))
        return task


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Make sure the loop exists, attribute loop errors to `item`, fix its time limit.

    The loop is made before any fixture, so sync code that asks for
    `asyncio.get_event_loop()` gets the session loop.
    """
    watch = get_watch(item.config)
    watch.runner.loop  # noqa: B018 - made now, if there is none yet
    watch.current = item
    watch.errors.clear()
    marker = (
        item.get_closest_marker(TIMEOUT_MARKER) if TIMEOUT_MARKER in marker_names(item) else None
    )
    if marker is not None:
        value = marker.args[0] if marker.args else marker.kwargs.get("seconds")
        try:
            timeout = _seconds(value, f"@pytest.mark.async_timeout on {item.nodeid}")
        except pytest.UsageError as exc:
            pytest.fail(str(exc).removeprefix("oneloop: "), pytrace=False)
    else:
        timeout = watch.default_timeout
    watch.runner.item_timeout = timeout


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    """After the fixtures' teardown, report and cancel what the test left behind.

    In error mode the report fails the teardown; when a fixture's teardown
    failed already, it is added to that error as a note.
    """
    watch = get_watch(item.config)
    try:
        yield
    except BaseException as exc:
        for problem in _check_and_forget(item, watch):
            exc.add_note(problem)
        raise
    problems = _check_and_forget(item, watch)
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def _check_and_forget(item: pytest.Item, watch: TaskWatch) -> list[str]:
    """Check `item` and stop attributing loop errors to it, even if the check raises."""
    try:
        return _check(item, watch)
    finally:
        watch.current = None


def _check(item: pytest.Item, watch: TaskWatch) -> list[str]:
    """Report what `item` left behind; return the messages that are errors."""
    loop = watch.runner.made_loop
    if loop is None:
        return []
    if loop.is_closed():
        return [
            (
                f"oneloop: {item.nodeid} closed the session event loop. A new loop is used "
                "from the next test on; objects made on the old loop by wider-scoped async "
                "fixtures no longer work. Close only loops you created."
            )
        ]
    _abort_stale_transports(_spin.transports(loop))
    errors: list[str] = []
    leaked = _let_finalizers_finish(loop, watch.pending(item, loop))
    if leaked:
        message = _cancel_and_describe(loop, item, leaked)
        if watch.mode == "error":
            errors.append(message)
        else:
            _warn_at(item, LeakedTaskWarning(message))
    for context in watch.errors:
        _warn_at(item, LoopExceptionWarning(_describe_error(item, context)))
    watch.errors.clear()
    return errors


def _let_finalizers_finish(
    loop: asyncio.AbstractEventLoop, pending: list[asyncio.Task[Any]]
) -> list[asyncio.Task[Any]]:
    """Let asyncio close the async generators the test dropped; return the other tasks.

    A test that breaks out of an `async for` drops its generator, and
    asyncio's finalizer runs the generator's `aclose()` as a task, which
    may still be pending at teardown. Those tasks get `FINALIZER_GRACE`
    seconds to finish; one still pending then is a leak like any other.
    """
    closing = [task for task in pending if isinstance(task.get_coro(), _ACLOSE)]
    if closing:
        loop.run_until_complete(asyncio.wait(closing, timeout=FINALIZER_GRACE))
    return [task for task in pending if not task.done()]


def _abort_stale_transports(transports: Mapping[int, asyncio.Transport]) -> None:
    """Abort transports whose socket the test closed behind asyncio's back.

    A loop per test would have been closed with them; the session loop would
    keep the dead descriptor registered, and the next socket to get the same
    number would be refused ("File descriptor N is used by transport").
    Selector loops keep their transports in `_transports`; other loops
    (uvloop) manage descriptors themselves.
    """
    for transport in list(transports.values()):
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.fileno() == -1 and not transport.is_closing():
            transport.abort()


def _warn_at(item: pytest.Item, warning: Warning) -> None:
    """Issue `warning` at the test's own location, not at the plugin's."""
    _, lineno, _ = item.location
    warnings.warn_explicit(warning, type(warning), str(item.path), (lineno or 0) + 1)


def _cancel_and_describe(
    loop: asyncio.AbstractEventLoop, item: pytest.Item, tasks: list[asyncio.Task[Any]]
) -> str:
    lines = [
        (
            f"oneloop: {item.nodeid} left {len(tasks)} task(s) pending after its teardown; "
            "they were cancelled:"
        )
    ]
    lines.extend(_describe_task(task) for task in tasks)
    lines.append(
        "Await or cancel the tasks you start (a TaskGroup does both), or set "
        "oneloop_leaked_tasks = ignore."
    )
    for task in tasks:
        task.cancel()
    loop.run_until_complete(asyncio.wait(tasks, timeout=CANCEL_GRACE))
    for task in tasks:
        if task.done() and not task.cancelled():
            task.exception()  # seen here; not logged again when collected
    return "\n".join(lines)


def _describe_task(task: asyncio.Task[Any]) -> str:
    coro = task.get_coro()
    if isinstance(coro, _ACLOSE):
        what = "aclose() of an async generator the test dropped (its clean-up never finished)"
    else:
        frame = getattr(coro, "cr_frame", None)
        where = f" at {frame.f_code.co_filename}:{frame.f_lineno}" if frame is not None else ""
        what = f"{getattr(coro, '__qualname__', repr(coro))}(){where}"
    text = f"  - {task.get_name()} running {what}"
    source = _spin.creation_stack(task)
    if source:
        created = "".join(traceback.format_list(source[-3:])).rstrip()
        text += "\n    created at:\n" + "\n".join("    " + line for line in created.splitlines())
    else:
        text += "\n    (run with --asyncio-debug to see where it was created)"
    return text


def _describe_error(item: pytest.Item, context: dict[str, Any]) -> str:
    message = context.get("message", "exception in event loop callback")
    text = f"oneloop: during {item.nodeid}: {message}"
    exc = context.get("exception")
    if exc is not None:
        text += "\n" + "".join(traceback.format_exception(exc)).rstrip()
    return text


WATCH_KEY = pytest.StashKey[TaskWatch]()


def get_watch(config: pytest.Config) -> TaskWatch:
    """The session's TaskWatch."""
    return config.stash[WATCH_KEY]
