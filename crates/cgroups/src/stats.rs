//! Resource usage statistics in the shape of runc's `events --stats` data object,
//! and the readers that fill them from v1 and v2 files.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::fs::{parse_u64, read_opt, read_u64_opt};

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// All statistics of a container's cgroup (runc's types.Stats).
#[derive(Debug, Default, Clone, Serialize)]
pub struct Stats {
    pub cpu: Cpu,
    pub cpuset: CpuSet,
    pub memory: Memory,
    pub pids: Pids,
    pub blkio: Blkio,
    pub hugetlb: BTreeMap<String, Hugetlb>,
    /// Filled by the runtime when Intel RDT is used; always an object, as in runc.
    pub intel_rdt: IntelRdt,
    /// Filled by the runtime from the container's network namespace.
    pub network_interfaces: Option<Vec<NetworkInterface>>,
}

/// CPU usage and throttling.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Cpu {
    #[serde(skip_serializing_if = "CpuUsage::is_zero")]
    pub usage: CpuUsage,
    #[serde(skip_serializing_if = "Throttling::is_zero")]
    pub throttling: Throttling,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub psi: Option<Psi>,
}

/// CPU time in nanoseconds.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct CpuUsage {
    #[serde(skip_serializing_if = "is_zero")]
    pub total: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_kernel: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_user: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

impl CpuUsage {
    fn is_zero(&self) -> bool {
        *self == CpuUsage::default()
    }
}

/// CFS bandwidth throttling counters.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Throttling {
    #[serde(skip_serializing_if = "is_zero")]
    pub periods: u64,
    #[serde(rename = "throttledPeriods", skip_serializing_if = "is_zero")]
    pub throttled_periods: u64,
    /// Nanoseconds.
    #[serde(rename = "throttledTime", skip_serializing_if = "is_zero")]
    pub throttled_time: u64,
}

impl Throttling {
    fn is_zero(&self) -> bool {
        *self == Throttling::default()
    }
}

/// Pressure stall information of one resource.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct Psi {
    #[serde(skip_serializing_if = "PsiData::is_zero")]
    pub some: PsiData,
    #[serde(skip_serializing_if = "PsiData::is_zero")]
    pub full: PsiData,
}

/// One line of a *.pressure file.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct PsiData {
    pub avg10: f64,
    pub avg60: f64,
    pub avg300: f64,
    pub total: u64,
}

impl PsiData {
    fn is_zero(&self) -> bool {
        *self == PsiData::default()
    }
}

/// cpuset settings.
#[derive(Debug, Default, Clone, Serialize)]
pub struct CpuSet {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cpus: Vec<u16>,
    pub cpu_exclusive: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mems: Vec<u16>,
    pub mem_hardwall: u64,
    pub mem_exclusive: u64,
    pub memory_migrate: u64,
    pub memory_spread_page: u64,
    pub memory_spread_slab: u64,
    pub memory_pressure: u64,
    pub sched_load_balance: u64,
    pub sched_relax_domain_level: i64,
}

/// Memory usage.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Memory {
    #[serde(skip_serializing_if = "is_zero")]
    pub cache: u64,
    #[serde(skip_serializing_if = "MemoryEntry::is_zero")]
    pub usage: MemoryEntry,
    #[serde(skip_serializing_if = "MemoryEntry::is_zero")]
    pub swap: MemoryEntry,
    #[serde(skip_serializing_if = "MemoryEntry::is_zero")]
    pub kernel: MemoryEntry,
    #[serde(rename = "kernelTCP", skip_serializing_if = "MemoryEntry::is_zero")]
    pub kernel_tcp: MemoryEntry,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub psi: Option<Psi>,
}

/// Usage, limit, peak and failure count of one memory counter.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct MemoryEntry {
    pub limit: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

impl MemoryEntry {
    fn is_zero(&self) -> bool {
        *self == MemoryEntry::default()
    }
}

/// Process count and limit (0 = unlimited).
#[derive(Debug, Default, Clone, Serialize)]
pub struct Pids {
    #[serde(skip_serializing_if = "is_zero")]
    pub current: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub limit: u64,
}

