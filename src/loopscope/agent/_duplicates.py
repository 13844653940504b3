"""Duplicate work: identical calls in flight at once, and the same call made again and again.

A pass runs on the loop thread about twice a second. It walks the await chain of each task of
the loop (a sample of them when there are many, as the census does) and gives every
*application* coroutine on it (not asyncio's, the standard library's, an installed package's or
loopscope's) a **fingerprint**: its code (file, first line, qualified name) and a bounded, safe
text of its arguments. Calls with the same fingerprint compute the same thing.

- A fingerprint is computed once per coroutine object (it is remembered while the coroutine is
  in flight), so a long-lived coroutine costs a dictionary look-up per pass.
- The arguments are read from the frame (``co_varnames[:co_argcount + co_kwonlyargcount]``,
  ``*args``, ``**kwargs`` and the closure's free variables) and rendered by `ArgText`, which never
  calls an object's own ``__repr__``: plain values (numbers, strings, bytes, small containers of
  them, enums, dataclass fields, a few standard value types) are written out, bounded; anything
  else - ``self``, a request object, a big list - by its type and identity. Two requests that pass
  different objects are then never duplicates; the same object passed twice is.
- Identical calls that wait on the same future are one computation shared (a single-flight
  cache): they count once. A call that takes a queue, a stream, a socket or an async iterator
  consumes work rather than computing a value: it is not fingerprinted; one whose own frame
  waits on an Event, a Condition or a Queue is waiting, not working, and is not counted.
- A fingerprint recurs when new coroutine objects keep showing up with it. An identity in a
  fingerprint only means the same object while that object lives (CPython reuses the ids of
  freed objects): a fingerprint whose objects are gone starts a new life.

Each pass emits one `Duplicates` event with the groups worth looking at (several identical calls
in flight, or a fingerprint seen with more than one call; until one of its calls ends, only at a
new peak), bounded; the rules decide what is duplicate *work* (calls that finish, not long-lived
loops).
"""

from __future__ import annotations

import asyncio
import dataclasses
import dis
import enum
import gc
import io
import queue
import random
import socket
import sys
import time
import types
import weakref
from collections import OrderedDict
from typing import Any

from ._census import _OWN_PACKAGE
from ._codemap import APP, FRAMEWORK, LOOPSCOPE, local_map
from ._taskpass import MAX_SAMPLE, TaskView, TaskVisitor, pending
from .events import DuplicateGroup, Duplicates

MAX_GROUPS = 10  # groups per event
MAX_PRINTS = 2000  # fingerprints remembered; the least recently seen are forgotten
MAX_INSTANCES = 20_000  # coroutine objects remembered
ARGS_LIMIT = 160  # characters of argument text sent

# A pass aims to spend about this much loop time walking await chains (fingerprinting a
# coroutine it has not seen costs some microseconds; looking one up it knows, well under one);
# the sample follows from the cost per task measured in the previous pass. Taking the sample and
# forgetting finished coroutines add about 0.1-0.3 ms with 10,000 tasks.
WALK_BUDGET = 0.0004
MIN_SAMPLE = 16
FIRST_SAMPLE = 32  # the first pass also fills the caches
CHECKS = 256  # remembered coroutines, unseen by a sampled pass, checked for their end per pass

# The argument text: what `ArgText` writes out before it falls back on identities.
TEXT_BUDGET = 400
STR_LIMIT = 48  # strings up to this long are written out whole
HASH_LIMIT = 1 << 16  # longer ones, up to this, as a prefix, their length and hash
ITEMS_LIMIT = 8  # containers up to this many items are written out
DEPTH_LIMIT = 2  # containers nested deeper are written as identities

_CO_VARARGS = 0x04
_CO_VARKEYWORDS = 0x08


