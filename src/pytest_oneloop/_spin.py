"""The one module that uses asyncio's private names.

Everything else in the plugin uses asyncio's public API. What is here is
either not offered publicly at all (where a task was created, the
transports a selector loop keeps, the selector and timers that virtual
time works on), or offered publicly at a measured cost: running the loop
until a future is done.

`loop.run_until_complete(future)` stops the loop from a done callback of the
future, so it always takes one more turn of the loop (a `select()` call and
the callback) after the future is done, on top of `ensure_future` and adding
and removing that callback. The runner waits on the loop three times per
async test (fixture set-up, the test, fixture teardown). `run_until_done`
does what `run_forever` does around its turns, and checks the future after
each turn instead; it takes the one more turn only when callbacks are
already queued for it, as `run_until_complete`'s last turn would run them.
Measured with the suite of `bench/instructions.py --tests 400`, against
`oneloop_fast_loop = false` on the same tree: 66.8k instructions less per
async test on Python 3.11.7 (2.2 %), 82.1k on 3.13.0 (2.6 %).

How a loop is driven is decided once per loop, by feature detection
(`how_to_drive`):

- `SETUP`: the loop has `_run_forever_setup` and `_run_forever_cleanup`,
  which CPython added in 3.13 for subclasses to use: those, and `_run_once`.
- `INLINE`: it has not (3.11, 3.12): the same steps, as `run_forever` itself
  does them.
- `PUBLIC`: anything else: a loop that is not asyncio's selector loop (uvloop),
  one whose type overrides `run_forever`, `run_until_complete`, `_run_once`
  or `_process_events`, one that lacks a name used here, or the ini option
  `oneloop_fast_loop = false`: `loop.run_until_complete`, nothing private.

The outcome is the same either way: the future's result, its exception, or
`RuntimeError` when user code stopped the loop first.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from asyncio import events
from typing import TYPE_CHECKING, Any, Literal, TypeVar

if TYPE_CHECKING:
    from collections.abc import Mapping

T = TypeVar("T")

Driver = Literal["setup", "inline", "public"]
SETUP: Driver = "setup"
INLINE: Driver = "inline"
PUBLIC: Driver = "public"

#: Methods a driven loop's type must take unchanged from asyncio's selector loop.
_UNCHANGED = ("run_forever", "run_until_complete", "_run_once", "_process_events")
#: What every driven loop must have.
_NEEDED = ("_ready", "_run_once", "_stopping")
_SETUP_NAMES = ("_run_forever_setup", "_run_forever_cleanup")
_INLINE_NAMES = (
    "_check_closed",
    "_check_running",
    "_set_coroutine_origin_tracking",
    "_debug",
    "_thread_id",
    "_asyncgen_firstiter_hook",
    "_asyncgen_finalizer_hook",
)


def how_to_drive(loop: asyncio.AbstractEventLoop, *, fast: bool = True) -> Driver:
    """How `run_until_done` will drive `loop`: `SETUP`, `INLINE` or `PUBLIC`."""
    cls = type(loop)
    base = asyncio.SelectorEventLoop
    if (
        not fast
        or not isinstance(loop, base)
        or any(getattr(cls, name, None) is not getattr(base, name, None) for name in _UNCHANGED)
        or not all(hasattr(loop, name) for name in _NEEDED)
    ):
        return PUBLIC
    if all(hasattr(loop, name) for name in _SETUP_NAMES):
        return SETUP
    if all(hasattr(loop, name) for name in _INLINE_NAMES) and hasattr(events, "_set_running_loop"):
        return INLINE
    return PUBLIC


def run_until_done(loop: asyncio.AbstractEventLoop, future: asyncio.Future[T], how: Driver) -> T:
    """Run `loop` until `future` is done and return its result, like `run_until_complete`.

    `how` is what `how_to_drive` said for this loop.
    """
    __tracebackhide__ = True
    if how == PUBLIC:
        return loop.run_until_complete(future)
    lp: Any = loop  # `how_to_drive` checked the private names used below
    if how == SETUP:
        lp._run_forever_setup()  # noqa: SLF001
        try:
            _turn_until(lp, future)
        finally:
            lp._run_forever_cleanup()  # noqa: SLF001
    else:
        _run_inline(lp, future)
    if not future.done():
        msg = "Event loop stopped before Future completed."
        raise RuntimeError(msg)
    return future.result()


def _run_inline(loop: Any, future: asyncio.Future[Any]) -> None:
    """`run_forever` of Python 3.11 and 3.12, turning until `future` is done."""
    loop._check_closed()  # noqa: SLF001
    loop._check_running()  # noqa: SLF001
    loop._set_coroutine_origin_tracking(loop._debug)  # noqa: SLF001
    old_hooks = sys.get_asyncgen_hooks()
    try:
        loop._thread_id = threading.get_ident()  # noqa: SLF001
        sys.set_asyncgen_hooks(
            firstiter=loop._asyncgen_firstiter_hook,  # noqa: SLF001
            finalizer=loop._asyncgen_finalizer_hook,  # noqa: SLF001
        )
        events._set_running_loop(loop)  # noqa: SLF001
        _turn_until(loop, future)
    finally:
        loop._stopping = False  # noqa: SLF001
        loop._thread_id = None  # noqa: SLF001
        events._set_running_loop(None)  # noqa: SLF001
        loop._set_coroutine_origin_tracking(False)  # noqa: SLF001, FBT003
        sys.set_asyncgen_hooks(*old_hooks)


def _turn_until(loop: Any, future: asyncio.Future[Any]) -> None:
    """Turn the loop until `future` is done, then once more if callbacks are queued.

    `run_until_complete` stops one turn later, in the callback it added: what
    the last turn scheduled (a task's first step, a done callback) runs
    before the loop stops, and so it does here. `loop.stop()` by user code
    ends the turns as it ends `run_forever`'s.
    """
    ready = loop._ready  # noqa: SLF001
    while True:
        done = future.done()
        if done and not ready:
            return
        loop._run_once()  # noqa: SLF001
        if done or loop._stopping:  # noqa: SLF001
            return


def creation_stack(task: asyncio.Task[Any]) -> list[Any]:
    """Where the task was created (debug mode only; empty otherwise)."""
    return list(getattr(task, "_source_traceback", None) or ())


def transports(loop: asyncio.AbstractEventLoop) -> Mapping[int, asyncio.Transport]:
    """The transports of a selector loop, by file descriptor; empty for other loops."""
    found: Mapping[int, asyncio.Transport] | None = getattr(loop, "_transports", None)
    return found or {}


# Virtual time (`_vtime`)
#
# `_vtime` makes a selector loop's clock virtual by replacing `loop.time`
# (public) and wrapping the loop's selector, whose `select(timeout)` is
# where asyncio's `_run_once` waits for the next timer: the wrapper moves
# the clock to that timer instead of waiting. These look-ups are what it
# needs from the inside of the loop; none depends on the Python version.


def virtual_time_obstacle(loop: asyncio.AbstractEventLoop) -> str | None:
    """Why `loop`'s clock cannot be made virtual, or None when it can.

    Virtual time needs asyncio's own turn (`BaseEventLoop._run_once`, which
    asks `self.time()` for the time and waits in `self._selector.select`)
    and the timer heap it reads (`_scheduled`).
    """
    cls = type(loop)
    if not isinstance(loop, asyncio.SelectorEventLoop):
        return (
            f"{cls.__module__}.{cls.__qualname__} is not asyncio's selector event loop, "
            "so its clock and its wait for I/O cannot be replaced"
        )
    if getattr(cls, "_run_once", None) is not getattr(asyncio.BaseEventLoop, "_run_once", None):
        return (
            f"{cls.__module__}.{cls.__qualname__} overrides asyncio's turn of the loop (_run_once)"
        )
    missing = [name for name in ("_selector", "_scheduled") if getattr(loop, name, None) is None]
    if missing:
        return f"{cls.__module__}.{cls.__qualname__} has no {' or '.join(missing)}"
    return None


def get_selector(loop: asyncio.AbstractEventLoop) -> Any:
    """The selector a selector loop waits in (`loop._selector`); None once the loop is closed."""
    return getattr(loop, "_selector", None)


def set_selector(loop: asyncio.AbstractEventLoop, selector: Any) -> None:
    """Make `loop` wait in `selector` from its next turn on."""
    loop._selector = selector  # type: ignore[attr-defined]  # noqa: SLF001


def next_timer(loop: asyncio.AbstractEventLoop) -> float | None:
    """When the loop's earliest timer is due, or None when it has none.

    Called from the selector's `select`, where `_run_once` has just taken
    cancelled timers off the head of its heap (`_scheduled`), so the head
    is the earliest live timer.
    """
    scheduled: list[asyncio.TimerHandle] = loop._scheduled  # type: ignore[attr-defined]  # noqa: SLF001
    return scheduled[0].when() if scheduled else None


def self_pipe(loop: asyncio.AbstractEventLoop) -> int | None:
    """The file descriptor the loop wakes itself with (`call_soon_threadsafe`, signals)."""
    sock = getattr(loop, "_ssock", None)
    return None if sock is None else int(sock.fileno())


# Loop state for `_hygiene` -------------------------------------------------
#
# `_hygiene` records, around every test, what a test can change on the session
# loop and puts back what changed. Most of it has public accessors; what is
# below has none, so it lives here with the module's other uses of asyncio's
# internals. Every private attribute is feature-detected: a loop without it
# (uvloop keeps this state in C fields) reads as `UNKNOWN`, which never
# differs from itself, so that setting is simply not checked on that loop.
# The functions that write are only called for a setting that was read.

#: What a setting reads as on a loop that does not expose it.
UNKNOWN: Any = object()

# `set_event_loop_policy` warns from Python 3.14 on, which keeps its quiet form
# as `_set_event_loop_policy`.
set_event_loop_policy = getattr(events, "_set_event_loop_policy", events.set_event_loop_policy)


#: The private loop attributes `loop_state` reads (`UNKNOWN` where a loop lacks one).
_STATE = (
    "_signal_handlers",
    "_default_executor",
    "_executor_shutdown_called",
    "_asyncgens_shutdown_called",
    "_stopping",
)


def loop_state(loop: asyncio.AbstractEventLoop) -> tuple[Any, ...]:
    """What a test can change on `loop`, each read once: the record `_hygiene` compares.

    In order: the loop itself; its exception handler, task factory, debug
    flag and `slow_callback_duration` (public getters); the event loop
    policy and its current loop for this thread (what `set_event_loop()`
    set) as a pair, read without `get_event_loop_policy()` and
    `get_event_loop()`, which make a policy or a loop when there is none;
    the signal handlers (`add_signal_handler`) as `(signal, handle)` pairs;
    the default executor and whether `shutdown_default_executor()` was
    called, as a pair; whether `shutdown_asyncgens()` was called; whether
    `stop()` was called while the loop was not running (its next run would
    stop after one turn). `UNKNOWN` stands for what the loop does not have.

    Each private attribute is read with `getattr` and a default; reading
    asyncio's own loops directly after a per-type check saved about 5,000
    instructions per test (0.2 %), below what a special path must pay.
    """
    policy: Any = getattr(events, "_event_loop_policy", UNKNOWN)  # None: none yet
    try:
        current = policy._local._loop  # noqa: SLF001
    except AttributeError:  # None, or not a policy derived from asyncio's own
        current = UNKNOWN
    handlers, executor, shutdown_called, asyncgens_shutdown, stopping = (
        getattr(loop, name, UNKNOWN) for name in _STATE
    )
    return (
        loop,
        loop.get_exception_handler(),
        loop.get_task_factory(),
        loop.get_debug(),
        loop.slow_callback_duration,
        (policy, current),
        UNKNOWN if handlers is UNKNOWN else tuple(handlers.items()),
        (executor, shutdown_called),
        asyncgens_shutdown,
        stopping,
    )


def restore_signal_handlers(
    loop: asyncio.AbstractEventLoop, saved: tuple[tuple[int, asyncio.Handle], ...]
) -> list[int]:
    """Make the loop's signal handlers `saved` again; return the signals that differed.

    A handler added since is removed with `remove_signal_handler`, which
    gives the signal Python's default handling back; one replaced or removed
    is added again with its callback and arguments.
    """
    lp: Any = loop
    handlers: dict[int, asyncio.Handle] = lp._signal_handlers  # noqa: SLF001
    wanted = dict(saved)
    changed = [sig for sig in handlers if sig not in wanted]
    for sig in changed:
        loop.remove_signal_handler(sig)
    for sig, handle in wanted.items():
        if handlers.get(sig) is not handle:
            changed.append(sig)
            loop.add_signal_handler(sig, handle._callback, *handle._args)  # type: ignore[attr-defined]  # noqa: SLF001
    return sorted(changed)


def made_by_asyncio(executor: object) -> bool:
    """Whether `executor` is the one `run_in_executor(None, ...)` makes on first use."""
    return getattr(executor, "_thread_name_prefix", None) == "asyncio"


def restore_default_executor(
    loop: asyncio.AbstractEventLoop, executor: object, shutdown_called: bool
) -> None:
    """Set the default executor (None: made on next use) and its shut-down flag.

    Not `set_default_executor`, which accepts neither None nor a clear flag.
    """
    lp: Any = loop
    lp._default_executor = executor  # noqa: SLF001
    lp._executor_shutdown_called = shutdown_called  # noqa: SLF001


def restore_asyncgens_shutdown(loop: asyncio.AbstractEventLoop, called: bool) -> None:
    """Set whether `shutdown_asyncgens()` was called, which makes later generators warn."""
    lp: Any = loop
    lp._asyncgens_shutdown_called = called  # noqa: SLF001


def restore_stopping(loop: asyncio.AbstractEventLoop, stopping: bool) -> None:
    """Set whether a `stop()` is pending for the loop's next run."""
    lp: Any = loop
    lp._stopping = stopping  # noqa: SLF001


def stop_origin_tracking(loop: asyncio.AbstractEventLoop) -> None:
    """Turn off the coroutine origin tracking that debug mode turned on, as `run_forever` does.

    A `set_debug(True)` inside a running test turns it on in the next turn;
    `run_until_done`'s own set-up and clean-up (Python 3.11, 3.12) never
    turn it off again, so after debug mode is restored it would stay on.
    Only called while the loop is not running.
    """
    tracking = getattr(loop, "_set_coroutine_origin_tracking", None)
    if tracking is not None:
        tracking(enabled=False)