/// Block I/O counters.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Blkio {
    #[serde(
        rename = "ioServiceBytesRecursive",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(rename = "ioServicedRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
    #[serde(rename = "ioQueueRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_queued_recursive: Vec<BlkioEntry>,
    #[serde(
        rename = "ioServiceTimeRecursive",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_service_time_recursive: Vec<BlkioEntry>,
    #[serde(rename = "ioWaitTimeRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_wait_time_recursive: Vec<BlkioEntry>,
    #[serde(rename = "ioMergedRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_merged_recursive: Vec<BlkioEntry>,
    #[serde(rename = "ioTimeRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_time_recursive: Vec<BlkioEntry>,
    #[serde(rename = "sectorsRecursive", skip_serializing_if = "Vec::is_empty")]
    pub sectors_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub psi: Option<Psi>,
}

/// One device counter.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct BlkioEntry {
    #[serde(skip_serializing_if = "is_zero")]
    pub major: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub minor: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub op: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub value: u64,
}

/// Huge page usage of one page size.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Hugetlb {
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

/// Intel RDT statistics; this crate leaves it empty.
#[derive(Debug, Default, Clone, Serialize)]
pub struct IntelRdt {}

/// Counters of one network interface (runc emits these field names verbatim).
#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkInterface {
    pub name: String,
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

fn parse_err(dir: &Path, file: &str, reason: impl Into<String>) -> Error {
    Error::Parse {
        path: dir.join(file),
        reason: reason.into(),
    }
}

/// Parses "key value" lines.
pub(crate) fn parse_flat_keyed(
    dir: &Path,
    file: &str,
    text: &str,
) -> Result<BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let (Some(k), Some(v)) = (it.next(), it.next()) else {
            continue;
        };
        let v = parse_u64(&dir.join(file), v)?;
        out.insert(k.to_string(), v);
    }
    Ok(out)
}

fn keyed_opt(dir: &Path, file: &str) -> Result<BTreeMap<String, u64>> {
    match read_opt(dir, file)? {
        Some(t) => parse_flat_keyed(dir, file, &t),
        None => Ok(BTreeMap::new()),
    }
}

/// Parses a cpu list such as "0-3,8,10-11".
pub(crate) fn parse_cpu_list(s: &str) -> Option<Vec<u16>> {
    let mut out = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u16, u16) = (a.parse().ok()?, b.parse().ok()?);
                if a > b {
                    return None;
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().ok()?),
        }
    }
    Some(out)
}

fn cpu_list_file(dir: &Path, file: &str) -> Result<Vec<u16>> {
    match read_opt(dir, file)? {
        Some(t) => parse_cpu_list(&t)
            .ok_or_else(|| parse_err(dir, file, format!("bad cpu list {:?}", t.trim()))),
        None => Ok(Vec::new()),
    }
}

fn u64_or_zero(dir: &Path, file: &str) -> Result<u64> {
    Ok(read_u64_opt(dir, file)?.unwrap_or(0))
}

fn space_list(dir: &Path, file: &str) -> Result<Vec<u64>> {
    match read_opt(dir, file)? {
        Some(t) => t
            .split_whitespace()
            .map(|v| parse_u64(&dir.join(file), v))
            .collect(),
        None => Ok(Vec::new()),
    }
}

/// Parses a *.pressure file.
pub(crate) fn parse_psi(dir: &Path, file: &str, text: &str) -> Result<Psi> {
    let mut psi = Psi::default();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let target = match it.next() {
            Some("some") => &mut psi.some,
            Some("full") => &mut psi.full,
            _ => continue,
        };
        for kv in it {
            let Some((k, v)) = kv.split_once('=') else {
                return Err(parse_err(dir, file, format!("bad field {kv:?}")));
            };
            let bad = || parse_err(dir, file, format!("bad value {kv:?}"));
            match k {
                "avg10" => target.avg10 = v.parse().map_err(|_| bad())?,
                "avg60" => target.avg60 = v.parse().map_err(|_| bad())?,
                "avg300" => target.avg300 = v.parse().map_err(|_| bad())?,
                "total" => target.total = v.parse().map_err(|_| bad())?,
                _ => {}
            }
        }
    }
    Ok(psi)
}