class _Code:
    """What the collector needs to know about a code object, computed once per code object."""

    __slots__ = ("app", "code", "file", "framework", "function", "line", "names", "writes")

    def __init__(self, code: types.CodeType, module: str) -> None:
        self.code = code  # keeps id(code) from being reused while cached
        self.file = code.co_filename
        self.line = code.co_firstlineno
        self.function: str = getattr(code, "co_qualname", code.co_name)
        own = module == _OWN_PACKAGE or module.startswith(_OWN_PACKAGE + ".")
        kind = LOOPSCOPE if own else local_map().kind(self.file)
        self.app = kind == APP
        # A coroutine a framework awaits directly is an entry point (a request handler):
        # identical requests are what a service receives, not repeated work.
        self.framework = kind == FRAMEWORK
        n = code.co_argcount + code.co_kwonlyargcount
        if code.co_flags & _CO_VARARGS:
            n += 1
        if code.co_flags & _CO_VARKEYWORDS:
            n += 1
        self.names: tuple[str, ...] = code.co_varnames[:n] + code.co_freevars
        self.writes = self.app and writes_shared_state(code, frozenset(code.co_varnames[:n]))


_SIMPLE_LOADS = ("LOAD_FAST", "LOAD_CONST", "LOAD_SMALL_INT", "LOAD_NAME", "LOAD_GLOBAL")
_SHUFFLES = frozenset({"SWAP", "COPY", "ROT_TWO", "ROT_THREE", "ROT_FOUR", "DUP_TOP"})
_CONSTANTS = ("LOAD_CONST", "LOAD_SMALL_INT")


def _counts(instructions: list[dis.Instruction], store: int) -> bool:
    """Whether the store at ``store`` bumps a counter: ``x += 1``, ``stats[k] -= 2`` (an
    in-place operation with a constant, the value then shuffled into place)."""
    i = store - 1
    while i >= 0 and instructions[i].opname in _SHUFFLES:
        i -= 1
    if i < 1:
        return False
    op = instructions[i]
    in_place = op.opname.startswith("INPLACE_") or (
        op.opname == "BINARY_OP" and op.argrepr.endswith("=")
    )
    return in_place and instructions[i - 1].opname in _CONSTANTS


# Methods that change the container (or object) they are called on.
_MUTATORS = frozenset(
    {
        "append",
        "appendleft",
        "extend",
        "extendleft",
        "insert",
        "add",
        "update",
        "setdefault",
        "pop",
        "popitem",
        "popleft",
        "remove",
        "discard",
        "clear",
        "put_nowait",
        "__setitem__",
        "__delitem__",
    }
)


def writes_shared_state(code: types.CodeType, params: frozenset[str]) -> bool:
    """Whether the function writes state it does not own: a global, or an attribute or item of
    one of its arguments (``self`` included), of a global or of a closure's variable, by an
    assignment, a ``del`` or a mutating method call (``.append``, ``.add``, ``.pop``, ...).

    Such a call is an update (withdraw, reserve, connect), not a computation whose result could
    be cached: identical updates in flight are not repeated work. Bumping a counter by a
    constant (``self.runs += 1``: statistics) does not make a call that returns a value an
    update; one that returns nothing is done for that effect (``STOCK[item] -= 1``). Read from the
    bytecode, once per code object: the object a store goes to is the one loaded just before it
    (or before its key); where that is not a plain load (an augmented assignment's stack
    shuffling), the store is taken to write shared state."""

    def owned(ins: dis.Instruction, last: bool) -> bool:
        if ins.opname.startswith(("LOAD_FAST", "STORE_FAST_LOAD_FAST")):
            name = ins.argval
            if isinstance(name, tuple):  # LOAD_FAST_LOAD_FAST (3.13+): two names
                name = name[-1] if last else name[0]
            return name not in params
        return False  # a global, a closure's variable, an attribute: shared (or not known)

    try:
        instructions = list(dis.get_instructions(code))
    except Exception:
        return False
    counts = False
    for i, ins in enumerate(instructions):
        op = ins.opname
        if op in ("LOAD_METHOD", "LOAD_ATTR") and ins.argval in _MUTATORS and i >= 1:
            # ``SCORES[name].append(x)``, ``self.spent.add(code)``: a mutating method called on
            # anything but a local of its own (a parameter is the caller's object).
            target = instructions[i - 1]
            loads = target.opname.startswith(("LOAD_FAST", "STORE_FAST_LOAD_FAST"))
            if not (loads and owned(target, last=True)):
                return True
            continue
        if op in ("STORE_GLOBAL", "STORE_ATTR", "STORE_SUBSCR") and _counts(instructions, i):
            counts = True
            continue
        if op in ("STORE_GLOBAL", "DELETE_GLOBAL"):
            return True
        if op in ("STORE_ATTR", "DELETE_ATTR"):
            if i < 1 or not owned(instructions[i - 1], last=True):
                return True
        elif op in ("STORE_SUBSCR", "DELETE_SUBSCR"):
            key = instructions[i - 1] if i >= 1 else None
            if key is not None and key.opname.startswith("LOAD_FAST") and isinstance(
                key.argval, tuple
            ):
                container = key  # container and key loaded by one instruction
            elif key is not None and key.opname.startswith(_SIMPLE_LOADS) and i >= 2:
                container = instructions[i - 2]
            else:
                return True
            if not owned(container, last=False):
                return True
    return counts and not _returns_value(instructions)


