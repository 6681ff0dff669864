"""Find the line that blocked the event loop (`oneloop_blocking`, `--blocking`).

While a test's setup, call or teardown runs, the `_watchdog` thread checks
that the session loop answers its heartbeat within the threshold, and
samples the stack where it was stuck when it does not. Each test gets one
report of its episodes (a `BlockingWarning`, or a failure in error mode);
what the setup of a fixture wider than a function blocked is reported
against that fixture. Nothing is patched, so any blocking call is found,
C or Python, on any loop (uvloop included).

The state is a `BlockingWatch` on `config.stash`, registered as a plugin
only when the option is set: off, the detector costs nothing and starts no
thread.
"""

from __future__ import annotations

import ast
import asyncio
import functools
import inspect
import linecache
import os
import sysconfig
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import pluggy
import pytest

from pytest_oneloop._markers import marker_names
from pytest_oneloop._runner import get_runner
from pytest_oneloop._warnings import BlockingWarning
from pytest_oneloop._watchdog import Episode, Frame, Watchdog

if TYPE_CHECKING:
    from collections.abc import Generator
    from types import CodeType

_IMPORTING = ("<frozen importlib._bootstrap>", "<frozen importlib._bootstrap_external>")
MARKER = "allow_blocking"
MODES = ("warn", "error")
SHOWN = 3  # episodes shown per report, the longest first
DEPTH = 10  # frames shown per episode


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register `oneloop_blocking`, `--blocking` and `oneloop_blocking_mode`."""
    parser.addini(
        "oneloop_blocking",
        "Report code that holds the event loop longer than this many seconds; 0: off.",
        default="",
    )
    parser.addini(
        "oneloop_blocking_mode", "Blocking the event loop: warn (default) or error.", default="warn"
    )
    parser.getgroup("oneloop").addoption(
        "--blocking",
        dest="oneloop_blocking",
        metavar="SECONDS",
        default=None,
        help="Report code that holds the event loop longer than SECONDS; 0: off "
        "(ini: oneloop_blocking).",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Declare the marker, check the options, and watch the loop if asked to."""
    config.addinivalue_line(
        "markers", f"{MARKER}: do not report this test for blocking the event loop."
    )
    mode = str(config.getini("oneloop_blocking_mode")).strip() or "warn"
    if mode not in MODES:
        raise pytest.UsageError(
            f"oneloop: oneloop_blocking_mode must be one of warn, error; got {mode!r}"
        )
    value, where = config.getoption("oneloop_blocking"), "--blocking"
    if value is None:
        value, where = config.getini("oneloop_blocking"), "oneloop_blocking"
    try:
        threshold = float(str(value).strip() or 0)
    except ValueError:
        threshold = -1.0
    if not 0 <= threshold < float("inf"):
        raise pytest.UsageError(
            f"oneloop: {where} must be a number of seconds (0: off), got {value!r}"
        )
    if threshold:
        watch = config.stash[BLOCKING_KEY] = BlockingWatch(config, threshold, mode)
        config.pluginmanager.register(watch, "oneloop-blocking")
        if mode == "error":
            config.pluginmanager.register(FailingPhases(watch), "oneloop-blocking-error")


