"""Virtual time: a test's sleeps and timeouts take no real time, on the one session loop.

While a test under virtual time and its function-scoped fixtures run, the
session loop's clock stands still while anything can run, and jumps to the
next timer when the loop is idle. Timers fire in the order and at the loop
times they would in real time; the work between them takes no virtual
time. This module chooses the tests (marker, ini option, flag), begins and
ends their periods of virtual time (`_vclock.Period`), and provides the
`clock` fixture.

A period begins at the test's first function-scoped fixture (or its call,
if it has none) rather than in `pytest_runtest_setup`: pytest puts the test
on its setup stack only after that hook's implementations ran, so no
finalizer can be added to it there, and the wider-scoped fixtures it is
first to use are set up before its own and keep real time. The finalizer
added when the period begins runs after the teardown of every
function-scoped fixture (an item's finalizers run last in, first out) and
before the wider scopes'.
"""

from __future__ import annotations

import asyncio
import math
from typing import TYPE_CHECKING, Any

import pytest

from pytest_oneloop import _spin
from pytest_oneloop._hooks import is_foreign
from pytest_oneloop._markers import marker_names
from pytest_oneloop._runner import get_runner

if TYPE_CHECKING:
    from pytest_oneloop._runner import SessionRunner
    from pytest_oneloop._vclock import Period

MARKER = "virtual_time"
DEFAULT_GRACE = 0.001


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register `oneloop_virtual_time`, `--virtual-time` and `oneloop_virtual_time_grace`."""
    parser.addini(
        "oneloop_virtual_time",
        "Run every test under virtual time; @pytest.mark.virtual_time(False) opts one out.",
        type="bool",
        default=False,
    )
    parser.addini(
        "oneloop_virtual_time_grace",
        "Real seconds to poll for I/O before each jump of virtual time, when file "
        "descriptors other than the loop's own are registered.",
        default=str(DEFAULT_GRACE),
    )
    parser.getgroup("oneloop").addoption(
        "--virtual-time",
        dest="oneloop_virtual_time",
        action="store_true",
        default=None,
        help="Run every test under virtual time (ini: oneloop_virtual_time).",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Declare the marker and read the options."""
    config.addinivalue_line(
        "markers",
        "virtual_time(enabled=True): run this test and its function-scoped fixtures "
        "under virtual time (sleeps and timeouts take no real time); "
        "virtual_time(False) opts out of oneloop_virtual_time.",
    )
    flag = config.getoption("oneloop_virtual_time")
    default = bool(config.getini("oneloop_virtual_time")) if flag is None else bool(flag)
    value = config.getini("oneloop_virtual_time_grace")
    try:
        grace = float(value)
    except (TypeError, ValueError):
        grace = -1.0
    if not 0 <= grace < math.inf:
        raise pytest.UsageError(
            "oneloop: oneloop_virtual_time_grace must be a number of seconds, "
            f"0 or more; got {value!r}"
        )
    config.stash[STATE_KEY] = VirtualTime(get_runner(config), default=default, grace=grace)


class VirtualTime:
    """The session's settings, the test about to begin virtual time, and its period."""

    def __init__(self, runner: SessionRunner, *, default: bool, grace: float) -> None:
        """Nothing is virtual yet."""
        self.runner = runner
        self.default = default
        self.grace = grace
        #: The test whose set-up chose virtual time, until its period begins.
        self.armed: pytest.Item | None = None
        #: The stretch of virtual time running now, if any.
        self.period: Period | None = None

    def begin(self) -> None:
        """Make the loop's clock virtual for the armed test, until its function scope ends."""
        item, self.armed = self.armed, None
        if item is None:
            return
        # Imported by the first period: a session without virtual time never needs it.
        from pytest_oneloop._vclock import Period

        period = self.period = Period(item, self.runner, self.grace)
        item.addfinalizer(lambda: self.end(period))

    def end(self, period: Period) -> None:
        """Give the loop its real clock back, from where the period left it."""
        if self.period is period:
            self.period = None
        period.stop()


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Decide whether `item` runs under virtual time, and whether its loop allows it.

    Runs after `_tasks`' set-up (tryfirst), which made the loop.
    """
    state = get_state(item.config)
    state.armed = None
    if not _wanted(item, default=state.default):
        return
    loop = state.runner.loop
    obstacle = _spin.virtual_time_obstacle(loop)
    if obstacle is not None:
        pytest.fail(
            f"oneloop: {item.nodeid} runs under virtual time, but the session loop cannot "
            f"be made virtual: {obstacle}. Virtual time needs asyncio's own event loop: run "
            "these tests without --loop-factory / oneloop_loop_factory, or mark them "
            "@pytest.mark.virtual_time(False).",
            pytrace=False,
        )
    state.armed = item


@pytest.hookimpl(tryfirst=True)
def pytest_fixture_setup(
    fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
) -> None:
    """Begin virtual time before the armed test's first function-scoped fixture."""
    state = request.config.stash[STATE_KEY]
    if state.armed is not None and fixturedef.scope == "function":
        state.begin()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    """Begin virtual time before the test, if no fixture began it."""
    state = get_state(item.config)
    if state.armed is not None:
        state.begin()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    """A test whose set-up failed before its period began leaves nothing armed."""
    get_state(item.config).armed = None


