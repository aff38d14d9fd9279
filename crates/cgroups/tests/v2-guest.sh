#!/usr/bin/env bash
# Runs the berth-cgroups tests (and optionally more) inside a KVM guest whose only
# cgroup hierarchy is a pure cgroup v2 mount at /sys/fs/cgroup.
#
# The guest is a kernel plus an initramfs built here: busybox, the test binaries,
# the shared libraries they need, any extra files asked for, and an init script that
# mounts proc/sys/devtmpfs/cgroup2, runs everything, prints a result marker and powers
# off. Exits 0 only if the guest printed the PASS marker.
#
# Usage: v2-guest.sh [options]
#   --include PATH     copy PATH (file or directory) into the guest at the same path;
#                      ELF binaries get their shared libraries too (repeatable)
#   --run CMD          run shell command CMD in the guest after the tests; a non-zero
#                      status fails the run (repeatable)
#   --no-cgroups-tests do not build or run the berth-cgroups test binaries
#   --kernel PATH      kernel image (default: newest /boot/vmlinuz-*, installing
#                      linux-image-amd64 if there is none)
#   --timeout SECONDS  limit for the whole guest run (default 300)
#   --memory MB        guest memory (default 1024)
#   --keep             keep the work directory (initramfs, console log)
# Environment equivalents: V2_GUEST_INCLUDE (whitespace-separated paths),
# V2_GUEST_RUN (newline-separated commands), V2_GUEST_KERNEL, V2_GUEST_TIMEOUT,
# V2_GUEST_MEMORY. Also: V2_GUEST_ACCEL=auto|kvm|tcg, V2_GUEST_CPU (qemu -cpu model),
# CARGO (the cargo binary).
set -euo pipefail

MARKER="BERTH-V2-GUEST-RESULT"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
workspace="$(cd "$here/../../.." && pwd)"

includes=()
runs=()
run_cgroups_tests=1
kernel="${V2_GUEST_KERNEL:-}"
timeout_s="${V2_GUEST_TIMEOUT:-300}"
memory_mb="${V2_GUEST_MEMORY:-1024}"
keep=0
if [[ -n "${V2_GUEST_INCLUDE:-}" ]]; then
  read -r -a includes <<<"$V2_GUEST_INCLUDE"
fi
if [[ -n "${V2_GUEST_RUN:-}" ]]; then
  while IFS= read -r line; do
    [[ -n "$line" ]] && runs+=("$line")
  done <<<"$V2_GUEST_RUN"
fi

while [[ $# -gt 0 ]]; do
  case "$1" in
    --include) includes+=("$2"); shift 2 ;;
    --run) runs+=("$2"); shift 2 ;;
    --no-cgroups-tests) run_cgroups_tests=0; shift ;;
    --kernel) kernel="$2"; shift 2 ;;
    --timeout) timeout_s="$2"; shift 2 ;;
    --memory) memory_mb="$2"; shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
    *) echo "v2-guest: unknown argument: $1" >&2; exit 2 ;;
  esac
done

log() { echo "v2-guest: $*" >&2; }

if [[ $(id -u) -ne 0 ]]; then
  log "needs root (apt-get, mknod of /dev/console)"
  exit 2
fi

# --- host tools ---
need_pkgs=()
command -v qemu-system-x86_64 >/dev/null || need_pkgs+=(qemu-system-x86)
[[ -x /bin/busybox ]] || need_pkgs+=(busybox-static)
command -v cpio >/dev/null || need_pkgs+=(cpio)
if [[ -z "$kernel" ]]; then
  kernel="$(ls -1 /boot/vmlinuz-* 2>/dev/null | sort -V | tail -n1 || true)"
  [[ -n "$kernel" ]] || need_pkgs+=(linux-image-amd64)
