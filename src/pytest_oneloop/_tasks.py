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

from pytest_oneloop._markers import marker_names
from pytest_oneloop._runner import OWNER, LastConfig, get_runner, recording_only
from pytest_oneloop._warnings import LeakedTaskWarning, LoopExceptionWarning

if TYPE_CHECKING:
    from collections.abc import Coroutine, Mapping

    from pytest_oneloop._runner import SessionRunner

LEAK_MODES = ("warn", "error", "ignore")
TIMEOUT_MARKER = "async_timeout"
#: How long cancelled leftovers get to finish; a bound, so a task that
#: ignores cancellation cannot hang the session.
CANCEL_GRACE = 5.0


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
        #: Each test's tasks, held weakly: a task nobody holds may still be collected.
        self.owned: dict[pytest.Item, list[weakref.ref[asyncio.Task[Any]]]] = {}
        self.current: pytest.Item | None = None
        self.errors: list[dict[str, Any]] = []

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        """Record task owners through the task factory; catch callback errors."""
        loop.set_exception_handler(self._on_exception)
        if self.mode == "ignore":
            return
        previous = loop.get_task_factory()
        owned = self.owned
        make_task = asyncio.Task
        ref = weakref.ref

        def owning_task_factory(
            loop: asyncio.AbstractEventLoop,
            coro: Coroutine[Any, Any, Any],
            context: Any = None,
        ) -> asyncio.Task[Any]:
            if previous is None:
                task: asyncio.Task[Any] = make_task(coro, loop=loop, context=context)
            elif context is None:
                task = previous(loop, coro)  # type: ignore[assignment]
            else:
                task = previous(loop, coro, context=context)  # type: ignore[call-arg,assignment]
            owner = OWNER.get() if context is None else context.get(OWNER)
            if owner is not None:
                tasks = owned.get(owner)
                if tasks is None:
                    owned[owner] = [ref(task)]
                else:
                    tasks.append(ref(task))
            return task

        loop.set_task_factory(owning_task_factory)  # type: ignore[arg-type]
        if previous is None:
            recording_only(owning_task_factory)

    def _on_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        # asyncio's own handler still logs it (to the `asyncio` logger, which
        # pytest captures); the test it happened in gets a warning too.
        loop.default_exception_handler(context)
        if self.current is not None:
            self.errors.append(context)

    def leaked(self, item: pytest.Item) -> list[asyncio.Task[Any]]:
        """The item's tasks still pending; its failed tasks nobody awaited go to errors."""
        pending = []
        for task_ref in self.owned.pop(item, ()):
            task = task_ref()
            if task is None:
                continue
            if not task.done():
                pending.append(task)
            elif not task.cancelled() and _unretrieved(task):
                # Reported now rather than whenever the task is collected.
                self._on_exception(
                    task.get_loop(),
                    {
                        "message": "Task exception was never retrieved",
                        "exception": task.exception(),
                        "future": task,
                    },
                )
        return pending


def _unretrieved(task: asyncio.Task[Any]) -> bool:
    """Whether nobody has looked at the task's exception yet (asyncio's own flag)."""
    return bool(getattr(task, "_log_traceback", False))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Start attributing loop errors to `item` and fix its time limit."""
    watch = get_watch(item.config)
    if watch.current is not None:  # the last test's teardown failed before its check
        _catch_up(watch)
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


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    """After the fixtures' teardown (pytest's own implementation runs first): check.

    Not a hook wrapper, which costs pluggy a generator and a StopIteration
    per test. When a fixture's teardown raised, pytest's implementation
    raised too and this one did not run; `watch.current` still names the
    test, and the next test's set-up or the end of the session checks it
    (`_catch_up`).
    """
    problems = _finish(item, get_watch(item.config), can_fail=True)
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Check the last test if its teardown failed (before the runner closes the loop)."""
    watch = session.config.stash.get(WATCH_KEY, None)
    if watch is not None and watch.current is not None:
        _catch_up(watch)


def _catch_up(watch: TaskWatch) -> None:
    """Check a test whose teardown failed: its report is made, so problems are warnings."""
    item = watch.current
    if item is not None:
        for message in _finish(item, watch, can_fail=False):
            _warn_at(item, LoopExceptionWarning(message))


def _finish(item: pytest.Item, watch: TaskWatch, *, can_fail: bool) -> list[str]:
    """Check `item` and stop attributing loop errors to it, even if the check raises."""
    try:
        return _check(item, watch, can_fail=can_fail)
    finally:
        watch.current = None


def _check(item: pytest.Item, watch: TaskWatch, *, can_fail: bool) -> list[str]:
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
    transports = getattr(loop, "_transports", None)
    if transports:
        _abort_stale_transports(transports)
    errors: list[str] = []
    leaked = watch.leaked(item) if watch.owned else []
    if leaked:
        message = _cancel_and_describe(loop, item, leaked)
        if watch.mode == "error" and can_fail:
            errors.append(message)
        else:
            _warn_at(item, LeakedTaskWarning(message))
    if watch.errors:
        for context in watch.errors:
            _warn_at(item, LoopExceptionWarning(_describe_error(item, context)))
        watch.errors.clear()
    return errors


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
    name = getattr(coro, "__qualname__", repr(coro))
    frame = getattr(coro, "cr_frame", None)
    where = f" at {frame.f_code.co_filename}:{frame.f_lineno}" if frame is not None else ""
    text = f"  - {task.get_name()} running {name}(){where}"
    source = getattr(task, "_source_traceback", None)
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
#: The session's TaskWatch (`config.stash[WATCH_KEY]`).
get_watch = LastConfig(WATCH_KEY)
