#!/usr/bin/env bash
# Builds the statically linked berth-init (the binary berthd bind-mounts into containers
# as /sbin/docker-init, where no libc may exist) into its own target dir, so the main
# build cache keeps its RUSTFLAGS, and prints the binary's path on stdout. Install it next
# to berthd, or point BERTH_INIT_PATH at it.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
target_dir="${BERTH_INIT_TARGET_DIR:-${CARGO_TARGET_DIR:-$repo/target}/init}"
triple="$(rustc -vV | sed -n 's/^host: //p')"

RUSTFLAGS='-C target-feature=+crt-static' \
    cargo build --quiet --manifest-path "$repo/Cargo.toml" -p berth-init --bin berth-init --release \
    --target "$triple" --target-dir "$target_dir" >&2

bin="$target_dir/$triple/release/berth-init"
if command -v file >/dev/null && ! file -L "$bin" | grep -Eq 'statically linked|static-pie linked'; then
    echo "build-static: $bin is not statically linked" >&2
    exit 1
fi
echo "$bin"
