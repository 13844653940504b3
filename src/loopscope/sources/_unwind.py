"""A 3.10-3.13 target's main thread stack read from its memory, from outside its GIL: what 3.14's
``_remote_debugging.RemoteUnwinder`` does, for the interpreters that lack it.

This module runs in a helper process started with the target's own interpreter (`remote_stacks`
sends its source with ``-c``), so the helper's interpreter is the same build as the target's:
the same binary, the same struct layouts. It needs no table of offsets. It learns each one it
uses by looking at its own memory, where it knows what each field must hold (its own thread
state, the frame it runs in, a code object it made), and reads the target's memory (through
``/proc/PID/mem``, as a debugger does; the target is not stopped) with those offsets. Statics
(``_PyRuntime``, the code type) sit at the same distance from the start of the binary in both
processes. A layout it cannot learn is an `UnwindError` at once, never a wrong stack.

Standard library only, and the syntax of 3.10: it runs in the target's interpreter.
"""

from __future__ import annotations

import ctypes
import os
import struct
import sys
import threading
import time
import types
from collections.abc import Callable, Sequence
from typing import Any

_POINTER = struct.Struct("=Q")
_INT = struct.Struct("=i")
_DEPTH = 256  # frames read at most: a cycle in a stack that changed while it was read ends here
_FRAMES = 20000  # frames kept decoded at most ...
_KEEP = 1.0  # ... and for this many seconds at most


class UnwindError(Exception):
    """This interpreter's layout could not be learned, or the target cannot be read."""


class FrameInfo:
    __slots__ = ("filename", "funcname", "lineno")

    def __init__(self, filename: str, lineno: int, funcname: str) -> None:
        self.filename, self.lineno, self.funcname = filename, lineno, funcname


class ThreadInfo:
    """A thread's stack: ``addresses`` are its frames' own (which 3.14's lacks): two tasks
    that run the same coroutine function have frames at different addresses."""

    __slots__ = ("addresses", "frame_info", "status", "thread_id")

    def __init__(self, thread_id: int, frames: tuple[list[FrameInfo], list[int]]) -> None:
        self.thread_id = thread_id
        self.frame_info, self.addresses = frames
        self.status = None  # whether it holds the GIL is not read


