#!/usr/bin/env bash
# v2-guest-runc.sh: pure cgroup v2 end to end. Boots the guest of
# crates/cgroups/tests/v2-guest.sh (cgroup2 is its only cgroup mount), runs the
# berth-cgroups tests there, then runs a busybox container with berth-runc whose
# memory and pids limits must show up inside it and in the host-side cgroup files.
#
# Env: RUNTIME (default target/debug/berth-runc).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$repo/target}"
runtime="${RUNTIME:-$target/debug/berth-runc}"
[[ -x "$runtime" ]] || { echo "v2-guest-runc: $runtime missing (cargo build -p berth-runc)" >&2; exit 1; }

# Not under /tmp (the checkout may be there too): the guest mounts a fresh tmpfs on it.
work="$(mktemp -d /var/tmp/berth-v2guest.XXXXXX)"
trap 'rm -rf "$work"' EXIT
bundle="$work/bundle"
mkdir -p "$bundle"
"$repo/tests/make-rootfs.sh" "$bundle/rootfs"
cp "$runtime" "$work/berth-runc"
(cd "$bundle" && "$work/berth-runc" spec)
python3 - "$bundle/config.json" <<'PY'
import json, sys
path = sys.argv[1]
spec = json.load(open(path))
spec["process"]["terminal"] = False
# The guest's root is an initramfs, where pivot_root is impossible: --no-pivot is used.
spec["process"]["args"] = ["sh", "-c", "cat /sys/fs/cgroup/pids.max /sys/fs/cgroup/memory.max"]
spec["linux"]["resources"] = {"memory": {"limit": 67108864}, "pids": {"limit": 42},
                              "devices": [{"allow": False, "access": "rwm"}]}
spec["linux"]["cgroupsPath"] = "/berth-v2/c1"
if not any(n["type"] == "cgroup" for n in spec["linux"]["namespaces"]):
    spec["linux"]["namespaces"].append({"type": "cgroup"})
json.dump(spec, open(path, "w"), indent=2)
PY

cat >"$work/check.sh" <<CHECK
set -e
cd $bundle
out=\$($work/berth-runc --root /run/berth-runc run --no-pivot c1)
echo "container said: \$out"
[ "\$(echo \$out)" = "42 67108864" ]
[ ! -e /sys/fs/cgroup/berth-v2/c1 ]
CHECK
"$repo/crates/cgroups/tests/v2-guest.sh" --include "$work" --run "sh $work/check.sh"
