"""What one test changes on the session loop is put back before the next test.

With one loop for the session, a test that installs an exception handler,
turns debug mode on or shuts the default executor down would do so for
every later test. So the settings a test can change are read once before
each test (`_spin.loop_state`) and once after it; whatever differs is restored
and reported: a `LoopChangeWarning`, a teardown error, or nothing
(`oneloop_loop_changes = warn | error | ignore`).

When: the record is taken once the wider-scoped fixtures a test needs are
set up, just before its first function-scoped fixture (or, without one,
after set-up), and the check is a finalizer registered at that same
moment (of that fixture, or of the test), so it runs after every
function-scoped fixture's teardown and before any wider-scoped fixture is
torn down. A session, package, module
or class fixture may therefore change the loop on purpose: its changes are
the baseline of the tests under it, and its own teardown may undo them.
A loop made during a test is compared with how it was made.
"""

from __future__ import annotations

import signal
import warnings
from typing import TYPE_CHECKING, Any

import pytest

from pytest_oneloop import _spin
from pytest_oneloop._runner import STASH_KEY
from pytest_oneloop._warnings import LoopChangeWarning

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable

MODES = ("warn", "error", "ignore")


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register `oneloop_loop_changes`."""
    parser.addini(
        "oneloop_loop_changes",
        "What to do when a test changes a setting of the session loop (exception "
        "handler, task factory, debug mode, ...), which is restored either way: "
        "warn (default), error or ignore.",
        default="warn",
    )


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    """Validate the option and register the checkpoint, which records each new loop.

    trylast: the runner calls its new-loop callbacks in order, and the leak
    check's task factory and exception handler must be on the loop first.
    """
    mode = str(config.getini("oneloop_loop_changes")).strip() or "warn"
    if mode not in MODES:
        raise pytest.UsageError(
            f"oneloop: oneloop_loop_changes must be one of warn, error, ignore; got {mode!r}"
        )
    runner = config.stash[STASH_KEY]
    checkpoint = Checkpoint(mode)
    config.stash[CHECKPOINT_KEY] = checkpoint
    runner.on_new_loop.append(checkpoint.record_new_loop)
    config.pluginmanager.register(checkpoint, f"{__name__}.checkpoint")


class Checkpoint:
    """The record taken before the current test, and the check after it (a plugin object)."""

    def __init__(self, mode: str) -> None:
        """Nothing is recorded until the runner makes a loop."""
        self.mode = mode
        #: The test being checked, from the moment its record is taken.
        self.item: pytest.Item | None = None
        #: The test's record (`_spin.loop_state`), and the record of the newest loop
        #: as the runner made it (the loop comes first in a record).
        self.before: tuple[Any, ...] | None = None
        self.new_loop: tuple[Any, ...] | None = None

    def record_new_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Remember how the runner made `loop` (called by the runner)."""
        self.new_loop = _spin.loop_state(loop)

    def pytest_fixture_setup(self, request: pytest.FixtureRequest) -> None:
        """Record at the first fixture torn down with the test; the wider ones are set up.

        That is a fixture whose node is the test: function scope (and class
        scope outside a class, which pytest also finalizes with the test).
        The check becomes that fixture's finalizer, registered before its
        own teardown: the fixture is torn down last of the test's, after
        everything set up after it, and its finalizers run newest first.
        """
        if self.item is None:
            node = request.node
            # `type() is` first: `isinstance` on pytest's nodes goes through `ABCMeta`.
            if type(node) is pytest.Function or isinstance(node, pytest.Item):
                self._record(node, request.addfinalizer)

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        """A test without such fixtures is recorded once it is set up; the check is its own."""
        if self.item is None:
            self._record(item, item.addfinalizer)

    def _record(
        self, item: pytest.Item, addfinalizer: Callable[[Callable[[], None]], None]
    ) -> None:
        new_loop = self.new_loop
        self.before = None if new_loop is None else _spin.loop_state(new_loop[0])
        addfinalizer(self._check)
        self.item = item

    def _check(self) -> None:
        """Restore what the test changed and report it (the item's finalizer)."""
        item, before, new_loop = self.item, self.before, self.new_loop
        self.item = self.before = None
        if item is None or new_loop is None:
            return
        loop = new_loop[0]
        if before is None or before[0] is not loop:
            before = new_loop  # the loop was made during the test
        after = _spin.loop_state(loop)
        if after == before or loop.is_closed():  # a closed loop: `_tasks` says so
            return
        messages = [f"oneloop: {item.nodeid} {change}" for change in restore(before, after)]
        if not messages or self.mode == "ignore":
            return
        if self.mode == "error":
            pytest.fail("\n".join(messages), pytrace=False)
        _, lineno, _ = item.location
        for message in messages:  # at the test's own line, not the plugin's
            warnings.warn_explicit(
                LoopChangeWarning(message), LoopChangeWarning, str(item.path), (lineno or 0) + 1
            )


