"""Starting a program under the agent, in its own child process, and supervising it.

The program never runs in loopscope's own process: the UI's work would distort what is measured.
It runs through the agent's launcher (``agent/_launch.py``), which installs the agent and then
runs the program with the semantics of ``python SCRIPT ARGS`` or ``python -m MODULE ARGS``. Its
stdout and stderr go to a log file, its stdin is /dev/null, and the agent listens on a socket in
a private directory.

The child is the leader of its own process group, so a Ctrl-C in loopscope's terminal does not
reach it: loopscope stops it (and anything it started) in order, SIGINT then SIGTERM then SIGKILL.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import ctypes.util
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import loopscope.agent

MIN_PYTHON = (3, 10)
# How long each polite signal gets before the next, harder one.
STOP_GRACE = (2.0, 2.0, 2.0)


class RunError(Exception):
    """A program that cannot be started; the message says why, for the user."""


@dataclass(frozen=True, slots=True)
class ProgramSpec:
    """What to run: a script or a module, its arguments, and the interpreter."""

    python: str
    script: str | None = None
    module: str | None = None
    args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if (self.script is None) == (self.module is None):
            raise ValueError("give exactly one of script and module")

    @property
    def name(self) -> str:
        """A short name for the program: the script's stem or the module's name."""
        if self.module is not None:
            return self.module
        assert self.script is not None
        return Path(self.script).stem or "program"

    @property
    def label(self) -> str:
        """The program as the user named it: "app.py" or "-m package.module"."""
        return f"-m {self.module}" if self.module is not None else str(self.script)

    @property
    def command(self) -> str:
        """How a user would have typed it, for display."""
        head = ["-m", self.module] if self.module is not None else [str(self.script)]
        return " ".join(["python", *head, *self.args])

    def launcher_argv(self) -> list[str]:
        head = ["-m", self.module] if self.module is not None else [str(self.script)]
        return [self.python, str(launcher_path()), *head, *self.args]


def launcher_path() -> Path:
    """The agent's launcher script; it runs on any interpreter, loopscope installed or not."""
    return Path(loopscope.agent.__file__).resolve().parent / "_launch.py"


def check_python(path: str) -> str:
    """The version of the interpreter at ``path`` ("3.12.1"), or RunError saying what is wrong."""
    exe = shutil.which(path) if os.sep not in path else path
    if exe is None or not os.path.exists(exe):
        raise RunError(f"--python {path}: no such file")
    if not os.access(exe, os.X_OK) or os.path.isdir(exe):
        raise RunError(f"--python {path}: not an executable file")
    probe = "import sys; print('%d.%d.%d' % sys.version_info[:3], sys.implementation.name)"
    try:
        out = subprocess.run(
            [exe, "-I", "-c", probe],
            capture_output=True,
            text=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError) as e:
        raise RunError(f"--python {path}: cannot run it ({e})") from None
    words = out.stdout.split()
    if out.returncode != 0 or len(words) != 2 or not re.fullmatch(r"\d+\.\d+\.\d+", words[0]):
        raise RunError(f"--python {path}: not a Python interpreter")
    version, implementation = words
    if tuple(int(p) for p in version.split(".")[:2]) < MIN_PYTHON:
        raise RunError(
            f"--python {path}: Python {version}; loopscope needs Python "
            f"{MIN_PYTHON[0]}.{MIN_PYTHON[1]} or newer"
        )
    if implementation != "cpython":
        raise RunError(f"--python {path}: {implementation} {version}; loopscope needs CPython")
    return version


def log_dir() -> Path:
    """Where program logs go: $XDG_STATE_HOME/loopscope/logs or ~/.local/state/loopscope/logs."""
    state = os.environ.get("XDG_STATE_HOME")
    base = Path(state) if state and os.path.isabs(state) else Path.home() / ".local" / "state"
    return base / "loopscope" / "logs"


def new_log_path(program_name: str, now: float | None = None) -> Path:
    """A fresh log file for a run of ``program_name``, named after the time and the program."""
    directory = log_dir()
    directory.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", program_name)[:60] or "program"
    for n in range(1000):
        suffix = f"-{n}" if n else ""
        path = directory / f"{stamp}-{safe}{suffix}.log"
        try:
            path.touch(exist_ok=False)
        except FileExistsError:
            continue
        return path
    raise RunError(f"cannot create a log file in {directory}")


