"""The target's own files: one function names them for loopscope, and a mapped file is read only
when it is the file mapped (`attach/_root.py`). Real processes elsewhere: test_attach_container."""

from __future__ import annotations

import dataclasses
import os

import pytest

from loopscope.attach._root import (
    in_another_root,
    mapped_file,
    mappings,
    own_interpreter,
    target_path,
)


def test_a_process_in_loopscopes_root_is_read_by_its_own_paths() -> None:
    pid = os.getpid()
    assert not in_another_root(pid)
    assert target_path(pid, "/usr/lib") == "/usr/lib"
    assert own_interpreter(pid) == os.path.realpath(f"/proc/{pid}/exe")
    with pytest.raises(ValueError, match="not an absolute path"):
        target_path(pid, "usr/lib")


def test_a_gone_process_gets_paths_that_fail_rather_than_mislead() -> None:
    with open("/proc/sys/kernel/pid_max") as f:
        pid = int(f.read()) + 1
    assert target_path(pid, "/usr/lib/libc.so.6") == f"/proc/{pid}/root/usr/lib/libc.so.6"


def test_a_file_is_read_only_if_it_is_the_one_mapped() -> None:
    libc = next(m for m in mappings(os.getpid()) if "/libc.so" in m.path)
    found = mapped_file(os.getpid(), libc)
    assert found is not None and os.stat(found).st_ino == libc.inode
    # The same name, another file (as a container's libc is to the host's): never read.
    other = dataclasses.replace(libc, start=1, end=2, inode=libc.inode + 1)
    assert mapped_file(os.getpid(), other) is None
