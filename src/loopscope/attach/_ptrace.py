"""Call functions in another process's main thread with ptrace (Linux, x86-64).

Used to queue the bootstrap with two calls: ``mmap`` (a plain system call wrapper) for memory
the code is written into through ``/proc/PID/mem``, then ``Py_AddPendingCall``. Neither takes a
lock the stopped thread might hold, unlike ``malloc`` or ``dlopen`` (a thread stopped inside
malloc would deadlock on its own arena lock: seen here with dlopen-based injection under load).

Only the main thread is stopped, for the few hundred microseconds the two calls take; the
process's other threads keep running. Its registers are restored exactly, so a system call it
was in is restarted as if nothing happened, and a signal that arrived meanwhile is delivered
when it is let go.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import signal
import time
from collections.abc import Sequence

_PTRACE_POKEDATA = 5
_PTRACE_CONT = 7
_PTRACE_GETREGS = 12
_PTRACE_SETREGS = 13
_PTRACE_DETACH = 17
_PTRACE_SEIZE = 0x4206
_PTRACE_INTERRUPT = 0x4207
_PTRACE_EVENT_STOP = 128
_WALL = 0x40000000
_MASK = (1 << 64) - 1
_EINTR = (-errno.EINTR) & _MASK
_EPOLL_WAIT = (232, 281, 441)  # epoll_wait, epoll_pwait, epoll_pwait2 on x86-64


# struct user_regs_struct, in order (a list literal would take 27 lines)
_REGISTERS = (  # noqa: SIM905
    "r15 r14 r13 r12 rbp rbx r11 r10 r9 r8 rax rcx rdx rsi rdi orig_rax rip cs eflags rsp ss "
    "fs_base gs_base ds es fs gs"
).split()


class _Regs(ctypes.Structure):
    _fields_ = [(name, ctypes.c_ulonglong) for name in _REGISTERS]


class PtraceError(Exception):
    """``errno`` set for a failed ptrace request; ``exited`` when the process went away."""

    def __init__(self, message: str, *, errno_: int = 0, exited: bool = False) -> None:
        super().__init__(message)
        self.errno = errno_
        self.exited = exited


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.restype = ctypes.c_long
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
    return libc


class Tracer:
    """The main thread of ``pid``, stopped. Use as a context manager; `call` runs a function."""

    def __init__(self, pid: int, timeout: float = 5.0) -> None:
        self.pid = pid
        self._timeout = timeout
        self._libc = _libc()
        self._saved = _Regs()
        self._pending_signal = 0
        self._attached = False
        self._stopped = False  # in a ptrace stop
        self._running = False  # resumed by us, inside a called function

    def __enter__(self) -> Tracer:
        self._ptrace(_PTRACE_SEIZE, 0, 0)
        self._attached = True
        try:
            self._ptrace(_PTRACE_INTERRUPT, 0, 0)
            self._wait_stop(first=True)
            self._ptrace(_PTRACE_GETREGS, 0, ctypes.addressof(self._saved))
        except BaseException:
            self._let_go()
            raise
        return self

    def _let_go(self) -> None:
        """Detach before anything was changed. The interrupt asked for stops the thread even
        after `_wait_stop` gave up on it, and a traced thread stays stopped until its tracer
        lets it go: so wait for that stop once more, then detach."""
        with contextlib.suppress(PtraceError):
            if not self._stopped:
                self._wait_stop(first=True)
        if self._attached:
            self._attached = False
            with contextlib.suppress(PtraceError):  # gone, or still not stopped
                self._ptrace(_PTRACE_DETACH, 0, self._pending_signal)

    def __exit__(self, *exc: object) -> None:
        if not self._attached:
            return
        if self._running:
            # A call that did not return in time (say, blocked on a lock the thread held when
            # it was stopped): stop the thread again, and the restored registers abandon it.
            with contextlib.suppress(PtraceError):
                self._ptrace(_PTRACE_INTERRUPT, 0, 0)
                self._wait_stop(first=False)
        try:
            self._ptrace(_PTRACE_SETREGS, 0, ctypes.addressof(self._saved))
        finally:
            self._attached = False
            with contextlib.suppress(PtraceError):  # gone
                self._ptrace(_PTRACE_DETACH, 0, self._pending_signal)

    def in_poll(self) -> bool:
        """Whether the thread was stopped inside epoll_wait (which it was made to leave with
        EINTR when it was stopped)."""
        return self._saved.orig_rax in _EPOLL_WAIT and self._saved.rax == _EINTR

    def return_from_poll_with_no_events(self) -> None:
        """Let the interrupted epoll_wait return 0 (no events, as when its timeout expires)
        instead of EINTR: CPython's ``select.epoll.poll`` retries after EINTR without running
        any Python code, but returns an empty list after 0, so the event loop goes round once
        and runs the pending call."""
        if not self.in_poll():
            raise PtraceError("the thread is not waiting in epoll_wait")
        self._saved.rax = 0

    def call(self, function: int, args: Sequence[int]) -> int:
        """Call ``function(*args)`` (at most six integer arguments) on the stopped thread."""
        regs = _Regs.from_buffer_copy(self._saved)
        # Below the red zone, 16-byte aligned at the call; return address 0 traps on return.
        sp = ((self._saved.rsp - 1024) & ~0xF) - 8
        self._ptrace(_PTRACE_POKEDATA, sp, 0)
        regs.rsp = sp
        regs.rip = function
        for register, value in zip(("rdi", "rsi", "rdx", "rcx", "r8", "r9"), args, strict=False):
            setattr(regs, register, value & _MASK)
        regs.rax = 0
        regs.orig_rax = _MASK  # -1: no system call to restart while we run the function
        self._ptrace(_PTRACE_SETREGS, 0, ctypes.addressof(regs))
        self._resume()
        while True:
            sig = self._wait_stop(first=False)
            out = _Regs()
            self._ptrace(_PTRACE_GETREGS, 0, ctypes.addressof(out))
            if sig == signal.SIGSEGV and out.rip == 0:
                return int(out.rax)
            if sig == signal.SIGSEGV:
                raise PtraceError(f"the called function crashed at {out.rip:#x}")
            if sig:
                self._pending_signal = sig  # delivered when the thread is let go
            self._resume()

    def _resume(self) -> None:
        self._ptrace(_PTRACE_CONT, 0, 0)
        self._stopped = False
        self._running = True

    def write(self, address: int, data: bytes) -> None:
        fd = os.open(f"/proc/{self.pid}/mem", os.O_WRONLY)
        try:
            if os.pwrite(fd, data, address) != len(data):
                raise PtraceError("short write into the process's memory")
        finally:
            os.close(fd)

    def _wait_stop(self, *, first: bool) -> int:
        """Wait for the thread to stop; the signal of a signal-delivery stop, else 0."""
        deadline = time.monotonic() + self._timeout
        while True:
            pid, status = os.waitpid(self.pid, os.WNOHANG | _WALL)
            if pid == 0:
                if time.monotonic() > deadline:
                    raise PtraceError(f"process {self.pid} did not stop within {self._timeout:g} s")
                time.sleep(0.0005)
                continue
            if os.WIFEXITED(status) or os.WIFSIGNALED(status):
                self._attached = False
                raise PtraceError(f"process {self.pid} exited", exited=True)
            if not os.WIFSTOPPED(status):
                continue
            self._running = False
            self._stopped = True
            sig = os.WSTOPSIG(status)
            if status >> 16 == _PTRACE_EVENT_STOP:
                return 0  # the interrupt we asked for, or a group stop
            if first and sig != signal.SIGTRAP:
                self._pending_signal = sig
                return 0
            return sig

    def _ptrace(self, request: int, address: int, data: int) -> None:
        ctypes.set_errno(0)
        result = self._libc.ptrace(request, self.pid, address, data)
        if result == -1 and ctypes.get_errno():
            code = ctypes.get_errno()
            raise PtraceError(
                f"ptrace request {request} on {self.pid}: {os.strerror(code)}",
                errno_=code,
                exited=code == errno.ESRCH and not os.path.exists(f"/proc/{self.pid}"),
            )