class BlockingWatch:
    """The detector of one session: its watchdog, and the hooks that aim and report it."""

    def __init__(self, config: pytest.Config, threshold: float, mode: str) -> None:
        """Only configuration for now; the thread starts with the first test."""
        self.threshold, self.mode, self.root = threshold, mode, config.rootpath
        self.watchdog = Watchdog(threshold, get_runner(config))
        self._test: pytest.Item | None = None  # the test being run, unless exempt

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        """Report what blocks the loop from now on against `item`, unless it is exempt."""
        self._test = None if MARKER in marker_names(item) else item
        self.watchdog.watch(self._test)

    @pytest.hookimpl(tryfirst=True)
    def pytest_fixture_setup(self, fixturedef: pytest.FixtureDef[Any]) -> None:
        """Report what the setup of a fixture wider than a function blocks against it."""
        self.watchdog.watch(self._test if fixturedef.scope == "function" else fixturedef)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_call(self) -> None:
        """The test itself: reported against the test again, after its fixtures."""
        self.watchdog.watch(self._test)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_teardown(self) -> Generator[None, None, None]:
        """After the fixtures' teardown, report the test and the fixtures it set up."""
        self.watchdog.watch(self._test)
        try:
            return (yield from self.reporting(stop=True))
        finally:
            self._test = None

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self) -> None:
        """End the watchdog thread before the runner closes the loop."""
        self.watchdog.stop()

    def reporting(self, *, stop: bool) -> Generator[None, None, None]:
        """Run a phase of the test, then report what blocked the loop since the last report.

        A warning each, or a failure of the phase in error mode (or when
        `-W error` says so); when the phase failed already, the reports are
        added to its error as notes.
        """
        try:
            yield
        except BaseException as exc:
            for report in self._reports(stop=stop):
                if not self._warned(report):
                    exc.add_note(report.message)
            raise
        failures = [
            report.message for report in self._reports(stop=stop) if not self._warned(report)
        ]
        if failures:
            pytest.fail("\n".join(failures), pytrace=False)

    def _warned(self, report: _Report) -> bool:
        """Warn, unless in error mode or a warning filter makes the warning an error."""
        if self.mode == "error":
            return False
        try:
            warnings.warn_explicit(
                BlockingWarning(report.message), BlockingWarning, report.path, report.lineno
            )
        except BlockingWarning:
            return False
        return True

    def _reports(self, *, stop: bool) -> list[_Report]:
        """One report per test or fixture that blocked the loop, the test last."""
        if stop:
            self.watchdog.watch(None)
        if not self.watchdog.episodes:
            return []
        found: dict[object, list[Episode]] = {}
        for episode in self.watchdog.take():
            # An import blocks once per session and has no async form: not reported.
            if not any(frame.code.co_filename in _IMPORTING for frame in episode.frames):
                found.setdefault(episode.subject, []).append(episode)
        ordered = sorted(found.items(), key=lambda pair: isinstance(pair[0], pytest.Item))
        return [self._describe(subject, episodes) for subject, episodes in ordered]

    def _describe(self, subject: object, episodes: list[Episode]) -> _Report:
        if isinstance(subject, pytest.FixtureDef):
            label = f"fixture {subject.argname!r} ({subject.scope} scope)"
            code = getattr(inspect.unwrap(subject.func), "__code__", None)
            path, lineno = (code.co_filename, code.co_firstlineno) if code else ("", 0)
            exempt = ""
        else:
            item: pytest.Item = subject  # type: ignore[assignment]  # the other kind of subject
            label, path, lineno = item.nodeid, str(item.path), (item.location[1] or 0) + 1
            exempt = f", or mark the test @pytest.mark.{MARKER}"
        longest = sorted(episodes, key=lambda episode: episode.duration, reverse=True)[:SHOWN]
        stacks = [self._stack(episode.frames) for episode in longest]
        times = "once" if len(episodes) == 1 else f"{len(episodes)} times"
        head = f"blocked the event loop {times}, longest {longest[0].duration:.2f} s"
        lines = [f"oneloop: {label} {head}, at {stacks[0][0]}"]
        for episode, stack in zip(longest, stacks, strict=True):
            lines.append(f"  {episode.duration:.2f} s, innermost frame first:")
            lines.extend(f"    {line}" for line in stack)
        lines.append(
            f"The loop could run nothing else for over {self.threshold:g} s (oneloop_blocking) "
            "each time. Use an async version of the call, run it in a thread with "
            f"asyncio.to_thread(){exempt}."
        )
        return _Report("\n".join(lines), path, lineno)

    def _stack(self, frames: list[Frame]) -> list[str]:
        """The frames the loop was running, innermost first: the user's own, if any."""
        kinds = [self._kind(frame.code.co_filename) for frame in frames]
        start = next((i for i, kind in enumerate(kinds) if kind != "machinery"), len(kinds))
        end = next((i for i in range(start, len(kinds)) if kinds[i] == "machinery"), len(kinds))
        ran = list(range(start, end))
        shown = [i for i in ran if kinds[i] == "user"] or ran
        if not shown:
            return ["(no Python frames but those of asyncio and pytest)"]
        lines = []
        for i in shown[:DEPTH]:
            frame = frames[i]
            where = self._show(frame.code.co_filename)
            lines.append(f"{where}:{frame.lineno} in {frame.code.co_name}")
        inner = frames[shown[0]]
        call = _call_name(inner.code, inner.lasti)
        if call is None and shown[0] > start:
            callee = frames[shown[0] - 1]
            call = f"{callee.module}.{callee.code.co_qualname}"
        if call:
            lines[0] += f" -> {call}"
        return lines

    def _kind(self, path: str) -> str:
        machinery, libraries = self._places
        if path.startswith(machinery):
            return "machinery"
        return "library" if path.startswith(libraries) else "user"

    @functools.cached_property
    def _places(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Where the code running the loop and the tests lives, and the libraries (lazy: costly)."""
        here = Path(__file__).parent
        dirs = [here, Path(inspect.getfile(pytest.Item)).parent]
        dirs += [Path(inspect.getfile(module)).parent for module in (asyncio, pytest, pluggy)]
        names = ("stdlib", "platstdlib", "purelib", "platlib")
        libraries = [f"{path}{os.sep}" for path in {sysconfig.get_path(name) for name in names}]
        return tuple(f"{path}{os.sep}" for path in dirs), (*libraries, "<")

    def _show(self, path: str) -> str:
        inside = path.startswith(f"{self.root}{os.sep}")
        return Path(path).relative_to(self.root).as_posix() if inside else path


class FailingPhases:
    """Error mode: the setup or the call that blocked the loop fails, naming the culprit.

    Registered beside the `BlockingWatch` in error mode only (its teardown
    fails in that mode too); warn mode reports each test once, at teardown.
    """

    def __init__(self, watch: BlockingWatch) -> None:
        """Report through `watch`."""
        self.watch = watch

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_setup(self) -> Generator[None, None, None]:
        """Fail the setup that blocked the loop."""
        return (yield from self.watch.reporting(stop=False))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self) -> Generator[None, None, None]:
        """Fail the test that blocked the loop."""
        return (yield from self.watch.reporting(stop=False))


class _Report(NamedTuple):
    message: str
    path: str  # where the warning points: the test's or the fixture's own line
    lineno: int


def _call_name(code: CodeType, lasti: int) -> str | None:
    """What the frame was calling, as the source spells it (`requests.post`), if a call."""
    positions = list(code.co_positions())
    if not 0 <= lasti // 2 < len(positions):
        return None
    first, last, start, end = positions[lasti // 2]
    lines = linecache.getlines(code.co_filename)
    if first is None or last is None or start is None or end is None or last > len(lines):
        return None
    # Columns count bytes of the UTF-8 source.
    raw = [line.encode() for line in lines[first - 1 : last]]
    if len(raw) == 1:
        text = raw[0][start:end]
    else:
        text = raw[0][start:] + b"".join(raw[1:-1]) + raw[-1][:end]
    try:
        node = ast.parse(b"(\n" + text + b"\n)", mode="eval").body
    except (SyntaxError, ValueError):
        return None
    return ast.unparse(node.func) if isinstance(node, ast.Call) else None


BLOCKING_KEY = pytest.StashKey[BlockingWatch]()