fn psi_opt(dir: &Path, file: &str) -> Result<Option<Psi>> {
    match read_opt(dir, file) {
        Ok(Some(t)) => parse_psi(dir, file, &t).map(Some),
        Ok(None) => Ok(None),
        // Some kernels refuse reads unless PSI is enabled on the command line.
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Huge page sizes of this machine in cgroup file naming ("2MB", "1GB").
pub(crate) fn hugepage_sizes() -> &'static [String] {
    static SIZES: OnceLock<Vec<String>> = OnceLock::new();
    SIZES.get_or_init(|| {
        let mut out = Vec::new();
        if let Ok(rd) = std::fs::read_dir("/sys/kernel/mm/hugepages") {
            for e in rd.flatten() {
                let name = e.file_name();
                let name = name.to_string_lossy();
                if let Some(kb) = name
                    .strip_prefix("hugepages-")
                    .and_then(|s| s.strip_suffix("kB"))
                    .and_then(|s| s.parse::<u64>().ok())
                {
                    out.push(hugepage_size_name(kb));
                }
            }
        }
        out.sort();
        out
    })
}

/// 2048 (kB) → "2MB", 1048576 → "1GB", 64 → "64KB".
pub(crate) fn hugepage_size_name(kb: u64) -> String {
    if kb >= 1 << 20 && kb & ((1 << 20) - 1) == 0 {
        format!("{}GB", kb >> 20)
    } else if kb >= 1 << 10 && kb & ((1 << 10) - 1) == 0 {
        format!("{}MB", kb >> 10)
    } else {
        format!("{kb}KB")
    }
}

// ---- v1 readers ----

pub(crate) fn v1_cpuacct(dir: &Path, s: &mut Stats) -> Result<()> {
    let u = &mut s.cpu.usage;
    u.total = u64_or_zero(dir, "cpuacct.usage")?;
    u.percpu = space_list(dir, "cpuacct.usage_percpu")?;
    u.percpu_kernel = space_list(dir, "cpuacct.usage_percpu_sys")?;
    u.percpu_user = space_list(dir, "cpuacct.usage_percpu_user")?;
    // cpuacct.stat counts USER_HZ ticks, which is 100 on Linux.
    let st = keyed_opt(dir, "cpuacct.stat")?;
    const NS_PER_TICK: u64 = 1_000_000_000 / 100;
    u.user = st.get("user").copied().unwrap_or(0) * NS_PER_TICK;
    u.kernel = st.get("system").copied().unwrap_or(0) * NS_PER_TICK;
    Ok(())
}

pub(crate) fn v1_cpu(dir: &Path, s: &mut Stats) -> Result<()> {
    let st = keyed_opt(dir, "cpu.stat")?;
    let t = &mut s.cpu.throttling;
    t.periods = st.get("nr_periods").copied().unwrap_or(0);
    t.throttled_periods = st.get("nr_throttled").copied().unwrap_or(0);
    t.throttled_time = st.get("throttled_time").copied().unwrap_or(0);
    Ok(())
}

pub(crate) fn v1_cpuset(dir: &Path, s: &mut Stats) -> Result<()> {
    let c = &mut s.cpuset;
    c.cpus = cpu_list_file(dir, "cpuset.cpus")?;
    c.mems = cpu_list_file(dir, "cpuset.mems")?;
    c.cpu_exclusive = u64_or_zero(dir, "cpuset.cpu_exclusive")?;
    c.mem_hardwall = u64_or_zero(dir, "cpuset.mem_hardwall")?;
    c.mem_exclusive = u64_or_zero(dir, "cpuset.mem_exclusive")?;
    c.memory_migrate = u64_or_zero(dir, "cpuset.memory_migrate")?;
    c.memory_spread_page = u64_or_zero(dir, "cpuset.memory_spread_page")?;
    c.memory_spread_slab = u64_or_zero(dir, "cpuset.memory_spread_slab")?;
    c.memory_pressure = u64_or_zero(dir, "cpuset.memory_pressure")?;
    c.sched_load_balance = u64_or_zero(dir, "cpuset.sched_load_balance")?;
    if let Some(t) = read_opt(dir, "cpuset.sched_relax_domain_level")? {
        c.sched_relax_domain_level = t
            .trim()
            .parse()
            .map_err(|_| parse_err(dir, "cpuset.sched_relax_domain_level", t.trim().to_string()))?;
    }
    Ok(())
}

fn v1_mem_entry(dir: &Path, prefix: &str) -> Result<MemoryEntry> {
    let f = |name: &str| {
        if prefix.is_empty() {
            format!("memory.{name}")
        } else {
            format!("memory.{prefix}.{name}")
        }
    };
    Ok(MemoryEntry {
        limit: u64_or_zero(dir, &f("limit_in_bytes"))?,
        usage: u64_or_zero(dir, &f("usage_in_bytes"))?,
        max: u64_or_zero(dir, &f("max_usage_in_bytes"))?,
        failcnt: u64_or_zero(dir, &f("failcnt"))?,
    })
}

pub(crate) fn v1_memory(dir: &Path, s: &mut Stats) -> Result<()> {
    let m = &mut s.memory;
    m.raw = keyed_opt(dir, "memory.stat")?;
    m.cache = m.raw.get("cache").copied().unwrap_or(0);
    m.usage = v1_mem_entry(dir, "")?;
    m.swap = v1_mem_entry(dir, "memsw")?;
    m.kernel = v1_mem_entry(dir, "kmem")?;
    m.kernel_tcp = v1_mem_entry(dir, "kmem.tcp")?;
    Ok(())
}

pub(crate) fn pids(dir: &Path, s: &mut Stats) -> Result<()> {
    s.pids.current = u64_or_zero(dir, "pids.current")?;
    // "max" means no limit, reported as 0.
    s.pids.limit = match read_u64_opt(dir, "pids.max")? {
        Some(u64::MAX) | None => 0,
        Some(v) => v,
    };
    Ok(())
}

/// Parses v1 blkio lines "8:0 Read 123" (the "Total" line is skipped).
pub(crate) fn parse_blkio(dir: &Path, file: &str, text: &str) -> Result<Vec<BlkioEntry>> {
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (dev, op, value) = match f[..] {
            [] | ["Total", _] => continue,
            [dev, op, value] => (dev, op, value),
            [dev, value] => (dev, "", value),
            _ => return Err(parse_err(dir, file, format!("bad line {line:?}"))),
        };
        let Some((ma, mi)) = dev.split_once(':') else {
            return Err(parse_err(dir, file, format!("bad line {line:?}")));
        };
        let num = |v: &str| parse_u64(&dir.join(file), v);
        out.push(BlkioEntry {
            major: num(ma)?,
            minor: num(mi)?,
            op: op.to_string(),
            value: num(value)?,
        });
    }
    Ok(out)
}

