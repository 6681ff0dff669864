"""A loop's virtual clock: one test's period of virtual time on the session loop.

`_vtime` decides which tests run under virtual time; a `Period` is what
makes the loop's clock virtual while one of them runs. `loop.time` becomes
an instance attribute returning the virtual time, and the loop's selector
is wrapped so that `select(timeout)`, where asyncio's turn (`_run_once`)
waits for its next timer, moves the clock to that timer instead of waiting,
when the loop is idle: nothing is ready, a non-blocking poll finds no I/O
(a short real grace period when file descriptors other than the loop's own
are registered), and no executor job or subprocess started during the
period is still running. `_spin` has the look-ups into the loop. When the
period ends, the loop's time goes on in real time from where it left it.

A wait's time limit cannot be a timer on a clock that jumps: during a
period, `SessionRunner.limits` is the period, which measures the limit in
real seconds, checked at every poll; a wait without a limit ends after 24
hours of virtual time, or after `HOLD_LIMIT` real seconds of work outside
the loop holding a timer back.
"""

from __future__ import annotations

import math
import selectors
import time
from typing import TYPE_CHECKING, Any

from pytest_oneloop import _spin

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable, Mapping

    import pytest
    from _typeshed import FileDescriptorLike

    from pytest_oneloop._runner import SessionRunner

#: How long a wait without a time limit may last in virtual time.
VIRTUAL_LIMIT = 24 * 3600.0
#: How long executor jobs and subprocesses may hold the clock still while a
#: timer waits, in real seconds, when the wait has no time limit of its own.
HOLD_LIMIT = 60.0


