//! Facts about the host that decide Docker's defaults: cgroup version, kernel features,
//! the capabilities the engine can grant, the CPU architecture.

use std::path::Path;
use std::sync::OnceLock;

/// What `build` needs to know about the host. [`HostInfo::detect`] reads it once;
/// tests construct it by hand to pin a host.
#[derive(Debug, Clone, PartialEq)]
pub struct HostInfo {
    /// `/sys/fs/cgroup` is the unified (v2) hierarchy: cgroup namespaces default to
    /// private and the OOM-killer switch does not exist.
    pub cgroup_v2: bool,
    /// The kernel has time namespaces (5.6+): Docker gives each container its own.
    pub time_namespace: bool,
    /// Kernel version as (major, minor), for seccomp `minKernel` and `rro` (5.12+).
    pub kernel: (u32, u32),
    /// Docker's name for this architecture (`amd64`, `arm64`, ...), for seccomp profiles.
    pub arch: &'static str,
    /// The capabilities the engine holds: the most a container can get.
    pub capabilities: Vec<String>,
    /// The sysctls Docker sets by default exist on this kernel.
    pub ping_group_range: bool,
    pub unprivileged_port_start: bool,
    /// The engine itself runs in a user namespace (no ping sockets for containers).
    pub user_namespace: bool,
    /// The host's hostname: containers on the host network default to it.
    pub hostname: String,
    /// `/sys/devices/system/cpu/cpuN/thermal_throttle` paths that exist: Docker masks them.
    pub thermal_throttle: Vec<String>,
    /// The kernel supports seccomp filters.
    pub seccomp: bool,
}

impl HostInfo {
    /// Inspects this host (once per process; later calls return the same facts).
    pub fn detect() -> &'static HostInfo {
        static HOST: OnceLock<HostInfo> = OnceLock::new();
        HOST.get_or_init(|| {
            let uname = rustix::system::uname();
            let kernel = parse_kernel(&uname.release().to_string_lossy());
            HostInfo {
                cgroup_v2: cgroup_v2(),
                time_namespace: Path::new("/proc/self/ns/time").exists(),
                kernel,
                arch: native_arch(),
                capabilities: own_capabilities(),
                ping_group_range: Path::new("/proc/sys/net/ipv4/ping_group_range").exists(),
                unprivileged_port_start: Path::new("/proc/sys/net/ipv4/ip_unprivileged_port_start")
                    .exists(),
                user_namespace: in_user_namespace(),
                hostname: uname.nodename().to_string_lossy().into_owned(),
                thermal_throttle: thermal_throttle(),
                seccomp: seccomp_supported(),
            }
        })
    }

    /// A fixed modern host (cgroup v2, kernel 6.1, amd64, every capability): for tests
    /// and for comparing specs independently of the machine.
    pub fn reference() -> HostInfo {
        HostInfo {
            cgroup_v2: true,
            time_namespace: true,
            kernel: (6, 1),
            arch: "amd64",
            capabilities: crate::caps::known().to_vec(),
            ping_group_range: true,
            unprivileged_port_start: true,
            user_namespace: false,
            hostname: "host".into(),
            thermal_throttle: vec![],
            seccomp: true,
        }
    }

    /// The kernel can make bind mounts read-only recursively (mount_setattr, 5.12+).
    pub fn recursive_read_only(&self) -> bool {
        self.kernel >= (5, 12)
    }
}

/// "6.1.0-18-amd64" -> (6, 1); unparsable parts count as 0.
fn parse_kernel(release: &str) -> (u32, u32) {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let minor = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (major, minor)
}

fn cgroup_v2() -> bool {
    // CGROUP2_SUPER_MAGIC
    rustix::fs::statfs("/sys/fs/cgroup").is_ok_and(|s| s.f_type as u64 == 0x6367_7270)
}

/// Docker's (Go's) architecture names, used by seccomp profiles' `arches` filters.
fn native_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "x86",
        "aarch64" => "arm64",
        "arm" => "arm",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "powerpc64" => "ppc64",
        "powerpc" => "ppc",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        "loongarch64" => "loong64",
        "mips64" if cfg!(target_endian = "little") => "mipsel64",
        "mips64" => "mips64",
        "mips" if cfg!(target_endian = "little") => "mipsle",
        other => other,
    }
}

fn own_capabilities() -> Vec<String> {
    let own = caps::read(None, caps::CapSet::Effective).unwrap_or_default();
    crate::caps::known().iter().filter(|name| own.iter().any(|c| c.to_string() == **name)).cloned().collect()
}

fn in_user_namespace() -> bool {
    // The initial namespace maps the whole range: "0 0 4294967295".
    match std::fs::read_to_string("/proc/self/uid_map") {
        Ok(map) => map.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"],
        Err(_) => false,
    }
}

fn thermal_throttle() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/sys/devices/system/cpu") else {
        return vec![];
    };
    let mut cpus: Vec<u32> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.strip_prefix("cpu")?.parse().ok())
        .collect();
    cpus.sort_unstable();
    cpus.into_iter()
        .map(|n| format!("/sys/devices/system/cpu/cpu{n}/thermal_throttle"))
        .filter(|p| Path::new(p).exists())
        .collect()
}

fn seccomp_supported() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .is_ok_and(|s| s.lines().any(|l| l.starts_with("Seccomp:")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_release_parsing() {
        assert_eq!(parse_kernel("6.1.0-18-amd64"), (6, 1));
        assert_eq!(parse_kernel("5.12"), (5, 12));
        assert_eq!(parse_kernel("6.18.44-fc-v669"), (6, 18));
        assert_eq!(parse_kernel("weird"), (0, 0));
    }

    #[test]
    fn detect_is_plausible() {
        let h = HostInfo::detect();
        assert!(h.kernel.0 >= 3, "{:?}", h.kernel);
        assert!(!h.arch.is_empty());
        // Every capability reported is a known one, in numeric order.
        let order: Vec<usize> = h
            .capabilities
            .iter()
            .map(|c| crate::caps::known().iter().position(|k| k == c).unwrap())
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]));
    }
}
