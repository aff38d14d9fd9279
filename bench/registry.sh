#!/usr/bin/env bash
# bench/registry.sh: berth-registry against the reference registry (Debian's docker-registry,
# distribution 2.8) on loopback, in one run, with the same content pushed to both with
# skopeo and the same load tool and concurrency. Prints the medians of ROUNDS rounds and
# the ratios berth/reference as markdown tables:
#
#   manifest GET    GET /v2/bench/small/manifests/latest with the Accept header docker
#                   sends; wrk, THREADS threads, MANIFEST_CONNS connections; requests/s
#   1 MiB blob GET  a 1 MiB layer; wrk, BLOB_CONNS connections; MiB/s of blob bytes
#   100 MiB blob    a 100 MiB layer; wrk, BIG_CONNS connections; MiB/s of blob bytes
#   blob push       PUSHES distinct random 10 MiB blobs (new ones every round, the same
#                   ones for both servers), PUSH_CONC at a time, each pushed the way docker
#                   pushes a layer in one piece: POST /v2/<repo>/blobs/uploads/, then PUT
#                   <Location>?digest=<d> with the whole body (curl, streaming the file);
#                   MiB/s over the wall time of the batch
#   peak RSS        VmHWM of each server process after everything above
#
# Servers and clients get a CPU each (PIN=1, the default on 2+ CPUs): the server under
# test on CPU 1, wrk and the push clients on CPU 0, as if the clients ran on another
# host. Sharing 2 cores instead, a 100 MiB GET costs the load tool about as much CPU as
# the server (its receive copy), so the figure would measure the client as much as the
# server; PIN=0 shows that too.
#
# Next to each GET figure: the server's own CPU time (user + system, /proc/PID/stat) per
# request or per GiB served, which the load tool's share of the CPUs does not blur.
#
# wrk (Debian package) is the load tool: it is C with epoll and spends little CPU per
# request; its Lua `done` hook reports exact counts and non-2xx answers (a run with
# any error fails the benchmark). Servers take turns (the order flips every round).
# The reference runs with its shipped blob descriptor cache (inmemory) and warn-level
# logs; berth-registry with --log-level warn. Note: berth-registry fsyncs every blob
# and link it writes; the reference's filesystem driver does not fsync at all.
#
# Goals: manifest GET >= 3x, blob GET >= 1.5x, lower peak RSS.
#
# Env: ROUNDS (5), DURATION (5, seconds per wrk run), PIN (1), THREADS (2),
#      MANIFEST_CONNS (32), BLOB_CONNS (8), BIG_CONNS (4), PUSHES (16), PUSH_CONC (4),
#      WORK (/var/tmp/berth-bench-registry), BERTH_BIN_DIR (target/release, built if absent)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$repo/target}"
rounds="${ROUNDS:-5}"
duration="${DURATION:-5}"
threads="${THREADS:-2}"
manifest_conns="${MANIFEST_CONNS:-32}"
blob_conns="${BLOB_CONNS:-8}"
big_conns="${BIG_CONNS:-4}"
pushes="${PUSHES:-16}"
push_conc="${PUSH_CONC:-4}"
work="${WORK:-/var/tmp/berth-bench-registry}"
bin="${BERTH_BIN_DIR:-$target/release}"
server_cpu=() client_cpu=()
if [[ "${PIN:-1}" == 1 && $(nproc) -ge 2 ]]; then
    server_cpu=(taskset -c 1) client_cpu=(taskset -c 0)
fi

"$repo/tests/install-deps.sh" docker-registry skopeo wrk python3 curl jq
if [[ ! -x "$bin/berth-registry" ]]; then
    echo "bench: building berth-registry (release)" >&2
    cargo build --release --manifest-path "$repo/Cargo.toml" -p berth-registry >&2
fi

