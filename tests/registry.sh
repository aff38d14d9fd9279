#!/usr/bin/env bash
# registry.sh: runs the reference registry (Debian's docker-registry, distribution v2.8)
# for tests, on a free 127.0.0.1 port, over plain HTTP.
#
#   tests/registry.sh start DIR [--htpasswd USER:PASS] [--token REALM,SERVICE,ISSUER,ROOTCERT]
#       Writes DIR/config.yml (storage under DIR/storage, deletes enabled), starts the
#       registry with its log in DIR/registry.log and its pid in DIR/pid, waits until
#       /v2/ answers and prints "127.0.0.1:PORT" on stdout.
#       --htpasswd  basic auth for one user (bcrypt file made with `htpasswd -Bbn`).
#       --token     token auth: the registry sends clients to REALM for a bearer token and
#                   accepts JWTs for SERVICE from ISSUER signed by a cert in ROOTCERT (PEM).
#   tests/registry.sh stop DIR
#       Stops the registry started in DIR (waits until it is gone). DIR itself is kept.
#
# Example:
#   addr=$(tests/registry.sh start "$tmp/reg") && trap 'tests/registry.sh stop "$tmp/reg"' EXIT
#   skopeo copy --dest-tls-verify=false oci:"$tmp/img":latest docker://"$addr"/app:latest
set -euo pipefail

usage() {
    echo "usage: $0 start DIR [--htpasswd USER:PASS] [--token REALM,SERVICE,ISSUER,ROOTCERT]" >&2
    echo "       $0 stop DIR" >&2
    exit 2
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Any HTTP answer counts (with auth configured /v2/ answers 401).
answers() {
    local code
    code="$(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://$1/v2/" || true)"
    [[ "$code" != "000" && -n "$code" ]]
}

stop() {
    local dir="$1" pid i
    [[ -f "$dir/pid" ]] || return 0
    pid="$(cat "$dir/pid")"
    if kill "$pid" 2>/dev/null; then
        for ((i = 0; i < 100; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$dir/pid"
}

write_config() {
    local dir="$1" port="$2"
    {
        echo "version: 0.1"
        echo "log:"
        echo "  level: info"
        echo "  accesslog:"
        echo "    disabled: true"
        echo "storage:"
        echo "  filesystem:"
        echo "    rootdirectory: $dir/storage"
        echo "  delete:"
        echo "    enabled: true"
        echo "  maintenance:"
        echo "    uploadpurging:"
        echo "      enabled: false"
        echo "http:"
        echo "  addr: 127.0.0.1:$port"
        echo "  headers:"
        echo "    X-Content-Type-Options: [nosniff]"
        if [[ -n "$htpasswd" ]]; then
            echo "auth:"
            echo "  htpasswd:"
            echo "    realm: berth-test"
            echo "    path: $dir/htpasswd"
        elif [[ -n "$token" ]]; then
            IFS=, read -r realm service issuer rootcert <<<"$token"
            [[ -n "$realm" && -n "$service" && -n "$issuer" && -n "$rootcert" ]] \
                || { echo "registry.sh: --token wants REALM,SERVICE,ISSUER,ROOTCERT" >&2; exit 2; }
            echo "auth:"
            echo "  token:"
            echo "    realm: $realm"
            echo "    service: $service"
            echo "    issuer: $issuer"
            echo "    rootcertbundle: $rootcert"
        fi
    } >"$dir/config.yml"
}

start() {
    local dir="$1" port pid attempt i
    mkdir -p "$dir/storage"
    dir="$(cd "$dir" && pwd)"
    if [[ -f "$dir/pid" ]] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
        echo "registry.sh: a registry already runs in $dir (pid $(cat "$dir/pid"))" >&2
        exit 1
    fi
    if [[ -n "$htpasswd" ]]; then
        [[ "$htpasswd" == *:* ]] || { echo "registry.sh: --htpasswd wants USER:PASS" >&2; exit 2; }
        htpasswd -Bbn "${htpasswd%%:*}" "${htpasswd#*:}" >"$dir/htpasswd"
    fi
    # The port can be taken between picking and binding: try a few.
    for ((attempt = 0; attempt < 5; attempt++)); do
        port="$(free_port)"
        write_config "$dir" "$port"
        # setsid: the registry must not get the terminal's signals meant for the caller.
        setsid /usr/bin/docker-registry serve "$dir/config.yml" >>"$dir/registry.log" 2>&1 </dev/null &
        pid=$!
        echo "$pid" >"$dir/pid"
        for ((i = 0; i < 200; i++)); do
            if answers "127.0.0.1:$port"; then
                echo "127.0.0.1:$port"
                return 0
            fi
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        stop "$dir"
    done
    echo "registry.sh: the registry did not start; log:" >&2
    tail -n 20 "$dir/registry.log" >&2
    exit 1
}

[[ $# -ge 2 ]] || usage
cmd="$1" dir="$2"
shift 2
htpasswd="" token=""
while [[ $# -gt 0 ]]; do
    case "$1" in
    --htpasswd) [[ $# -ge 2 ]] || usage; htpasswd="$2"; shift 2 ;;
    --token) [[ $# -ge 2 ]] || usage; token="$2"; shift 2 ;;
    *) usage ;;
    esac
done
case "$cmd" in
start) start "$dir" ;;
stop) stop "$dir" ;;
*) usage ;;
esac
