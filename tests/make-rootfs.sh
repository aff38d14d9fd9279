#!/usr/bin/env bash
# make-rootfs.sh DEST: builds a busybox test rootfs in DEST.
#
# The tree is built once into a cache (BERTH_ROOTFS_CACHE, default
# target/test-rootfs/busybox-base) and copied from there, so later calls take
# milliseconds. With PROBE=path the probe binary is installed as DEST/bin/probe.
# Running it again over an existing DEST refreshes it in place.
set -euo pipefail

usage() { echo "usage: [PROBE=path] $0 DEST" >&2; exit 2; }
[[ $# -eq 1 && -n "$1" ]] || usage
dest="$1"

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$repo/target}"
cache="${BERTH_ROOTFS_CACHE:-$target/test-rootfs/busybox-base}"
# Bump when the layout below changes so stale caches are rebuilt.
layout_version=1

find_busybox() {
    local b
    for b in "${BUSYBOX:-}" /bin/busybox /usr/bin/busybox; do
        # Only a static busybox works inside a rootfs that has no libc.
        if [[ -n "$b" && -x "$b" ]] && ! ldd "$b" >/dev/null 2>&1; then
            echo "$b"
            return 0
        fi
    done
    return 1
}

busybox="$(find_busybox || true)"
if [[ -z "$busybox" ]]; then
    if [[ $(id -u) -ne 0 ]]; then
        echo "make-rootfs: a static busybox is needed: apt-get install busybox-static" >&2
        exit 1
    fi
    echo "make-rootfs: installing busybox-static" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null \
        || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null; }
    busybox="$(find_busybox)" || { echo "make-rootfs: no static busybox after install" >&2; exit 1; }
fi

stamp_value="$layout_version $(sha256sum "$busybox" | cut -d' ' -f1)"

build_cache() {
    local tmp rel slashes up applet i
    tmp="$(mktemp -d "$cache.tmp.XXXXXX")"
    # Remove the half-built tree if anything below fails.
    trap 'rm -rf "$tmp"' RETURN
    mkdir -p "$tmp"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,root,home/test,var/tmp,run}
    install -m 0755 "$busybox" "$tmp/bin/busybox"
    while read -r applet; do
        # Entries without a directory (linuxrc) are not commands.
        [[ "$applet" == */* && "$applet" != bin/busybox ]] || continue
        slashes="${applet//[^\/]/}"
        up=""
        for ((i = 0; i < ${#slashes}; i++)); do up+="../"; done
        rel="${up}bin/busybox"
        ln -sfn "$rel" "$tmp/$applet"
    done < <("$busybox" --list-full)

    cat >"$tmp/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
test:x:1000:1000:test:/home/test:/bin/sh
PASSWD
    cat >"$tmp/etc/group" <<'GROUP'
root:x:0:
tty:x:5:
test:x:1000:
extra:x:2000:test
nogroup:x:65534:
GROUP
    cat >"$tmp/etc/hosts" <<'HOSTS'
127.0.0.1	localhost
::1	localhost ip6-localhost ip6-loopback
HOSTS
    : >"$tmp/etc/resolv.conf"
    echo berth-test >"$tmp/etc/hostname"
    chmod 1777 "$tmp/tmp" "$tmp/var/tmp"
    chmod 0700 "$tmp/root"
    chown 1000:1000 "$tmp/home/test"
    chmod 0755 "$tmp"

    rm -rf "$cache"
    mv "$tmp" "$cache"
    echo "$stamp_value" >"$cache.stamp"
    trap - RETURN
}

mkdir -p "$(dirname "$cache")"
# Serialise cache builds between parallel callers; copies below need no lock.
exec 9>"$cache.lock"
flock 9
if [[ ! -d "$cache" || "$(cat "$cache.stamp" 2>/dev/null)" != "$stamp_value" ]]; then
    build_cache
fi
flock -u 9
exec 9>&-

mkdir -p "$dest"
# --remove-destination replaces symlinks and files left by an earlier run.
cp -a --reflink=auto --remove-destination "$cache/." "$dest/"
if [[ -n "${PROBE:-}" ]]; then
    [[ -x "$PROBE" ]] || { echo "make-rootfs: PROBE=$PROBE is not an executable" >&2; exit 1; }
    install -m 0755 "$PROBE" "$dest/bin/probe"
fi
