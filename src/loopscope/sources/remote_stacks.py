"""A target's loop thread sampled from outside its GIL: the target's own interpreter runs as a
helper process that reads the main thread's stack, slowly while the loop waits or moves on, fast
while one callback holds it. On 3.14+ it reads it with ``_remote_debugging`` (as ``python -m
profiling.sampling`` does); on 3.10-3.13, which lack that module, with `_unwind`, which learns
the interpreter's layout from the helper's own memory and reads the target's through /proc.

The agent's watchdog must take the GIL to read a stack, so it gets a sample of a pure-Python
burn only when the burning thread hands the GIL over, and none at all of a C call that holds it.
The helper reads the target's memory (``process_vm_readv``; `_unwind`: /proc/PID/mem) without
the GIL and without stopping it. Each read of one thread costs the helper about 30 µs (70 µs
with its own work; `_unwind`: about 20 µs). It reads every twice `IDLE_INTERVAL` s while the
loop waits for events, every `IDLE_INTERVAL` s while it runs callbacks, and again after twice
`BUSY_INTERVAL` when a read finds the loop thread inside a callback after one that found it
waiting; when two reads in a row find it inside the same callback, the loop is probably
blocked, and it reads every `BUSY_INTERVAL` s until the callback changes, for 2 s at most (a
block has its samples by then, and a main thread that runs no loop but waits for another
thread's would otherwise keep it reading fast). `_unwind` also gives the frames' addresses, so
two tasks running the same coroutine function are two callbacks; 3.14's unwinder does not, and
a loop busy with many tasks of one function is read fast there. A 60 ms block thus gets 40-55
samples; an idle loop costs the helper 50 reads a second, and a busy one (one short callback
after another) 100.

Samples are sent in batches (every `FLUSH_SECONDS`, and as a fast run ends) as `ExternalSamples`
events, which the model matches with the agent's blocks by time, as it does py-spy's. The
helper's clock is the host's ``time.time()``, so no offset is guessed. The helper runs in the
target's namespaces and root when the target has its own (see `remote_tasks`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from loopscope.attach._errors import AttachError
from loopscope.attach._proc import ProcessInfo, inspect
from loopscope.attach._root import own_interpreter_argv, own_interpreter_unavailable
from loopscope.events import Event
from loopscope.sources._helper import HELPER_PRELUDE, REMOTE_DEBUGGING, HelperSource
from loopscope.sources.pyspy import Sample, SampleWindow, _is_dispatch, loop_sample

SOURCE_NAME = "remote_stacks"
IDLE_INTERVAL = 0.01  # seconds between reads while the loop moves on (twice it while it waits)
BUSY_INTERVAL = 0.001  # ... while one callback holds the loop
FLUSH_SECONDS = 0.25  # a batch of samples at least this often
_WINDOW = 1.0  # seconds of samples per ExternalSamples event
_START_SECONDS = 10.0  # how long a program just started may take to run Python

_OLDEST = (3, 10)
_UNWIND = Path(__file__).with_name("_unwind.py")

# Stacks the helper keeps an id for; past this many it forgets them all, and numbers the stacks
# it sees next from where it was (so the ids in use are always the latest this many).
STACK_IDS = 1000

# Run by the target's own interpreter (-I -S), after the prelude: argv pid, idle and busy
# intervals, flush seconds, `STACK_IDS`.
# A line per batch: {"stacks": {id: frames}, "samples": [[t, id, status], ...]}, each stack
# (innermost frame first, [file, line, function]) sent once; status is 1 when the thread held
# the GIL (3.15: in the unwinder's default mode the CPU state is unknown; the CPU mode would
# tell it for 1.7 times the cost of a read), 0 when not, -1 when the interpreter does not say
# (3.14).
_HELPER = r"""
pid = int(sys.argv[1])
idle, busy, flush = float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
most = int(sys.argv[5])
confirm = 2 * busy
LONGEST = 2.0
DISPATCH = {"_run", "_run_once", "run_forever", "run_until_complete", "run"}
HAS_GIL = getattr(rd, "THREAD_STATUS_HAS_GIL", 0)
ON_CPU = getattr(rd, "THREAD_STATUS_ON_CPU", 0)
UNKNOWN = getattr(rd, "THREAD_STATUS_UNKNOWN", 0)


def main_thread(trace):
    # 3.15: [InterpreterInfo(threads=[ThreadInfo])], 3.14: [ThreadInfo]
    first = trace[0] if trace else None
    threads = getattr(first, "threads", None)
    if threads is not None:
        first = threads[0] if threads else None
    return first


try:
    unwinder = rd.RemoteUnwinder(pid)
except Exception as e:
    fail(e)
