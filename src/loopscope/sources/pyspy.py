"""Blocks seen from outside the target: repeated ``py-spy dump`` of the loop thread.

No agent is needed: py-spy reads the target's memory (it needs ptrace rights). ``py-spy record``
writes nothing until it ends, so the source runs ``py-spy dump --json --nonblocking`` at a steady
rate instead (about 11 ms of py-spy's own time each). ``dump`` shows every thread, idle or not,
with flags that tell whether it is running and holds the GIL, so a loop stuck in
``time.sleep`` is seen too, and told apart from one that computes.

A run of consecutive samples in which the loop thread is inside the same callback (not waiting
in the selector) becomes one `Block`: its duration is estimated from the sample times (half way
to the samples on either side), its stacks are the callback's frames, and its CPU time is the
duration times the share of its samples in which the thread ran and held the GIL. The model
then names the blocking function and its cause as it does for the agent's blocks.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loopscope.attach._proc import exists as process_exists
from loopscope.codemap import APP, FRAMEWORK, LIBRARY, CodeMap
from loopscope.events import (
    Block,
    Event,
    ExternalSamples,
    Frame,
    Notice,
    SourceState,
    Stack,
)

SOURCE_NAME = "py-spy"
# Seconds between samples: 50 Hz. Without the agent the samples are repeated `py-spy dump`s,
# which tell whether the thread is on CPU, but cost py-spy about 10 ms of CPU each (half a core
# at 50 Hz); they are the only way to find blocks there, which takes two samples per block.
# Beside the agent, one `py-spy record` per window samples at this rate for a few percent of a
# core (benchmarks/pyspy_cost.py).
DEFAULT_INTERVAL = 0.02
OUTSIDE_INTERVAL = DEFAULT_INTERVAL
DEFAULT_THRESHOLD = 0.02  # blocks shorter than this are not reported (as the agent's default)
# With --native py-spy stops the process for each dump (~10-20 ms): at 10 Hz that stalls the
# loop for 10-20% of the time, so it is for a short look, not for watching a service.
NATIVE_INTERVAL = 0.1
# Seconds of samples per ExternalSamples event: a stack seen again in the same window is sent
# once, which keeps recordings small (the model needs them within HOLD_SECONDS).
DEFAULT_WINDOW = 1.0
MAX_DEPTH = 48  # frames kept of a callback's stack, innermost first
_MAX_WINDOW_STACKS = 50
_DUMP_TIMEOUT = 5.0
_MAX_FAILURES = 50  # consecutive failed dumps of a live process before the source gives up
# Failed dumps before a first good one that make it give up: on a busy target a dump fails now
# and then (see below), so one failure is not enough to say that py-spy cannot be used.
_FIRST_TRIES = 5
_FIRST_SECONDS = 3.0  # ... and for this long, unless the error says it is hopeless
_MAX_STACKS = 20  # distinct stacks sent per block
_MAX_TRACKED_STACKS = 1000  # distinct stacks counted per block
_MAX_DETAIL = 300
_NO_LOOP_SAMPLES = 50  # consecutive samples without a loop thread before the source says so

# The event loop's own frames, below which a callback runs: Handle._run calls the callback,
# and with a loop written in C (uvloop) the first Python frames below are asyncio's run calls.
_DISPATCH = frozenset({"_run", "_run_once", "run_forever", "run_until_complete", "run"})


def find_pyspy() -> str | None:
    """The py-spy binary: the one ``LOOPSCOPE_PYSPY`` names, else the one next to this
    interpreter's scripts (installed with loopscope), else the one on PATH."""
    named = os.environ.get("LOOPSCOPE_PYSPY")
    if named:
        return named
    beside = Path(sys.executable).parent / "py-spy"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("py-spy")


