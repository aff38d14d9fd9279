//! `update`: new resource limits from flags or from a LinuxResources JSON file.

use anyhow::{anyhow, bail, Context, Result};
use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxPids, LinuxResources};
use std::io::Read;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct UpdateArgs {
    pub id: String,
    /// LinuxResources JSON file ("-" for stdin); flags are ignored when given
    #[arg(short, long)]
    pub resources: Option<PathBuf>,
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<u16>,
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<u64>,
    #[arg(long = "cpu-quota")]
    pub cpu_quota: Option<i64>,
    #[arg(long = "cpu-share")]
    pub cpu_share: Option<u64>,
    #[arg(long = "cpu-rt-period")]
    pub cpu_rt_period: Option<u64>,
    #[arg(long = "cpu-rt-runtime")]
    pub cpu_rt_runtime: Option<i64>,
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    /// Memory limit (bytes, or with k/m/g suffix; -1 for unlimited)
    #[arg(long, allow_hyphen_values = true)]
    pub memory: Option<String>,
    #[arg(long = "memory-reservation", allow_hyphen_values = true)]
    pub memory_reservation: Option<String>,
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    #[arg(long = "kernel-memory", hide = true)]
    pub kernel_memory: Option<String>,
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
}

/// Parses "512m", "1g", "1024", "-1" into bytes.
pub fn parse_bytes(flag: &str, s: &str) -> Result<i64> {
    if s == "-1" {
        return Ok(-1);
    }
    let lower = s.to_ascii_lowercase();
    let trimmed = lower.trim_end_matches('b');
    let (num, mult) = match trimmed.chars().last() {
        Some('k') => (&trimmed[..trimmed.len() - 1], 1i64 << 10),
        Some('m') => (&trimmed[..trimmed.len() - 1], 1 << 20),
        Some('g') => (&trimmed[..trimmed.len() - 1], 1 << 30),
        Some('t') => (&trimmed[..trimmed.len() - 1], 1 << 40),
        _ => (trimmed, 1),
    };
    let n: f64 = num.parse().map_err(|_| anyhow!("--{flag} {s:?}: not a size"))?;
    if n < 0.0 {
        bail!("--{flag} {s:?}: must not be negative");
    }
    Ok((n * mult as f64) as i64)
}

pub fn resources(a: &UpdateArgs) -> Result<LinuxResources> {
    if let Some(path) = &a.resources {
        let mut data = Vec::new();
        if path.as_os_str() == "-" {
            std::io::stdin().read_to_end(&mut data).context("read resources from stdin")?;
        } else {
            data = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
        }
        return serde_json::from_slice(&data).map_err(|e| anyhow!("invalid resources JSON: {e}"));
    }
    let mut r = LinuxResources::default();
    if a.memory.is_some() || a.memory_swap.is_some() || a.memory_reservation.is_some() {
        let mut m = LinuxMemory::default();
        m.set_limit(a.memory.as_deref().map(|v| parse_bytes("memory", v)).transpose()?);
        m.set_swap(a.memory_swap.as_deref().map(|v| parse_bytes("memory-swap", v)).transpose()?);
        m.set_reservation(a.memory_reservation.as_deref().map(|v| parse_bytes("memory-reservation", v)).transpose()?);
        r.set_memory(Some(m));
    }
    if a.cpu_period.is_some()
        || a.cpu_quota.is_some()
        || a.cpu_share.is_some()
        || a.cpu_rt_period.is_some()
        || a.cpu_rt_runtime.is_some()
        || a.cpuset_cpus.is_some()
        || a.cpuset_mems.is_some()
    {
        let mut c = LinuxCpu::default();
        c.set_period(a.cpu_period);
        c.set_quota(a.cpu_quota);
        c.set_shares(a.cpu_share);
        c.set_realtime_period(a.cpu_rt_period);
        c.set_realtime_runtime(a.cpu_rt_runtime);
        c.set_cpus(a.cpuset_cpus.clone());
        c.set_mems(a.cpuset_mems.clone());
        r.set_cpu(Some(c));
    }
    if let Some(l) = a.pids_limit {
        let mut p = LinuxPids::default();
        p.set_limit(l);
        r.set_pids(Some(p));
    }
    if let Some(w) = a.blkio_weight {
        let mut b = LinuxBlockIo::default();
        b.set_weight(Some(w));
        r.set_block_io(Some(b));
    }
    if a.kernel_memory.is_some() {
        bail!("--kernel-memory is not supported (kernel memory limits were removed from Linux)");
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("memory", "512m").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("memory", "1G").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("memory", "1024").unwrap(), 1024);
        assert_eq!(parse_bytes("memory", "-1").unwrap(), -1);
        assert!(parse_bytes("memory", "lots").unwrap_err().to_string().contains("--memory"));
    }
}
