"""Run the loop until a future is done: the one module that touches asyncio's internals.

`loop.run_until_complete` adds a done callback to the future and runs the
loop until that callback stops it: one more turn of the loop, with its
`select()` call, every time, on top of the set-up and clean-up of
`run_forever`. A test suite enters the loop three times per test (fixture
set-up, the test, fixture teardown), so this is most of what an async test
costs over a sync one.

`run_until_done` does what `run_forever` does around the loop's turns, but
checks the future after each turn instead of waiting for a callback (and
takes the one more turn only when callbacks are waiting for it). And when
a poll could not find anything (no timers, no signal handlers, no file
descriptor watched but the loop's own wake-up pipe), a turn runs
the queued callbacks without polling, as the turn would have run them. It
is used for asyncio's selector loops (and subclasses that keep
`run_forever`) when debug mode is off; any other loop, uvloop for example, and a loop in debug
mode get the public `run_until_complete`. The outcome is the same either
way: the future's result, its exception, or `RuntimeError` when user code
stopped the loop first.

Covers Python 3.11 to 3.14: 3.13 split `run_forever` into
`_run_forever_setup` and `_run_forever_cleanup`, which are used when present.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from asyncio import events
from typing import Any, TypeVar

T = TypeVar("T")
_MISSING: Any = object()

_BASE = asyncio.BaseEventLoop
_SELECTOR_LOOP = asyncio.selector_events.BaseSelectorEventLoop
_PRIVATE = (
    "_run_once",
    "_ready",
    "_check_closed",
    "_check_running",
    "_closed",
    "_debug",
    "_scheduled",
    "_selector",
    "_stopping",
    "_thread_id",
)


#: Loop types seen so far, and how `run_until_done` drives them: `_SETUP`
#: (Python 3.13+: `run_forever`'s own set-up and clean-up), `_INLINE`
#: (3.11, 3.12: what `run_forever` does, done here), or None: it does not.
_DRIVERS: dict[type, str | None] = {}
_SETUP = "setup"
_INLINE = "inline"


def run_until_done(loop: asyncio.AbstractEventLoop, future: asyncio.Future[T]) -> T:
    """Run `loop` until `future` is done and return its result, like `run_until_complete`.

    The set-up and clean-up around the turns are done here, inline, rather
    than in a helper per Python version: this runs three times per test.
    The turns themselves are `_turn_until`'s.
    """
    __tracebackhide__ = True
    how = _DRIVERS.get(type(loop), _MISSING)
    if how is _MISSING:
        how = _driver(loop)
    # `_debug` is what `get_debug()` returns; every loop `_driver` accepts has it.
    if how is None or loop._debug:  # type: ignore[attr-defined]  # noqa: SLF001
        return loop.run_until_complete(future)
    lp: Any = loop  # the private attributes below are checked by `_driver`
    if how is _SETUP:
        lp._run_forever_setup()  # noqa: SLF001
    else:
        if lp._closed or lp._thread_id is not None or events._get_running_loop() is not None:  # noqa: SLF001
            lp._check_closed()  # noqa: SLF001 - raise asyncio's own errors
            lp._check_running()  # noqa: SLF001
        old_hooks = sys.get_asyncgen_hooks()
    try:
        if how is not _SETUP:
            lp._thread_id = threading.get_ident()  # noqa: SLF001
            sys.set_asyncgen_hooks(
                firstiter=lp._asyncgen_firstiter_hook,  # noqa: SLF001
                finalizer=lp._asyncgen_finalizer_hook,  # noqa: SLF001
            )
            events._set_running_loop(loop)  # noqa: SLF001
        _turn_until(lp, future)
    finally:
        if how is _SETUP:
            lp._run_forever_cleanup()  # noqa: SLF001
        else:
            lp._stopping = False  # noqa: SLF001
            lp._thread_id = None  # noqa: SLF001
            events._set_running_loop(None)  # noqa: SLF001
            sys.set_asyncgen_hooks(*old_hooks)
    if not future.done():
        msg = "Event loop stopped before Future completed."
        raise RuntimeError(msg)
    return future.result()


def _driver(loop: asyncio.AbstractEventLoop) -> str | None:
    """How to drive loops of this type, remembered: types that keep asyncio's `run_forever`."""
    cls = type(loop)
    spins = (
        issubclass(cls, _SELECTOR_LOOP)
        and cls.run_forever is _BASE.run_forever
        and cls.run_until_complete is _BASE.run_until_complete
        and all(hasattr(loop, name) for name in _PRIVATE)
        and isinstance(getattr(getattr(loop, "_selector", None), "_fd_to_key", None), dict)
    )
    how = None
    if spins:
        with_setup = hasattr(loop, "_run_forever_setup") and hasattr(loop, "_run_forever_cleanup")
        how = _SETUP if with_setup else _INLINE
    _DRIVERS[cls] = how
    return how


def _turn_until(loop: Any, future: asyncio.Future[Any]) -> None:
    """Turn the loop until `future` is done, then once more if callbacks are queued.

    `run_until_complete` stops one turn later, in the callback it added: what
    the last turn scheduled (a task's first step, a done callback) runs
    before the loop stops, and so it does here.

    A turn skips its poll when the poll could find nothing to do: no timers,
    no file descriptor watched but the loop's own wake-up pipe, which a
    selector loop registers when it is made, and no signal handlers
    (`add_signal_handler`). Polling then only drains that pipe, which
    `call_soon_threadsafe` writes after queueing its callback, so the queued
    callbacks run as a full turn would run them, in the same order. When
    nothing is queued the turn is a full one, which waits.
    """
    ready = loop._ready  # noqa: SLF001
    run_once = loop._run_once  # noqa: SLF001
    watched = loop._selector._fd_to_key  # noqa: SLF001 - file descriptor -> key, a dict
    done = future.done
    last = False
    while not last:
        last = done()
        if last and not ready:
            return
        if (
            ready
            and not loop._scheduled  # noqa: SLF001
            and len(watched) <= 1
            and not getattr(loop, "_signal_handlers", None)
        ):
            # The callbacks queued now, as a turn of `_run_once` runs them (debug off).
            for _ in range(len(ready)):
                handle = ready.popleft()
                if not handle._cancelled:  # noqa: SLF001
                    handle._run()  # noqa: SLF001
        else:
            run_once()
        if loop._stopping:  # noqa: SLF001
            return
