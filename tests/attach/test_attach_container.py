"""Targets in a container: another root (its own /usr, whose libc is not the host's), a /tmp of
its own, its own network and PID namespaces. Python 3.14/3.15 from the Debian unstable root that
`make pythons` caches; the container is made with unshare and pivot_root, as container runtimes
do. loopscope must read the target's files, make its sockets and find its agent through
/proc/PID/root, by the host's pid."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from attach_targets import PlainTarget

from clirun import assert_no_loopscope_traceback, loopscope
from loopscope.attach._elf import exported, resolve
from loopscope.attach._root import in_another_root, mapped_file, mappings
from pythons import find_pythons, missing_reason, sid_root

pytestmark = pytest.mark.timeout(120)

# Started as `container service.py`: the program's text goes in by -c (the host's /tmp is not
# the container's). unshare --fork stays the parent; the interpreter is pid 1 inside. {bind} is
# a host directory mounted at the same place inside (read-only), for an interpreter from the host.
CONTAINER = """#!/bin/sh
exec unshare --mount --net --pid --fork --propagation private -- /bin/sh -c '
root=$1; program=$2; bind=$3
mount --rbind "$root" "$root" && mount -t tmpfs -o {tmp} tmpfs "$root/tmp" &&
mount --rbind /dev "$root/dev" && mount -t proc proc "$root/proc" || exit 126
if [ -n "$bind" ]; then
    mkdir -p "$root$bind" && mount --rbind -o ro "$bind" "$root$bind" || exit 126