@dataclass(frozen=True, slots=True)
class Sample:
    """The loop thread at one moment: ``callback`` is its frames above the loop's dispatch
    (innermost first), empty when the loop waits for events or runs its own code."""

    t: float
    thread_id: int
    callback: tuple[Frame, ...]
    active: bool  # on CPU: running and holding the GIL
    idle: bool = False  # waiting for events (in the selector): the loop is not busy
    native_id: int = 0  # the OS thread id
    cpu_known: bool = True  # False: py-spy did not say whether the thread ran (``record``)

    @property
    def state(self) -> str:
        """As `ExternalSamples.states`: idle, the loop's own work, on CPU, waiting, or in a
        callback whether on CPU or not is unknown."""
        if self.idle:
            return "i"
        if not self.callback:
            return "l"
        if not self.cpu_known:
            return "b"
        return "c" if self.active else "w"


def loop_sample(t: float, threads: Any) -> Sample | None:
    """The loop thread's sample from one ``py-spy dump --json`` (a list of threads): the main
    thread if it runs an event loop, else the first thread that does. None if no thread does."""
    if not isinstance(threads, list):
        return None
    chosen: tuple[dict[str, Any], int] | None = None
    for thread in threads:
        if not isinstance(thread, dict) or not isinstance(thread.get("frames"), list):
            continue
        frames = [f for f in thread["frames"] if isinstance(f, dict)]
        cut = next((i for i, f in enumerate(frames) if _is_dispatch(f)), None)
        if cut is None:
            continue
        if chosen is None or thread.get("os_thread_id") == thread.get("pid"):
            chosen = (thread, cut)
    if chosen is None:
        return None
    thread, cut = chosen
    callback = tuple(
        Frame(str(f.get("filename", "?")), _int(f.get("line")), str(f.get("name", "?")))
        for f in thread["frames"][:cut]
        if isinstance(f, dict)
    )[:MAX_DEPTH]
    # The loop's own work (waiting in the selector, scheduling callbacks) is no block; neither
    # is a callback with no frame outside the standard library, which is asyncio's own or a
    # stack py-spy read while it changed (--nonblocking reads a running process).
    stdlib = str(thread["frames"][cut].get("filename", "")).replace("\\", "/")
    stdlib = stdlib[: stdlib.rindex("/asyncio/") + 1]
    # py-spy's "active" (running, by the OS's thread state and its list of idle functions)
    # is True for a thread in time.sleep on 3.10; holding the GIL tells it apart there.
    on_cpu = bool(thread.get("active")) and bool(thread.get("owns_gil", True))
    python_frames = [f for f in callback if not _native(f)]
    # Waiting in the selector; a loop written in C (uvloop) waits with no Python frame above.
    idle = (bool(python_frames) and _waits_for_events(python_frames[0])) or (
        not python_frames and not on_cpu
    )
    if callback and (idle or not any(_own(f.file, stdlib) for f in python_frames)):
        callback = ()
    return Sample(
        t,
        _int(thread.get("thread_id")),
        callback,
        on_cpu,
        idle=idle,
        native_id=_int(thread.get("os_thread_id")),
    )


def _native(frame: Frame) -> bool:
    """A C frame from ``--native``: py-spy names its shared object, not a Python file."""
    return not frame.file.endswith((".py", ".pyw")) and not frame.file.startswith("<")


def _is_dispatch(frame: dict[str, Any]) -> bool:
    path = str(frame.get("filename", "")).replace("\\", "/")
    name = str(frame.get("name", "")).rsplit(".", 1)[-1]
    return "/asyncio/" in path and name in _DISPATCH


def _own(file: str, stdlib: str) -> bool:
    """Whether ``file`` is the program's or a package's code, not the standard library's."""
    return _code_map(stdlib).kind(file) in (APP, LIBRARY, FRAMEWORK)


@functools.lru_cache(maxsize=8)
def _code_map(stdlib: str) -> CodeMap:
    return CodeMap(stdlib_paths=(stdlib,))


def _waits_for_events(frame: Frame) -> bool:
    return frame.file.replace("\\", "/").endswith("/selectors.py")


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