def restore(before: tuple[Any, ...], after: tuple[Any, ...]) -> list[str]:
    """Put back each setting of `after` (`_spin.loop_state`) that differs from `before`."""
    loop = before[0]
    done = []
    for fix, old, new in zip(RESTORERS, before[1:], after[1:], strict=True):
        if new is not old and new != old:
            message = fix(loop, old, new)
            if message:
                done.append(message)
    return done


# One function per setting, in `_spin.loop_state`'s order: restore the old value, say what
# was done.


def _exception_handler(loop: asyncio.AbstractEventLoop, handler: Any, _: object) -> str:
    loop.set_exception_handler(handler)
    return "changed the session loop's exception handler; it was restored"


def _task_factory(loop: asyncio.AbstractEventLoop, factory: Any, _: object) -> str:
    loop.set_task_factory(factory)
    return "changed the session loop's task factory; it was restored"


def _debug(loop: asyncio.AbstractEventLoop, debug: bool, _: object) -> str:
    loop.set_debug(debug)
    if not debug:
        _spin.stop_origin_tracking(loop)
    return "changed the session loop's debug mode; it was restored"


def _slow_callback_duration(loop: asyncio.AbstractEventLoop, seconds: float, _: object) -> str:
    loop.slow_callback_duration = seconds
    return "changed the session loop's slow_callback_duration; it was restored"


def _current_loop(
    _: asyncio.AbstractEventLoop, before: tuple[Any, Any], after: tuple[Any, Any]
) -> str | None:
    """The event loop policy, and the loop it gives this thread (`set_event_loop`).

    No loop or a closed one left current is what `asyncio.run()` and a test
    that makes, sets and closes a loop of its own leave: not reported.
    """
    (policy, current), (new_policy, left) = before, after
    if new_policy is not policy:
        _spin.set_event_loop_policy(policy)
        if current is not _spin.UNKNOWN:
            policy.set_event_loop(current)
        return "changed the event loop policy; it was restored"
    policy.set_event_loop(current)
    if left is None or left.is_closed():
        return None
    return "changed the thread's current event loop; it was restored"


def _signal_handlers(loop: asyncio.AbstractEventLoop, saved: Any, _: object) -> str:
    changed = _spin.restore_signal_handlers(loop, saved)
    names = ", ".join(_signal_name(sig) for sig in changed)
    return f"changed the session loop's signal handlers ({names}); they were restored"


def _signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:  # a real-time signal between SIGRTMIN and SIGRTMAX
        return f"signal {sig}"


def _default_executor(
    loop: asyncio.AbstractEventLoop, before: tuple[Any, Any], after: tuple[Any, Any]
) -> str | None:
    """The default executor and whether it was shut down.

    The executor asyncio makes on first use is kept and not reported; one
    that was shut down is dropped, and asyncio makes another on next use.
    """
    (executor, shutdown_called), (new_executor, new_shutdown_called) = before, after
    if new_shutdown_called and not shutdown_called:
        kept = None if new_executor is executor else executor
        _spin.restore_default_executor(loop, kept, shutdown_called=False)
        return (
            "shut down the session loop's default executor (loop.shutdown_default_executor()); "
            "a new one is made when next needed"
        )
    if executor is None and _spin.made_by_asyncio(new_executor):
        return None
    _spin.restore_default_executor(loop, executor, shutdown_called=shutdown_called)
    return "changed the session loop's default executor; it was restored"


def _asyncgens_shutdown(loop: asyncio.AbstractEventLoop, called: bool, _: object) -> str:
    _spin.restore_asyncgens_shutdown(loop, called)
    return (
        "shut down the session loop's async generators (loop.shutdown_asyncgens()); "
        "later async generators work again, those it closed stay closed"
    )


def _stopping(loop: asyncio.AbstractEventLoop, stopping: bool, _: object) -> str:
    _spin.restore_stopping(loop, stopping)
    return (
        "stopped the session loop while it was not running (loop.stop()), which would "
        "have stopped the next test's first turn; the stop was cancelled"
    )


#: How each setting after the loop in `_spin.loop_state` is restored, in its order.
RESTORERS: tuple[Callable[[asyncio.AbstractEventLoop, Any, Any], str | None], ...] = (
    _exception_handler,
    _task_factory,
    _debug,
    _slow_callback_duration,
    _current_loop,
    _signal_handlers,
    _default_executor,
    _asyncgens_shutdown,
    _stopping,
)


CHECKPOINT_KEY = pytest.StashKey[Checkpoint]()