def _wanted(item: pytest.Item, *, default: bool) -> bool:
    marker = item.get_closest_marker(MARKER) if MARKER in marker_names(item) else None
    wanted = default if marker is None else _enabled(marker, item)
    # anyio's and trio's tests run on loops of their own.
    return wanted and not is_foreign(item)


def _enabled(marker: pytest.Mark, item: pytest.Item) -> bool:
    """What `@pytest.mark.virtual_time(...)` says, or a failure naming the test."""
    args, kwargs = marker.args, marker.kwargs
    if not args and not kwargs:
        return True
    if len(args) == 1 and not kwargs and isinstance(args[0], bool):
        return args[0]
    given = ", ".join([*map(repr, args), *(f"{key}={value!r}" for key, value in kwargs.items())])
    pytest.fail(
        f"oneloop: @pytest.mark.virtual_time on {item.nodeid} takes one optional "
        f"argument, True or False; got virtual_time({given})",
        pytrace=False,
    )


class Clock:
    """The virtual clock of one test: the value of the `clock` fixture."""

    __slots__ = ("_period",)

    def __init__(self, period: Period) -> None:
        """The clock of `period`'s test."""
        self._period = period

    def time(self) -> float:
        """The loop's time: `asyncio.get_running_loop().time()`."""
        return self._period.loop.time()

    @property
    def jumps(self) -> int:
        """How many times the clock has moved forward since the test's virtual time began."""
        return self._period.jumps

    async def advance(self, seconds: float) -> None:
        """Move the clock `seconds` forward, running everything that falls due on the way.

        It returns once the loop is idle at the new time: every timer due by
        then has fired, and what those timers started has run as far as it
        can without more time passing.
        """
        period = self._period
        if not period.active:
            msg = (
                f"the clock of {period.item.nodeid} was used after that test ended; "
                "request the clock fixture in the test that uses it"
            )
            raise RuntimeError(msg)
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            msg = f"clock.advance() takes a number of seconds; got {seconds!r}"
            raise TypeError(msg)
        if not 0 <= seconds < math.inf:
            msg = f"clock.advance() takes a finite number of seconds, 0 or more; got {seconds!r}"
            raise ValueError(msg)
        if asyncio.get_running_loop() is not period.loop:
            msg = "clock.advance() must be awaited on the session loop, in the test or its fixtures"
            raise RuntimeError(msg)
        if period.advance_to is not None:
            msg = "clock.advance() is already running in another task; await one at a time"
            raise RuntimeError(msg)
        await period.advance(seconds)

    def __repr__(self) -> str:
        """`<Clock time=... jumps=...>`."""
        return f"<Clock time={self.time():g} jumps={self.jumps}>"


@pytest.fixture
def clock(request: pytest.FixtureRequest) -> Clock:
    """The virtual clock of a test under virtual time.

    `clock.time()` is the loop's time, `await clock.advance(seconds)` moves
    it forward and runs what falls due, `clock.jumps` counts its moves. The
    test needs virtual time: `@pytest.mark.virtual_time`, or
    `oneloop_virtual_time = true` / `--virtual-time` for every test.
    """
    period = get_state(request.config).period
    if period is None or period.item is not request.node:
        pytest.fail(
            f"oneloop: {request.node.nodeid} requests the clock fixture, but it does not "
            "run under virtual time. Mark it @pytest.mark.virtual_time, or turn virtual "
            "time on for every test with oneloop_virtual_time = true (ini) or --virtual-time.",
            pytrace=False,
        )
    return Clock(period)


STATE_KEY = pytest.StashKey[VirtualTime]()


def get_state(config: pytest.Config) -> VirtualTime:
    """The session's virtual-time state."""
    return config.stash[STATE_KEY]
