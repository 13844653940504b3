"""The interpreters that target processes run on in the tests: every CPython 3.10-3.15 found.

3.10-3.13 are looked up in pyenv's versions (PYENV_ROOT or ~/.pyenv), then on PATH as python3.X.
3.14 and 3.15 come from the Debian unstable root that `make pythons` (tools/pythons.sh) caches in
~/.cache/loopscope/pythons/sid. They need a newer glibc than this machine's, so they run in that
root, each target in a mount namespace of its own that sees the root's /usr and the host's /tmp,
/dev, /proc and this checkout: to loopscope such a target is a container's process, its files
under /proc/PID/root. `find_pythons()` gives, for those, a small wrapper script named python3.X
that starts the interpreter there in place (same pid, same arguments, same working directory).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from functools import cache
from pathlib import Path

SUPPORTED = ("3.10", "3.11", "3.12", "3.13", "3.14", "3.15")
IN_ANOTHER_ROOT = ("3.14", "3.15")
REPO = Path(__file__).resolve().parents[1]


def pythons_cache() -> Path:
    """Where tools/pythons.sh keeps the Debian unstable root (the same rule as the script)."""
    if "LOOPSCOPE_PYTHONS" in os.environ:
        return Path(os.environ["LOOPSCOPE_PYTHONS"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "loopscope" / "pythons"


def sid_root() -> Path:
    return pythons_cache() / "sid"


@cache
def find_pythons() -> dict[str, str | None]:
    """{"3.10": "/path/to/python" or None, ...}"""
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    found: dict[str, str | None] = {}
    for version in SUPPORTED:
        if version in IN_ANOTHER_ROOT:
            found[version] = _in_sid_root(version)
            continue
        candidates = sorted(root.glob(f"{version}.*/bin/python{version}"), reverse=True)
        on_path = shutil.which(f"python{version}")
        paths = [str(c) for c in candidates] + ([on_path] if on_path else [])
        found[version] = next((p for p in paths if _runs(p, version)), None)
    return found


def missing_reason(version: str) -> str:
    """Why find_pythons() has no interpreter of this version, in one line."""
    if version not in IN_ANOTHER_ROOT:
        return f"Python {version} is not installed on this machine"
    unavailable = pythons_cache() / "sid.unavailable"
    if unavailable.exists():
        return f"Python {version}: {unavailable.read_text().strip()}"
    if not (sid_root() / ".complete").exists():
        return f"Python {version}: no Debian unstable root in {sid_root()} (run `make pythons`)"
    if os.geteuid() != 0:
        return f"Python {version} runs in {sid_root()}, which needs root (chroot, mount)"
    return f"Python {version} in {sid_root()} does not start (see tests/pythons.py)"


def uvloop_path(version: str) -> str | None:
    """The directory, as the target sees it inside the Debian root, that holds uvloop for
    Python ``version`` (3.14, 3.15: `make pythons` unpacks PyPI's wheels there), or None."""
    inside = f"/opt/uvloop/{version}"
    if version not in IN_ANOTHER_ROOT or find_pythons().get(version) is None:
        return None
    complete = sid_root() / inside.lstrip("/") / ".complete"
    return inside if complete.exists() else None


def uvloop_missing_reason(version: str) -> str:
    """Why uvloop_path() has no uvloop for this version, in one line."""
    if find_pythons().get(version) is None:
        return missing_reason(version)
    unavailable = pythons_cache() / f"uvloop-{version}.unavailable"
    if unavailable.exists():
        return f"uvloop on Python {version}: {unavailable.read_text().strip()}"
    return f"no uvloop for Python {version} in {sid_root()} (run `make pythons`)"


def in_another_root(python: str) -> bool:
    """True for an interpreter from find_pythons() that runs its targets in the Debian root."""
    return Path(python).parent.name.startswith("wrappers-")


def _in_sid_root(version: str) -> str | None:
    root = sid_root()
    if os.geteuid() != 0 or not (root / ".complete").exists():
        return None
    if not (root / "usr" / "bin" / f"python{version}").exists():
        return None
    wrapper = _wrapper(root, version)
    return str(wrapper) if _runs(str(wrapper), version) else None


_WRAPPER = """#!/bin/sh
# python{version} of {root}, run there as in a container: a mount namespace of its own whose root
# is that directory (pivot_root): the host's paths are not the target's. By tests/pythons.py.
exec unshare --mount --propagation private -- /bin/sh -c '
root=$1; shift
wd=$(pwd -P)
mount --rbind "$root" "$root" || exit 126
for dir in /dev /proc /tmp {shared}; do
    mkdir -p "$root$dir" && mount --rbind "$dir" "$root$dir" || exit 126
done
cd "$root" && pivot_root . . && umount -l . || exit 126
cd "$wd" 2>/dev/null || cd /
exec /usr/bin/python{version} "$@"
' sh {root} "$@"
"""


def _wrapper(root: Path, version: str) -> Path:
    # One directory per checkout: the wrapper shares this checkout's files with the target.
    tag = hashlib.sha1(str(REPO).encode()).hexdigest()[:12]
    folder = pythons_cache() / f"wrappers-{tag}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"python{version}"
    text = _WRAPPER.format(version=version, root=root, shared=REPO)
    if not path.exists() or path.read_text() != text:
        temporary = path.with_suffix(f".{os.getpid()}")
        temporary.write_text(text)
        temporary.chmod(0o755)
        temporary.replace(path)
    return path


def _runs(path: str, version: str) -> bool:
    try:
        out = subprocess.run(
            [path, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and out.stdout.strip() == version
