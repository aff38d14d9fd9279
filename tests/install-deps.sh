#!/usr/bin/env bash
# install-deps.sh [PACKAGE...]: installs the Debian packages that are not installed yet
# (default: everything the test suite uses). Runs apt-get update only when needed.
set -euo pipefail

default=(
    busybox-static  # test rootfs
    libseccomp-dev pkg-config  # building the runtime (libseccomp-sys)
    runc  # reference runtime for the harness self-check and benchmarks
    hyperfine time  # bench/
    podman docker.io  # tests/peers.sh
    bsdutils util-linux file python3  # script(1), flock(1), file(1), bench statistics
)
if [[ $# -gt 0 ]]; then pkgs=("$@"); else pkgs=("${default[@]}"); fi

missing=()
for p in "${pkgs[@]}"; do
    if [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ]]; then
        missing+=("$p")
    fi
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -ne 0 ]]; then
    echo "install-deps: need root to install: ${missing[*]}" >&2
    exit 1
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq -o Dpkg::Use-Pty=0 "${missing[@]}" >/dev/null