pub(crate) fn v1_blkio(dir: &Path, s: &mut Stats) -> Result<()> {
    let b = &mut s.blkio;
    // The first group whose first file exists and has entries wins (as runc).
    let groups: [&[(&str, u8)]; 4] = [
        &[
            ("blkio.bfq.io_serviced_recursive", 0),
            ("blkio.bfq.io_service_bytes_recursive", 1),
        ],
        &[
            ("blkio.io_serviced_recursive", 0),
            ("blkio.io_service_bytes_recursive", 1),
            ("blkio.sectors_recursive", 2),
            ("blkio.io_service_time_recursive", 3),
            ("blkio.io_wait_time_recursive", 4),
            ("blkio.io_merged_recursive", 5),
            ("blkio.io_queued_recursive", 6),
            ("blkio.time_recursive", 7),
        ],
        &[
            ("blkio.throttle.io_serviced_recursive", 0),
            ("blkio.throttle.io_service_bytes_recursive", 1),
        ],
        &[
            ("blkio.throttle.io_serviced", 0),
            ("blkio.throttle.io_service_bytes", 1),
        ],
    ];
    for group in groups {
        let mut first = true;
        for (file, slot) in group {
            let entries = match read_opt(dir, file)? {
                Some(t) => parse_blkio(dir, file, &t)?,
                None => Vec::new(),
            };
            if first && entries.is_empty() {
                break;
            }
            first = false;
            let target = match slot {
                0 => &mut b.io_serviced_recursive,
                1 => &mut b.io_service_bytes_recursive,
                2 => &mut b.sectors_recursive,
                3 => &mut b.io_service_time_recursive,
                4 => &mut b.io_wait_time_recursive,
                5 => &mut b.io_merged_recursive,
                6 => &mut b.io_queued_recursive,
                _ => &mut b.io_time_recursive,
            };
            *target = entries;
        }
        if !first {
            return Ok(());
        }
    }
    Ok(())
}