def _returns_value(instructions: list[dis.Instruction]) -> bool:
    """Whether the function returns something other than None somewhere."""
    for i, ins in enumerate(instructions):
        if ins.opname == "RETURN_CONST" and ins.argval is not None:
            return True
        if ins.opname == "RETURN_VALUE":
            before = instructions[i - 1] if i else None
            # 3.15 loads None with LOAD_COMMON_CONSTANT
            if before is None or not (
                before.opname in ("LOAD_CONST", "LOAD_COMMON_CONSTANT") and before.argval is None
            ):
                return True
    return False


class _Print:
    """One fingerprint, and what has been seen of it."""

    __slots__ = (
        "anchors",
        "args",
        "code",
        "dur_n",
        "dur_sum",
        "ended",
        "id",
        "instances",
        "key",
        "last_task",
        "live",
        "parent",
        "sent_peak",
        "tasks",
    )

    def __init__(
        self, key: tuple[int, str], code: _Code, args: str, anchors: list[Any], parent: str
    ) -> None:
        self.key = key
        self.code = code
        self.args = args
        self.id = format(hash((code.file, code.line, code.function, args)) & (1 << 48) - 1, "012x")
        self.parent = parent
        self.anchors: tuple[weakref.ref[Any], ...] | None = _anchors(anchors)
        self.live = 0  # coroutine objects with this fingerprint remembered, in flight
        self.instances = 0  # distinct calls seen (shared waits counted once)
        self.ended = 0
        self.dur_sum = 0.0
        self.dur_n = 0
        self.tasks = 0  # distinct tasks the calls were made in
        self.last_task: weakref.ref[Any] | None = None
        self.sent_peak = 0  # most calls in flight sent while none was seen to end

    def made_in(self, task: Any) -> None:
        """A new call of this fingerprint, made in ``task``."""
        last = self.last_task
        if last is None or last() is not task:
            self.tasks += 1
            try:
                self.last_task = weakref.ref(task)
            except TypeError:
                self.last_task = None

    def same_objects(self) -> bool:
        """Whether the objects this fingerprint names by identity are (still) the same ones."""
        if self.live:
            return True  # ids cannot be reused while a call holding the objects is in flight
        anchors = self.anchors
        return anchors is not None and all(ref() is not None for ref in anchors)

    def renew(self, anchors: list[Any], parent: str) -> None:
        """Start a new life: the objects named by identity are other ones now."""
        self.anchors = _anchors(anchors)
        self.parent = parent
        self.instances = self.ended = self.dur_n = self.tasks = self.sent_peak = 0
        self.dur_sum = 0.0
        self.last_task = None


def _anchors(objects: list[Any]) -> tuple[weakref.ref[Any], ...] | None:
    """Weak references to the objects named by identity; None if one cannot have any."""
    try:
        return tuple(weakref.ref(o) for o in objects)
    except TypeError:
        return None


class _Instance:
    __slots__ = ("first", "last", "passes", "print", "ref", "request", "update")

    def __init__(
        self,
        ref: weakref.ref[Any],
        fingerprint: _Print | None,
        now: float,
        update: frozenset[str] | None = None,
        request: frozenset[str] | None = None,
    ) -> None:
        self.ref = ref
        self.print = fingerprint  # None: not fingerprinted (a consumer, or part of an update)
        self.first = self.last = now
        self.passes = 1
        # The argument values of the update (a call that writes shared state) this call is, or
        # is part of; None if neither.
        self.update = update
        # The argument values of the entry point (a request handler) this call is, or is part
        # of; None if neither.
        self.request = request


