#!/bin/sh
# Provide CPython 3.14 and 3.15 for target processes in the tests.
#
# Debian unstable ships both as binary packages, but they need a newer glibc than this machine's,
# so they live in a Debian unstable root made once with debootstrap and cached outside the
# repository (LOOPSCOPE_PYTHONS, default ~/.cache/loopscope/pythons). A process started there
# stands to loopscope as a container's process does: its files are under /proc/PID/root.
#
# Fails soft: when the root cannot be made (not root, no debootstrap, mirror unreachable) it says
# why, records the reason where tests/pythons.py finds it, and exits 0 so the tests on 3.14/3.15
# skip with that reason.
set -u

CACHE=${LOOPSCOPE_PYTHONS:-${XDG_CACHE_HOME:-$HOME/.cache}/loopscope/pythons}
ROOT=$CACHE/sid
MIRROR=${LOOPSCOPE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
PACKAGES=python3.14,python3.15

mkdir -p "$CACHE" || { echo "pythons: cannot create $CACHE"; exit 0; }
REASON=$CACHE/sid.unavailable

fail() {
    echo "pythons: $1; tests on Python 3.14 and 3.15 will be skipped"
    echo "$1" >"$REASON"
    exit 0
}

# One provisioning at a time: several checkouts share the cache.
exec 9>"$CACHE/.lock"
flock 9

if [ -f "$ROOT/.complete" ]; then
    echo "pythons: reusing the Debian unstable root in $ROOT ($(cat "$ROOT/.complete"))"
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