pub(crate) fn v1_hugetlb(dir: &Path, s: &mut Stats) -> Result<()> {
    for size in hugepage_sizes() {
        let p = format!("hugetlb.{size}");
        let Some(usage) = read_u64_opt(dir, &format!("{p}.usage_in_bytes"))? else {
            continue;
        };
        s.hugetlb.insert(
            size.clone(),
            Hugetlb {
                usage,
                max: u64_or_zero(dir, &format!("{p}.max_usage_in_bytes"))?,
                failcnt: u64_or_zero(dir, &format!("{p}.failcnt"))?,
            },
        );
    }
    Ok(())
}

// ---- v2 readers ----

pub(crate) fn v2_cpu(dir: &Path, s: &mut Stats) -> Result<()> {
    let st = keyed_opt(dir, "cpu.stat")?;
    let g = |k: &str| st.get(k).copied().unwrap_or(0);
    s.cpu.usage.total = g("usage_usec") * 1000;
    s.cpu.usage.user = g("user_usec") * 1000;
    s.cpu.usage.kernel = g("system_usec") * 1000;
    s.cpu.throttling.periods = g("nr_periods");
    s.cpu.throttling.throttled_periods = g("nr_throttled");
    s.cpu.throttling.throttled_time = g("throttled_usec") * 1000;
    s.cpu.psi = psi_opt(dir, "cpu.pressure")?;
    Ok(())
}

pub(crate) fn v2_cpuset(dir: &Path, s: &mut Stats) -> Result<()> {
    s.cpuset.cpus = cpu_list_file(dir, "cpuset.cpus.effective")?;
    s.cpuset.mems = cpu_list_file(dir, "cpuset.mems.effective")?;
    Ok(())
}

fn v2_mem_entry(dir: &Path, prefix: &str) -> Result<MemoryEntry> {
    Ok(MemoryEntry {
        usage: u64_or_zero(dir, &format!("{prefix}.current"))?,
        limit: u64_or_zero(dir, &format!("{prefix}.max"))?,
        max: u64_or_zero(dir, &format!("{prefix}.peak"))?,
        failcnt: 0,
    })
}

pub(crate) fn v2_memory(dir: &Path, s: &mut Stats) -> Result<()> {
    let m = &mut s.memory;
    m.raw = keyed_opt(dir, "memory.stat")?;
    m.cache = m.raw.get("file").copied().unwrap_or(0);
    m.usage = v2_mem_entry(dir, "memory")?;
    if let Some(ev) = read_opt(dir, "memory.events")? {
        let ev = parse_flat_keyed(dir, "memory.events", &ev)?;
        m.usage.failcnt = ev.get("max").copied().unwrap_or(0);
    }
    // v1 reports swap as memory+swap; keep that meaning.
    let swap_only = v2_mem_entry(dir, "memory.swap")?;
    if swap_only != MemoryEntry::default() {
        m.swap = MemoryEntry {
            usage: swap_only.usage + m.usage.usage,
            limit: if swap_only.limit == u64::MAX || m.usage.limit == u64::MAX {
                u64::MAX
            } else {
                swap_only.limit + m.usage.limit
            },
            max: 0,
            failcnt: 0,
        };
    }
    m.psi = psi_opt(dir, "memory.pressure")?;
    Ok(())
}

pub(crate) fn v2_io(dir: &Path, s: &mut Stats) -> Result<()> {
    let b = &mut s.blkio;
    if let Some(text) = read_opt(dir, "io.stat")? {
        for line in text.lines() {
            let mut it = line.split_whitespace();
            let Some((ma, mi)) = it.next().and_then(|d| d.split_once(':')) else {
                continue;
            };
            let (Ok(major), Ok(minor)) = (ma.parse::<u64>(), mi.parse::<u64>()) else {
                continue;
            };
            for kv in it {
                let Some((k, v)) = kv.split_once('=') else {
                    continue;
                };
                let (target, op) = match k {
                    "rbytes" => (&mut b.io_service_bytes_recursive, "Read"),
                    "wbytes" => (&mut b.io_service_bytes_recursive, "Write"),
                    "rios" => (&mut b.io_serviced_recursive, "Read"),
                    "wios" => (&mut b.io_serviced_recursive, "Write"),
                    _ => continue,
                };
                target.push(BlkioEntry {
                    major,
                    minor,
                    op: op.to_string(),
                    value: parse_u64(&dir.join("io.stat"), v)?,
                });
            }
        }
    }
    b.psi = psi_opt(dir, "io.pressure")?;
    Ok(())
}

