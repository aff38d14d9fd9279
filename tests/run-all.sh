#!/usr/bin/env bash
# run-all.sh: the project's test command. Builds the workspace and the test rootfs, runs
# every crate's tests (as root, so runtime tests use real namespaces and cgroups), checks
# the harness itself against Debian's runc, then runs tests/peers.sh (podman, dockerd)
# with berth-runc.
#
# Env: RUNTIME (runtime for peers.sh, default target/debug/berth-runc),
# SKIP_PEERS=1 (leave out peers.sh), REFERENCE_RUNC (default /usr/sbin/runc).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
target="${CARGO_TARGET_DIR:-$repo/target}"
reference_runc="${REFERENCE_RUNC:-/usr/sbin/runc}"

step() { printf '\n==> %s\n' "$*"; }

step "build workspace"
cargo build --workspace --all-targets

step "build probe and test rootfs"
probe="$(tests/build-probe.sh)"
export BERTH_TEST_PROBE="$probe"
# A throwaway rootfs proves the scripts work; bundles copy from the testkit's own cache.
scratch="$(mktemp -d /tmp/berth-rootfs-check.XXXXXX)"
trap 'rm -rf "$scratch"' EXIT
PROBE="$probe" tests/make-rootfs.sh "$scratch/rootfs"
"$scratch/rootfs/bin/probe" exit 0

step "build the static berth-init (run --init)"
BERTH_INIT_PATH="$(crates/init/build-static.sh)"
export BERTH_INIT_PATH

if cargo nextest --version >/dev/null 2>&1; then
    run_tests() { cargo nextest run --no-fail-fast "$@"; }
else
    run_tests() { cargo test --no-fail-fast "$@"; }
fi

# Test stages all run even when one fails, so one run shows every failure.
failed=()
stage() { # NAME CMD...
    local name="$1"
    shift
    step "$name"
    "$@" || failed+=("$name")
}

# BERTH_TEST_RUNTIME must not leak in: it would point the runtime's own tests elsewhere.
workspace_tests() { (unset BERTH_TEST_RUNTIME; run_tests --workspace); }
stage "workspace tests" workspace_tests

if [[ -x "$reference_runc" ]]; then
    stage "harness self-check against $reference_runc" \
        env BERTH_TEST_RUNTIME="$reference_runc" bash -c "$(declare -f run_tests); run_tests -p berth-testkit"
else
    echo "run-all: $reference_runc missing; harness self-check skipped" >&2
fi

# The same harness tests, now against berth-runc itself.
stage "harness tests against berth-runc" \
    env BERTH_TEST_RUNTIME="$target/debug/berth-runc" bash -c "$(declare -f run_tests); run_tests -p berth-testkit"

# The berth CLI's comparison tests (berth vs the docker CLI, same daemon) against berthd;
# in the workspace stage they ran against a private dockerd. One daemon, so one at a time.
cli_against_berthd() {
    local dir pid rc=0
    dir="$(mktemp -d /tmp/berthd-cli.XXXXXX)"
    echo '{}' >"$dir/daemon.json"
    "$target/debug/berthd" --config-file "$dir/daemon.json" --data-root "$dir/data" --exec-root "$dir/exec" \
        --pidfile "$dir/pid" -H "unix://$dir/b.sock" 2>"$dir/berthd.log" &
    pid=$!
    for _ in $(seq 100); do [[ -S "$dir/b.sock" ]] && break; sleep 0.1; done
    BERTH_TEST_DAEMON="$dir/b.sock" run_tests -p berth-cli --test compare --test containers --test-threads 1 || rc=$?
    kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
    [[ $rc -eq 0 ]] || tail -20 "$dir/berthd.log"
    rm -rf "$dir"
    return $rc
}
stage "berth CLI against berthd, compared with the docker CLI" cli_against_berthd

# docker-py against berthd (pytest starts its own berthd and registry).
stage "docker-py against berthd" env BERTHD="$target/debug/berthd" python3 -m pytest -q -p no:cacheprovider tests/docker-py

# The daemon's docker CLI tests ran with the docker on PATH; Debian's 20.10 CLI speaks
# API 1.41 and renders some output differently, so it gets the same tests.
if [[ -x /usr/bin/docker && "$(command -v docker)" != /usr/bin/docker ]]; then
    stage "docker CLI tests with Debian's /usr/bin/docker" \
        env BERTH_TEST_DOCKER_CLI=/usr/bin/docker bash -c "$(declare -f run_tests); run_tests -p berth-daemon --test docker_cli --test containers"
fi

stage "pure cgroup v2 guest (berth-cgroups tests and a berth-runc container)" tests/v2-guest-runc.sh

if [[ "${SKIP_PEERS:-0}" != 1 ]]; then
    stage "peers (podman, dockerd)" env RUNTIME="${RUNTIME:-$target/debug/berth-runc}" tests/peers.sh
fi

echo
if [[ ${#failed[@]} -gt 0 ]]; then
    printf 'run-all: FAILED stages:'
    printf ' [%s]' "${failed[@]}"
    echo
    exit 1
fi
echo "run-all: all stages passed"
