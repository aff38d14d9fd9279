#!/usr/bin/env bash
# bench/pull.sh: `berth pull` against `docker pull` (and `podman pull` when installed) of
# the same large multi-layer image from a local reference registry, in one run.
#
# The image (built once, cached in $CACHE): a debootstrap minbase rootfs plus two layers of
# real files from this machine (/usr/lib/x86_64-linux-gnu, /usr/share), gzip-compressed,
# at least 250 MB compressed. It is pushed to Debian's docker-registry on loopback.
# Before every pull the image is removed from that engine and the page cache is dropped
# (hyperfine --prepare). Prints medians (s) and the ratios berth/docker and berth/podman,
# then the idle RSS of berthd next to dockerd+containerd.
#
# Env: RUNS (5), CACHE (/var/tmp/berth-bench-image), WORK (/var/tmp/berth-bench-pull),
#      BERTH_BIN_DIR (target/release, built if absent).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$repo/target}"
runs="${RUNS:-5}"
cache="${CACHE:-/var/tmp/berth-bench-image}"
work="${WORK:-/var/tmp/berth-bench-pull}"
bin="${BERTH_BIN_DIR:-$target/release}"
[[ $(id -u) -eq 0 ]] || { echo "bench: must run as root" >&2; exit 1; }

"$repo/tests/install-deps.sh" docker-registry skopeo docker.io hyperfine debootstrap python3 curl jq
if [[ ! -x "$bin/berthd" || ! -x "$bin/berth" ]]; then
    echo "bench: building berthd and berth (release)" >&2
    cargo build --release --manifest-path "$repo/Cargo.toml" -p berth-daemon -p berth-cli >&2
fi

# --- the image -------------------------------------------------------------------------
if [[ ! -f "$cache/layout/index.json" ]]; then
    echo "bench: building the benchmark image in $cache (once)" >&2
    rm -rf "$cache" && mkdir -p "$cache"
    debootstrap --variant=minbase bookworm "$cache/base" http://deb.debian.org/debian >"$cache/debootstrap.log" 2>&1 \
        || { echo "bench: debootstrap failed, see $cache/debootstrap.log" >&2; exit 1; }
    # Real files, hard-linked into place (same filesystem) so staging costs no copy.
    mkdir -p "$cache/libs/usr/lib" "$cache/share/usr"
    cp -al /usr/lib/x86_64-linux-gnu "$cache/libs/usr/lib/" 2>/dev/null || cp -a /usr/lib/x86_64-linux-gnu "$cache/libs/usr/lib/"
    cp -al /usr/share "$cache/share/usr/" 2>/dev/null || cp -a /usr/share "$cache/share/usr/"
    "$repo/tests/make-image.py" "$cache/layout" --layer "$cache/base" --layer "$cache/libs" --layer "$cache/share" \
        --config-json '{"Cmd":["bash"]}' >"$cache/digest"
    rm -rf "$cache/base" "$cache/libs" "$cache/share"
fi
compressed=$(jq '[.layers[].size] | add' "$cache/layout/blobs/sha256/$(jq -r '.manifests[0].digest' "$cache/layout/index.json" | cut -d: -f2)")
echo "bench: image: $(( compressed / 1000000 )) MB compressed in $(jq '.layers | length' "$cache/layout/blobs/sha256/$(jq -r '.manifests[0].digest' "$cache/layout/index.json" | cut -d: -f2)") layers" >&2

# --- peers -----------------------------------------------------------------------------
berthd_pid="" dockerd_pid=""
cleanup() {
    set +e
    [[ -n "$berthd_pid" ]] && kill "$berthd_pid" 2>/dev/null && wait "$berthd_pid" 2>/dev/null
    if [[ -n "$dockerd_pid" ]]; then
        kill "$dockerd_pid" 2>/dev/null
        for _ in $(seq 100); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.2; done
        pkill -f -- "$work/docker/" 2>/dev/null
    fi
    "$repo/tests/registry.sh" stop "$work/registry" >/dev/null 2>&1
    grep -q " $work/" /proc/mounts && awk -v w="$work/" '$2 ~ "^"w {print $2}' /proc/mounts | sort -r | xargs -r -n1 umount -l
    rm -rf "$work"
}
trap cleanup EXIT
rm -rf "$work" && mkdir -p "$work"

