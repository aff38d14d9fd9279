#!/usr/bin/env bash
# setup-and-run.sh: from a fresh checkout to a running container and a working daemon.
# Installs build and test dependencies, builds berth-runc, berthd and berth (release),
# makes a busybox rootfs, writes a bundle in /tmp and runs `echo hello from berth` in it
# with berth-runc; then starts berthd on a private socket, imports the rootfs as an image
# with `berth import`, pushes it to a local reference registry with `berth push`, removes
# it and pulls it back with `berth pull`. Everything it creates in /tmp is removed.
#
# RUNTIME=/path/to/runtime uses that runtime binary instead (and skips its build).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
target="${CARGO_TARGET_DIR:-$repo/target}"

[[ $(id -u) -eq 0 ]] || { echo "setup-and-run: run as root (containers need it)" >&2; exit 1; }
tests/install-deps.sh busybox-static libseccomp-dev pkg-config python3 docker-registry curl

if [[ -n "${RUNTIME:-}" ]]; then
    runtime="$RUNTIME"
    echo "setup-and-run: using $runtime (build skipped)"
else
    cargo build --release -p berth-runc -p berth-daemon -p berth-cli
    runtime="$target/release/berth-runc"
fi
[[ -x "$runtime" ]] || { echo "setup-and-run: $runtime is missing" >&2; exit 1; }

work="$(mktemp -d /tmp/berth-hello.XXXXXX)"
id="hello-$$"
berthd_pid=""
cleanup() {
    "$runtime" --root "$work/state" delete --force "$id" >/dev/null 2>&1 || true
    if [[ -n "$berthd_pid" ]]; then
        # Containers outlive berthd: remove them first.
        berth ps -aq 2>/dev/null | xargs -r "$target/release/berth" -H "unix://$work/berth.sock" rm -f >/dev/null 2>&1
        kill "$berthd_pid" 2>/dev/null && wait "$berthd_pid" 2>/dev/null
    fi
    awk -v w="$work/" '$2 ~ "^"w {print $2}' /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null
    tests/registry.sh stop "$work/registry" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

bundle="$work/bundle"
mkdir -p "$bundle" "$work/state"
tests/make-rootfs.sh "$bundle/rootfs"
# The runtime's own `spec`, edited as JSON so its formatting does not matter.
(cd "$bundle" && "$runtime" spec)
python3 - "$bundle/config.json" <<'PY'
import json, sys
path = sys.argv[1]
spec = json.load(open(path))
spec["process"]["terminal"] = False
spec["process"]["args"] = ["echo", "hello from berth"]
json.dump(spec, open(path, "w"), indent=2)
PY

out="$("$runtime" --root "$work/state" run --bundle "$bundle" "$id" </dev/null)"
echo "$out"
[[ "$out" == "hello from berth" ]] || { echo "setup-and-run: unexpected output" >&2; exit 1; }

# The daemon: berthd on its own socket and data root, driven by the berth CLI.
[[ -x "$target/release/berthd" && -x "$target/release/berth" && -x "$target/release/berth-shim" ]] \
    || cargo build --release -p berth-daemon -p berth-cli -p berth-shim -p berth-init
echo '{}' >"$work/daemon.json"
"$target/release/berthd" --config-file "$work/daemon.json" --data-root "$work/data" --exec-root "$work/exec" \
    --pidfile "$work/berthd.pid" -H "unix://$work/berth.sock" 2>"$work/berthd.log" &
berthd_pid=$!
for _ in $(seq 100); do [[ -S "$work/berth.sock" ]] && break; sleep 0.1; done
berth() { BERTH_CONFIG="$work/cli" "$target/release/berth" -H "unix://$work/berth.sock" "$@"; }
registry="$(tests/registry.sh start "$work/registry")"

tar -C "$bundle/rootfs" -cf "$work/rootfs.tar" .
berth import "$work/rootfs.tar" "$registry/hello/busybox:latest"
berth push "$registry/hello/busybox:latest"
berth rmi "$registry/hello/busybox:latest"
berth pull "$registry/hello/busybox:latest"
berth images
berth system df
# A container through berthd: its shim runs it, berth shows its output and exit status.
out="$(berth run --rm "$registry/hello/busybox:latest" echo "hello from a berth container")"
echo "$out"
[[ "$out" == "hello from a berth container" ]] || { echo "setup-and-run: unexpected container output" >&2; exit 1; }
berth run -d --name web "$registry/hello/busybox:latest" sh -c 'echo serving; sleep 1000' >/dev/null
berth ps
berth exec web echo "exec in a running container"
berth rm -f web >/dev/null