class DuplicatesCollector(TaskVisitor[Duplicates]):
    """Emits one `Duplicates` event per pass, every ``interval`` seconds."""

    name = "duplicates"

    default_interval = 0.5

    def setup(self) -> None:
        self._codes: dict[int, _Code] = {}
        self._prints: OrderedDict[tuple[int, str], _Print] = OrderedDict()
        self._instances: dict[int, _Instance] = {}
        self._present: set[int] = set()  # ids of the coroutines seen at the last pass
        self._unchecked: list[int] = []
        self._sample = FIRST_SAMPLE
        self._last = time.monotonic()

    def start(self) -> None:
        self._last = time.monotonic()
        super().start()

    def reset(self) -> None:
        self._codes = {}
        self._prints = OrderedDict()
        self._instances = {}
        self._present = set()
        self._unchecked = []

    def tick(self) -> None:
        # A pass allocates a few objects per new coroutine; with many tasks alive, a full
        # collection they happen to trigger would take several milliseconds inside the pass.
        # The collection is put off until the pass ends (the program's next allocation). A
        # `TaskPass` does the same around all its visitors.
        collecting = gc.isenabled()
        if collecting:
            gc.disable()
        try:
            super().tick()
        finally:
            if collecting:
                gc.enable()

    def limit(self) -> int:
        return self._sample

    def observe(self, view: TaskView) -> Duplicates:
        """The duplicate calls among the tasks of ``view``."""
        started = time.perf_counter()
        now = time.monotonic()
        window, self._last = now - self._last, now
        loop = self._loop
        candidates, population = view.sample(self._sample)
        # fingerprint -> {what its calls wait on: whether all calls waiting on it are new}
        seen: dict[_Print, dict[int, bool]] = {}
        present: set[int] = set()
        found = 0
        walk_started = time.perf_counter()
        for task in pending(loop, candidates):
            found += 1
            waiter = getattr(task, "_fut_waiter", None)
            work = id(_shared(waiter)) if waiter is not None else id(task)
            self._walk(view, task, work, now, seen, present)
        walk_cost = time.perf_counter() - walk_started
        ended = self._check_ended(present, now, population is None)
        self._present = present

        if population is None:
            total, scale = found, 1.0
        else:
            total = round(found * population / len(candidates))
            scale = total / found if found else 1.0
        groups = self._groups(seen, ended, scale)
        cost = time.perf_counter() - started
        if found:
            per_task = max(walk_cost / found, 1e-7)
            self._sample = int(max(MIN_SAMPLE, min(MAX_SAMPLE, WALK_BUDGET / per_task)))
        return Duplicates(
            t=time.time(),
            loop=self._loop_id,
            window=window,
            total=total,
            inspected=found,
            groups=groups,
            tracked=len(self._prints),
            cost=cost,
        )

    def _walk(
        self,
        view: TaskView,
        task: Any,
        waiter: int,
        now: float,
        seen: dict[_Print, dict[int, bool]],
        present: set[int],
    ) -> None:
        """Note the application coroutines on ``task``'s await chain."""
        codes = self._codes
        instances = self._instances
        parent = ""
        update: frozenset[str] | None = None  # see _Instance.update
        working: list[tuple[_Print, bool]] = []  # (fingerprint, whether the call is new)
        called_by_framework = False
        request: frozenset[str] | None = None  # see _Instance.request
        for frame, obj in view.chain(task):
            if type(obj) is not types.CoroutineType:
                continue
            code = frame.f_code
            info = codes.get(id(code))
            if info is None or info.code is not code:
                info = codes[id(code)] = _Code(code, frame.f_globals.get("__name__") or "")
            if info.app:
                key = id(obj)
                instance = instances.get(key)
                new = instance is None or instance.ref() is not obj
                if new:
                    if instance is not None:  # a finished coroutine's id, reused
                        self._end(key, instance, now)
                    instance = self._remember(
                        obj, frame, info, parent, task, now, update,
                        request, called_by_framework,
                    )  # fmt: skip
                else:
                    assert instance is not None
                    if key not in present:
                        instance.last = now
                        instance.passes += 1
                present.add(key)
                if instance.request is not None:
                    request = instance.request
                if instance.update is not None:
                    update = instance.update
                    if instance.print is None:
                        # The callers awaiting an update are making it (``play(name)``
                        # awaiting ``record(name, 10)``): changing shared state, not
                        # repeating work, while they wait on it.
                        working.clear()
                if instance.print is not None:
                    parent = instance.print.id
                    awaited = obj.cr_await
                    if not (type(awaited) is types.CoroutineType and awaited.cr_code in _IDLE):
                        working.append((instance.print, new))
            elif code is _WAIT_FOR:
                # wait_for(fut) waits on a future of its own (3.10, 3.11): the calls that
                # share fut are the ones to count as one.
                inner = frame.f_locals.get("fut")
                if asyncio.isfuture(inner):
                    waiter = id(_shared(inner))
            called_by_framework = info.framework
        for fingerprint, new in working:
            by_waiter = seen.get(fingerprint)
            if by_waiter is None:
                by_waiter = seen[fingerprint] = {}
            before = by_waiter.get(waiter)
            by_waiter[waiter] = new if before is None else before and new

    def _remember(
        self,
        coro: Any,
        frame: types.FrameType,
        info: _Code,
        parent: str,
        task: Any,
        now: float,
        update: frozenset[str] | None = None,
        request: frozenset[str] | None = None,
        entry: bool = False,
    ) -> _Instance:
        """A new coroutine object: its fingerprint, remembered while it is in flight.

        ``update``: the argument values of the update the chain is in, if any. A call that
        writes shared state is an update; a call made inside one with nothing but the update's
        own inputs (``withdraw(self, amount)`` awaiting ``self.audit(amount)``) is part of it.
        Neither is fingerprinted. ``entry``: a framework called it (a request handler); it is
        not fingerprinted either: identical requests are what a service receives. Nor is a call
        made inside one with nothing but the request's own inputs (``product(pid)`` awaiting
        ``read_product(pid)``), which ``request`` (the entry's argument values) tells; the calls
        it makes with other arguments are (``load_tenants("eu-west")``, the same whatever the
        request asks: repeated work)."""
        text = ArgText()
        args = text.arguments(frame, info.names)
        values = frozenset(text.values)
        part = update is not None and values <= update
        if info.writes:
            update = values
        elif not part:
            update = None
        if entry:
            request = values
        elif not (request is not None and values and values <= request):
            request = None
        fingerprint: _Print | None = None
        if not text.consumer and update is None and request is None:
            key = (id(info), args)
            prints = self._prints
            fingerprint = prints.get(key)
            if fingerprint is None or fingerprint.code is not info:
                fingerprint = prints[key] = _Print(key, info, args, text.identities, parent)
                if len(prints) > MAX_PRINTS:
                    prints.popitem(last=False)
            else:
                prints.move_to_end(key)
                if not fingerprint.same_objects():
                    fingerprint.renew(text.identities, parent)
            fingerprint.made_in(task)
        instance = _Instance(weakref.ref(coro), fingerprint, now, update, request)
        if len(self._instances) < MAX_INSTANCES:
            self._instances[id(coro)] = instance
            if fingerprint is not None:
                fingerprint.live += 1
        return instance

    def _check_ended(self, present: set[int], now: float, complete: bool) -> set[_Print]:
        """Forget the remembered coroutines that have finished; the fingerprints that had one
        finish. Those seen at the last pass but not at this one are all checked; of the others
        (unseen when the pass sampled), a few each pass."""
        instances = self._instances
        check = list(self._present - present)
        if not complete or len(instances) > len(present) + len(check):
            keys = self._unchecked
            if not keys:
                keys.extend(instances)
            check += keys[-CHECKS:]
            del keys[-CHECKS:]
        ended: set[_Print] = set()
        for key in check:
            instance = instances.get(key)
            if instance is None or key in present:
                continue
            coro = instance.ref()
            if coro is not None and coro.cr_frame is not None:
                continue  # still in flight, unseen by a sampled pass
            fingerprint = self._end(key, instance, now)
            if fingerprint is not None:
                ended.add(fingerprint)
        return ended

    def _end(self, key: int, instance: _Instance, now: float) -> _Print | None:
        """Forget a coroutine that has finished; its fingerprint."""
        self._instances.pop(key, None)
        fingerprint = instance.print
        if fingerprint is None:
            return None
        fingerprint.live -= 1
        fingerprint.ended += 1
        if instance.passes >= 2:
            # It began within a pass interval before it was first seen, and ended between
            # the last pass that saw it and this one: take the middle of both.
            fingerprint.dur_sum += (
                instance.last - instance.first + (now - instance.last + self._interval) / 2
            )
            fingerprint.dur_n += 1
        return fingerprint

    def _groups(
        self, seen: dict[_Print, dict[int, bool]], ended: set[_Print], scale: float
    ) -> tuple[DuplicateGroup, ...]:
        ranked: list[tuple[float, _Print, int, int]] = []
        prints = self._prints
        for fingerprint, by_waiter in seen.items():
            if prints.get(fingerprint.key) is fingerprint:
                prints.move_to_end(fingerprint.key)  # in use: the last to be forgotten
            in_flight = len(by_waiter)
            starts = sum(by_waiter.values())
            fingerprint.instances += starts
            if in_flight < 2 and fingerprint.instances < 2:
                continue
            # Until one of its calls is seen to end, a fingerprint may be a pool of long-lived
            # identical tasks (and a sampled pass keeps finding ones it had not seen): it is
            # sent only when more of its calls are in flight than ever before.
            if not fingerprint.ended and in_flight <= fingerprint.sent_peak:
                continue
            fingerprint.sent_peak = max(fingerprint.sent_peak, in_flight)
            ranked.append((in_flight - 1 + starts, fingerprint, in_flight, starts))
        for fingerprint in ended:
            if fingerprint not in seen and fingerprint.instances >= 2:
                ranked.append((0.0, fingerprint, 0, 0))
        ranked.sort(key=lambda r: (-r[0], -r[1].instances))
        out = []
        for _, fingerprint, in_flight, starts in ranked[:MAX_GROUPS]:
            code = fingerprint.code
            args = fingerprint.args
            if len(args) > ARGS_LIMIT:
                args = args[: ARGS_LIMIT - 1] + "…"
            out.append(
                DuplicateGroup(
                    id=fingerprint.id,
                    parent=fingerprint.parent,
                    file=code.file,
                    line=code.line,
                    function=code.function,
                    args=args,
                    in_flight=round(in_flight * scale),
                    starts=round(starts * scale),
                    instances=fingerprint.instances,
                    ended=fingerprint.ended,
                    tasks=fingerprint.tasks,
                    duration=fingerprint.dur_sum / fingerprint.dur_n if fingerprint.dur_n else None,
                )
            )
        return tuple(out)


