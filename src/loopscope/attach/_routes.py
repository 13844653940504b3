"""The routes that get the bootstrap run in a target: each queues it for a safe point.

- ``remote-exec``: ``sys.remote_exec`` (CPython 3.14+, loopscope and the target on the same
  version); the interpreter runs the script at its next safe point.
- ``ptrace``: loopscope stops the target's main thread and calls ``mmap`` and
  ``Py_AddPendingCall`` on it (`_ptrace.Tracer`, addresses from `_elf.resolve`).
- ``pyinjector``: a tiny shared library, loaded into the target with ptrace by the
  ``pyinjector`` package, whose constructor only calls ``Py_AddPendingCall``.
- ``gdb``: gdb stops the target just long enough to call ``Py_AddPendingCall``.

None of them runs Python code at the point where the target was stopped: the bootstrap runs on
the main thread when the interpreter next checks for pending work, as for a signal handler.
Calling ``PyGILState_Ensure`` from the stop point instead can run code inside a C call that holds
the GIL, re-entrantly: no route does that.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from loopscope.attach._errors import AttachError
from loopscope.attach._proc import ProcessInfo, exists, permission_message
from loopscope.attach._root import (
    own_interpreter_argv,
    own_interpreter_unavailable,
    target_path,
)

_C_SOURCE = Path(__file__).with_name("_inject.c")
_PLACEHOLDER = b"@@LOOPSCOPE-BOOTSTRAP@@"
_CODE_MAX = 16384
_GDB_TIMEOUT = 30.0


class Route(Protocol):
    name: str

    def unavailable(self, info: ProcessInfo) -> str | None:
        """Why this route cannot reach ``info``'s process, or None if it can."""

    def inject(self, info: ProcessInfo, code: str) -> None:
        """Queue ``code`` to run at the target's next safe point; AttachError on failure."""


class RemoteExecRoute:
    """``sys.remote_exec`` (3.14+): loopscope's own when it runs the target's version in the
    target's root, else the target's own interpreter's, run as a helper process in the
    target's root (a container's interpreter needs its own libraries)."""

    name = "remote-exec"

    def unavailable(self, info: ProcessInfo) -> str | None:
        if info.python is None or info.python < (3, 14):
            return f"needs the target on Python 3.14+ (it runs {info.python_text})"
        if _own_remote_exec(info):
            return None
        return own_interpreter_unavailable(info.pid, info.other_root)

    def inject(self, info: ProcessInfo, code: str) -> None:
        # The file is read by the target at its safe point, by the name it knows it by.
        directory = target_path(info.pid, "/tmp") if info.other_root else None
        try:
            fd, path = tempfile.mkstemp(prefix="loopscope-boot-", suffix=".py", dir=directory)
        except OSError as e:
            raise _failed(self.name, info, f"cannot write the bootstrap for it: {e}") from None
        seen = path.removeprefix(f"/proc/{info.pid}/root") if info.other_root else path
        try:
            with os.fdopen(fd, "w") as f:
                f.write(code)
            _give_to(path, info.uid)
            if _own_remote_exec(info):
                try:
                    sys.remote_exec(info.pid, seen)  # type: ignore[attr-defined,unused-ignore]
                except PermissionError:
                    raise AttachError("permission", permission_message(info.pid)) from None
                except (OSError, RuntimeError) as e:
                    raise _failed(self.name, info, str(e)) from None
            else:
                _remote_exec_helper(info, seen)
        finally:
            # The interpreter reads the file at the safe point: it must outlive this call. The
            # bootstrap connecting back proves it was read; the ladder removes it then (and
            # leaves it, if the target never got there, for when it does).
            _pending_files.append(path)

    def wake(self, info: ProcessInfo) -> str | None:
        """A loop idle in its selector runs no bytecode, so it never reaches the safe point:
        wake it as the ptrace route does."""
        return PtraceRoute().wake(info)


def _own_remote_exec(info: ProcessInfo) -> bool:
    """Whether loopscope's own ``sys.remote_exec`` can reach the target."""
    return (
        hasattr(sys, "remote_exec") and info.python == sys.version_info[:2] and not info.other_root
    )


# Run by the target's own interpreter, isolated (-I: no PYTHON* variables, no user site).
_REMOTE_EXEC = """\
import sys
try:
    sys.remote_exec(int(sys.argv[1]), sys.argv[2])
except PermissionError as e:
    sys.exit("permission: %s" % e)
except BaseException as e:
    sys.exit("%s: %s" % (type(e).__name__, e))
"""


