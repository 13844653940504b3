"""Replaying a recording as a session on a clock that plays, pauses, changes speed and seeks
(`loopscope.sources.replay` reads it as a plain source).

A replay shows at time t exactly what the live session showed at t: the events loopscope had
received by t (a recording stamps each with its arrival time), and the snapshot taken at t.
"""

from __future__ import annotations

import bisect
import copy
import threading
import time
from collections.abc import Callable

from loopscope.model import Model
from loopscope.record.reader import Recording
from loopscope.rules import evaluate
from loopscope.session import Session, View
from loopscope.sources.replay import ReplaySource

SPEEDS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
CHECKPOINT_S = 300.0  # recorded seconds between copies of the model kept for seeking back
# Task lists are the costliest events to decode and only the latest ones show: a jump forward
# decodes just those of the last TASK_LIST_S before the new time (the ended-tasks list then
# starts there).
TASK_LIST_S = 30.0


def replay_all(recording: Recording) -> View:
    """The view at the end of the recording: what the live session showed last."""
    end = recording.info.end
    session = Session(ReplaySource(recording), clock=lambda: end)
    session.feed_all()
    return session.view()


class ReplayClock:
    """The replay's position in recorded time: plays at ``speed``, pauses, seeks; thread-safe.

    It stops at the end of the recording, and never leaves [start, end].
    """

    def __init__(
        self,
        start: float,
        end: float,
        *,
        playing: bool = True,
        speed: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.start = start
        self.end = max(start, end)
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._position = start  # recorded time at _since
        self._since = monotonic()
        self._playing = playing
        self._speed = speed

    def now(self) -> float:
        with self._lock:
            return self._now()

    def _now(self) -> float:
        if not self._playing:
            return self._position
        t = self._position + (self._monotonic() - self._since) * self._speed
        if t >= self.end:
            self._position, self._since, self._playing = self.end, self._monotonic(), False
            return self.end
        return t

    def _rebase(self, position: float) -> None:
        self._position = min(self.end, max(self.start, position))
        self._since = self._monotonic()

    @property
    def playing(self) -> bool:
        with self._lock:
            self._now()
            return self._playing

    @property
    def speed(self) -> float:
        return self._speed

    def toggle(self) -> None:
        """Pause, or play (from the start again when at the end)."""
        with self._lock:
            t = self._now()
            if not self._playing and t >= self.end:
                t = self.start
            self._rebase(t)
            self._playing = not self._playing

    def set_playing(self, playing: bool) -> None:
        with self._lock:
            self._rebase(self._now())
            self._playing = playing

    def faster(self) -> None:
        self._set_speed(+1)

    def slower(self) -> None:
        self._set_speed(-1)

    def _set_speed(self, step: int) -> None:
        with self._lock:
            self._rebase(self._now())
            i = min(range(len(SPEEDS)), key=lambda i: abs(SPEEDS[i] - self._speed))
            self._speed = SPEEDS[min(len(SPEEDS) - 1, max(0, i + step))]

    def seek(self, t: float) -> None:
        """Go to recorded time ``t`` (clamped to the recording)."""
        with self._lock:
            self._now()
            self._rebase(t)

    def step(self, seconds: float) -> None:
        """Move by ``seconds`` of recorded time (negative: back)."""
        with self._lock:
            self._rebase(self._now() + seconds)


class ReplaySession:
    """A recording seen through a `ReplayClock`: ``view()`` is what the live session showed at
    the clock's time.

    Seeking back restores the latest checkpoint before the new time (a copy of the model taken
    every ``checkpoint_s`` of recorded time on the way forward) and replays from there.
    """

    def __init__(
        self,
        recording: Recording,
        clock: ReplayClock | None = None,
        *,
        checkpoint_s: float = CHECKPOINT_S,
    ) -> None:
        info = recording.info
        self.recording = recording
        self.clock = clock or ReplayClock(info.start, info.end)
        self._checkpoint_s = checkpoint_s
        self._lock = threading.Lock()
        self._model = Model()
        self._after = 0  # the last sequence number applied
        self._t = info.start  # the time the model is at
        # (arrival time of the last event applied, its sequence number, the model then)
        self._checkpoints: list[tuple[float, int, Model]] = []

    def view(self) -> View:
        """The view at the clock's time; safe to call from any thread."""
        t = self.clock.now()
        with self._lock:
            if t < self._t:
                self._restore(t)
            skip = {"task_list": t - TASK_LIST_S}
            for row in self.recording.rows(after=self._after, until=t, skip=skip):
                self._model.apply(row.event)
                self._after = row.seq
                last = self._checkpoints[-1][0] if self._checkpoints else self.clock.start
                if row.ts >= last + self._checkpoint_s:
                    self._checkpoints.append((row.ts, row.seq, copy.deepcopy(self._model)))
            self._t = t
            snapshot = self._model.snapshot(t)
        return View(snapshot=snapshot, findings=evaluate(snapshot))

    def _restore(self, t: float) -> None:
        i = bisect.bisect_right(self._checkpoints, t, key=lambda c: c[0])
        if i == 0:
            self._model, self._after = Model(), 0
        else:
            _, self._after, model = self._checkpoints[i - 1]
            self._model = copy.deepcopy(model)

    @property
    def ended(self) -> bool:
        return not self.clock.playing and self.clock.now() >= self.clock.end

    def close(self) -> None:
        self.recording.close()