ids = {}
known = {}
next_id = 0
key = None
stacks = {}
samples = []
last_root = None
since = 0.0  # when the reads began to find last_root
failures = 0
flushed = remade = time.time()
while True:
    t = time.time()
    try:
        thread = main_thread(unwinder.get_stack_trace())
        failures = 0
    except Exception as e:
        # a stack that changed while it was read; an ended process fails every time
        failures += 1
        if failures >= 50:
            fail(e)
        thread = None
    if thread is not None and thread.thread_id != pid:
        # not the main thread (its id is the pid): an unwinder made while the interpreter was
        # starting may follow another thread; make it again, once a second at most
        thread = None
        if t - remade >= 1.0:
            remade = t
            try:
                unwinder = rd.RemoteUnwinder(pid)
            except Exception:
                pass
    root = None
    if thread is not None:
        frames = tuple((f.filename, line(f), f.funcname) for f in thread.frame_info)
        key = ids.get(frames)
        if key is None:
            if len(ids) >= most:
                ids.clear()
                known.clear()
            # (a new stack's frames kept once each, shared with the stacks that hold them)
            frames = tuple(known.setdefault(f, f) for f in frames)
            key = ids[frames] = next_id
            next_id += 1
            stacks[key] = frames
        status = getattr(thread, "status", None)
        if status is None or not HAS_GIL:
            status = -1
        else:
            # (read in wall-clock mode, CPU state unknown: holding the GIL is what counts)
            status = int(bool(status & HAS_GIL) and bool(status & (ON_CPU | UNKNOWN)))
        samples.append([round(t, 4), key, status])
        if frames and not frames[0][0].endswith("selectors.py"):
            # (3.14 ends a task's stack at its coroutine: the loop's frames are not there)
            cut = next((i for i, f in enumerate(frames)
                        if "/asyncio/" in f[0] and f[2].rsplit(".", 1)[-1] in DISPATCH),
                       len(frames))
            root = frames[cut - 1] if cut else None
            # (`_unwind` gives the frames' addresses: two tasks of one coroutine function are
            # then two callbacks, not one that holds the loop)
            addresses = getattr(thread, "addresses", None)
            if root is not None and addresses:
                root = (root, addresses[cut - 1])
    if root != last_root:
        since = t
    # one callback for over LONGEST s: a block that has its samples, or a main thread that
    # runs no loop (it waits for another thread's): back to the slow pace
    fast = root is not None and root == last_root and t - since < LONGEST
    # a callback after the loop waited: look again soon, to tell a block from a short one (a
    # busy loop, one callback after another, is looked at every `idle`)
    first = root is not None and last_root is None
    last_root = root
    now = time.time()
    if samples and (now - flushed >= flush or (not fast and len(samples) > 1
                                               and samples[-2][1] != key)):
        try:
            print(json.dumps({"stacks": stacks, "samples": samples}), flush=True)
        except BrokenPipeError:
            break
        stacks, samples, flushed = {}, [], now
    # stdin ends when loopscope stops reading (nsenter's child outlives a signal to nsenter)
    # (a loop that waits is read half as often: a block's first read comes within 2 * idle)
    pace = busy if fast else confirm if first else idle if root is not None else 2 * idle
    wait = max(0.0, t + pace - time.time())
    if select.select([sys.stdin], [], [], wait)[0]:
        break
"""


def helper_argv(
    info: ProcessInfo,
    idle: float = IDLE_INTERVAL,
    busy: float = BUSY_INTERVAL,
    flush: float = FLUSH_SECONDS,
) -> list[str] | None:
    """The command that runs the sampler with the target's own interpreter, or None."""
    if info.python is not None and info.python < (3, 14):
        # `_unwind`'s code, as the module ``rd`` (its __future__ import must come first)
        reader = _UNWIND.read_text() + HELPER_PRELUDE + "rd = sys.modules[__name__]\n"
    else:
        reader = REMOTE_DEBUGGING + HELPER_PRELUDE
    return own_interpreter_argv(
        info.pid, info.other_root, reader + _HELPER, str(idle), str(busy), str(flush),
        str(STACK_IDS),
    )  # fmt: skip


def unavailable(info: ProcessInfo) -> str | None:
    """Why this source cannot sample ``info``'s process, or None."""
    if info.python is None:
        return f"process {info.pid} runs no Python: needs Python 3.10+"
    if info.python < _OLDEST:
        return f"needs the target on Python 3.10+ (it runs {info.python_text})"
    return own_interpreter_unavailable(info.pid, info.other_root)