berth_pid="" ref_pid=""
cleanup() {
    set +e
    for pid in $berth_pid $ref_pid; do
        kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    done
    rm -rf "$work"
}
trap cleanup EXIT
rm -rf "$work" && mkdir -p "$work/berth" "$work/ref" "$work/content" "$work/push"

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# --- servers ---------------------------------------------------------------------------
"${server_cpu[@]}" "$bin/berth-registry" --log-level warn serve --addr 127.0.0.1:0 --root "$work/berth/data" \
    >"$work/berth/out" 2>"$work/berth/log" </dev/null &
berth_pid=$!
for _ in $(seq 200); do grep -q '^listening on' "$work/berth/out" 2>/dev/null && break; sleep 0.05; done
berth_addr=$(sed -n 's|^listening on http://||p' "$work/berth/out")
[[ -n "$berth_addr" ]] || { echo "bench: berth-registry did not start:" >&2; cat "$work/berth/log" >&2; exit 1; }

# As tests/registry.sh runs it, with the shipped descriptor cache and quiet logs.
ref_port=$(free_port)
cat >"$work/ref/config.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: $work/ref/storage
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$ref_port
EOF
"${server_cpu[@]}" /usr/bin/docker-registry serve "$work/ref/config.yml" >"$work/ref/log" 2>&1 </dev/null &
ref_pid=$!
ref_addr="127.0.0.1:$ref_port"
for _ in $(seq 200); do curl -sf -o /dev/null "http://$ref_addr/v2/" && break; sleep 0.05; done
curl -sf -o /dev/null "http://$ref_addr/v2/" || { echo "bench: docker-registry did not start:" >&2; cat "$work/ref/log" >&2; exit 1; }
idle_berth=$(awk '/^VmRSS/ {print $2}' "/proc/$berth_pid/status")
idle_ref=$(awk '/^VmRSS/ {print $2}' "/proc/$ref_pid/status")

# --- content, pushed to both with skopeo -----------------------------------------------
c="$work/content"
mkdir -p "$c/small/etc" "$c/one/data" "$c/hundred/data"
echo "bench" >"$c/small/etc/hostname"
head -c 1048576 /dev/urandom >"$c/one/data/blob"
head -c 104857600 /dev/urandom >"$c/hundred/data/blob"
"$repo/tests/make-image.py" "$c/small-layout" --layer "$c/small" --config-json '{"Cmd":["sh"]}' >/dev/null
"$repo/tests/make-image.py" "$c/blobs-layout" --compression none --layer "$c/one" --layer "$c/hundred" >"$c/blobs-digest"
for addr in "$berth_addr" "$ref_addr"; do
    skopeo copy -q --dest-tls-verify=false --format v2s2 oci:"$c/small-layout":latest "docker://$addr/bench/small:latest"
    skopeo copy -q --dest-tls-verify=false --preserve-digests oci:"$c/blobs-layout":latest "docker://$addr/bench/blobs:latest"
done
blobs_manifest="$c/blobs-layout/blobs/sha256/$(cut -d: -f2 "$c/blobs-digest")"
one_digest=$(jq -r '.layers[0].digest' "$blobs_manifest")
one_size=$(jq -r '.layers[0].size' "$blobs_manifest")
hundred_digest=$(jq -r '.layers[1].digest' "$blobs_manifest")
hundred_size=$(jq -r '.layers[1].size' "$blobs_manifest")
rm -rf "$c/one" "$c/hundred"

# The Accept header of `docker pull` (as one comma-separated value).
accept="application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v1+prettyjws, application/json"
for addr in "$berth_addr" "$ref_addr"; do
    for url in "/v2/bench/small/manifests/latest" "/v2/bench/blobs/blobs/$one_digest" "/v2/bench/blobs/blobs/$hundred_digest"; do
        curl -sf -o /dev/null -H "Accept: $accept" "http://$addr$url" || { echo "bench: GET http://$addr$url failed" >&2; exit 1; }
    done
done

cat >"$work/report.lua" <<'EOF'
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d\n", summary.requests, summary.duration,
    e.status, e.connect + e.read + e.write + e.timeout))
end
EOF

results="$work/results.tsv"
: >"$results"