class BlockFinder:
    """Turns a series of samples into blocks: runs of samples in the same callback."""

    def __init__(self, threshold: float = DEFAULT_THRESHOLD) -> None:
        self.threshold = threshold
        self._previous: Sample | None = None  # the last sample before the current run
        self._run = _Run()

    def add(self, sample: Sample) -> Block | None:
        """The block that ``sample`` ends, if any."""
        run = self._run
        if run.last is not None and _same_callback(run.last, sample):
            run.add(sample)
            return None
        block = self._finish(sample.t)
        if sample.callback:
            self._run.add(sample)
        else:
            self._previous = sample
        return block

    def flush(self) -> Block | None:
        """The block of the run going on, if any (the samples end)."""
        return self._finish(None)

    def _finish(self, next_t: float | None) -> Block | None:
        run, self._run = self._run, _Run()
        previous = self._previous
        if run.last is not None:
            self._previous = run.last
        if run.first is None or run.last is None or run.count < 2:
            return None
        start = (previous.t + run.first.t) / 2 if previous is not None else run.first.t
        end = (run.last.t + next_t) / 2 if next_t is not None else run.last.t
        duration = end - start
        if duration < self.threshold:
            return None
        return Block(
            t=start,
            loop=run.first.thread_id,
            duration=duration,
            task=None,
            cpu=duration * run.on_cpu / run.count,
            samples=run.count,
            stacks=tuple(Stack(n, frames) for frames, n in run.stacks.most_common(_MAX_STACKS)),
            precise=False,
        )


class _Run:
    """Consecutive samples in one callback, summed up as they come (a block can last hours)."""

    def __init__(self) -> None:
        self.first: Sample | None = None
        self.last: Sample | None = None
        self.count = 0
        self.on_cpu = 0
        self.stacks: Counter[tuple[Frame, ...]] = Counter()

    def add(self, sample: Sample) -> None:
        if self.first is None:
            self.first = sample
        self.last = sample
        self.count += 1
        self.on_cpu += sample.active
        if sample.callback in self.stacks or len(self.stacks) < _MAX_TRACKED_STACKS:
            self.stacks[sample.callback] += 1


def _same_callback(a: Sample, b: Sample) -> bool:
    # The outermost frame of the callback (a task's coroutine, at the line it runs) stays the
    # same while one call blocks; another callback or another step of the task changes it.
    return bool(a.callback) and bool(b.callback) and a.callback[-1] == b.callback[-1]


def trace_samples(trace: Any, launched: float, period: float, pid: int) -> Iterator[Sample]:
    """The loop thread's samples, one per ``period`` s, from a ``py-spy record --format
    chrometrace --idle --threads`` trace of process ``pid`` started at wall time ``launched``
    (its times count from there). The trace marks where each thread's stack changes (frames
    begin and end): the stack at any moment is the one last set."""
    if not isinstance(trace, list):
        return
    stacks: dict[int, list[dict[str, Any]]] = {}
    native_ids: dict[int, int] = {}
    changes: list[tuple[int, int, tuple[dict[str, Any], ...]]] = []  # (ts, tid, stack)
    events = sorted(
        (e for e in trace if isinstance(e, dict) and isinstance(e.get("ts"), (int, float))),
        key=lambda e: e["ts"],
    )
    for e in events:
        tid = _int(e.get("tid"))
        name = str(e.get("name", ""))
        raw = e.get("args")
        args: dict[str, Any] = raw if isinstance(raw, dict) else {}
        if name.startswith("thread (") and not args.get("filename"):
            native_ids[tid] = _int(_digits(name[len("thread (") :]))
            continue
        stack = stacks.setdefault(tid, [])
        if e.get("ph") == "B":
            stack.append(
                {"name": name, "filename": args.get("filename", ""), "line": args.get("line", 0)}
            )
        elif e.get("ph") == "E" and stack:
            stack.pop()
        changes.append((int(e["ts"]), tid, tuple(reversed(stack))))
    if not changes:
        return
    current: dict[int, tuple[dict[str, Any], ...]] = {}
    i = 0
    step = max(1, round(period * 1e6))
    for ts in range(changes[0][0], changes[-1][0], step):
        while i < len(changes) and changes[i][0] <= ts:
            _, tid, frames = changes[i]
            current[tid] = frames
            i += 1
        threads = [
            {"thread_id": tid, "os_thread_id": native_ids.get(tid, 0), "pid": pid,
             "active": True, "owns_gil": True, "frames": list(frames_now)}
            for tid, frames_now in current.items()
        ]  # fmt: skip
        sample = loop_sample(launched + ts / 1e6, threads)
        if sample is not None:
            yield dataclasses.replace(sample, cpu_known=False, active=False)