def _shared(waiter: Any) -> Any:
    """The future whose result ``waiter`` passes on, if it is a wrapper of one (what
    ``asyncio.shield(f)`` or ``asyncio.gather(f)`` returns); else ``waiter``. Callers that
    share one computation through such wrappers wait on one future, then."""
    children = getattr(waiter, "_children", None)  # gather
    if isinstance(children, list) and len(children) == 1:
        return children[0]
    # shield(inner): the outer future's done callback closes over inner (from 3.14 over the
    # calling task too, as cur_task: the cell named inner is the one).
    for entry in getattr(waiter, "_callbacks", None) or ():
        callback = entry[0] if isinstance(entry, tuple) else entry
        cells = getattr(callback, "__closure__", None) or ()
        names = getattr(getattr(callback, "__code__", None), "co_freevars", ())
        if "inner" in names and len(names) == len(cells):
            cells = (cells[names.index("inner")],)
        for cell in cells:
            try:
                inner = cell.cell_contents
            except ValueError:  # an empty cell
                continue
            if inner is not waiter and asyncio.isfuture(inner):
                return inner
    return waiter


_WAIT_FOR = asyncio.wait_for.__code__

# Waiting here, in the application's own frame, is waiting for a signal or for work, not doing
# work: identical calls waiting so (``await ready.wait()`` in ``wait_until_ready()``) are not
# counted at that pass. (A wait deeper down, in a library - a connection pool's Condition - is
# part of the work.)
_IDLE = frozenset(
    (
        asyncio.Event.wait.__code__,
        asyncio.Condition.wait.__code__,
        asyncio.Condition.wait_for.__code__,
        asyncio.Queue.get.__code__,
    )
)