addr=$("$repo/tests/registry.sh" start "$work/registry")
image="$addr/bench/large:latest"
skopeo copy -q --dest-tls-verify=false oci:"$cache/layout":latest "docker://$image"

mkdir -p "$work/berth"
echo '{}' >"$work/berth/daemon.json"
"$bin/berthd" --config-file "$work/berth/daemon.json" --data-root "$work/berth/data" --exec-root "$work/berth/exec" \
    --pidfile "$work/berth/pid" -H "unix://$work/berth/berth.sock" >"$work/berth/log" 2>&1 &
berthd_pid=$!
mkdir -p "$work/docker"
echo '{}' >"$work/docker/daemon.json"
dockerd --config-file "$work/docker/daemon.json" --data-root "$work/docker/data" --exec-root "$work/docker/exec" \
    --pidfile "$work/docker/pid" -H "unix://$work/docker/docker.sock" --bridge=none --iptables=false --ip-masq=false \
    --insecure-registry "$addr" --containerd-namespace bench --log-level warn >"$work/docker/log" 2>&1 &
dockerd_pid=$!
for _ in $(seq 150); do
    [[ -S "$work/berth/berth.sock" && -S "$work/docker/docker.sock" ]] && break
    sleep 0.2
done
berth() { BERTH_CONFIG="$work/berth/cli" "$bin/berth" -H "unix://$work/berth/berth.sock" "$@"; }
docker_() { DOCKER_CONFIG="$work/docker/cli" docker -H "unix://$work/docker/docker.sock" "$@"; }
docker_ version >/dev/null && berth version >/dev/null
sleep 2

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
containerd_pid=$(pgrep -f -- "$work/docker/exec/containerd" | head -1 || true)
idle_berthd=$(rss_kib "$berthd_pid")
idle_dockerd=$(rss_kib "$dockerd_pid")
idle_containerd=$( [[ -n "$containerd_pid" ]] && rss_kib "$containerd_pid" || echo 0)

# --- pulls -----------------------------------------------------------------------------
export -f berth docker_
export work bin image
drop='sync; echo 3 > /proc/sys/vm/drop_caches'
cmds=(
    --prepare "berth rmi -f $image >/dev/null 2>&1; berth image prune -af >/dev/null 2>&1; $drop" -n berth "berth pull -q $image"
    --prepare "docker_ rmi -f $image >/dev/null 2>&1; docker_ image prune -af >/dev/null 2>&1; $drop" -n docker "docker_ pull -q $image"
)
have_podman=0
if command -v podman >/dev/null 2>&1; then
    have_podman=1
    podman_() { podman --root "$work/podman/root" --runroot "$work/podman/run" --storage-driver overlay "$@"; }
    export -f podman_
    cmds+=(--prepare "podman_ rmi -f $image >/dev/null 2>&1; $drop" -n podman "podman_ pull -q --tls-verify=false $image")
fi
hyperfine --shell bash --runs "$runs" --export-json "$work/pull.json" --style basic "${cmds[@]}" >&2

idle_after=$(rss_kib "$berthd_pid")
python3 - "$work/pull.json" "$compressed" "$idle_berthd" "$idle_after" "$idle_dockerd" "$idle_containerd" <<'PY'
import json, statistics, sys
data = json.load(open(sys.argv[1]))
compressed, berthd, berthd_after, dockerd, containerd = (int(x) for x in sys.argv[2:])
med = {r["command"]: statistics.median(r["times"]) for r in data["results"]}
print(f"pull of a {compressed/1e6:.0f} MB image, cold page cache, median of {len(data['results'][0]['times'])} runs")
print("| engine | median (s) | berth / engine |")
print("|---|---|---|")
for name, t in med.items():
    print(f"| {name} | {t:.2f} | {med['berth']/t:.2f} |")
print()
print("| idle daemon RSS | MiB |")
print("|---|---|")
print(f"| berthd (fresh) | {berthd/1024:.1f} |")
print(f"| berthd (after the pulls) | {berthd_after/1024:.1f} |")
print(f"| dockerd + containerd | {dockerd/1024:.1f} + {containerd/1024:.1f} = {(dockerd+containerd)/1024:.1f} |")
PY