def _digits(text: str) -> int:
    digits = "".join(itertools.takewhile(str.isdigit, text))
    return int(digits) if digits else 0


class SampleWindow:
    """Samples of one thread gathered into `ExternalSamples` events, one per ``window`` s."""

    def __init__(
        self, window: float = DEFAULT_WINDOW, *, native: bool = False, source: str = SOURCE_NAME
    ) -> None:
        self.window = window
        self.native = native
        self.source = source
        self._samples: list[Sample] = []
        self._start: float | None = None

    def add(self, sample: Sample) -> ExternalSamples | None:
        """Add ``sample``; the window it closes, if any. A change of thread closes one too."""
        out = None
        if self._samples and (
            sample.thread_id != self._samples[0].thread_id
            or sample.t - (self._start or sample.t) >= self.window
        ):
            out = self.flush()
        if self._start is None:
            self._start = sample.t
        self._samples.append(sample)
        return out

    def feed(self, samples: Iterable[Sample]) -> Iterator[ExternalSamples]:
        """The windows ``samples`` close, then the one they leave open (a batch read whole)."""
        for sample in samples:
            window = self.add(sample)
            if window is not None:
                yield window
        yield from self.drain()

    def drain(self) -> Iterator[ExternalSamples]:
        """The window open now, if it holds samples."""
        last = self.flush()
        if last is not None:
            yield last

    def flush(self) -> ExternalSamples | None:
        samples, self._samples = self._samples, []
        start, self._start = self._start, None
        if not samples or start is None:
            return None
        index: dict[tuple[Frame, ...], int] = {}
        counts: list[int] = []
        which: list[int] = []
        for s in samples:
            if not s.callback:
                which.append(-1)
                continue
            i = index.get(s.callback)
            if i is None:
                if len(index) >= _MAX_WINDOW_STACKS:
                    which.append(-1)
                    continue
                i = index[s.callback] = len(index)
                counts.append(0)
            counts[i] += 1
            which.append(i)
        end = samples[-1].t
        return ExternalSamples(
            t=end,
            source=self.source,
            thread_id=samples[0].thread_id,
            native_id=samples[0].native_id,
            window=end - start,
            stacks=tuple(Stack(counts[i], frames) for frames, i in index.items()),
            offsets_ms=tuple(round((s.t - start) * 1000) for s in samples),
            which=tuple(which),
            states="".join(s.state for s in samples),
            native=self.native,
        )