class Period:
    """One test's stretch of virtual time on the session loop.

    While it lasts, `loop.time` is `self.time`, the loop waits in a
    `_Selector` that calls `select` below, `loop.run_in_executor`,
    `loop.subprocess_exec` and `loop.subprocess_shell` note the jobs and
    processes they start, and the runner's time limits are measured here
    (`start`).
    """

    def __init__(self, item: pytest.Item, runner: SessionRunner, grace: float) -> None:
        """Make the runner's loop virtual, starting from its current time."""
        loop = runner.loop
        self.item = item
        self.loop = loop
        self.runner = runner
        self.grace = grace
        self.active = True
        # A whole second: adding a delay that a float holds exactly (60, 1.5,
        # 0.25) then gives exactly that delay back as loop.time() - start.
        self.origin = self.now = float(math.ceil(loop.time()))
        self.jumps = 0
        #: Executor jobs started during the period and not done yet.
        self.jobs: set[asyncio.Future[Any]] = set()
        #: The transports of subprocesses started during the period, until they exit.
        self.processes: set[asyncio.SubprocessTransport] = set()
        #: The running `advance()`: where it goes, and the future it waits on.
        self.advance_to: float | None = None
        self.advanced: asyncio.Future[None] | None = None
        #: The current wait's limit: what to call, what to say, and when (time.monotonic()).
        self.expire: Callable[[str], None] | None = None
        self.limit: float | None = None
        self.timeout_at = math.inf
        self.hold_ends = math.inf
        self.deadline = math.inf
        self.own_fd = _spin.self_pipe(loop)
        self.real = _spin.get_selector(loop)
        self.selector = _Selector(self, self.real)
        attributes = vars(loop)
        #: The loop's own methods that the period replaces, and what `vars(loop)` had.
        self.saved = {name: attributes.get(name) for name in _REPLACED}
        self.own = {name: getattr(loop, name) for name in _REPLACED}
        _spin.set_selector(loop, self.selector)
        attributes["time"] = self.time
        for name in _REPLACED:
            attributes[name] = getattr(self, name)
        runner.limits = self

    def stop(self) -> None:
        """Put the loop's own selector and executor back; its time goes on for real."""
        self.active = False
        loop = self.loop
        if self.runner.limits is self:
            self.runner.limits = None
        if _spin.get_selector(loop) is self.selector:
            _spin.set_selector(loop, self.real)
        attributes = vars(loop)
        attributes["time"] = _Shifted(self.now - time.monotonic()).time
        for name, saved in self.saved.items():
            if saved is None:
                attributes.pop(name, None)
            else:
                attributes[name] = saved
        self.jobs.clear()
        self.processes.clear()

    def time(self) -> float:
        """The loop's time while the period lasts."""
        return self.now

    def run_in_executor(self, executor: Any, func: Callable[..., Any], *args: Any) -> Any:
        """The loop's `run_in_executor`, noting the job until it is done."""
        future: asyncio.Future[Any] = self.own["run_in_executor"](executor, func, *args)
        self.jobs.add(future)
        future.add_done_callback(self.jobs.discard)
        return future

    async def subprocess_exec(self, *args: Any, **kwargs: Any) -> Any:
        """The loop's `subprocess_exec`, noting the process until it exits."""
        transport, protocol = await self.own["subprocess_exec"](*args, **kwargs)
        self.processes.add(transport)
        return transport, protocol

    async def subprocess_shell(self, *args: Any, **kwargs: Any) -> Any:
        """The loop's `subprocess_shell`, noting the process until it exits."""
        transport, protocol = await self.own["subprocess_shell"](*args, **kwargs)
        self.processes.add(transport)
        return transport, protocol

    async def advance(self, seconds: float) -> None:
        """Move the clock `seconds` on, firing what falls due; return once the loop is idle."""
        waiter: asyncio.Future[None] = self.loop.create_future()
        self.advance_to, self.advanced = self.now + seconds, waiter
        try:
            await waiter
        finally:
            if self.advanced is waiter:
                self.advance_to = self.advanced = None

    def _running(self) -> int:
        """How many executor jobs and subprocesses of the period are still running."""
        if self.processes:
            self.processes = {p for p in self.processes if p.get_returncode() is None}
        return len(self.jobs) + len(self.processes)

    def select(
        self, real: selectors.BaseSelector, timeout: float | None
    ) -> list[tuple[selectors.SelectorKey, int]]:
        """Poll, and when the loop is idle, move the clock to its next timer instead of waiting.

        `timeout` is what asyncio's turn asks to wait for: 0 when callbacks
        are ready, the time to the next timer, or None when there is none.
        """
        if self.deadline <= time.monotonic():
            self._expire_in_real_time()
        if timeout is not None and timeout <= 0:
            return real.select(timeout)
        if self._running():
            return self._held(real, timeout)
        self.hold_ends = math.inf
        self.deadline = self.timeout_at
        events = real.select(self.grace if self._other_fds(real) else 0)
        if events or self._jump(timeout):
            return events
        # Nothing is scheduled: only I/O or another thread can wake the loop.
        return real.select(self._real_wait(None))

    def _jump(self, timeout: float | None) -> bool:
        """The loop is idle: move the clock on; False if nothing is scheduled to move it to."""
        when = _spin.next_timer(self.loop) if timeout is not None else None
        target = self.advance_to
        if target is not None and (when is None or when > target):
            self._move(target)
            self.advance_to = None
            if self.advanced is not None and not self.advanced.done():
                self.advanced.set_result(None)
            return True
        if when is None:
            return False
        if self.expire is not None and self.limit is None and when > self.origin + VIRTUAL_LIMIT:
            self._move(self.origin + VIRTUAL_LIMIT)
            self._fire(
                f"24 hours of virtual time ({self._account()}); that is the limit of a "
                "test under virtual time without oneloop_timeout"
            )
            return True
        self._move(when)
        return True

    def _held(
        self, real: selectors.BaseSelector, timeout: float | None
    ) -> list[tuple[selectors.SelectorKey, int]]:
        """Executor jobs or subprocesses are running: wait for real, the clock standing still.

        Their end wakes the loop: a job's result and a process's exit come
        through the self-pipe or a file descriptor of their own. Without a
        time limit, holding a timer back for `HOLD_LIMIT` real seconds ends
        the wait.
        """
        if (
            timeout is not None
            and self.expire is not None
            and self.limit is None
            and self.hold_ends == math.inf
        ):
            self.hold_ends = self.deadline = time.monotonic() + HOLD_LIMIT
        return real.select(self._real_wait(timeout))

    def _other_fds(self, real: selectors.BaseSelector) -> bool:
        """Whether file descriptors besides the loop's self-pipe are registered."""
        registered = real.get_map()
        return len(registered) > (1 if self.own_fd in registered else 0)

    def _real_wait(self, timeout: float | None) -> float | None:
        """`timeout` in real seconds, cut short at the wait's deadline."""
        if self.deadline == math.inf:
            return timeout
        left = max(self.deadline - time.monotonic(), 0.0)
        return left if timeout is None else min(timeout, left)

    def _move(self, when: float) -> None:
        if when > self.now:
            self.now = when
            self.jumps += 1

    def _account(self) -> str:
        jumps = "1 jump" if self.jumps == 1 else f"{self.jumps} jumps"
        return f"the virtual clock moved {self.now - self.origin:g}s in {jumps}"

    def _expire_in_real_time(self) -> None:
        if self.timeout_at <= time.monotonic():
            self._fire(f"{self.limit:g}s of real time ({self._account()})")
            return
        held = " and ".join(
            f"{count} {one if count == 1 else more}"
            for count, one, more in (
                (len(self.jobs), "executor job", "executor jobs"),
                (len(self.processes), "subprocess", "subprocesses"),
            )
            if count
        )
        self._fire(
            f"{HOLD_LIMIT:g}s of real time during which {held} held the virtual clock still "
            f"({self._account()}); a job or a process that runs for the whole test, such as "
            "a server, stops virtual time: start it in a wider-scoped fixture, or set "
            "oneloop_timeout"
        )

    def _fire(self, why: str) -> None:
        expire = self.expire
        self.disarm()
        if expire is not None:
            expire(why)

    def start(
        self,
        loop: asyncio.AbstractEventLoop,
        timeout: float | None,
        limit: float | None,
        expire: Callable[[str], None],
    ) -> Callable[[], object] | None:
        """Measure the time limit of the runner's next wait (`_runner.WaitLimits`)."""
        if loop is not self.loop:  # the test closed the session loop: this wait is on a new one
            if timeout is None:
                return None
            return loop.call_later(timeout, expire, f"{limit or timeout:g}s").cancel
        self.expire = expire
        self.limit = limit or timeout
        self.timeout_at = self.deadline = (
            math.inf if timeout is None else time.monotonic() + timeout
        )
        self.hold_ends = math.inf
        return self.disarm

    def disarm(self) -> None:
        """The wait is over: no limit until the next one starts."""
        self.expire = self.limit = None
        self.timeout_at = self.hold_ends = self.deadline = math.inf