# -------------------------------------------------------------------------------------------------
# The argument text

# Arguments of these types feed a call with work rather than say what it computes.
_CONSUMED: tuple[type, ...] = (
    asyncio.Queue,
    queue.Queue,
    asyncio.StreamReader,
    asyncio.StreamWriter,
    asyncio.BaseTransport,
    socket.socket,
    # Shared state each call advances: a random generator, a file, an iterator (below).
    random.Random,
    io.IOBase,
)
# An object of a class so named, as a call's only argument, is a connection or a cursor the
# call reads from or advances (``handle(conn)``), not the input of a computation.
_STATEFUL_NAMES = ("Connection", "Cursor", "Socket", "Stream", "Channel")
# Standard value types whose repr is their value, bounded (exact types only: a subclass may
# have a repr of its own), by the module that defines them. They are looked up among the modules
# the program has imported, so the agent imports none of them: a program that never imported
# pathlib has no PurePosixPath to render, and the agent's own footprint in it stays small.
_VALUE_TYPE_NAMES = (
    ("datetime", ("date", "datetime", "time", "timedelta", "timezone")),
    ("decimal", ("Decimal",)),
    ("fractions", ("Fraction",)),
    ("uuid", ("UUID",)),
    ("pathlib", ("PurePosixPath", "PureWindowsPath", "PosixPath", "WindowsPath")),
)
# (the number of modules imported when last looked up, the value types found then)
_value_types: tuple[int, frozenset[type]] = (-1, frozenset())