# Server CPU time (user + system) in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
tck=$(getconf CLK_TCK)

# load NAME SERVER PID CONNS SECONDS URL [BYTES_PER_REQUEST]: runs wrk; records req/s and
# the server's CPU time per request, or with BYTES_PER_REQUEST, MiB/s of blob bytes and
# the server's CPU time per GiB. NAME "-" is a warm-up: checked, not recorded.
load() {
    local name="$1" server="$2" pid="$3" conns="$4" seconds="$5" url="$6" bytes="${7:-}" out requests micros status others t0 t1
    t0=$(cpu_ticks "$pid")
    out=$("${client_cpu[@]}" wrk -t "$threads" -c "$conns" -d "${seconds}s" --timeout 60s -H "Accept: $accept" -s "$work/report.lua" "$url")
    t1=$(cpu_ticks "$pid")
    read -r requests micros status others < <(sed -n 's/^RESULT //p' <<<"$out") || true
    if [[ -z "$requests" || "$requests" -eq 0 || "$status" -ne 0 || "$others" -ne 0 ]]; then
        echo "bench: $name on $server: $requests requests, $status error answers, $others socket errors" >&2
        echo "$out" >&2
        exit 1
    fi
    [[ "$name" == "-" ]] && return 0
    python3 - "$name" "$server" "$requests" "$micros" "${bytes:-0}" "$((t1 - t0))" "$tck" >>"$results" <<'PY'
import sys
name, server = sys.argv[1:3]
requests, micros, size, ticks, tck = (int(x) for x in sys.argv[3:])
cpu = ticks / tck
if size:
    gib = requests * size / 2**30
    print(f"{name}, MiB/s\t{server}\t{gib * 1024 / (micros / 1e6):.1f}")
    print(f"{name}, server CPU s per GiB\t{server}\t{cpu / gib:.3f}")
else:
    print(f"{name}, req/s\t{server}\t{requests / (micros / 1e6):.0f}")
    print(f"{name}, server CPU µs per request\t{server}\t{cpu * 1e6 / requests:.1f}")
PY
}

