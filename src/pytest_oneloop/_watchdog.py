"""The blocking detector's thread: when the loop stopped answering, and where it was.

A heartbeat is a callback posted to the loop with `call_soon_threadsafe`;
the loop answers it by running it. While the loop runs (`is_running()`),
the thread posts one, waits half the threshold, and posts the next once
it is answered. One left unanswered for the whole threshold starts an
episode: the thread samples the loop thread's stack once, and the episode
lasts until the loop answers (or stops). Time the loop spends stopped,
between pytest's waits on it, never counts.

The two threads need no lock: each field has one writer (the loop's
thread or the watchdog's), but an episode's end, which either may set
first and each sets to a true bound; a read that comes late costs at most
one step of precision. Knows nothing of pytest: `_blocking` says whom to
report against (`watch`) and turns the episodes into reports.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    import asyncio
    from types import CodeType, FrameType

    from pytest_oneloop._runner import SessionRunner


class Frame(NamedTuple):
    """One frame of a stack sample."""

    code: CodeType
    lineno: int | None
    lasti: int
    module: str


class _Beat:
    """One heartbeat, posted to `loop`; `answered` is when the loop ran it."""

    __slots__ = ("answered", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.answered: float | None = None

    def answer(self) -> None:
        self.answered = time.monotonic()


class Episode:
    """The loop, running, owed `beat` from `since`; `frames` is where it was, innermost first."""

    __slots__ = ("beat", "ended", "frames", "since", "subject")

    def __init__(self, subject: object, since: float, beat: _Beat, frames: list[Frame]) -> None:
        """An episode just found, against `subject`."""
        self.subject, self.since, self.beat, self.frames = subject, since, beat, frames
        self.ended: float | None = None

    def end(self, now: float) -> None:
        """The loop answered, or stopped running, by `now`."""
        if self.ended is None:
            answered = self.beat.answered
            self.ended = now if answered is None else answered

    @property
    def duration(self) -> float:
        """How long the loop did not answer (so far, if it has not yet)."""
        end = self.ended if self.ended is not None else self.beat.answered
        return (time.monotonic() if end is None else end) - self.since


class Watchdog:
    """The thread that checks the heartbeat; it parks while nothing is watched."""

    def __init__(self, threshold: float, runner: SessionRunner) -> None:
        """Nothing runs until `watch` is first given a subject."""
        self.threshold = threshold
        self._runner = runner
        self._loop_thread = threading.get_ident()
        # Written by the loop's thread:
        self._subject: object = None
        self._phase = 0  # one more at each change of subject
        #: The episodes found, appended by the watchdog, taken by `take`.
        self.episodes: list[Episode] = []
        # Written by the watchdog:
        self._beat: _Beat | None = None
        self._counting: tuple[int, float] | None = None  # (phase, since) of the unanswered beat
        self._open: Episode | None = None
        self._awake = threading.Event()  # clear: the thread may park
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self, subject: object) -> None:
        """Report blocking against `subject` from now on (None: nothing; the thread parks)."""
        if subject is self._subject:
            return
        self._subject = subject
        self._phase += 1  # pytest changes subjects between its waits on the loop
        opened = self._open
        if opened is not None:
            opened.end(time.monotonic())
        if subject is not None and not self._awake.is_set():
            self._awake.set()
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="oneloop-blocking", daemon=True
                )
                self._thread.start()

    def take(self) -> list[Episode]:
        """The episodes found so far, now forgotten here."""
        count = len(self.episodes)  # one appended meanwhile stays for the next call
        taken = self.episodes[:count]
        del self.episodes[:count]
        return taken

    def stop(self) -> None:
        """End the thread, at the end of the session."""
        self._stop.set()
        self._awake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        """Check every half threshold; park once nothing has been watched for a whole step.

        Not at once: between two tests nothing is watched for a moment, and
        waking a parked thread for the next test (an event set, the GIL
        handed over) cost more than the checks themselves, about 3 % of the
        benchmark suite's wall time (`bench/overhead.py`).
        """
        step = self.threshold / 2
        idle = False
        while not self._stop.is_set():
            if self._subject is not None:
                idle = False
                self._check(time.monotonic())
            elif idle:
                self._awake.clear()
                if self._subject is None:  # checked after clear(): a watch() since wakes it
                    self._awake.wait()
                idle = False
                continue
            else:
                idle = True
            self._stop.wait(step)

    def _check(self, now: float) -> None:
        opened, beat, loop = self._open, self._beat, self._runner.made_loop
        if opened is not None and (opened.ended is not None or opened.beat.answered is not None):
            opened.end(now)
            self._open = opened = None
        if loop is None or not loop.is_running():
            self._counting = None
            if opened is not None:
                opened.end(now)
                self._open = None
        elif beat is None or beat.answered is not None or beat.loop is not loop:
            self._beat = beat = _Beat(loop)
            self._counting = (self._phase, now)
            try:
                loop.call_soon_threadsafe(beat.answer)
            except RuntimeError:  # closed meanwhile: nothing will answer
                self._beat = None
        elif self._counting is None or self._counting[0] != self._phase:
            self._counting = (self._phase, now)
        elif opened is None and now - self._counting[1] >= self.threshold:
            self._begin(self._counting[1], beat)

    def _begin(self, since: float, beat: _Beat) -> None:
        subject = self._subject
        if subject is None:
            return
        # A documented function of sys: the one way to see another thread's stack.
        frame: FrameType | None = sys._current_frames().get(self._loop_thread)  # noqa: SLF001
        frames = []
        while frame is not None:
            module = str(frame.f_globals.get("__name__", ""))
            frames.append(Frame(frame.f_code, frame.f_lineno, frame.f_lasti, module))
            frame = frame.f_back
        self._open = Episode(subject, since, beat, frames)
        self.episodes.append(self._open)
