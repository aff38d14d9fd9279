#!/usr/bin/env bash
# bench/runtime.sh: berth-runc against runc, side by side in one run, on the same busybox
# bundle running `true` (runc spec defaults, terminal false).
#
# Measures, interleaving the two runtimes so drift hits both alike:
#   run                      `RT run --bundle B ID`
#   create+start+wait+delete `create`, `start`, poll `state` until stopped, `delete`
#   peak RSS of `run`        /usr/bin/time -f %M, median of RSS_RUNS
# and prints medians and the ratio berth/runc.
#
# Env: BERTH (default target/release/berth-runc, built if absent), RUNC (default
# /usr/sbin/runc), WARMUP (10), RUNS (100), LIFECYCLE_RUNS (50), RSS_RUNS (20).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$repo/target}"
warmup="${WARMUP:-10}"
runs="${RUNS:-100}"
lifecycle_runs="${LIFECYCLE_RUNS:-50}"
rss_runs="${RSS_RUNS:-20}"
runc="${RUNC:-/usr/sbin/runc}"

if [[ -z "${BERTH:-}" ]]; then
    berth="$target/release/berth-runc"
    if [[ ! -x "$berth" ]]; then
        echo "bench: building $berth" >&2
        cargo build --release --manifest-path "$repo/Cargo.toml" -p berth-runc >&2 || true
    fi
else
    berth="$BERTH"
fi

missing=0
for bin in "$berth" "$runc"; do
    if [[ ! -x "$bin" ]]; then
        echo "bench: missing runtime binary: $bin" >&2
        missing=1
    fi
done
[[ $missing -eq 0 ]] || exit 1
[[ $(id -u) -eq 0 ]] || { echo "bench: must run as root" >&2; exit 1; }

need_pkg() { # command package
    command -v "$1" >/dev/null 2>&1 && return 0
    echo "bench: installing $2" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null \
        || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null; }
}
need_pkg hyperfine hyperfine
[[ -x /usr/bin/time ]] || need_pkg /usr/bin/time time
need_pkg python3 python3

work="$(mktemp -d /tmp/berth-bench.XXXXXX)"
cleanup() {
    local rt root id
    # Containers left by an interrupted run: force-delete them in each private root.
    for rt in berth runc; do
        root="$work/root-$rt"
        [[ -d "$root" ]] || continue
        bin="$berth"; [[ $rt == runc ]] && bin="$runc"
        for id in $(ls "$root" 2>/dev/null); do
            "$bin" --root "$root" delete --force "$id" >/dev/null 2>&1 || true
        done
    done
    rm -rf "$work"
}
trap cleanup EXIT

bundle="$work/bundle"
mkdir -p "$bundle" "$work/root-berth" "$work/root-runc"
"$repo/tests/make-rootfs.sh" "$bundle/rootfs"
(cd "$bundle" && "$runc" spec)
sed -i -e 's/"terminal": true/"terminal": false/' -e 's/^\(\t*\)"sh"$/\1"true"/' "$bundle/config.json"
grep -q '"terminal": false' "$bundle/config.json" && grep -q '"true"' "$bundle/config.json" \
    || { echo "bench: could not rewrite config.json" >&2; exit 1; }

# One lifecycle: create, start, poll state until stopped, delete.
cat >"$work/lifecycle.sh" <<'LIFE'
#!/usr/bin/env bash
set -euo pipefail
rt="$1" root="$2" bundle="$3" id="$4"
"$rt" --root "$root" create --bundle "$bundle" "$id" </dev/null >/dev/null
"$rt" --root "$root" start "$id"
while :; do
    st="$("$rt" --root "$root" state "$id")"
    [[ "$st" == *'"status": "stopped"'* || "$st" == *'"status":"stopped"'* ]] && break
done
"$rt" --root "$root" delete "$id"
LIFE
chmod +x "$work/lifecycle.sh"