class RemoteStacksSource(HelperSource):
    """Process ``info``'s loop thread (its main thread) sampled from outside with its own
    interpreter: `ExternalSamples` events, one per second of samples.
    ``info`` may be a pid (a program loopscope just started): the process is then looked at as
    it starts, until it runs Python (at most `_START_SECONDS`).

    Where it cannot run (a target before 3.10, no interpreter found, a root of its own without
    root rights, no ptrace rights) it yields ``SourceState(state="unavailable")`` with the
    reason, and ends.
    """

    source_name = SOURCE_NAME

    def __init__(
        self,
        info: ProcessInfo | int,
        *,
        idle: float = IDLE_INTERVAL,
        busy: float = BUSY_INTERVAL,
        alive: Callable[[], bool] | None = None,
    ) -> None:
        super().__init__(info.pid if isinstance(info, ProcessInfo) else info, alive)
        self.info = info if isinstance(info, ProcessInfo) else None
        self.idle = idle
        self.busy = busy
        self.samples = 0

    def _inspect(self) -> ProcessInfo | None:
        """The process, once it runs Python (or seems never to)."""
        deadline = time.monotonic() + _START_SECONDS
        while not self._closed.is_set() and self._alive():
            try:
                info = inspect(self.pid)
            except AttachError:
                return None
            if info.python is not None or time.monotonic() > deadline:
                return info
            self._closed.wait(0.05)
        return None

    def events(self) -> Iterator[Event]:
        if self.info is None:
            self.info = self._inspect()
        if self.info is None:
            self.reason = "closed" if self._closed.is_set() else "the program exited"
            yield self._state("unavailable", self.reason)
            return
        why = unavailable(self.info)
        argv = helper_argv(self.info, self.idle, self.busy) if why is None else None
        process = self._start(argv, why)
        if process is None:
            yield self._state("unavailable", self.reason)
            return
        windows = SampleWindow(_WINDOW, source=SOURCE_NAME)
        reader = _Batches(self.pid)
        try:
            for batch in self._reports(process):
                if not self.live:
                    self.live = True
                    yield self._state(
                        "live",
                        f"{self.idle * 1000:g}-{self.idle * 2000:g} ms, "
                        f"{self.busy * 1000:g} ms in a block",
                    )
                # a batch ends at a block's end or a flush: send what there is
                samples = list(reader.samples(batch))
                self.samples += len(samples)
                yield from windows.feed(samples)
        finally:
            self._stop()
        if not self.live and not self.reason and not self._closed.is_set():
            code = process.returncode
            self.reason = f"the target's interpreter could not sample it (exit code {code})"
        yield from windows.drain()
        yield self._end("lost" if self.live else "unavailable")


class _Batches:
    """The helper's batches as the loop thread's samples (`pyspy.Sample`)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        # id -> (frames, whether the loop's frames are among them); ids older than the latest
        # `STACK_IDS` are no longer the helper's, and go once there are twice as many
        self._stacks: dict[int, tuple[list[dict[str, Any]], bool]] = {}
        self._newest = -1
        self._dispatch: dict[str, Any] | None = None  # a frame of the loop's, once seen
        # Each distinct frame once, shared by the stacks that hold it: a stack of a loaded
        # server is some 30 frames, mostly the same ones (forgotten with old stacks).
        self._known: dict[tuple[str, int | None, str], dict[str, Any]] = {}

    def samples(self, batch: dict[str, Any]) -> Iterator[Sample]:
        stacks = batch.get("stacks")
        if isinstance(stacks, dict):
            for key, frames in stacks.items():
                if isinstance(frames, list) and str(key).isdigit():
                    self._stacks[int(key)] = self._frames(frames)
                    self._newest = max(self._newest, int(key))
            if len(self._stacks) > 2 * STACK_IDS:
                oldest = self._newest - STACK_IDS
                self._stacks = {k: v for k, v in self._stacks.items() if k > oldest}
                self._known = {
                    (f["filename"], f["line"], f["name"]): f
                    for frames, _ in self._stacks.values()
                    for f in frames
                }
        for item in batch.get("samples") or ():
            if not isinstance(item, list) or len(item) != 3:
                continue
            t, key, status = item
            stack = self._stacks.get(key) if isinstance(key, int) else None
            if stack is None or not isinstance(t, (int, float)):
                continue
            frames, loops = stack
            if frames and not loops and self._dispatch is not None:
                # 3.14 ends a task's stack at its coroutine, without the loop's frames below
                # it (the helper reads no further than the C call into the coroutine): a stack
                # of the loop thread that is not the loop's own is a callback's
                frames = [*frames, self._dispatch]
            known = isinstance(status, int) and status >= 0
            on_cpu = known and status == 1
            # (the main thread: its Python ident cannot be read from outside, hence 0)
            thread = {
                "thread_id": 0, "os_thread_id": self.pid, "pid": self.pid,
                "active": on_cpu, "owns_gil": on_cpu, "frames": frames,
            }  # fmt: skip
            sample = loop_sample(float(t), [thread])
            if sample is None:
                continue
            if not known:
                sample = dataclasses.replace(sample, cpu_known=False)
            yield sample

    def _frames(self, raw: list[Any]) -> tuple[list[dict[str, Any]], bool]:
        known = self._known
        frames = []
        for f in raw:
            if not isinstance(f, list) or len(f) != 3:
                continue
            key = (str(f[0]), f[1] if isinstance(f[1], int) else None, str(f[2]))
            frame = known.get(key)
            if frame is None:
                frame = known[key] = {"filename": key[0], "line": key[1], "name": key[2]}
            frames.append(frame)
        dispatch = next((f for f in frames if _is_dispatch(f)), None)
        if dispatch is not None:
            self._dispatch = dispatch
        return frames, dispatch is not None