#: The loop's methods a period replaces to note the work they start outside the loop.
_REPLACED = ("run_in_executor", "subprocess_exec", "subprocess_shell")


class _Selector(selectors.BaseSelector):
    """The loop's selector during a period: `select` is the period's, the rest the real one's."""

    def __init__(self, period: Period, real: selectors.BaseSelector) -> None:
        self._period = period
        self._real = real

    def register(
        self, fileobj: FileDescriptorLike, events: int, data: Any = None
    ) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: FileDescriptorLike) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def modify(
        self, fileobj: FileDescriptorLike, events: int, data: Any = None
    ) -> selectors.SelectorKey:
        return self._real.modify(fileobj, events, data)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        return self._period.select(self._real, timeout)

    def get_key(self, fileobj: FileDescriptorLike) -> selectors.SelectorKey:
        return self._real.get_key(fileobj)

    def get_map(self) -> Mapping[FileDescriptorLike, selectors.SelectorKey]:
        return self._real.get_map()

    def close(self) -> None:
        self._real.close()


class _Shifted:
    """A loop's clock after virtual time: real time, going on from where the test left it."""

    __slots__ = ("offset",)

    def __init__(self, offset: float) -> None:
        self.offset = offset

    def time(self) -> float:
        return time.monotonic() + self.offset
