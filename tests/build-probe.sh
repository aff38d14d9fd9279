#!/usr/bin/env bash
# Builds the statically linked probe into its own target dir (so the main build cache is
# untouched by the different RUSTFLAGS) and prints the binary's path on stdout.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target_dir="${BERTH_PROBE_TARGET_DIR:-${CARGO_TARGET_DIR:-$repo/target}/probe}"
triple=x86_64-unknown-linux-gnu

RUSTFLAGS='-C target-feature=+crt-static' \
    cargo build --quiet --manifest-path "$repo/Cargo.toml" -p berth-probe --release \
    --target "$triple" --target-dir "$target_dir" >&2

bin="$target_dir/$triple/release/berth-probe"
# A dynamically linked probe would fail inside the busybox rootfs with a confusing ENOENT.
if command -v file >/dev/null && ! file -L "$bin" | grep -Eq 'statically linked|static-pie linked'; then
    echo "build-probe: $bin is not statically linked" >&2
    exit 1
fi
echo "$bin"