fi
cd "$root" && pivot_root . . && umount -l . && cd / || exit 126
exec {python} -c "$program"
' sh {root} "$(cat "$1")" "{bind}"
"""

VERSION = "3.15"


def _in_container(version: str) -> tuple[str, str]:
    """(the interpreter's path inside the container, the host directory to mount there): 3.14
    and 3.15 are the root's own; others are pyenv's, mounted in (its root's newer libc runs
    them), as a container that mounts a host's virtualenv."""
    if version in ("3.14", "3.15"):
        return f"/usr/bin/python{version}", ""
    python = find_pythons().get(version)
    assert python is not None
    return python, str(Path(python).resolve().parents[1])


class ContainerTarget(PlainTarget):
    def __init__(self, directory: Path, version: str, tmp: str = "rw") -> None:
        self.version = version
        python, bind = _in_container(version)
        launcher = directory / "container"
        launcher.write_text(CONTAINER.format(python=python, bind=bind, tmp=tmp, root=sid_root()))
        launcher.chmod(0o755)
        super().__init__(str(launcher), directory)  # waits for the program's "ready"
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        self.pid = int(children.split()[0])  # the interpreter, by the host's pid

    def close(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.pid, 9)  # pid 1 of its namespace: only SIGKILL from outside ends it
        super().close()


@pytest.fixture(scope="module", params=["3.15", "3.11"], ids=lambda v: f"py{v}")
def container(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ContainerTarget]:
    version: str = request.param
    if find_pythons().get(version) is None:
        pytest.skip(missing_reason(version))
    if find_pythons().get(VERSION) is None:  # the root
        pytest.skip(missing_reason(VERSION))
    target = ContainerTarget(tmp_path_factory.mktemp("container"), version)
    yield target
    target.close()


def test_ps_lists_it_by_the_hosts_pid(container: ContainerTarget, tmp_path: Path) -> None:
    out = loopscope("ps", "--json", state=tmp_path)
    assert out.returncode == 0, out.stderr
    row = next(r for r in json.loads(out.stdout) if r["pid"] == container.pid)
    assert row["python"] == container.version and row["other_root"] is True
    assert row["exe"] == _in_container(container.version)[0]


@pytest.mark.parametrize("method", ["ptrace", "remote-exec"])
def test_attach_detach_across_roots(
    container: ContainerTarget, method: str, tmp_path: Path
) -> None:
    if method == "remote-exec" and container.version < "3.14":
        pytest.skip("sys.remote_exec is Python 3.14's")
    out = loopscope(
        "attach", "--headless", "--duration", "2.5", "--json", "--method", method,
        str(container.pid), state=tmp_path / "state",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert_no_loopscope_traceback(out.stderr)
    assert f"agent injected with {method}" in out.stderr
    assert "its agent removed itself" in out.stderr
    report = json.loads(out.stdout)
    # The program is `python -c` code, whose frames ("<string>") are no application file's: its
    # blocks are said at info, with the function where the loop was.
    blocking = [f for f in report["findings"] if f["family"] == "blocking" and f["location"]]
    assert [f["location"]["function"] for f in blocking] == ["render_report"], report
    # the agent's socket was in the container's own /tmp, and is gone
    sockets = Path(f"/proc/{container.pid}/root/tmp/loopscope-{os.getuid()}")
    deadline = time.monotonic() + 5
    while sockets.exists() and any(sockets.iterdir()):
        assert time.monotonic() < deadline, list(sockets.iterdir())
        time.sleep(0.01)
    state = container.ask("state")
    assert [t for t in state["threads"] if t.startswith("loopscope")] == []
    assert container.ask("ping") == {"pong": True}


# A plain chroot inside the host's tree (the host's /tmp shared); the program's path as $1.
CHROOT = """#!/bin/sh
exec unshare --mount -- /bin/sh -c '
mount --rbind /tmp "$1/tmp" && mount --rbind /proc "$1/proc" && mount --rbind /dev "$1/dev" &&
exec chroot "$1" /usr/bin/python{version} "$2"' sh {root} "$1"
"""


SHOW = """\
import ctypes, sys
print(ctypes.cast(ctypes.CDLL(None).getpid, ctypes.c_void_p).value, flush=True)
sys.stdin.read()
"""


@pytest.mark.parametrize("launcher", ["container", "chroot"])
def test_functions_are_found_in_the_targets_own_libc(tmp_path: Path, launcher: str) -> None:
    """The kernel names a container's files by the container's paths, which the host has too
    with other contents; a chroot's (inside the host's tree) by the host's paths. Either way the
    addresses loopscope computes are those the program itself sees."""
    version = VERSION if launcher == "container" else "3.14"
    if find_pythons().get(version) is None:
        pytest.skip(missing_reason(version))
    script = tmp_path / "launch"
    template = CONTAINER if launcher == "container" else CHROOT
    python, bind = _in_container(version)
    script.write_text(
        template.format(python=python, bind=bind, tmp="rw", version=version, root=sid_root())
    )
    script.chmod(0o755)
    (tmp_path / "show.py").write_text(SHOW)
    proc = subprocess.Popen([str(script), str(tmp_path / "show.py")], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert proc.stdout is not None
        theirs = int(proc.stdout.readline())
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        pid = int(children[0]) if children else proc.pid
        assert in_another_root(pid)
        libc = next(m for m in mappings(pid) if "/libc.so" in m.path)
        if launcher == "container":
            assert libc.path.startswith("/usr/lib/")  # a name the host's libc has too
            host = os.stat(libc.path)
            assert host.st_ino != libc.inode
            wrong = exported(libc.path, ["getpid"])["getpid"] + libc.start - libc.offset
            assert wrong != theirs  # what reading the host's file would have given
        else:
            assert libc.path.startswith(str(sid_root()))
        assert mapped_file(pid, libc) is not None
        assert resolve(pid, ["getpid"])["getpid"] == theirs
    finally:
        proc.kill()
        proc.communicate()


def test_a_container_that_cannot_be_reached_is_told(tmp_path: Path) -> None:
    """A read-only /tmp and a network namespace of its own: the bootstrap has nowhere to
    connect back to. One paragraph, exit code 1, nothing injected."""
    if find_pythons().get(VERSION) is None:
        pytest.skip(missing_reason(VERSION))
    target = ContainerTarget(tmp_path, VERSION, tmp="ro")
    try:
        out = loopscope(
            "attach", "--headless", "--duration", "1", str(target.pid), state=tmp_path / "state"
        )  # fmt: skip
        assert out.returncode == 1, out.stderr
        assert_no_loopscope_traceback(out.stderr)
        assert f"process {target.pid} cannot be reached" in out.stderr
        assert "injecting" not in out.stderr
        assert target.ask("state")["modules"] == []
    finally:
        target.close()


def test_an_agent_left_listening_is_found_again(container: ContainerTarget, tmp_path: Path) -> None:
    """Its socket is in the container's /tmp and its network namespace's socket table."""
    first = loopscope(
        "attach", "--headless", "--duration", "1", "--keep-agent", str(container.pid),
        state=tmp_path / "one",
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert "left the agent listening" in first.stderr
    out = loopscope("ps", "--json", state=tmp_path)
    row = next(r for r in json.loads(out.stdout) if r["pid"] == container.pid)
    assert str(row["agent_socket"]).startswith(f"/proc/{container.pid}/root/tmp/")
    again = loopscope(
        "attach", "--headless", "--duration", "1", str(container.pid), state=tmp_path / "two"
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert_no_loopscope_traceback(again.stderr)
    assert "connected to the agent already listening" in again.stderr
    assert "its agent removed itself" in again.stderr
    assert [t for t in container.ask("state")["threads"] if t.startswith("loopscope")] == []
