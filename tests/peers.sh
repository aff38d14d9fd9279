#!/usr/bin/env bash
# tests/peers.sh: the runtime under real peers. Podman and a private dockerd each run a
# busybox image made from the test rootfs with RUNTIME as their OCI runtime: a plain
# run, a terminal run, and a detached container that is stopped and removed.
#
# Env: RUNTIME (default target/debug/berth-runc), DOCKER (docker CLI; default Debian's,
# else /usr/local/bin/docker), PEERS (podman,docker: which peers to test).
# Everything lives under one temp dir (image stores, dockerd data/exec roots) and is
# removed on exit, also on failure.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$repo/target}"
runtime="${RUNTIME:-$target/debug/berth-runc}"
peers="${PEERS:-podman,docker}"
# Fixed limits: the host's own nofile hard limit is low (20000) and CAP_SYS_RESOURCE is
# outside its bounding set, so podman's default (raise nofile to 1048576) would fail.
ulimits=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
image=localhost/busybox:test

[[ $(id -u) -eq 0 ]] || { echo "peers: must run as root" >&2; exit 1; }
[[ -x "$runtime" ]] || { echo "peers: runtime $runtime is missing (set RUNTIME=)" >&2; exit 1; }
runtime="$(readlink -f "$runtime")"

install_missing() {
    local want=() pkg cmd
    for pair in podman:podman dockerd:docker.io script:bsdutils timeout:coreutils; do
        cmd="${pair%%:*}" pkg="${pair#*:}"
        command -v "$cmd" >/dev/null 2>&1 || want+=("$pkg")
    done
    [[ ${#want[@]} -eq 0 ]] && return 0
    echo "peers: installing ${want[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq "${want[@]}" >/dev/null 2>&1 \
        || { apt-get update -qq && apt-get install -y -qq "${want[@]}" >/dev/null; }
}
install_missing

docker_cli="${DOCKER:-}"
if [[ -z "$docker_cli" ]]; then
    for c in /usr/bin/docker /usr/local/bin/docker; do
        [[ -x $c ]] && { docker_cli=$c; break; }
    done
fi

work="$(mktemp -d /tmp/berth-peers.XXXXXX)"

# Host paths the peers create outside their private roots (a global blob-info cache, CNI
# lock, parent cgroups): remembered now, removed at exit only if this run made them.
host_leftovers=(/var/lib/containers /run/containers /run/libpod /etc/cni /etc/containers/networks)
shopt -s nullglob
for h in /sys/fs/cgroup /sys/fs/cgroup/*/; do
    host_leftovers+=("${h%/}/libpod_parent" "${h%/}/docker")
done
shopt -u nullglob
fresh_leftovers=()
for p in "${host_leftovers[@]}"; do [[ -e $p ]] || fresh_leftovers+=("$p"); done
dockerd_pid=""
pass=0
fail=0

# A private store and run dir; cgroupfs and a file event log because there is no systemd.
podman_global=(--runtime "$runtime" --cgroup-manager cgroupfs --root "$work/podman/storage"
    --runroot "$work/podman/run" --tmpdir "$work/podman/tmp" --events-backend file)
podman_cmd() { timeout 120 podman "${podman_global[@]}" "$@"; }
docker_cmd() { timeout 120 "$docker_cli" -H "unix://$work/docker/docker.sock" "$@"; }

unmount_under() {
    local dir="$1" mp
    # Deepest first; lazy so a busy mount never blocks cleanup.
    for _ in 1 2 3; do
        mapfile -t mps < <(awk -v d="$dir" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r)
        [[ ${#mps[@]} -eq 0 ]] && return 0
        for mp in "${mps[@]}"; do umount -l "$mp" 2>/dev/null || true; done
    done
}

stop_dockerd() {
    [[ -n "$dockerd_pid" ]] || return 0
    local ours pid
    # dockerd's own containerd and shims carry this run's private paths on their command
    # lines; note their ids now so only they are killed if shutdown hangs.
    ours="$(pgrep -f -- "$work/docker/" || true)"
    kill -TERM "$dockerd_pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.2; done
    for pid in $dockerd_pid $ours; do kill -KILL "$pid" 2>/dev/null || true; done
    dockerd_pid=""
}

cleanup() {
    local rc=$?
    set +e
    if [[ -d "$work/podman" ]]; then
        podman_cmd rm -af -t 0 >/dev/null 2>&1
        podman_cmd rmi -af >/dev/null 2>&1
    fi
    if [[ -n "$dockerd_pid" ]]; then
        docker_cmd rm -f $(docker_cmd ps -aq 2>/dev/null) >/dev/null 2>&1
        stop_dockerd
    fi
    unmount_under "$work"
    rm -rf "$work"
    for p in "${fresh_leftovers[@]}"; do
        [[ -e $p ]] || continue
        if [[ $p == /sys/fs/cgroup/* ]]; then
            # Cgroup dirs go with rmdir, children first; a busy one stays and says so.
            find "$p" -depth -type d -exec rmdir {} + 2>/dev/null || echo "peers: cgroup $p still busy" >&2
        else
            rm -rf "$p"
        fi
    done
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ok() { echo "ok - $1"; pass=$((pass + 1)); }
not_ok() { echo "FAIL - $1"; shift; printf '    %s\n' "$@"; fail=$((fail + 1)); }
# check NAME EXPECTED-SUBSTRING CMD...: runs CMD, passes if it exits 0 and prints the substring.
check() {
    local name="$1" want="$2" out rc=0
    shift 2
    out="$("$@" 2>&1)" || rc=$?
    if [[ $rc -eq 0 && "$out" == *"$want"* ]]; then
        ok "$name"
    else
        not_ok "$name" "exit $rc, wanted \"$want\" in output:" "${out:0:2000}"
    fi
}
# A terminal run: script(1) gives the peer a pty, as a person at a terminal would. Its
# stdin is an idle pipe, not /dev/null: script passes EOF on to the pty, and podman then
# sometimes ends the session before the container's output is read.
in_pty() {
    local rc=0 holder fifo="$work/pty-stdin"
    [[ -p $fifo ]] || mkfifo "$fifo"
    sleep 150 >"$fifo" 2>/dev/null &
    holder=$!
    timeout 120 script -qec "$*" /dev/null <"$fifo" || rc=$?
    kill "$holder" 2>/dev/null || true
    wait "$holder" 2>/dev/null || true
    return "$rc"
}

rootfs="$work/rootfs"
podman_import() { tar -C "$rootfs" -c . | podman_cmd import - "$image"; }
docker_import() { tar -C "$rootfs" -c . | docker_cmd import - "$image"; }
"$repo/tests/make-rootfs.sh" "$rootfs"

echo "# runtime: $runtime"

if [[ ",$peers," == *,podman,* ]]; then
    echo "# podman $(podman --version | awk '{print $3}')"
    mkdir -p "$work/podman"
    check "podman: import busybox image" "" podman_import
    check "podman: run echo" "hello" \
        podman_cmd run --rm --pull never "${ulimits[@]}" --network none "$image" echo hello
    check "podman: run -it has a tty" "/dev/pts/0" \
        in_pty podman "${podman_global[@]}" run -it --rm --pull never "${ulimits[@]}" --network none "$image" tty
    check "podman: detached sleep starts" "" \
        podman_cmd run -d --pull never --name berth-peers-sleep "${ulimits[@]}" --network none "$image" sleep 300
    check "podman: detached container is running" "berth-peers-sleep Up" \
        podman_cmd ps --format '{{.Names}} {{.Status}}'
    check "podman: container uses the runtime" "$runtime" \
        podman_cmd inspect -f '{{.OCIRuntime}}' berth-peers-sleep
    check "podman: exec in the running container" "in-exec" \
        podman_cmd exec berth-peers-sleep echo in-exec
    check "podman: stop" "berth-peers-sleep" podman_cmd stop -t 1 berth-peers-sleep
    check "podman: rm" "berth-peers-sleep" podman_cmd rm berth-peers-sleep
    left="$(podman_cmd ps -a --format '{{.Names}}' 2>&1 || true)"
    if [[ -z "$left" ]]; then ok "podman: nothing left"; else not_ok "podman: nothing left" "$left"; fi
fi

if [[ ",$peers," == *,docker,* ]]; then
    if [[ -z "$docker_cli" ]]; then
        not_ok "docker: CLI found" "no docker CLI at /usr/bin/docker or /usr/local/bin/docker"
    else
        echo "# dockerd $(dockerd --version | awk '{print $3}' | tr -d ,) with CLI $docker_cli"
        mkdir -p "$work/docker"
        echo '{}' >"$work/docker/daemon.json"
        # Its own config, sockets and roots, so a system dockerd (if any) is untouched;
        # it starts its own containerd under the exec root.
        dockerd --config-file "$work/docker/daemon.json" \
            --data-root "$work/docker/data" --exec-root "$work/docker/exec" \
            --pidfile "$work/docker/docker.pid" -H "unix://$work/docker/docker.sock" \
            --add-runtime "berth=$runtime" --iptables=false --ip6tables=false --bridge=none \
            --log-level warn >"$work/docker/dockerd.log" 2>&1 &
        dockerd_pid=$!
        up=0
        for _ in $(seq 150); do
            if docker_cmd version >/dev/null 2>&1; then up=1; break; fi
            kill -0 "$dockerd_pid" 2>/dev/null || break
            sleep 0.2
        done
        if [[ $up -eq 1 ]]; then
            ok "docker: dockerd is up"
            check "docker: import busybox image" "sha256:" docker_import
            check "docker: run echo" "hello" \
                docker_cmd run --rm --pull never --runtime berth --network none "$image" echo hello
            check "docker: run -it has a tty" "/dev/pts/0" \
                in_pty "$docker_cli" -H "unix://$work/docker/docker.sock" \
                run -it --rm --pull never --runtime berth --network none "$image" tty
            check "docker: detached sleep starts" "" \
                docker_cmd run -d --pull never --runtime berth --network none --name berth-peers-sleep "$image" sleep 300
            check "docker: container uses the runtime" "berth true" \
                docker_cmd inspect -f '{{.HostConfig.Runtime}} {{.State.Running}}' berth-peers-sleep
            check "docker: exec in the running container" "in-exec" \
                docker_cmd exec berth-peers-sleep echo in-exec
            check "docker: stop" "berth-peers-sleep" docker_cmd stop -t 1 berth-peers-sleep
            check "docker: rm" "berth-peers-sleep" docker_cmd rm berth-peers-sleep
            left="$(docker_cmd ps -aq 2>&1 || true)"
            if [[ -z "$left" ]]; then ok "docker: nothing left"; else not_ok "docker: nothing left" "$left"; fi
            stop_dockerd
            if pgrep -f -- "$work/docker/" >/dev/null; then
                not_ok "docker: dockerd and containerd shut down" "$(pgrep -af -- "$work/docker/")"
            else
                ok "docker: dockerd and containerd shut down"
            fi
        else
            not_ok "docker: dockerd is up" "$(tail -20 "$work/docker/dockerd.log")"
        fi
    fi
fi

echo "peers: $pass passed, $fail failed"
[[ $fail -eq 0 ]]