def _remote_exec_helper(info: ProcessInfo, script: str) -> None:
    """``sys.remote_exec(pid, script)`` by the target's own interpreter, run in its root."""
    argv = own_interpreter_argv(info.pid, info.other_root, _REMOTE_EXEC, script)
    if argv is None:
        raise _failed("remote-exec", info, "its interpreter cannot be found any more")
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=_GDB_TIMEOUT, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise _failed("remote-exec", info, f"running its interpreter failed: {e}") from None
    if done.returncode == 0:
        return
    if not exists(info.pid):
        raise _exited(info)
    why = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
    if why.startswith("permission:"):
        raise AttachError("permission", permission_message(info.pid))
    raise _failed("remote-exec", info, f"its interpreter's sys.remote_exec: {why}")


class PtraceRoute:
    name = "ptrace"

    def unavailable(self, info: ProcessInfo) -> str | None:
        if not sys.platform.startswith("linux") or platform.machine() != "x86_64":
            return f"built for Linux on x86-64 only (this is {sys.platform} {platform.machine()})"
        return None

    def inject(self, info: ProcessInfo, code: str) -> None:
        from loopscope.attach._elf import resolve
        from loopscope.attach._ptrace import PtraceError, Tracer

        names = ("Py_AddPendingCall", "PyRun_SimpleString", "mmap")
        try:
            found = resolve(info.pid, names)
        except FileNotFoundError:
            raise _exited(info) from None
        except PermissionError:
            raise AttachError("permission", permission_message(info.pid)) from None
        missing = [n for n in names if n not in found]
        if missing:
            raise _failed(self.name, info, f"cannot find {', '.join(missing)} in the process")
        data = code.encode() + b"\0"
        size = (len(data) + 4095) // 4096 * 4096
        try:
            with Tracer(info.pid) as tracer:
                # mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
                address = tracer.call(found["mmap"], (0, size, 3, 0x22, -1, 0))
                if address >= (1 << 64) - 4096:  # -errno
                    raise _failed(self.name, info, "mmap failed in the process")
                tracer.write(address, data)
                # The mapping is never freed: the pending call reads it later.
                result = tracer.call(
                    found["Py_AddPendingCall"], (found["PyRun_SimpleString"], address)
                )
        except PtraceError as e:
            if e.exited or not exists(info.pid):
                raise _exited(info) from None
            if e.errno == errno.EPERM:
                raise AttachError("permission", permission_message(info.pid)) from None
            raise _failed(self.name, info, str(e)) from None
        if result & 0xFFFFFFFF != 0:
            raise _failed(self.name, info, "Py_AddPendingCall refused the call (queue full)")

    def wake(self, info: ProcessInfo) -> str | None:
        """Wake a main thread idle in its event loop's selector, so it runs the pending call;
        what was done, or None when the thread was not idle there.

        Only for asyncio's own selector loop: libuv (uvloop) asserts that an epoll_wait without
        a timeout never returns empty-handed, so a process that loaded it is left alone."""
        from loopscope.attach._ptrace import PtraceError, Tracer

        try:
            with open(f"/proc/{info.pid}/maps") as f:
                if any(name in line for line in f for name in ("uvloop", "libuv")):
                    return None
            with Tracer(info.pid) as tracer:
                if not tracer.in_poll():
                    return None
                tracer.return_from_poll_with_no_events()
        except (OSError, PtraceError):
            return None
        return f"woke process {info.pid}'s main thread, idle in its event loop's selector"


class PyinjectorRoute:
    name = "pyinjector"

    def unavailable(self, info: ProcessInfo) -> str | None:
        try:
            import pyinjector  # type: ignore[import-untyped]  # noqa: F401
        except ImportError:
            return "the pyinjector package is not installed (pip install pyinjector)"
        try:
            _library()
        except AttachError as e:
            return e.message
        return None

    def inject(self, info: ProcessInfo, code: str) -> None:
        import pyinjector

        data = _library().read_bytes()
        encoded = code.encode()
        if len(encoded) >= _CODE_MAX:
            raise _failed(self.name, info, "the bootstrap is too large for the library")
        at = data.index(_PLACEHOLDER)
        data = data[:at] + encoded + b"\0" * (_CODE_MAX - len(encoded)) + data[at + _CODE_MAX :]
        directory = tempfile.mkdtemp(prefix="loopscope-inject-")
        # A new file name each time: dlopen of a path it already has open would not run the
        # constructor again.
        path = os.path.join(directory, "loopscope_inject.so")
        try:
            with open(path, "wb") as f:
                f.write(data)
            os.chmod(directory, 0o711)
            os.chmod(path, 0o644)
            try:
                pyinjector.inject(info.pid, path, uninject=True)
            except pyinjector.PyInjectorError as e:
                if not exists(info.pid):
                    raise _exited(info) from None
                if "permission" in str(e).lower() or getattr(e, "ret_val", None) == -8:
                    raise AttachError("permission", permission_message(info.pid)) from None
                raise _failed(self.name, info, str(e).splitlines()[0]) from None
        finally:
            shutil.rmtree(directory, ignore_errors=True)


