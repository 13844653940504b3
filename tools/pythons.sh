#!/bin/sh
# Provide CPython 3.14 and 3.15 for target processes in the tests.
#
# Debian unstable ships both as binary packages, but they need a newer glibc than this machine's,
# so they live in a Debian unstable root made once with debootstrap and cached outside the
# repository (LOOPSCOPE_PYTHONS, default ~/.cache/loopscope/pythons). A process started there
# stands to loopscope as a container's process does: its files are under /proc/PID/root.
#
# The root has no pip: uvloop for its targets (the loop uvicorn picks when it is installed) comes
# as PyPI's wheels for 3.14 and 3.15, fetched on the host with pip and unpacked in the root at
# /opt/uvloop/3.X, a directory the tests put on a target's PYTHONPATH.
#
# Fails soft: when the root cannot be made (not root, no debootstrap, mirror unreachable) it says
# why, records the reason where tests/pythons.py finds it, and exits 0 so the tests on 3.14/3.15
# skip with that reason. The same for uvloop (no network to PyPI, no wheel for this platform).
set -u

CACHE=${LOOPSCOPE_PYTHONS:-${XDG_CACHE_HOME:-$HOME/.cache}/loopscope/pythons}
ROOT=$CACHE/sid
MIRROR=${LOOPSCOPE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
PACKAGES=python3.14,python3.15

mkdir -p "$CACHE" || { echo "pythons: cannot create $CACHE"; exit 0; }
REASON=$CACHE/sid.unavailable
UVLOOP=${LOOPSCOPE_UVLOOP:-0.23.0}
PIP_PYTHON=${PIP_PYTHON:-python3}

fail() {
    echo "pythons: $1; tests on Python 3.14 and 3.15 will be skipped"
    echo "$1" >"$REASON"
    exit 0
}

# uvloop's wheel for Python $1, unpacked in the root (once; then reused). A new one replaces the
# one there only once it imports; when it cannot be had, what was there stays.
uvloop_unavailable() {  # version, why
    echo "$2" >"$CACHE/uvloop-$1.unavailable"
    if [ -f "$ROOT/opt/uvloop/$1/.complete" ]; then
        echo "pythons: $2; keeping $(cat "$ROOT/opt/uvloop/$1/.complete") for Python $1"
    else
        echo "pythons: $2; the uvloop tests on $1 will be skipped"
    fi
}

uvloop_for() {
    dest=$ROOT/opt/uvloop/$1
    partial=$dest.partial
    if [ "$(cat "$dest/.complete" 2>/dev/null)" = "uvloop $UVLOOP" ]; then
        echo "pythons: reusing uvloop $UVLOOP for Python $1 in $dest"
        rm -f "$CACHE/uvloop-$1.unavailable"
        return
    fi
    wheels=$CACHE/wheels-$1.partial
    rm -rf "$wheels" "$partial"
    tag=$(echo "$1" | tr -d .)
    if ! "$PIP_PYTHON" -m pip download --quiet --no-deps --only-binary=:all: \
            --python-version "$1" --implementation cp --abi "cp$tag" \
            --platform "manylinux_2_17_$(uname -m)" -d "$wheels" "uvloop==$UVLOOP" \
            >"$CACHE/uvloop-$1.log" 2>&1; then
        uvloop_unavailable "$1" "pip could not fetch uvloop $UVLOOP for Python $1 (see $CACHE/uvloop-$1.log)"
        rm -rf "$wheels"
        return
    fi
    mkdir -p "$partial" && "$PIP_PYTHON" -m zipfile -e "$wheels"/uvloop-*.whl "$partial" && \
        chroot "$ROOT" "/usr/bin/python$1" -c \
            "import sys; sys.path.insert(0, '/opt/uvloop/$1.partial'); import uvloop" \
            >>"$CACHE/uvloop-$1.log" 2>&1 || {
        rm -rf "$wheels" "$partial"
        uvloop_unavailable "$1" "uvloop $UVLOOP for Python $1 does not import in the root (see $CACHE/uvloop-$1.log)"
        return
    }
    echo "uvloop $UVLOOP" >"$partial/.complete"
    rm -rf "$dest" && mv "$partial" "$dest"
    rm -rf "$wheels" "$CACHE/uvloop-$1.unavailable"
    echo "pythons: unpacked uvloop $UVLOOP for Python $1 in $dest"
}

uvloops() {
    for version in 3.14 3.15; do uvloop_for "$version"; done
}

# One provisioning at a time: several checkouts share the cache.
exec 9>"$CACHE/.lock"
flock 9

if [ -f "$ROOT/.complete" ]; then
    echo "pythons: reusing the Debian unstable root in $ROOT ($(cat "$ROOT/.complete"))"
    uvloops
    exit 0
fi

[ "$(id -u)" = 0 ] || fail "making the Debian unstable root for 3.14/3.15 needs root (run make test as root once)"
if ! command -v debootstrap >/dev/null 2>&1; then
    echo "pythons: installing debootstrap"
    apt-get install -y -qq debootstrap >/dev/null 2>&1 || \
        { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq debootstrap >/dev/null 2>&1; } || \
        fail "debootstrap could not be installed"
fi

host=$(echo "$MIRROR" | sed -e 's|^[a-z]*://||' -e 's|/.*||')
timeout 10 bash -c "exec 3<>/dev/tcp/$host/80" 2>/dev/null || \
    fail "the Debian mirror $host cannot be reached"

echo "pythons: making a Debian unstable root with $PACKAGES in $ROOT (about 30 s, once)"
start=$(date +%s)
rm -rf "$ROOT.partial"
if ! timeout 900 debootstrap --variant=minbase --include="$PACKAGES" sid "$ROOT.partial" "$MIRROR" \
        >"$CACHE/debootstrap.log" 2>&1; then
    rm -rf "$ROOT.partial"
    fail "debootstrap failed (see $CACHE/debootstrap.log)"
fi
versions=$(for v in 3.14 3.15; do chroot "$ROOT.partial" "/usr/bin/python$v" -c \
    'import sys; print(sys.version.split()[0])'; done | paste -sd " ")
[ -n "$versions" ] || { rm -rf "$ROOT.partial"; fail "the interpreters in the new root do not run"; }
echo "Python $versions" >"$ROOT.partial/.complete"
rm -rf "$ROOT"
mv "$ROOT.partial" "$ROOT"
rm -f "$REASON"
echo "pythons: made $ROOT with Python $versions in $(( $(date +%s) - start )) s"
uvloops