class Memory:
    """A process's memory, read through /proc/PID/mem: a bad address is an OSError, never a
    crash."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY)

    def read(self, address: int, size: int) -> bytes:
        data = os.pread(self.fd, size, address)
        if len(data) != size:
            raise OSError(f"short read at {address:#x}")
        return data

    def some(self, address: int, size: int) -> bytes:
        """Up to ``size`` bytes: fewer where the mapping ends."""
        return os.pread(self.fd, size, address)

    def pointer(self, address: int) -> int:
        return int(_POINTER.unpack(self.read(address, 8))[0])

    def close(self) -> None:
        os.close(self.fd)


def _pointer_at(data: bytes, offset: int) -> int:
    return int(_POINTER.unpack_from(data, offset)[0])


def _offsets_of(
    data: bytes, value: int | bytes, fmt: struct.Struct = _POINTER, step: int = 8
) -> list[int]:
    """Where in ``data`` the value is (an address by default), at multiples of ``step``."""
    packed = value if isinstance(value, bytes) else fmt.pack(value)
    return [
        o
        for o in range(0, len(data) - len(packed) + 1, step)
        if data[o : o + len(packed)] == packed
    ]


def _one(found: Sequence[int], what: str) -> int:
    if not found:
        raise UnwindError(f"cannot find {what} in this interpreter's layout")
    return found[0]


_Mapping = tuple[int, int, str, int]  # start, end, device, inode


def _binary_of(address: int, maps: list[_Mapping]) -> tuple[str, int, int]:
    """(device, inode, start of the binary's first mapping) of the file-backed binary whose
    image holds ``address`` (its .bss is the anonymous mapping after its last file mapping)."""
    owner = None
    for start, end, device, inode in maps:
        if inode:
            owner = (device, inode)
        if start <= address < end:
            break
    else:
        raise UnwindError(f"no mapping holds {address:#x}")
    if owner is None:
        raise UnwindError(f"no binary holds {address:#x}")
    base = min(start for start, _, device, inode in maps if (device, inode) == owner)
    return owner[0], owner[1], base


def _maps(pid: int | str) -> list[_Mapping]:
    rows = []
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            parts = line.split()
            start, end = parts[0].split("-")
            rows.append((int(start, 16), int(end, 16), parts[3], int(parts[4])))
    return rows


def line_of(table: bytes, first_line: int, offset: int, old_format: bool) -> int:
    """The line of the instruction at byte ``offset`` of a code object, from its line table (the
    3.10 format when ``old_format``, 3.11's location table otherwise); 0 when it has none."""
    if old_format:
        line, end = first_line, 0
        for i in range(0, len(table) - 1, 2):
            start, end = end, end + table[i]
            delta = table[i + 1] - 256 if table[i + 1] > 127 else table[i + 1]
            if delta != -128:
                line += delta
            if start <= offset < end:
                return line if delta != -128 else 0
        return 0
    unit, line, i, n = offset // 2, first_line, 0, len(table)
    address = 0
    while i < n:
        first = table[i]
        i += 1
        kind, end = (first >> 3) & 15, address + (first & 7) + 1
        known = kind != 15
        if kind == 14:
            value, i = _varint(table, i)
            line += -(value >> 1) if value & 1 else value >> 1
            for _ in range(3):
                _, i = _varint(table, i)
        elif kind == 13:
            value, i = _varint(table, i)
            line += -(value >> 1) if value & 1 else value >> 1
        elif kind in (10, 11, 12):
            line += kind - 10
            i += 2
        elif kind < 10:
            i += 1
        if address <= unit < end:
            return line if known else 0
        address = end
    return 0


def _varint(table: bytes, i: int) -> tuple[int, int]:
    byte = table[i]
    value, shift = byte & 63, 0
    i += 1
    while byte & 64:
        byte = table[i]
        i += 1
        shift += 6
        value |= (byte & 63) << shift
    return value, i


class Layout:
    """The offsets this interpreter uses, learned from its own memory (see the module's doc)."""

    def __init__(self) -> None:
        self.version = sys.version_info[:2]
        if not (3, 10) <= self.version < (3, 14):
            raise UnwindError(f"reads 3.10-3.13 only (this is {sys.version.split()[0]})")
        self.frame_objects = self.version < (3, 11)  # 3.10: a stack of PyFrameObjects
        own = Memory(os.getpid())
        try:
            self._learn(own)
        finally:
            own.close()

    def _learn(self, own: Memory) -> None:
        api = ctypes.pythonapi
        for name in (
            "PyInterpreterState_Head",
            "PyInterpreterState_ThreadHead",
            "PyThreadState_Next",
            "PyThreadState_Get",
        ):
            getattr(api, name).restype = ctypes.c_void_p
        api.PyInterpreterState_ThreadHead.argtypes = [ctypes.c_void_p]
        api.PyThreadState_Next.argtypes = [ctypes.c_void_p]
        self.runtime = ctypes.addressof(ctypes.c_char.in_dll(api, "_PyRuntime"))
        self.code_type = id(types.CodeType)
        interp = api.PyInterpreterState_Head()
        self.runtime_interp = _one(
            _offsets_of(own.some(self.runtime, 8192), interp), "the main interpreter in _PyRuntime"
        )
        # a second thread, parked in a known place: the list's head (the newest) is not the
        # main thread, and there is a stack that stays still to read
        ready, done, theirs = threading.Event(), threading.Event(), []

        def parked() -> None:
            theirs.append(threading.get_native_id())
            ready.set()
            done.wait(60)

        thread = threading.Thread(target=parked, daemon=True)
        thread.start()
        ready.wait(10)
        try:
            head = api.PyInterpreterState_ThreadHead(interp)
            main = api.PyThreadState_Get()
            if not head or head == main or not theirs:
                raise UnwindError("cannot list this interpreter's threads")
            self.interp_head = _one(
                _offsets_of(own.some(interp, 65536), head), "the thread list in an interpreter"
            )
            head_data, main_data = own.some(head, 2048), own.some(main, 2048)
            self.next = _one(
                _offsets_of(head_data, api.PyThreadState_Next(head)), "the next thread of a thread"
            )
            # (3.10 keeps no native id: the main thread is then the list's last, the oldest)
            ours = set(_offsets_of(main_data, threading.get_native_id()))
            both = sorted(ours & set(_offsets_of(head_data, theirs[0])))
            self.native_id = both[0] if both else None
            self._learn_frames(own, main)
            self._learn_instruction(own)
            self._learn_code(own)
            self._check(own, head, thread.ident or 0)
        finally:
            done.set()
            thread.join()

    def _learn_frames(self, own: Memory, tstate: int) -> None:
        """Where a thread's innermost frame is, and a frame's caller and code. The reads are
        made from `inner`, with no Python call between it and the read (a method's frame
        would be the innermost then)."""
        fd, pread = own.fd, os.pread
        caller = sys._getframe()
        found: dict[str, Any] = {}

        def inner() -> None:
            frame = sys._getframe()
            code = id(frame.f_code)
            state = pread(fd, 2048, tstate)
            if self.frame_objects:
                data = pread(fd, 128, id(frame))
                found["current"] = [_one(_offsets_of(state, id(frame)), "a thread's frame")]
                found["f_code"] = _one(_offsets_of(data, code), "a frame's code")
                found["previous"] = _one(_offsets_of(data, id(caller)), "a frame's caller")
                return
            # a frame object points to its interpreter frame, which holds the code
            head = pread(fd, 64, id(frame))
            for at in range(16, 64, 8):
                address = _pointer_at(head, at)
                try:
                    data = pread(fd, 128, address)
                except OSError:
                    continue
                codes = _offsets_of(data, code)
                if not codes:
                    continue
                below = _pointer_at(pread(fd, 64, id(caller)), at)
                found["frame_of_object"], found["f_code"] = at, codes[0]
                found["previous"] = _one(_offsets_of(data, below), "a frame's caller")
                direct = _offsets_of(state, address)
                if direct:
                    found["current"] = [direct[0]]  # 3.13: the thread state points to it
                    return
                # 3.11, 3.12: to a C frame record that points to it
                for slot in range(0, len(state) - 7, 8):
                    record = _pointer_at(state, slot)
                    if record < 4096:
                        continue
                    try:
                        inside = _offsets_of(pread(fd, 32, record), address)
                    except OSError:
                        continue
                    if inside:
                        found["current"] = [slot, inside[0]]
                        return
                raise UnwindError("cannot find a thread's current frame")
            raise UnwindError("cannot find a frame object's interpreter frame")

        inner()
        self.current: list[int] = found["current"]  # thread state -> ... -> innermost frame
        self.f_code: int = found["f_code"]
        self.previous: int = found["previous"]
        self.frame_of_object: int = found.get("frame_of_object", 0)  # 3.11+

    def _learn_instruction(self, own: Memory) -> None:
        """Where a frame says which instruction it is at, from two suspended generators."""

        def gen() -> Any:
            yield 1
            x = [1, 2, 3]
            yield x

        first, second = gen(), gen()
        next(first)
        next(second)
        next(second)
        pairs = []
        for g in (first, second):
            frame = g.gi_frame
            if self.frame_objects:
                pairs.append((own.read(id(frame), 160), frame.f_lasti))
            else:
                address = _pointer_at(own.read(id(frame), 64), self.frame_of_object)
                pairs.append((own.read(address, 128), frame.f_lasti))
        self.code_units = 0
        if self.frame_objects:
            # 3.10 keeps the instruction's index (f_lasti is its byte offset)
            found = [
                o
                for o in range(0, 160 - 3, 4)
                if all(_INT.unpack_from(d, o)[0] * 2 == lasti for d, lasti in pairs)
            ]
            self.instruction = _one(found, "a frame's instruction")
            return
        self.code_units = types.CodeType.__basicsize__
        start = id(gen.__code__) + self.code_units
        found = [
            o
            for o in range(0, 128 - 7, 8)
            if all(_pointer_at(d, o) == start + lasti for d, lasti in pairs)
        ]
        self.instruction = _one(found, "a frame's instruction")

    def _learn_code(self, own: Memory) -> None:
        """Where a code object keeps its file, name, first line and line table, and a string
        its text."""
        source = "\n" * 4320 + "def outer():\n    def inner():\n        pass\n    return inner\n"
        namespace: dict[str, Any] = {}
        exec(compile(source, "<loopscope-layout>", "exec"), namespace)
        code = namespace["outer"]().__code__
        data = own.some(id(code), 512)
        self.co_filename = _one(_offsets_of(data, id(code.co_filename)), "a code's file")
        name = getattr(code, "co_qualname", code.co_name)
        self.co_name = _one(_offsets_of(data, id(name)), "a code's name")
        self.co_firstlineno = _one(
            _offsets_of(data, code.co_firstlineno, _INT, 4), "a code's first line"
        )
        self.co_linetable = _one(_offsets_of(data, id(code.co_linetable)), "a code's line table")
        self.code_size = (
            max(self.co_filename, self.co_name, self.co_firstlineno, self.co_linetable) + 8
        )
        self.bytes_data = bytes.__basicsize__ - 1
        self.bytes_size = _one(
            _offsets_of(own.read(id(code.co_linetable), 32), len(code.co_linetable)),
            "a bytes' size",
        )
        ascii_text, latin = "loopscope-ascii-layout", "loopscope-\xe9-layout"
        self.str_length = _one(
            _offsets_of(own.read(id(ascii_text), 64), len(ascii_text)), "a string's length"
        )
        self.ascii_data = _one(
            _offsets_of(own.read(id(ascii_text), 128), ascii_text.encode("ascii"), step=1),
            "an ASCII string's text",
        )
        self.compact_data = _one(
            _offsets_of(own.read(id(latin), 160), latin.encode("latin-1"), step=1),
            "a string's text",
        )
        self.str_state = self.str_length + 16  # after the length and the hash

    def _check(self, own: Memory, tstate: int, ident: int) -> None:
        """Read this process's own strings, and the stack of its parked thread, as the target's
        will be read, and compare with what Python says."""
        for text in ("plain", "caf\xe9", "\u0101bc", "\U0001d538x", "x" * 300):
            if self.text(own, id(text)) != text:
                raise UnwindError("cannot read this interpreter's strings")
        reader = _Reader(self, own, lambda address: address)
        expected = []
        frame: types.FrameType | None = sys._current_frames()[ident]
        while frame is not None:
            code = frame.f_code
            expected.append(
                (code.co_filename, frame.f_lineno, getattr(code, "co_qualname", code.co_name))
            )
            frame = frame.f_back
        read = [(f.filename, f.lineno, f.funcname) for f in reader.stack(tstate)[0]]
        if read != expected:
            raise UnwindError(
                f"reads a stack other than Python's own: {read[:2]}, not {expected[:2]}"
            )

    def text(self, memory: Memory, address: int) -> str:
        """The str at ``address``."""
        head = memory.read(address, self.str_state + 4)
        length = _pointer_at(head, self.str_length)
        state = _INT.unpack_from(head, self.str_state)[0]
        kind, compact, ascii = (state >> 2) & 7, (state >> 5) & 1, (state >> 6) & 1
        if not compact or kind not in (1, 2, 4) or length > 4096:
            return "?"
        if ascii:
            return memory.read(address + self.ascii_data, length).decode("ascii", "replace")
        data = memory.read(address + self.compact_data, length * kind)
        return data.decode({1: "latin-1", 2: "utf-16-le", 4: "utf-32-le"}[kind], "replace")


_Code = tuple[str, str, int, bytes]  # file, name, first line, line table


class _Reader:
    """Stacks read with a `Layout` from one process's memory; ``translate`` maps an address of
    the helper's binary to the same place in the target's."""

    def __init__(self, layout: Layout, memory: Memory, translate: Callable[[int], int]) -> None:
        self.layout, self.memory = layout, memory
        self.code_type = translate(layout.code_type)
        self._codes: dict[int, _Code | None] = {}
        self._frames: dict[tuple[int, int], FrameInfo | None] = {}
        self._kept = time.monotonic()
        self._size = max(layout.f_code, layout.previous, layout.instruction) + 8  # of a frame

    def stack(self, tstate: int) -> tuple[list[FrameInfo], list[int]]:
        """The frames of the thread at ``tstate``, innermost first, and their addresses. What is
        read of a code object is kept for a second at most (its address may be another's once
        it is freed)."""
        layout, memory, size = self.layout, self.memory, self._size
        now = time.monotonic()
        if now - self._kept >= _KEEP or len(self._frames) >= _FRAMES:
            self._codes.clear()
            self._frames.clear()
            self._kept = now
        address = tstate
        for offset in layout.current:
            address = memory.pointer(address + offset)
        frames: list[FrameInfo] = []
        addresses: list[int] = []
        while address and len(frames) < _DEPTH:
            data = memory.read(address, size)
            code = _pointer_at(data, layout.f_code)
            if layout.frame_objects:
                instruction = _INT.unpack_from(data, layout.instruction)[0] * 2
            else:
                instruction = _pointer_at(data, layout.instruction) - code - layout.code_units
            frame = self._frame(code, instruction)
            if frame is not None:
                frames.append(frame)
                addresses.append(address)
            address = _pointer_at(data, layout.previous)
        return frames, addresses

    def _frame(self, code: int, instruction: int) -> FrameInfo | None:
        """The frame at ``instruction`` of the code object at ``code``; None for a frame that
        runs no code of the program's."""
        key = (code, instruction)
        try:
            return self._frames[key]
        except KeyError:
            pass
        if code in self._codes:
            known = self._codes[code]
        else:
            known = self._codes[code] = self._code(code)
        frame = None
        if known is not None:
            filename, name, first, table = known
            line = line_of(table, first, instruction, self.layout.frame_objects)
            frame = FrameInfo(filename, line if instruction >= 0 else 0, name)
        self._frames[key] = frame
        return frame

    def _code(self, code: int) -> _Code | None:
        """(file, name, first line, line table) of the code object at ``code``; None when it is
        no code object (3.13: a frame the C code pushes to run Python holds None), or a 3.12
        frame of that kind (with code of its own)."""
        layout, memory = self.layout, self.memory
        head = memory.read(code, layout.code_size)
        if _pointer_at(head, 8) != self.code_type:
            return None
        filename = layout.text(memory, _pointer_at(head, layout.co_filename))
        if filename == "<shim>":
            return None
        table = _pointer_at(head, layout.co_linetable)
        size = _pointer_at(memory.read(table, layout.bytes_size + 8), layout.bytes_size)
        return (
            filename,
            layout.text(memory, _pointer_at(head, layout.co_name)),
            _INT.unpack_from(head, layout.co_firstlineno)[0],
            memory.read(table + layout.bytes_data, min(size, 1 << 20)),
        )


class RemoteUnwinder:
    """Process ``pid``'s main thread stack, read from its memory (see the module's doc): the
    part of 3.14's ``_remote_debugging.RemoteUnwinder`` that `remote_stacks` uses."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        layout = Layout()
        own_maps, their_maps = _maps("self"), _maps(pid)
        device, inode, base = _binary_of(layout.runtime, own_maps)
        theirs = [start for start, _, d, i in their_maps if (d, i) == (device, inode)]
        if not theirs:
            raise UnwindError(f"process {pid} does not run this interpreter's binary")
        shift = min(theirs) - base
        self.memory = Memory(pid)
        self.reader = _Reader(layout, self.memory, lambda address: address + shift)
        self.interp = self.memory.pointer(layout.runtime + shift + layout.runtime_interp)
        self.layout = layout
        self._main: int | None = None
        self._found = 0.0

    def main_thread(self) -> int | None:
        """The thread state of the thread whose native id is the pid (the list's last when none
        is)."""
        layout, memory = self.layout, self.memory
        address = memory.pointer(self.interp + layout.interp_head)
        last = None
        for _ in range(10000):
            if not address:
                break
            data = memory.read(address, max(layout.next, layout.native_id or 0) + 8)
            if layout.native_id is not None and _pointer_at(data, layout.native_id) == self.pid:
                return address
            last, address = address, _pointer_at(data, layout.next)
        return last

    def get_stack_trace(self) -> list[ThreadInfo]:
        """[ThreadInfo] of the main thread; [] when it has no thread state yet. The main
        thread's state is looked up again every `_KEEP` s and after a read fails (a thread
        state freed, its memory another's)."""
        now = time.monotonic()
        if self._main is not None and now - self._found < _KEEP:
            try:
                return [ThreadInfo(self.pid, self.reader.stack(self._main))]
            except OSError:
                pass
        self._main, self._found = self.main_thread(), now
        if self._main is None:
            return []
        return [ThreadInfo(self.pid, self.reader.stack(self._main))]