class GdbRoute:
    name = "gdb"

    def unavailable(self, info: ProcessInfo) -> str | None:
        gdb = shutil.which("gdb")
        if gdb is None:
            return "gdb is not installed (e.g. apt-get install gdb)"
        return gdb_cannot_call(gdb)

    def inject(self, info: ProcessInfo, code: str) -> None:
        # The bootstrap goes into a fresh anonymous mapping (mmap is a plain system call), not
        # into a gdb string literal: gdb allocates those with the target's malloc, which
        # deadlocks when the target was stopped inside malloc. The mapping is not freed: the
        # pending call reads it later.
        data = code.encode() + b"\0"
        size = (len(data) + 4095) // 4096 * 4096
        directory = tempfile.mkdtemp(prefix="loopscope-gdb-")
        path = os.path.join(directory, "bootstrap.bin")
        with open(path, "wb") as f:
            f.write(data)
        # A command file, not -ex commands: gdb stops reading it at the first error, so a step
        # that failed (a call gdb could not make, a write that did not complete) is never
        # followed by the next, and Py_AddPendingCall is only called with a page that holds the
        # whole bootstrap. gdb then quits, which detaches it.
        script = os.path.join(directory, "inject.gdb")
        with open(script, "w") as f:
            f.write(
                "set $loopscope_buf = ((void *(*)(void *, unsigned long, int, int, int, long))"
                f"mmap)(0, {size}, 3, 34, -1, 0)\n"
                "if $loopscope_buf == (void *) -1\n"
                "  echo mmap failed in the process\\n\n"
                "  detach\n"
                "  quit 1\n"
                "end\n"
                f"restore {path} binary $loopscope_buf\n"
                "call ((int (*)(void *, void *))Py_AddPendingCall)"
                "((void *)&PyRun_SimpleString, $loopscope_buf)\n"
                "detach\n"
            )
        argv = _gdb_argv("gdb", info.pid, ["-ex", "sharedlibrary libpython", "-x", script])
        try:
            stdout, stderr = _run_gdb(argv)
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        text = stdout + stderr
        if re.search(r"^\$1 = 0$", stdout, re.MULTILINE):
            return
        if not exists(info.pid):
            raise _exited(info)
        if "ptrace: Operation not permitted" in text:
            raise AttachError("permission", permission_message(info.pid))
        raise _failed(self.name, info, f"gdb could not queue the bootstrap: {_gdb_error(text)}")


def _gdb_error(text: str) -> str:
    """The error that stopped gdb's command file (the line after gdb says where it stopped),
    else its last line that is not about detaching."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for i, line in enumerate(lines[:-1]):
        if line.endswith("Error in sourced command file:"):
            return lines[i + 1]
    said = [line for line in lines if not line.startswith("[Inferior ")]
    return said[-1] if said else "no output"


def _gdb_argv(gdb: str, pid: int, commands: list[str]) -> list[str]:
    """gdb attached to ``pid`` with libc's symbols loaded, then running ``commands``."""
    return [
        gdb, "-nx", "-batch", "-q",
        "-iex", "set debuginfod enabled off",
        "-iex", "set auto-load off",
        "-iex", "set auto-solib-add off",
        "-iex", "set print frame-info short-location",
        # Interrupted inside a called function (a signal, a crash in it), gdb restores the
        # target's registers and abandons the call instead of leaving the target in its frame.
        "-iex", "set unwindonsignal on",
        "-iex", "set unwind-on-terminating-exception on",
        # the target's own libraries, where it has another root (a container)
        "-iex", f"set sysroot {target_path(pid, '/')}",
        "-p", str(pid),
        "-ex", "sharedlibrary libc\\.",
        *commands,
    ]  # fmt: skip


_MARK = "@@loopscope-call@@"