# Sanity check both before timing anything.
for rt in berth runc; do
    bin="$berth"; [[ $rt == runc ]] && bin="$runc"
    "$bin" --root "$work/root-$rt" run --bundle "$bundle" "check-$rt" </dev/null \
        || { echo "bench: $bin cannot run the bundle" >&2; exit 1; }
    "$work/lifecycle.sh" "$bin" "$work/root-$rt" "$bundle" "check-life-$rt" \
        || { echo "bench: $bin fails the lifecycle" >&2; exit 1; }
done

# --runs 1 per parameter value gives every iteration its own container id; hyperfine
# interleaves the commands per value. Each measurement runs in two halves with the order
# swapped, so whichever goes first (warmer or colder caches) favours neither. The first
# $warmup values of each half are dropped.
# time_pair NAME TOTAL BERTH-CMD RUNC-CMD: commands use {id} for the container id.
time_pair() {
    local name="$1" total="$2" bcmd="$3" rcmd="$4" half n
    for half in a b; do
        n=$((warmup + (total + 1) / 2))
        local b="${bcmd//\{id\}/berth-$name-$half{i}}" r="${rcmd//\{id\}/runc-$name-$half{i}}"
        if [[ $half == a ]]; then set -- "$b" "$r"; else set -- "$r" "$b"; fi
        hyperfine -N --style none --runs 1 --parameter-scan i 1 "$n" \
            --export-json "$work/$name-$half.json" "$@" >/dev/null
    done
}

echo "bench: run x$((warmup * 2 + runs)) per runtime" >&2
time_pair run "$runs" \
    "$berth --root $work/root-berth run --bundle $bundle {id}" \
    "$runc --root $work/root-runc run --bundle $bundle {id}"

echo "bench: create+start+wait+delete x$((warmup * 2 + lifecycle_runs)) per runtime" >&2
time_pair life "$lifecycle_runs" \
    "$work/lifecycle.sh $berth $work/root-berth $bundle {id}" \
    "$work/lifecycle.sh $runc $work/root-runc $bundle {id}"

echo "bench: peak RSS of run x$rss_runs per runtime" >&2
: >"$work/rss-berth"
: >"$work/rss-runc"
for ((i = 1; i <= rss_runs; i++)); do
    for rt in berth runc; do
        bin="$berth"; [[ $rt == runc ]] && bin="$runc"
        /usr/bin/time -a -o "$work/rss-$rt" -f %M \
            "$bin" --root "$work/root-$rt" run --bundle "$bundle" "$rt-rss-$i" </dev/null >/dev/null
    done
done

python3 - "$work" "$warmup" "$berth" "$runc" <<'PY'
import json, statistics, sys
work, warmup, berth, runc = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]

def medians(name):
    out = {"berth": [], "runc": []}
    for half in "ab":
        for r in json.load(open(f"{work}/{name}-{half}.json"))["results"]:
            if int(r["parameters"]["i"]) <= warmup:
                continue
            # Told apart by the container id, which works even when both are one binary.
            key = "runc" if f"runc-{name}-{half}" in r["command"] else "berth"
            out[key].extend(r["times"])
    return {k: statistics.median(v) * 1000 for k, v in out.items()}, {k: len(v) for k, v in out.items()}

def rss(rt):
    vals = [int(l) for l in open(f"{work}/rss-{rt}") if l.strip().isdigit()]
    return statistics.median(vals) / 1024, len(vals)

run, run_n = medians("run")
life, life_n = medians("life")
rb, rb_n = rss("berth")
rr, rr_n = rss("runc")
rows = [
    (f"run `true` (ms, n={run_n['berth']})", run["berth"], run["runc"]),
    (f"create+start+wait+delete (ms, n={life_n['berth']})", life["berth"], life["runc"]),
    (f"peak RSS of run (MiB, n={rb_n})", rb, rr),
]
print(f"berth: {berth}\nrunc:  {runc}\n")
print(f"| {'measurement (median)':<44} | {'berth':>9} | {'runc':>9} | {'berth/runc':>10} |")
print(f"|{'-'*46}|{'-'*11}|{'-'*11}|{'-'*12}|")
for name, b, r in rows:
    print(f"| {name:<44} | {b:>9.2f} | {r:>9.2f} | {b / r:>10.2f} |")
PY