def value_types() -> frozenset[type]:
    """The standard value types (`_VALUE_TYPE_NAMES`, and range and slice) of the modules the
    program has imported; looked up again when it has imported more."""
    global _value_types
    imported = len(sys.modules)
    if _value_types[0] != imported:
        found: set[type] = {range, slice}
        for module_name, names in _VALUE_TYPE_NAMES:
            module = sys.modules.get(module_name)
            for name in names:
                value = getattr(module, name, None)
                if isinstance(value, type):
                    found.add(value)
        _value_types = (imported, frozenset(found))
    return _value_types[1]


_UNBOUND = "<unbound>"


class ArgText:
    """Renders arguments as text that is the same for equal plain values and tells apart every
    other object by identity, within a budget, without running the program's code."""

    __slots__ = ("consumer", "identities", "left", "stateful", "value_types", "values")

    def __init__(self, budget: int = TEXT_BUDGET) -> None:
        self.left = budget
        self.identities: list[Any] = []  # the objects named by identity
        self.consumer = False  # an argument is a source of work (a queue, a stream...)
        self.values: list[str] = []  # the text of each argument given to `arguments`
        self.stateful = 0  # arguments that look like connections (see _STATEFUL_NAMES)
        self.value_types = value_types()

    def arguments(self, frame: types.FrameType, names: tuple[str, ...]) -> str:
        """``name=value, ...`` for the call ``frame`` runs."""
        if not names:
            return ""
        local_vars = frame.f_locals
        parts = []
        for name in names:
            try:
                value = local_vars[name]
            except KeyError:  # deleted, or a free variable not yet bound
                parts.append(f"{name}={_UNBOUND}")
                continue
            text = self.of(value)
            self.values.append(text)
            parts.append(f"{name}={text}")
        inputs = len(names) - (names[0] in ("self", "cls"))
        if self.stateful and self.stateful >= inputs:
            self.consumer = True
        return ", ".join(parts)

    def of(self, value: Any, depth: int = 0) -> str:
        """The text of one value."""
        try:
            text = self._of(value, depth)
        except Exception:
            text = self._identity(value)
        self.left -= len(text)
        return text

    def _of(self, value: Any, depth: int) -> str:
        cls = type(value)
        if value is None or cls is bool or cls is float or cls is complex:
            return repr(value)
        # The common cases first: short strings and small integers of the exact types.
        if cls is str and len(value) <= STR_LIMIT:
            return repr(value)
        if cls is int and -(1 << 63) <= value < (1 << 63):
            return repr(value)
        if self.left <= 0:
            return self._identity(value)
        if isinstance(value, enum.Enum):
            return f"{cls.__qualname__}.{value._name_}"
        if isinstance(value, int):
            bits = int.bit_length(value)
            if bits <= 64:
                return int.__repr__(value)
            return f"<int {bits} bits #{int.__hash__(value) & 0xFFFFFFFF:x}>"
        if isinstance(value, float):
            return float.__repr__(value)
        if isinstance(value, (str, bytes)):
            # Through the base type's own methods: a subclass's are the program's code.
            base: Any = str if isinstance(value, str) else bytes
            n = base.__len__(value)
            if n <= STR_LIMIT:
                text: str = base.__repr__(value)
                return text
            if n <= HASH_LIMIT:
                head = base.__repr__(base.__getitem__(value, slice(0, STR_LIMIT // 2)))
                return f"{head}…<len {n} #{base.__hash__(value) & 0xFFFFFFFF:x}>"
            return self._identity(value)
        if isinstance(value, (tuple, list, dict, set, frozenset)):
            return self._container(value, cls, depth)
        if cls in self.value_types:
            text = repr(value)
            return text if len(text) <= STR_LIMIT * 2 else self._identity(value)
        if isinstance(value, type):
            return f"<class {type.__getattribute__(value, '__qualname__')}>"
        if cls is types.FunctionType:
            return f"<function {value.__qualname__}>"
        if cls is types.MethodType:
            return f"<method {value.__func__.__qualname__} of {self.of(value.__self__, depth)}>"
        if isinstance(value, _CONSUMED) or hasattr(cls, "__anext__") or hasattr(cls, "__next__"):
            self.consumer = True
            return self._identity(value)
        if depth == 0 and cls.__name__.endswith(_STATEFUL_NAMES):
            self.stateful += 1
        if dataclasses.is_dataclass(cls) and depth < DEPTH_LIMIT:
            fields = ", ".join(
                f"{f.name}={self.of(object.__getattribute__(value, f.name), depth + 1)}"
                for f in dataclasses.fields(cls)
                if f.repr
            )
            return f"{cls.__qualname__}({fields})"
        return self._identity(value)

    def _container(self, value: Any, cls: type, depth: int) -> str:
        if isinstance(value, tuple):
            n = tuple.__len__(value)
            items: Any = tuple.__iter__(value)
        elif isinstance(value, list):
            n = list.__len__(value)
            items = list.__iter__(value)
        elif isinstance(value, dict):
            n = dict.__len__(value)
            items = dict.items(value)
        elif isinstance(value, set):
            n = set.__len__(value)
            items = set.__iter__(value)
        else:
            n = frozenset.__len__(value)
            items = frozenset.__iter__(value)
        # Beyond the bounds, the identity: two different big lists must not look the same.
        if n > ITEMS_LIMIT or depth >= DEPTH_LIMIT:
            return self._identity(value, f" len {n}")
        if isinstance(value, dict):
            texts = [f"{self.of(k, depth + 1)}: {self.of(v, depth + 1)}" for k, v in items]
            body = "{" + ", ".join(texts) + "}"
        else:
            texts = [self.of(item, depth + 1) for item in items]
            if isinstance(value, (set, frozenset)):
                texts.sort()  # equal sets may iterate in different orders
                body = "{" + ", ".join(texts) + "}"
            elif isinstance(value, list):
                body = "[" + ", ".join(texts) + "]"
            else:
                body = "(" + ", ".join(texts) + ("," if n == 1 else "") + ")"
        if cls in (tuple, list, dict, set):
            return body
        return f"{cls.__qualname__}{body}"

    def _identity(self, value: Any, detail: str = "") -> str:
        self.identities.append(value)
        try:
            name = type(value).__qualname__
        except Exception:
            name = "?"
        return f"<{name}{detail} #{id(value):x}>"
