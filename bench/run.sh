#!/usr/bin/env bash
# bench/run.sh: container start latency, memory per container and parallel throughput,
# berth next to docker (Debian's dockerd, started here with its own data root) and podman
# when installed, in one run.
#
#   1. `berth run --rm busybox true` vs `docker run --rm --network none busybox true` vs
#      `podman run --rm --network none busybox true`: medians (hyperfine) and ratios.
#   2. 200 containers running `sleep` at once under berthd: berthd's RSS, the shims'
#      RSS (mean and max) and PSS; dockerd+containerd and the containerd shims for the
#      same 200 under docker.
#   3. 100 `run -d` started in parallel: wall time and containers per second, per engine.
#
# The busybox image is made from Debian's busybox-static (tests/make-rootfs.sh) and loaded
# into each engine. Env: RUNS (20), COUNT (200), PARALLEL (100),
# WORK (/var/tmp/berth-bench-run), BERTH_BIN_DIR (target/release, built if absent).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$repo/target}"
runs="${RUNS:-20}"
count="${COUNT:-200}"
parallel="${PARALLEL:-100}"
work="${WORK:-/var/tmp/berth-bench-run}"
bin="${BERTH_BIN_DIR:-$target/release}"
[[ $(id -u) -eq 0 ]] || { echo "bench: must run as root" >&2; exit 1; }

"$repo/tests/install-deps.sh" docker.io hyperfine busybox-static python3 jq
if [[ ! -x "$bin/berthd" || ! -x "$bin/berth" || ! -x "$bin/berth-shim" ]]; then
    echo "bench: building berthd, berth and berth-shim (release)" >&2
    cargo build --release --manifest-path "$repo/Cargo.toml" -p berth-daemon -p berth-cli -p berth-shim >&2
fi

berthd_pid="" dockerd_pid=""
cleanup() {
    set +e
    if [[ -n "$berthd_pid" ]]; then
        berth ps -aq 2>/dev/null | xargs -r "$bin/berth" -H "unix://$work/berth/berth.sock" rm -f >/dev/null 2>&1
        kill "$berthd_pid" 2>/dev/null && wait "$berthd_pid" 2>/dev/null
    fi
    pkill -f -- "berth-shim" 2>/dev/null
    if [[ -n "$dockerd_pid" ]]; then
        docker_ ps -aq 2>/dev/null | xargs -r docker -H "unix://$work/docker/docker.sock" rm -f >/dev/null 2>&1
        kill "$dockerd_pid" 2>/dev/null
        for _ in $(seq 100); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.2; done
        pkill -f -- "$work/docker/" 2>/dev/null
    fi
    if command -v podman >/dev/null 2>&1; then
        podman_ rm -af >/dev/null 2>&1
    fi
    grep -q " $work/" /proc/mounts && awk -v w="$work/" '$2 ~ "^"w {print $2}' /proc/mounts | sort -r | xargs -r -n1 umount -l
    rm -rf "$work"
}
trap cleanup EXIT
rm -rf "$work" && mkdir -p "$work"

# --- the image -------------------------------------------------------------------------
"$repo/tests/make-rootfs.sh" "$work/rootfs" >/dev/null
python3 "$repo/tests/make-image.py" "$work/layout" --layer "$work/rootfs" --config-json '{"Cmd":["sh"]}' \
    --docker-archive "$work/busybox.tar" --repo-tag busybox:latest >/dev/null

# --- engines ---------------------------------------------------------------------------
mkdir -p "$work/berth"
echo '{}' >"$work/berth/daemon.json"
"$bin/berthd" --config-file "$work/berth/daemon.json" --data-root "$work/berth/data" --exec-root "$work/berth/exec" \
    --pidfile "$work/berth/pid" -H "unix://$work/berth/berth.sock" >"$work/berth/log" 2>&1 &
berthd_pid=$!
mkdir -p "$work/docker"
echo '{}' >"$work/docker/daemon.json"
dockerd --config-file "$work/docker/daemon.json" --data-root "$work/docker/data" --exec-root "$work/docker/exec" \
    --pidfile "$work/docker/pid" -H "unix://$work/docker/docker.sock" --bridge=none --iptables=false --ip-masq=false \
    --containerd-namespace bench-run --log-level warn >"$work/docker/log" 2>&1 &
dockerd_pid=$!
for _ in $(seq 150); do
    [[ -S "$work/berth/berth.sock" && -S "$work/docker/docker.sock" ]] && break
    sleep 0.2
done
berth() { BERTH_CONFIG="$work/berth/cli" "$bin/berth" -H "unix://$work/berth/berth.sock" "$@"; }
docker_() { DOCKER_CONFIG="$work/docker/cli" docker -H "unix://$work/docker/docker.sock" "$@"; }
podman_() { podman --root "$work/podman/root" --runroot "$work/podman/run" --storage-driver overlay "$@"; }
docker_ version >/dev/null && berth version >/dev/null
berth load -q -i "$work/busybox.tar" >/dev/null
docker_ load -q -i "$work/busybox.tar" >/dev/null
have_podman=0
if command -v podman >/dev/null 2>&1 && podman_ load -q -i "$work/busybox.tar" >/dev/null 2>&1; then
    # Only when it can run the image here (podman needs its own runtime setup).
    if podman_ run --rm --network none busybox true >/dev/null 2>"$work/podman.err"; then
        have_podman=1
    else
        echo "bench: podman cannot run containers here ($(head -c 200 "$work/podman.err")); left out" >&2
    fi
