#!/usr/bin/env bash
# install-deps.sh [PACKAGE...]: installs the Debian packages that are not installed yet
# (default: everything the test suite uses). Runs apt-get update only when needed.
set -euo pipefail

default=(
    busybox-static  # test rootfs
    libseccomp-dev pkg-config  # building the runtime (libseccomp-sys)
    runc  # reference runtime for the harness self-check and benchmarks
    hyperfine time wrk  # bench/
    podman docker.io  # tests/peers.sh
    bsdutils util-linux file python3  # script(1), flock(1), file(1), bench statistics
    docker-registry skopeo apache2-utils jq curl zstd  # registry peers and image fixtures
    python3-pip  # docker-py
    chromium  # berth-registry's web UI tests (headless)
)
# Python packages (module:package) for tests/docker-py (only with the default set):
# docker-py, pytest, and websocket-client for the WebSocket attach test.
python_pkgs=(docker:docker pytest:pytest websocket:websocket-client)
if [[ $# -gt 0 ]]; then pkgs=("$@"); else pkgs=("${default[@]}"); fi

missing=()
for p in "${pkgs[@]}"; do
    if [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ]]; then
        missing+=("$p")
    fi
done
install_python() {
    [[ $# -eq 0 ]] || return 0
    local want=()
    for p in "${python_pkgs[@]}"; do
        python3 -c "import ${p%%:*}" 2>/dev/null || want+=("${p#*:}")
    done
    [[ ${#want[@]} -eq 0 ]] && return 0
    echo "install-deps: pip installing ${want[*]}" >&2
    python3 -m pip install -q --disable-pip-version-check "${want[@]}" 2>/dev/null \
        || python3 -m pip install -q --disable-pip-version-check --break-system-packages "${want[@]}"
}
if [[ ${#missing[@]} -eq 0 ]]; then
    install_python "$@"
    exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
    echo "install-deps: need root to install: ${missing[*]}" >&2
    exit 1
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq -o Dpkg::Use-Pty=0 "${missing[@]}" >/dev/null
install_python "$@"
