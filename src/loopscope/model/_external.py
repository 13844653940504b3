"""The loop thread sampled from outside the process (py-spy, or the target's own interpreter,
``remote_stacks``): busy share, hot frames, and the stacks of blocks the agent could not sample,
or sampled less often than the outside sampler did.

The agent's watchdog samples the loop thread from inside, so it cannot take a sample while a C
call holds the GIL: it reports such a block with no sample, or with the one it took when the
call returned (its thread got the GIL back), wherever the loop thread was then. Its samples are
otherwise a few milliseconds apart, so a block with far fewer is one in which the GIL was held.
py-spy reads the process's memory and sees the Python frame that made the call, and whether the
thread ran and held the GIL. Both clocks are the host's wall clock
(``time.time()``), so a block is matched with the samples taken inside its time span on the
loop's thread. A block the agent sent before py-spy's samples of its span arrived is held back
until they arrive, or for `HOLD_SECONDS` at most.

A dense sampler (`DENSE_SOURCES`: ``remote_stacks`` reads every millisecond while a callback
holds the loop) usually takes more samples of a block than the watchdog, which must wait for the
GIL: while one is live every block waits for its samples, and the samples of whichever took more
locate it. A sample whose thread is 0 is of the main thread, whose Python ident the sampler
could not read: it goes with the loops that run on the main thread.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

from loopscope.codemap import APP, FRAMEWORK, LIBRARY, CodeMap
from loopscope.events import Block, ExternalSamples, Frame, Stack
from loopscope.model._blocks import Outside, sparse, starved
from loopscope.model.snapshot import ExternalView, SampledFrame

# How long a block without samples waits for py-spy's samples of its span; py-spy sends a
# window of samples every second, so this covers a window and a slow dump or two.
HOLD_SECONDS = 2.5
# The share of py-spy's samples of such a block with the thread on CPU holding the GIL from
# which its cause is "gil": C code that does not release it.
GIL_HELD = 0.5
# Samplers that sample blocks more densely than the agent's watchdog can.
DENSE_SOURCES = frozenset({"remote_stacks"})
# Code of the program and its packages (not only the standard library's).
_PROGRAM = (APP, LIBRARY, FRAMEWORK)
KEEP_SECONDS = 30.0  # samples kept for matching with blocks that arrive late
_MAX_SAMPLES = 20_000
_MAX_HOT = 50
_MAX_TRACKED = 500
_MAX_HELD = 1000


@dataclass(frozen=True, slots=True)
class _Sample:
    t: float
    thread_id: int
    frames: tuple[Frame, ...]  # the running callback's frames; () for none
    state: str  # as ExternalSamples.states


@dataclass
class _Hot:
    file: str
    function: str
    lines: Counter[int] = field(default_factory=Counter)
    samples: int = 0
    on_cpu: int = 0
    stack: tuple[Frame, ...] = ()


class ExternalState:
    def __init__(self, series_seconds: float, recent_seconds: float) -> None:
        self._series_seconds = series_seconds
        self._recent_seconds = recent_seconds
        self._threads: dict[int, int] = {}  # loop id -> its thread's ident
        self._main_loops: set[int] = set()  # loops running on the main thread
        self._samples: deque[_Sample] = deque(maxlen=_MAX_SAMPLES)
        self._held: list[Block] = []
        self._latest: float | None = None  # time of the newest sample
        self._source = ""
        self._native = False
        self._count = 0
        self._busy_samples = 0
        # (t, samples, busy, on CPU in a callback or -1 when unknown) per window
        self._windows: deque[tuple[float, int, int, int]] = deque(maxlen=_MAX_SAMPLES)
        self._hot: dict[tuple[str, str], _Hot] = {}
        self._attributed = 0
        self._sampled: set[int] = set()  # threads sampled
        self._sampling: set[str] = set()  # the outside samplers that are live
        self._code = CodeMap()

    def loop_started(self, loop: int, thread_id: int, *, main: bool = False) -> None:
        self._threads[loop] = thread_id
        if main:
            self._main_loops.add(loop)
        else:
            self._main_loops.discard(loop)

    def sampler(self, live: bool, source: str = "py-spy") -> list[tuple[Block, Outside | None]]:
        """``source`` is sampling (its samples are worth waiting for), or no longer: then, when
        no sampler is left, the held blocks, with what samples there are."""
        if live:
            self._sampling.add(source)
            return []
        self._sampling.discard(source)
        if self._sampling:
            return []
        held, self._held = self._held, []
        return [(b, self._stacks_of(b)) for b in held]

    def release(self) -> list[tuple[Block, Outside | None]]:
        """The stream has ended: no sample is coming any more, so every held block, with what
        samples there are."""
        self._sampling.clear()
        held, self._held = self._held, []
        return [(b, self._stacks_of(b)) for b in held]

    def samples(self, event: ExternalSamples, code: CodeMap) -> list[tuple[Block, Outside | None]]:
        """Take a window of samples; the held blocks it completes, with their stacks."""
        self._code = code
        self._source = event.source
        self._sampled.add(event.thread_id)
        self._native = self._native or event.native
        start = event.t - event.window
        busy = on_cpu = known = n = 0
        for offset, which, state in zip(event.offsets_ms, event.which, event.states, strict=False):
            frames = event.stacks[which].frames if 0 <= which < len(event.stacks) else ()
            t = start + offset / 1000
            self._samples.append(_Sample(t, event.thread_id, frames, state))
            n += 1
            if state != "i":
                busy += 1
            if state == "c" and frames:
                on_cpu += 1
            known += state in "cw"
            if frames and state != "i":
                self._add_hot(frames, state == "c", code)
        self._count += n
        self._busy_samples += busy
        if n:
            self._windows.append((event.t, n, busy, on_cpu if known else -1))
        if self._latest is None or event.t > self._latest:
            self._latest = event.t
        horizon = self._latest - KEEP_SECONDS
        while self._samples and self._samples[0].t < horizon:
            self._samples.popleft()
        horizon = self._latest - self._series_seconds
        while self._windows and self._windows[0][0] < horizon:
            self._windows.popleft()
        ready = [b for b in self._held if b.t + b.duration <= self._latest]
        self._held = [b for b in self._held if b.t + b.duration > self._latest]
        return [(b, self._stacks_of(b)) for b in ready]

    def block(self, block: Block) -> list[tuple[Block, Outside | None]]:
        """The blocks to add now, each with the outside stacks that locate it: ``block`` itself,
        or nothing while it waits for samples of its span."""
        # (py-spy's own blocks, without an agent, carry its thread's id as their loop)
        if block.loop in self._sampled or not (sparse(block) or self._dense()):
            return [(block, None)]
        if self._latest is None and not self._sampling:
            return [(block, None)]
        end = block.t + block.duration
        if self._latest is not None and self._latest >= end:
            return [(block, self._stacks_of(block))]
        if not self._sampling or len(self._held) >= _MAX_HELD:
            return [(block, None)]  # py-spy has stopped sending samples
        self._held.append(block)
        return []

    def expire(self, now: float) -> list[tuple[Block, Outside | None]]:
        """Held blocks whose samples did not come in time: added with what there is."""
        if not self._held:
            return []
        late = [b for b in self._held if b.t + b.duration + HOLD_SECONDS < now]
        if not late:
            return []
        self._held = [b for b in self._held if b.t + b.duration + HOLD_SECONDS >= now]
        return [(b, self._stacks_of(b)) for b in late]

    def _dense(self) -> bool:
        return not self._sampling.isdisjoint(DENSE_SOURCES)

    def _stacks_of(self, block: Block) -> Outside | None:
        """The outside samples of the loop's thread in the block's span, if there are any and
        the agent could hardly sample it, or took fewer."""
        thread = self._threads.get(block.loop)
        main = block.loop in self._main_loops
        end = block.t + block.duration
        counts: Counter[tuple[Frame, ...]] = Counter()
        on_cpu = known = 0
        for s in self._samples:
            if (
                block.t <= s.t <= end
                and s.frames
                and s.state != "i"
                and (thread is None or s.thread_id == thread or (main and s.thread_id == 0))
                # (a stack only in the standard library names no code of the program's)
                and any(self._code.kind(f.file) in _PROGRAM for f in s.frames)
            ):
                counts[s.frames] += 1
                on_cpu += s.state == "c"
                known += s.state in "cw"
        total = sum(counts.values())
        hungry = starved(block)
        if not counts or (not hungry and total <= block.samples):
            return None
        self._attributed += 1
        # Without the thread's CPU state (py-spy record), the starved watchdog says it: the
        # thread held the GIL while py-spy saw it in this code. A watchdog that sampled well
        # saw the GIL change hands: the agent's block tells the cause.
        gil = hungry and (on_cpu / known >= GIL_HELD if known else True)
        cause = "gil" if gil else None
        if block.samples == 0 and not hungry and known and on_cpu / known >= GIL_HELD:
            # No look was due in the block, so the agent knows nothing of its CPU time: the
            # samples' states say the thread was on CPU.
            cause = "cpu"
        return Outside(
            tuple(Stack(k, frames) for frames, k in counts.most_common()), cause, samples=total
        )

    def _add_hot(self, frames: tuple[Frame, ...], on_cpu: bool, code: CodeMap) -> None:
        where = code.locate(frames)
        if where is None:
            return
        key = (where.file, where.function)
        hot = self._hot.get(key)
        if hot is None:
            if len(self._hot) >= _MAX_TRACKED:
                smallest = min(self._hot, key=lambda k: self._hot[k].samples)
                del self._hot[smallest]
            hot = self._hot[key] = _Hot(where.file, where.function, stack=frames)
        hot.lines[where.line] += 1
        hot.samples += 1
        hot.on_cpu += on_cpu

    def _series(self) -> tuple[tuple[float, float], ...]:
        """The busy share per second: a window of a few samples says little on its own."""
        seconds: dict[int, list[int]] = {}
        for t, n, busy, _ in self._windows:
            sums = seconds.setdefault(int(t), [0, 0])
            sums[0] += n
            sums[1] += busy
        return tuple((s + 1.0, busy / n) for s, (n, busy) in sorted(seconds.items()))

    def view(self, now: float) -> ExternalView | None:
        if not self._source:
            return None
        recent = [w for w in self._windows if now - self._recent_seconds < w[0] <= now]
        n = sum(w[1] for w in recent)
        timed = [w for w in recent if w[3] >= 0]  # windows that tell the thread's CPU state
        hot = sorted(self._hot.values(), key=lambda h: (-h.samples, h.file, h.function))
        return ExternalView(
            source=self._source,
            samples=self._count,
            native=self._native,
            busy=sum(w[2] for w in recent) / n if n else None,
            on_cpu=sum(w[3] for w in timed) / sum(w[1] for w in timed) if timed else None,
            series=self._series(),
            hot=tuple(
                SampledFrame(
                    file=h.file,
                    line=h.lines.most_common(1)[0][0],
                    function=h.function,
                    samples=h.samples,
                    share=h.samples / self._busy_samples if self._busy_samples else 0.0,
                    on_cpu=h.on_cpu / h.samples,
                    stack=h.stack,
                )
                for h in hot[:_MAX_HOT]
            ),
            attributed=self._attributed,
        )