fi
export -f berth docker_ podman_
export work bin

# --- 1. start latency ------------------------------------------------------------------
cmds=(-n berth "berth run --rm busybox true" -n docker "docker_ run --rm --network none busybox true")
(( have_podman )) && cmds+=(-n podman "podman_ run --rm --network none busybox true")
hyperfine --shell bash --warmup 3 --runs "$runs" --export-json "$work/run.json" --style basic "${cmds[@]}" >&2

# --- 2. memory with COUNT containers ---------------------------------------------------
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
pss_kib() { awk '/^Pss:/ {print $2}' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }
for i in $(seq "$count"); do berth run -d busybox sleep 100000 >/dev/null; done
sleep 2
berthd_rss=$(rss_kib "$berthd_pid")
shim_rss=() shim_pss=()
for p in $(pgrep -x berth-shim); do shim_rss+=("$(rss_kib "$p")"); shim_pss+=("$(pss_kib "$p")"); done
berth ps -q | xargs -r "$bin/berth" -H "unix://$work/berth/berth.sock" rm -f >/dev/null

for i in $(seq "$count"); do docker_ run -d --network none busybox sleep 100000 >/dev/null; done
sleep 2
containerd_pid=$(pgrep -f -- "$work/docker/exec/containerd/containerd.toml" | head -1 || pgrep -f -- "containerd --config $work/docker" | head -1 || true)
dockerd_rss=$(rss_kib "$dockerd_pid")
containerd_rss=$( [[ -n "$containerd_pid" ]] && rss_kib "$containerd_pid" || echo 0)
cshim_rss=()
for p in $(pgrep -f "containerd-shim.*bench-run"); do cshim_rss+=("$(rss_kib "$p")"); done
docker_ ps -q | xargs -r docker -H "unix://$work/docker/docker.sock" rm -f >/dev/null

# --- 3. parallel run -d ----------------------------------------------------------------
now() { date +%s.%N; }
t0=$(now); seq "$parallel" | xargs -P "$parallel" -I{} bash -c 'berth run -d busybox sleep 100000 >/dev/null'; t1=$(now)
berth_par=$(python3 -c "print($t1 - $t0)")
berth_started=$(berth ps -q | wc -l)
berth ps -q | xargs -r "$bin/berth" -H "unix://$work/berth/berth.sock" rm -f >/dev/null
t0=$(now); seq "$parallel" | xargs -P "$parallel" -I{} bash -c 'docker_ run -d --network none busybox sleep 100000 >/dev/null'; t1=$(now)
docker_par=$(python3 -c "print($t1 - $t0)")
docker_started=$(docker_ ps -q | wc -l)
docker_ ps -q | xargs -r docker -H "unix://$work/docker/docker.sock" rm -f >/dev/null

python3 - "$work/run.json" <<PY
import json, statistics, sys
data = json.load(open(sys.argv[1]))
med = {r["command"]: statistics.median(r["times"]) for r in data["results"]}
print(f"run --rm busybox true, median of {len(data['results'][0]['times'])} runs")
print("| engine | median (ms) | berth / engine |")
print("|---|---|---|")
for name, t in med.items():
    print(f"| {name} | {t*1000:.1f} | {med['berth']/t:.3f} |")
print()
shim_rss = [int(x) for x in "${shim_rss[*]:-0}".split()]
shim_pss = [int(x) for x in "${shim_pss[*]:-0}".split()]
cshim = [int(x) for x in "${cshim_rss[*]:-0}".split()]
print(f"$count containers running sleep")
print("| process | RSS (MiB) |")
print("|---|---|")
print(f"| berthd | {$berthd_rss/1024:.1f} |")
print(f"| berth-shim, mean / max of {len(shim_rss)} | {statistics.mean(shim_rss)/1024:.2f} / {max(shim_rss)/1024:.2f} (PSS mean {statistics.mean(shim_pss)/1024:.2f}) |")
print(f"| dockerd + containerd | {$dockerd_rss/1024:.1f} + {$containerd_rss/1024:.1f} |")
print(f"| containerd-shim-runc-v2, mean of {len(cshim)} | {statistics.mean(cshim)/1024:.2f} |")
print()
print(f"$parallel run -d in parallel")
print("| engine | wall (s) | containers/s | running after |")
print("|---|---|---|---|")
print(f"| berth | {$berth_par:.2f} | {$parallel/$berth_par:.1f} | $berth_started |")
print(f"| docker | {$docker_par:.2f} | {$parallel/$docker_par:.1f} | $docker_started |")
PY