pub(crate) fn v2_hugetlb(dir: &Path, s: &mut Stats) -> Result<()> {
    for size in hugepage_sizes() {
        let p = format!("hugetlb.{size}");
        let Some(usage) = read_u64_opt(dir, &format!("{p}.current"))? else {
            continue;
        };
        let failcnt = match read_opt(dir, &format!("{p}.events"))? {
            Some(t) => parse_flat_keyed(dir, &format!("{p}.events"), &t)?
                .get("max")
                .copied()
                .unwrap_or(0),
            None => 0,
        };
        s.hugetlb.insert(
            size.clone(),
            Hugetlb {
                usage,
                max: 0,
                failcnt,
            },
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cpu_lists() {
        assert_eq!(
            parse_cpu_list("0-3,8,10-11\n").unwrap(),
            [0, 1, 2, 3, 8, 10, 11]
        );
        assert_eq!(parse_cpu_list("\n").unwrap(), Vec::<u16>::new());
        assert!(parse_cpu_list("3-1").is_none());
        assert!(parse_cpu_list("x").is_none());
    }

    #[test]
    fn names_hugepage_sizes() {
        assert_eq!(hugepage_size_name(2048), "2MB");
        assert_eq!(hugepage_size_name(1048576), "1GB");
        assert_eq!(hugepage_size_name(64), "64KB");
        assert_eq!(hugepage_size_name(32768), "32MB");
    }

    #[test]
    fn parses_blkio_and_psi() {
        let d = Path::new("/x");
        let e = parse_blkio(d, "f", "8:0 Read 10\n8:0 Write 20\nTotal 30\n").unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(
            e[1],
            BlkioEntry {
                major: 8,
                minor: 0,
                op: "Write".into(),
                value: 20
            }
        );
        let e = parse_blkio(d, "f", "8:16 5\n").unwrap();
        assert_eq!(e[0].value, 5);
        assert!(e[0].op.is_empty());
        let p = parse_psi(
            d,
            "cpu.pressure",
            "some avg10=0.50 avg60=0.00 avg300=1.25 total=1234\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=7\n",
        )
        .unwrap();
        assert_eq!(p.some.avg10, 0.5);
        assert_eq!(p.some.total, 1234);
        assert_eq!(p.full.total, 7);
    }

    #[test]
    fn serializes_like_runc() {
        let mut s = Stats::default();
        s.cpu.usage.total = 5;
        s.cpu.usage.percpu = vec![2, 3];
        s.memory.usage = MemoryEntry {
            limit: 100,
            usage: 7,
            max: 0,
            failcnt: 0,
        };
        s.memory.raw.insert("cache".into(), 1);
        s.pids.current = 1;
        s.blkio.io_service_bytes_recursive.push(BlkioEntry {
            major: 8,
            minor: 0,
            op: "Read".into(),
            value: 9,
        });
        s.hugetlb.insert("2MB".into(), Hugetlb::default());
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "cpu": {"usage": {"total": 5, "percpu": [2, 3], "kernel": 0, "user": 0}},
                "cpuset": {
                    "cpu_exclusive": 0, "mem_hardwall": 0, "mem_exclusive": 0,
                    "memory_migrate": 0, "memory_spread_page": 0, "memory_spread_slab": 0,
                    "memory_pressure": 0, "sched_load_balance": 0, "sched_relax_domain_level": 0
                },
                "memory": {"usage": {"limit": 100, "usage": 7, "failcnt": 0}, "raw": {"cache": 1}},
                "pids": {"current": 1},
                "blkio": {"ioServiceBytesRecursive": [{"major": 8, "op": "Read", "value": 9}]},
                "hugetlb": {"2MB": {"failcnt": 0}},
                "intel_rdt": {},
                "network_interfaces": null
            })
        );
        let mut t = Stats::default();
        t.cpu.throttling.throttled_periods = 3;
        let v = serde_json::to_value(&t).unwrap();
        assert_eq!(
            v["cpu"],
            serde_json::json!({"throttling": {"throttledPeriods": 3}})
        );
    }
}
