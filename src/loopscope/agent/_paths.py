"""Where the agent's socket lives, and the checks that keep it private."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile


class UnsafePathError(OSError):
    """A socket directory that another user could tamper with."""


def socket_dir() -> str:
    """``$XDG_RUNTIME_DIR/loopscope``, or ``/tmp/loopscope-<uid>`` without a runtime dir."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        return os.path.join(runtime, "loopscope")
    return os.path.join(tempfile.gettempdir(), f"loopscope-{os.getuid()}")


def default_socket_path(pid: int) -> str:
    """The socket path of the agent in process ``pid``."""
    return os.path.join(socket_dir(), f"{pid}.sock")


def ensure_private_dir(path: str) -> None:
    """Create ``path`` with mode 0700, or check that an existing one is ours and private.

    Refuses a directory owned by another user or writable by group or others, and a symlink:
    whoever controls the directory could swap the socket for their own.
    """
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafePathError(f"{path} is not a directory")
    if st.st_uid != os.getuid():
        raise UnsafePathError(f"{path} is owned by uid {st.st_uid}, not by uid {os.getuid()}")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UnsafePathError(f"{path} is writable by other users (mode {st.st_mode & 0o777:o})")
