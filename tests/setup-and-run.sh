#!/usr/bin/env bash
# setup-and-run.sh: from a fresh checkout to a running container. Installs build and test
# dependencies, builds berth-runc (release), makes a busybox rootfs, writes a bundle in
# /tmp and runs `echo hello from berth` in it. Everything it creates in /tmp is removed.
#
# RUNTIME=/path/to/runtime uses that binary instead (and skips the build).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
target="${CARGO_TARGET_DIR:-$repo/target}"

[[ $(id -u) -eq 0 ]] || { echo "setup-and-run: run as root (containers need it)" >&2; exit 1; }
tests/install-deps.sh busybox-static libseccomp-dev pkg-config python3

if [[ -n "${RUNTIME:-}" ]]; then
    runtime="$RUNTIME"
    echo "setup-and-run: using $runtime (build skipped)"
else
    cargo build --release -p berth-runc
    runtime="$target/release/berth-runc"
fi
[[ -x "$runtime" ]] || { echo "setup-and-run: $runtime is missing" >&2; exit 1; }

work="$(mktemp -d /tmp/berth-hello.XXXXXX)"
id="hello-$$"
cleanup() {
    "$runtime" --root "$work/state" delete --force "$id" >/dev/null 2>&1 || true
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