class PySpySource:
    """Process ``pid``'s loop thread from ``py-spy dump`` every ``interval`` s: its samples as
    `ExternalSamples` events (one per ``window`` s) and, with ``blocks`` (no agent to report
    them), runs of samples stuck in one callback as `Block` events.

    ``native`` adds C frames (``py-spy dump --native``), which py-spy can read only while it
    stops the process: each dump pauses the target for its duration. Without it, dumps read the
    running process (``--nonblocking``) and the target is never stopped.

    Without a py-spy binary, or when py-spy cannot read the process (no ptrace rights), it
    yields ``SourceState(state="unavailable")`` with the reason, and ends.
    """

    def __init__(
        self,
        pid: int,
        *,
        binary: str | None = None,
        interval: float | None = None,
        threshold: float = DEFAULT_THRESHOLD,
        alive: Callable[[], bool] | None = None,
        blocks: bool = True,
        native: bool = False,
        window: float = DEFAULT_WINDOW,
    ) -> None:
        self.pid = pid
        self.binary = binary if binary is not None else find_pyspy()
        if interval is None:
            interval = NATIVE_INTERVAL if native else DEFAULT_INTERVAL
        self.interval = interval
        self.threshold = threshold
        self.blocks = blocks
        self.native = native
        self.window = window
        self._alive = alive or (lambda: process_exists(pid))
        self._closed = threading.Event()
        self.samples = 0  # dumps that gave a loop thread sample
        self.live = False
        self.reason = ""  # why it could not sample, or stopped, if it did
        # Without blocks to find (beside the agent), one long-lived `py-spy record` per window
        # costs a twentieth of repeated dumps; it does not say whether a thread is on CPU.
        self.record = not blocks and not native

    def events(self) -> Iterator[Event]:
        for event in self._events():
            if isinstance(event, SourceState) and event.state in ("unavailable", "lost"):
                self.reason = event.detail
            yield event

    def _events(self) -> Iterator[Event]:
        if self.binary is None:
            yield self._state(
                "unavailable",
                "py-spy not found beside this Python or on PATH: install it with "
                "'pip install py-spy'",
            )
            return
        if self.record:
            yield from self._record_events()
            return
        finder = BlockFinder(self.threshold) if self.blocks else None
        windows = SampleWindow(self.window, native=self.native)

        def ending() -> Iterator[Event]:
            if finder is not None:
                yield from _some(finder.flush())
            yield from windows.drain()

        failures = 0
        first_try = time.monotonic()
        said_no_loop = False
        loopless = 0
        next_at = time.monotonic()
        while not self._closed.is_set():
            started = time.time()
            ok, result = self._dump()
            # The stack was read some time during the dump: its middle is the best guess.
            t = (started + time.time()) / 2
            if not ok:
                failures += 1
                if not self._alive():
                    yield from ending()
                    yield self._state("ended", "the program exited")
                    return
                # A program that just started has no interpreter for py-spy to find yet; one
                # it may not read, or a py-spy that cannot run, will not change.
                hopeless = "ermission" in result or result.startswith("cannot run")
                if _give_up(self.live, failures, hopeless, first_try):
                    yield from ending()
                    yield self._state("unavailable" if not self.live else "lost", result)
                    return
                # A dump fails now and then when the stack changes while py-spy reads it; that
                # says nothing about a block (whose stack stands still), so it is left out.
            else:
                failures = 0
                if not self.live:
                    self.live = True
                    mode = "--native, stops the program for each dump" if self.native else ""
                    yield self._state(
                        "live",
                        f"dump every {self.interval * 1000:g} ms" + (f" ({mode})" if mode else ""),
                    )
                sample = loop_sample(t, result)
                # (a stack read while it changed can lack the loop's frames: count a few first)
                loopless = 0 if sample is not None else loopless + 1
                if loopless >= _NO_LOOP_SAMPLES and not said_no_loop:
                    said_no_loop = True
                    yield Notice(
                        t=t,
                        level="info",
                        message=f"py-spy sees no thread running an asyncio loop in process "
                        f"{self.pid} (yet)",
                    )
                if sample is not None:
                    self.samples += 1
                    window = windows.add(sample)
                    if window is not None:
                        yield window
                    if finder is not None:
                        yield from _some(finder.add(sample))
            next_at = max(next_at + self.interval, time.monotonic())
            self._closed.wait(max(0.0, next_at - time.monotonic()))
        yield from ending()
        yield self._state("ended", "closed")

    def close(self) -> None:
        self._closed.set()

    def _record_events(self) -> Iterator[Event]:
        """Back-to-back ``py-spy record`` windows, each read whole when it ends."""
        assert self.binary is not None
        rate = max(1, round(1 / self.interval))
        failures = 0
        first_try = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="loopscope-pyspy-") as tmp:
            output = Path(tmp) / "trace.json"
            while not self._closed.is_set():
                launched = time.time()
                ok, result = self._record(output, rate)
                if self._closed.is_set() and not ok:
                    break
                if not ok:
                    failures += 1
                    if not self._alive():
                        yield self._state("ended", "the program exited")
                        return
                    hopeless = "ermission" in result or result.startswith("cannot run")
                    if _give_up(self.live, failures, hopeless, first_try):
                        yield self._state("unavailable" if not self.live else "lost", result)
                        return
                    self._closed.wait(self.interval)
                    continue
                failures = 0
                if not self.live:
                    self.live = True
                    yield self._state("live", f"record, {rate} samples/s")
                windows = SampleWindow(self.window + 1.0)
                samples = list(trace_samples(result, launched, 1 / rate, self.pid))
                self.samples += len(samples)
                yield from windows.feed(samples)
        yield self._state("ended", "closed")

    def _record(self, output: Path, rate: int) -> tuple[bool, Any]:
        """(True, the parsed chrometrace) of one window, or (False, why it failed)."""
        assert self.binary is not None
        command = [
            self.binary, "record", "--nonblocking", "--idle", "--threads", "--full-filenames",
            "--format", "chrometrace", "--rate", str(rate), "--duration", f"{self.window:g}",
            "--pid", str(self.pid), "--output", str(output),
        ]  # fmt: skip
        output.unlink(missing_ok=True)
        try:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                env={**os.environ, "RUST_BACKTRACE": "0"},
            )
        except OSError as e:
            return False, f"cannot run {self.binary}: {e.strerror or e}"
        try:
            deadline = time.monotonic() + self.window + _DUMP_TIMEOUT
            while process.poll() is None:
                if self._closed.is_set():
                    # py-spy writes what it has on SIGINT, as at the end of its duration
                    process.send_signal(signal.SIGINT)
                    process.wait(_DUMP_TIMEOUT)
                    break
                if time.monotonic() > deadline:
                    return False, f"py-spy record did not end within {self.window:g} s"
                self._closed.wait(0.05)
            stderr = process.stderr.read() if process.stderr is not None else ""
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            if process.stderr is not None:
                process.stderr.close()
        if process.returncode not in (0, -signal.SIGINT) or not output.exists():
            return False, _why(stderr, process.returncode or 0)
        try:
            return True, json.loads(output.read_text())
        except ValueError:
            return False, "py-spy wrote a trace that is not JSON"

    def command(self) -> list[str]:
        assert self.binary is not None
        mode = "--native" if self.native else "--nonblocking"
        return [self.binary, "dump", "--json", mode, "--pid", str(self.pid)]

    def _dump(self) -> tuple[bool, Any]:
        """(True, the parsed dump) or (False, why it failed)."""
        try:
            done = subprocess.run(
                self.command(),
                capture_output=True,
                text=True,
                timeout=_DUMP_TIMEOUT,
                env={**os.environ, "RUST_BACKTRACE": "0"},
            )
        except subprocess.TimeoutExpired:
            return False, f"py-spy dump took over {_DUMP_TIMEOUT:g} s"
        except OSError as e:
            return False, f"cannot run {self.binary}: {e.strerror or e}"
        if done.returncode != 0:
            return False, _why(done.stderr, done.returncode)
        try:
            return True, json.loads(done.stdout)
        except ValueError:
            return False, f"py-spy printed something that is not JSON: {done.stdout[:80]!r}"

    def _state(self, state: str, detail: str) -> SourceState:
        return SourceState(t=time.time(), source=SOURCE_NAME, state=state, detail=detail)


def _give_up(live: bool, failures: int, hopeless: bool, first_try: float) -> bool:
    """Whether ``failures`` failed samples in a row mean that py-spy cannot sample."""
    if live:
        return failures >= _MAX_FAILURES
    return hopeless or (failures >= _FIRST_TRIES and time.monotonic() - first_try > _FIRST_SECONDS)


def _why(stderr: str, code: int) -> str:
    """py-spy's error, in one line, with what to do about a permission problem."""
    lines = [ln.strip() for ln in stderr.split("Stack backtrace:")[0].splitlines() if ln.strip()]
    text = " ".join(lines)[:_MAX_DETAIL] or f"py-spy exited with code {code}"
    if "ermission" in text or "ptrace" in text.lower():
        text += (
            " (py-spy needs ptrace rights: run as the program's user with "
            "/proc/sys/kernel/yama/ptrace_scope 0, or as root, or with CAP_SYS_PTRACE)"
        )
    return text


def _some(block: Block | None) -> Sequence[Block]:
    return () if block is None else (block,)