# One blob pushed as docker pushes a layer in one piece. Args: FILE (named <hex>.blob).
push_one() {
    local file="$1" digest loc sep code
    digest="sha256:$(basename "$file" .blob)"
    loc=$(curl -sS -o /dev/null -D - -X POST -H 'Content-Length: 0' "http://$PUSH_ADDR/v2/bench/push/blobs/uploads/" \
        | tr -d '\r' | awk 'tolower($1) == "location:" {print $2}')
    [[ -n "$loc" ]] || { echo "bench: no upload location from $PUSH_ADDR" >&2; exit 255; }
    [[ "$loc" == /* ]] && loc="http://$PUSH_ADDR$loc"
    if [[ "$loc" == *\?* ]]; then sep='&'; else sep='?'; fi
    code=$(curl -sS -o /dev/null -w '%{http_code}' -X PUT -H 'Expect:' -H 'Content-Type: application/octet-stream' \
        -T "$file" "$loc${sep}digest=$digest")
    [[ "$code" == 201 ]] || { echo "bench: push of $file to $PUSH_ADDR answered $code" >&2; exit 255; }
}
export -f push_one

# push SERVER ADDR: pushes every blob of $work/push, records MiB/s.
push() {
    local server="$1" addr="$2" start end
    start=$(date +%s%N)
    find "$work/push" -name '*.blob' -print0 | PUSH_ADDR="$addr" "${client_cpu[@]}" xargs -0 -P "$push_conc" -n 1 bash -c 'push_one "$0"'
    end=$(date +%s%N)
    python3 -c "import sys; n, ns = int(sys.argv[1]), int(sys.argv[2]); print(f'blob push (10 MiB x $pushes, $push_conc at a time), MiB/s\t$server\t{n * 10 / (ns / 1e9):.1f}')" "$pushes" "$((end - start))" >>"$results"
}

# New random blobs for a round's pushes.
make_push_blobs() {
    rm -f "$work/push/"*.blob
    local i tmp hex
    for ((i = 0; i < pushes; i++)); do
        tmp="$work/push/tmp"
        head -c 10485760 /dev/urandom >"$tmp"
        hex=$(sha256sum "$tmp" | cut -c1-64)
        mv "$tmp" "$work/push/$hex.blob"
    done
}

# Warm-up: connections, page cache, caches.
for target in "$berth_addr $berth_pid" "$ref_addr $ref_pid"; do
    read -r addr pid <<<"$target"
    load - warm-up "$pid" "$manifest_conns" 1 "http://$addr/v2/bench/small/manifests/latest"
    load - warm-up "$pid" "$blob_conns" 1 "http://$addr/v2/bench/blobs/blobs/$one_digest"
    load - warm-up "$pid" "$big_conns" 1 "http://$addr/v2/bench/blobs/blobs/$hundred_digest"
done

manifest_name="manifest GET by tag ($manifest_conns connections)"
one_name="1 MiB blob GET ($blob_conns connections)"
hundred_name="100 MiB blob GET ($big_conns connections)"
for ((round = 1; round <= rounds; round++)); do
    echo "bench: round $round of $rounds" >&2
    if ((round % 2)); then order=(berth reference); else order=(reference berth); fi
    make_push_blobs
    for server in "${order[@]}"; do
        if [[ "$server" == berth ]]; then addr="$berth_addr" pid="$berth_pid"; else addr="$ref_addr" pid="$ref_pid"; fi
        load "$manifest_name" "$server" "$pid" "$manifest_conns" "$duration" "http://$addr/v2/bench/small/manifests/latest"
        load "$one_name" "$server" "$pid" "$blob_conns" "$duration" "http://$addr/v2/bench/blobs/blobs/$one_digest" "$one_size"
        load "$hundred_name" "$server" "$pid" "$big_conns" "$duration" "http://$addr/v2/bench/blobs/blobs/$hundred_digest" "$hundred_size"
        push "$server" "$addr"
    done
done

peak_berth=$(awk '/^VmHWM/ {print $2}' "/proc/$berth_pid/status")
peak_ref=$(awk '/^VmHWM/ {print $2}' "/proc/$ref_pid/status")

pinning="server on CPU 1, clients on CPU 0"
[[ ${#server_cpu[@]} -gt 0 ]] || pinning="servers and clients sharing all CPUs"
PINNING="$pinning" python3 - "$results" "$rounds" "$idle_berth" "$idle_ref" "$peak_berth" "$peak_ref" <<'PY'
import collections, statistics, sys
path, rounds = sys.argv[1], sys.argv[2]
idle_berth, idle_ref, peak_berth, peak_ref = (int(x) for x in sys.argv[3:])
values = collections.defaultdict(lambda: collections.defaultdict(list))
order = []
for line in open(path):
    name, server, value = line.rstrip("\n").split("\t")
    if name not in order:
        order.append(name)
    values[name][server].append(float(value))
import os
print(f"berth-registry vs docker-registry (distribution 2.8), loopback, {os.environ['PINNING']}, medians of {rounds} rounds")
print()
def show(v):
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}" if v >= 10 else f"{v:.3f}"
print("| what | berth-registry | reference | berth / reference |")
print("|---|---|---|---|")
for name in order:
    b, r = statistics.median(values[name]["berth"]), statistics.median(values[name]["reference"])
    print(f"| {name} | {show(b)} | {show(r)} | {b / r:.2f}x |")
print()
print("(server CPU rows: lower is better)")
print()
print("| memory | berth-registry | reference | berth / reference |")
print("|---|---|---|---|")
print(f"| RSS after start, MiB | {idle_berth / 1024:.1f} | {idle_ref / 1024:.1f} | {idle_berth / idle_ref:.2f} |")
print(f"| peak RSS (VmHWM), MiB | {peak_berth / 1024:.1f} | {peak_ref / 1024:.1f} | {peak_berth / peak_ref:.2f} |")
PY