@functools.cache
def gdb_cannot_call(gdb: str) -> str | None:
    """Why ``gdb`` cannot call a function in a process on this machine (some virtual machines
    refuse the register writes a call needs), or None when it can. Tried once per loopscope
    process, on a throwaway child, so that a target is never touched by a gdb that cannot."""
    trial = ["-ex", f"echo {_MARK}\\n", "-ex", "print ((int (*)(void))getpid)()"]
    with throwaway_process() as pid:
        stdout, stderr = _run_gdb(_gdb_argv(gdb, pid, trial), merge_stderr=True)
    return gdb_call_problem(stdout + stderr, pid)


@contextlib.contextmanager
def throwaway_process() -> Iterator[int]:
    """A plain Python process that waits, its libraries loaded, to try a tool on: its pid."""
    child = subprocess.Popen(
        [sys.executable, "-I", "-S", "-c", "import sys; print(flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert child.stdout is not None
        child.stdout.readline()  # started, with its libraries loaded
        yield child.pid
    finally:
        child.kill()
        child.communicate()


def gdb_call_problem(output: str, pid: int) -> str | None:
    """What gdb's ``output`` (stdout and stderr together) from `gdb_cannot_call`'s trial says:
    None when its call of ``getpid()`` in process ``pid`` answered ``pid``, else the reason."""
    head, marked, tail = output.partition(_MARK)
    if marked and re.search(rf"^\$1 = {pid}$", tail, re.MULTILINE):
        return None
    if "ptrace: Operation not permitted" in head:
        return "gdb cannot trace a process on this machine: ptrace: Operation not permitted"
    lines = [line.strip() for line in (tail if marked else output).splitlines() if line.strip()]
    said = lines[0].rstrip(".") if lines else "gdb gave no answer"
    return f"gdb cannot call functions in a process on this machine: {said}"


def _run_gdb(argv: list[str], *, merge_stderr: bool = False) -> tuple[str, str]:
    """Run gdb; past the timeout, interrupt it (SIGINT: it unwinds a call in progress and
    detaches as it exits) rather than kill it, which would leave the target mid-call."""
    process = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
        text=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=_GDB_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGINT)
        try:
            stdout, stderr = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
        stderr = (stderr or "") + f"\ngdb did not finish within {_GDB_TIMEOUT:g} s"
    return stdout, stderr or ""


ROUTES: dict[str, Route] = {
    r.name: r for r in (RemoteExecRoute(), PtraceRoute(), GdbRoute(), PyinjectorRoute())
}
# The default order. gdb stops the whole process for a few hundred milliseconds. pyinjector is
# never chosen by itself: it runs dlopen on the stopped main thread, which deadlocked loaded
# targets here (when that thread was stopped inside malloc) and, holding loopscope's GIL while it
# waits, hangs loopscope too. It stays available as --method pyinjector.
AUTO = ("remote-exec", "ptrace", "gdb")

_pending_files: list[str] = []


def forget_pending_files() -> None:
    """Remove the files written for ``sys.remote_exec`` once they were read (or not needed)."""
    while _pending_files:
        with contextlib.suppress(OSError):
            os.unlink(_pending_files.pop())


def _library() -> Path:
    """The injection library, built from its C source once per source version."""
    source = _C_SOURCE.read_bytes()
    digest = hashlib.sha256(source).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "loopscope"
    built = cache / f"inject-{digest}.so"
    if built.exists():
        return built
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise AttachError(
            "no-route", "no C compiler (cc) to build the pyinjector route's small library"
        )
    cache.mkdir(parents=True, exist_ok=True)
    tmp = built.with_suffix(f".{os.getpid()}.tmp")
    result = subprocess.run(
        [compiler, "-shared", "-fPIC", "-O2", "-o", str(tmp), str(_C_SOURCE), "-ldl"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        with contextlib.suppress(OSError):
            tmp.unlink()
        why = result.stderr.strip()[-300:] or f"{compiler} exited with code {result.returncode}"
        raise AttachError("no-route", f"building the pyinjector route's library failed: {why}")
    os.replace(tmp, built)
    return built


def _give_to(path: str, uid: int) -> None:
    if os.geteuid() == 0 and uid != 0:
        os.chown(path, uid, -1)


def _failed(route: str, info: ProcessInfo, why: str) -> AttachError:
    return AttachError("failed", f"injecting into process {info.pid} with {route} failed: {why}")


def _exited(info: ProcessInfo) -> AttachError:
    return AttachError("exited", f"process {info.pid} exited during attach.")


def _version() -> str:
    return "{}.{}".format(*sys.version_info[:2])