fi
if [[ ${#need_pkgs[@]} -gt 0 ]]; then
  log "installing ${need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >&2
fi
if [[ -z "$kernel" ]]; then
  kernel="$(ls -1 /boot/vmlinuz-* 2>/dev/null | sort -V | tail -n1 || true)"
fi
[[ -r "$kernel" ]] || { log "no kernel image found (tried /boot/vmlinuz-*)"; exit 2; }

work="$(mktemp -d /tmp/berth-v2-guest.XXXXXX)"
cleanup() { if [[ $keep -eq 0 ]]; then rm -rf "$work"; else log "kept $work"; fi; }
trap cleanup EXIT
root="$work/root"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,run,berth-tests}

# Copies a file to the same path under $root, plus its shared libraries if ELF.
add_file() {
  local src="$1"
  mkdir -p "$root$(dirname "$src")"
  cp -L "$src" "$root$src"
  add_libs "$src"
}

add_libs() {
  local bin="$1" lib
  head -c4 "$bin" 2>/dev/null | grep -q $'\x7fELF' || return 0
  # ldd prints "name => /path (addr)" or "/path (addr)"; static binaries print nothing usable.
  for lib in $(ldd "$bin" 2>/dev/null | grep -o '/[^ ]*' || true); do
    [[ -e "$root$lib" ]] && continue
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
}

add_path() {
  local p="$1" f
  [[ -e "$p" ]] || { log "--include: $p does not exist"; exit 2; }
  p="$(realpath -s "$p")"
  if [[ -d "$p" ]]; then
    mkdir -p "$root$(dirname "$p")"
    cp -a "$p" "$root$(dirname "$p")/"
    while IFS= read -r -d '' f; do add_libs "$f"; done < <(find "$p" -type f -perm -u+x -print0)
  else
    add_file "$p"
  fi
}

cp /bin/busybox "$root/bin/busybox"
add_libs /bin/busybox
mknod -m 600 "$root/dev/console" c 5 1
mknod -m 666 "$root/dev/null" c 1 3

# --- test binaries ---
if [[ $run_cgroups_tests -eq 1 ]]; then
  log "building berth-cgroups tests"
  mapfile -t tests < <(cd "$workspace" && "${CARGO:-cargo}" test -p berth-cgroups --no-run --message-format=json 2>/dev/null \
    | grep '"reason":"compiler-artifact"' | grep 'berth-cgroups' | grep -E '"kind":\["(lib|test)"\]' \
    | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p')
  if [[ ${#tests[@]} -eq 0 ]]; then
    log "cargo produced no test executables (build failed?); rerun: cargo test -p berth-cgroups --no-run"
    exit 1
  fi
  for t in "${tests[@]}"; do
    log "including test binary $t"
    cp "$t" "$root/berth-tests/$(basename "$t")"
    add_libs "$t"
  done
fi
for p in "${includes[@]}"; do add_path "$p"; done

# --- init ---
{
  for cmd in "${runs[@]}"; do
    printf 'echo "v2-guest: running: %s"\n' "${cmd//\"/\\\"}"
    printf '( %s ) || { echo "v2-guest: FAILED (exit $?): %s"; fail=1; }\n' "$cmd" "${cmd//\"/\\\"}"
  done
} >"$root/berth-run.sh"

cat >"$root/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root BERTH_CGROUPS_EXPECT_LAYOUT=V2
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
echo "v2-guest: kernel $(uname -r); cgroup2 controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
fail=0
for t in /berth-tests/*; do
  [ -x "$t" ] || continue
  echo "v2-guest: running $t"
  RUST_BACKTRACE=1 "$t" || { echo "v2-guest: FAILED (exit $?): $t"; fail=1; }
done
. /berth-run.sh
if [ "$fail" = 0 ]; then
  echo "BERTH-V2-GUEST-RESULT: PASS"
else
  echo "BERTH-V2-GUEST-RESULT: FAIL"
fi
sync
poweroff -f
EOF
chmod 755 "$root/init"

(cd "$root" && find . -print0 | cpio --null -o -H newc --quiet) >"$work/initramfs.cpio"
log "initramfs $(du -h "$work/initramfs.cpio" | cut -f1), kernel $kernel"

# KVM when it can run this kernel. Hosts whose /dev/kvm is PVM (nested
# pagetable-based virtualization) only run kernels built with CONFIG_PVM_GUEST;
# anything else hangs right after decompression, so those use emulation.
kvm_can_boot() {
  [[ -w /dev/kvm ]] || return 1
  if [[ -d /sys/module/kvm_pvm ]]; then
    local ver config
    ver="$(basename "$kernel")"; ver="${ver#vmlinuz-}"
    config="$(dirname "$kernel")/config-$ver"
    grep -qx 'CONFIG_PVM_GUEST=y' "$config" 2>/dev/null || return 1
  fi
  return 0
}
case "${V2_GUEST_ACCEL:-auto}" in
  kvm) use_kvm=1 ;;
  tcg) use_kvm=0 ;;
  *) if kvm_can_boot; then use_kvm=1; else use_kvm=0; fi ;;
esac
if [[ $use_kvm -eq 1 ]]; then
  accel=(-accel kvm -cpu "${V2_GUEST_CPU:-host}")
else
  log "using emulation (TCG): /dev/kvm is missing or cannot boot $kernel"
  accel=(-accel tcg,thread=multi -cpu "${V2_GUEST_CPU:-max}")
fi

console="$work/console.log"
set +e
timeout --kill-after=10 "$timeout_s" qemu-system-x86_64 "${accel[@]}" \
  -m "$memory_mb" -smp 2 -nographic -no-reboot \
  -kernel "$kernel" -initrd "$work/initramfs.cpio" \
  -append "console=ttyS0 panic=-1 cgroup_no_v1=all quiet loglevel=3" \
  </dev/null 2>&1 | tee "$console"
qemu_status=${PIPESTATUS[0]}
set -e

if grep -q "^$MARKER: PASS" <(tr -d '\r' <"$console"); then
  log "PASS"
  exit 0
fi
if [[ $qemu_status -eq 124 ]]; then
  log "FAIL: guest timed out after ${timeout_s}s"
else
  log "FAIL (qemu exit $qemu_status)"
fi
exit 1
