//! Facts about the host that `/info` and `/version` report.

use std::path::Path;

#[derive(Debug, Clone)]
pub struct HostInfo {
    pub hostname: String,
    pub kernel_version: String,
    pub operating_system: String,
    pub os_version: String,
    pub architecture: String,
    pub ncpu: usize,
    pub mem_total: u64,
    /// "1" or "2": v2 when the unified hierarchy is mounted at /sys/fs/cgroup.
    pub cgroup_version: String,
}

impl HostInfo {
    pub fn read() -> HostInfo {
        let uname = rustix::system::uname();
        let os_release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
        let field = |key: &str| {
            os_release
                .lines()
                .find_map(|l| l.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
                .map(|v| v.trim_matches('"').to_string())
                .unwrap_or_default()
        };
        let mem_total = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| m.lines().find(|l| l.starts_with("MemTotal:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok()))
            .unwrap_or(0)
            * 1024;
        let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
        HostInfo {
            hostname: uname.nodename().to_string_lossy().into_owned(),
            kernel_version: uname.release().to_string_lossy().into_owned(),
            operating_system: field("PRETTY_NAME"),
            os_version: field("VERSION_ID"),
            architecture: uname.machine().to_string_lossy().into_owned(),
            ncpu: std::thread::available_parallelism().map_or(1, |n| n.get()),
            mem_total,
            cgroup_version: if v2 { "2" } else { "1" }.to_string(),
        }
    }
}

/// The architecture as Go names it (`amd64`, `arm64`), which docker reports.
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}