def describe_exit(code: int | None) -> str:
    """How a program ended, for people: "exit code 0", "killed by SIGKILL", ..."""
    if code is None:
        return "exit code unknown"
    if code < 0:
        return f"killed by {signal_name(-code)}"
    return f"exit code {code}"


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class Program:
    """A program running under the agent in a child process. Use `Program.start`."""

    def __init__(
        self, spec: ProgramSpec, process: subprocess.Popen[bytes], log_path: Path, tmpdir: Path
    ) -> None:
        self.spec = spec
        self.log_path = log_path
        self.socket_path = tmpdir / "agent.sock"
        self._process = process
        self._tmpdir = tmpdir
        self._stop_lock = threading.Lock()
        self.stopped_by_loopscope = False

    @classmethod
    def start(cls, spec: ProgramSpec, *, log_path: Path | None = None) -> Program:
        """Start ``spec``; its output goes to ``log_path`` (default: a new file in `log_dir`)."""
        try:
            log_path = new_log_path(spec.name) if log_path is None else log_path
            log = open(log_path, "ab")  # noqa: SIM115 - handed to the child, closed below
        except OSError as e:
            raise RunError(f"cannot create the log file: {e}") from None
        tmpdir = Path(tempfile.mkdtemp(prefix="loopscope-"))  # mode 0700
        if len(str(tmpdir / "agent.sock")) > 100:  # AF_UNIX paths are limited to ~107 bytes
            shutil.rmtree(tmpdir, ignore_errors=True)
            tmpdir = Path(tempfile.mkdtemp(prefix="loopscope-", dir="/tmp"))
        env = dict(os.environ, LOOPSCOPE_SOCKET=str(tmpdir / "agent.sock"))
        try:
            with log:
                process = subprocess.Popen(
                    spec.launcher_argv(),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,
                    preexec_fn=_die_with_parent(),
                )
        except OSError as e:
            shutil.rmtree(tmpdir, ignore_errors=True)
            raise RunError(f"cannot start {spec.python}: {e.strerror or e}") from None
        program = cls(spec, process, log_path, tmpdir)
        _live.add(program)
        return program

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.poll()

    def alive(self) -> bool:
        return self._process.poll() is None

    def wait(self, timeout: float | None = None) -> int | None:
        """The exit code, or None if the program is still running after ``timeout`` seconds."""
        try:
            return self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, grace: Sequence[float] = STOP_GRACE) -> int | None:
        """Stop the program and everything in its process group; returns its exit code.

        SIGINT first (asyncio programs shut down cleanly on it), then SIGTERM, then SIGKILL,
        each after ``grace`` seconds. Safe to call more than once and from any thread.
        """
        with self._stop_lock:
            if self.alive():
                self.stopped_by_loopscope = True
                for sig, wait in zip(
                    (signal.SIGINT, signal.SIGTERM, signal.SIGKILL), grace, strict=False
                ):
                    self._signal_group(sig)
                    if self.wait(wait) is not None:
                        break
                else:
                    self.wait()
            # Whatever the program started and left behind in its group goes with it.
            self._signal_group(signal.SIGKILL)
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            _live.discard(self)
            return self._process.returncode

    def log_tail(self, lines: int = 20) -> list[str]:
        """The last ``lines`` lines of the program's log."""
        return read_tail(self.log_path, lines)

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._process.pid, sig)


def read_tail(path: Path, lines: int) -> list[str]:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read()
    except OSError:
        return []
    return data.decode("utf-8", "replace").splitlines()[-lines:]


# -- Never leave a child behind --------------------------------------------------------------

_live: set[Program] = set()


@atexit.register
def _stop_all() -> None:
    for program in list(_live):
        program.stop(grace=(0.5, 0.5, 1.0))


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec function asking Linux to send the child SIGTERM when loopscope dies.

    That covers the one exit that no handler in loopscope sees: SIGKILL. (The signal is tied to
    the thread that starts the child, so programs are started from the main thread.)
    """
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c")
    try:
        prctl = ctypes.CDLL(name, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # loopscope died before prctl took effect
            os._exit(1)

    return preexec
