//! Translation of OCI `LinuxResources` into ordered cgroup file writes, per controller and
//! cgroup version. Pure functions: the few facts that need the file system come in as
//! closures so the ordering rules can be unit-tested.

use std::collections::HashMap;

use oci_spec::runtime::{
    LinuxBlockIo, LinuxCpu, LinuxHugepageLimit, LinuxMemory, LinuxNetwork, LinuxPids, LinuxRdma,
    LinuxThrottleDevice,
};

use crate::error::{Error, Result};
use crate::fs::Write;

fn invalid(what: &'static str, value: impl ToString, reason: impl Into<String>) -> Error {
    Error::InvalidValue {
        what,
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// v1 byte limits: -1 is unlimited, other negatives are errors, 0 means unset.
fn v1_bytes(what: &'static str, v: Option<i64>) -> Result<Option<i64>> {
    match v {
        None | Some(0) => Ok(None),
        Some(v) if v < -1 => Err(invalid(what, v, "must be positive or -1 for unlimited")),
        Some(v) => Ok(Some(v)),
    }
}

/// v2 spelling of a byte limit.
fn v2_num(v: i64) -> String {
    if v < 0 {
        "max".to_string()
    } else {
        v.to_string()
    }
}

/// Whether any memory knob that needs the controller is set.
pub(crate) fn memory_requested(m: &LinuxMemory) -> bool {
    m.limit().is_some_and(|v| v != 0)
        || m.swap().is_some_and(|v| v != 0)
        || m.reservation().is_some_and(|v| v != 0)
        || m.swappiness().is_some()
        || m.disable_oom_killer() == Some(true)
}

/// v1 memory writes. memory.memsw.limit_in_bytes must stay >= memory.limit_in_bytes at
/// every step, so the order depends on the current limit (read only when both are set).
pub(crate) fn memory_v1(
    m: &LinuxMemory,
    current_limit: impl FnOnce() -> Result<u64>,
) -> Result<Vec<Write>> {
    let mut w = Vec::new();
    let limit = v1_bytes("memory limit", m.limit())?;
    let mut swap = v1_bytes("memory swap", m.swap())?;
    if let (Some(l), Some(s)) = (limit, swap) {
        if l > 0 && s > 0 && s < l {
            return Err(invalid(
                "memory swap",
                s,
                format!("memory+swap must be >= the memory limit {l}"),
            ));
        }
    }
    let mut implicit_swap = false;
    if limit == Some(-1) && swap.is_none() {
        // Unlimited memory with swap unset means unlimited memory+swap too.
        swap = Some(-1);
        implicit_swap = true;
    }
    let limit_w = |v: i64| Write::new("memory.limit_in_bytes", v);
    let swap_w = |v: i64| {
        let w = Write::new("memory.memsw.limit_in_bytes", v);
        if implicit_swap {
            w.optional()
        } else {
            w
        }
    };
    match (limit, swap) {
        (Some(l), Some(s)) => {
            if s == -1 || current_limit()? < s as u64 {
                w.push(swap_w(s));
                w.push(limit_w(l));
            } else {
                w.push(limit_w(l));
                w.push(swap_w(s));
            }
        }
        (Some(l), None) => w.push(limit_w(l)),
        (None, Some(s)) => w.push(swap_w(s)),
        (None, None) => {}
    }
    if let Some(r) = v1_bytes("memory reservation", m.reservation())? {
        w.push(Write::new("memory.soft_limit_in_bytes", r));
    }
    if m.disable_oom_killer() == Some(true) {
        w.push(Write::new("memory.oom_control", 1));
    }
    if let Some(s) = m.swappiness() {
        if s > 100 {
            return Err(invalid("memory swappiness", s, "must be between 0 and 100"));
        }
        w.push(Write::new("memory.swappiness", s));
    }
    Ok(w)
}

/// v2 memory writes: memory.swap.max holds swap only, so it is swap - limit.
pub(crate) fn memory_v2(m: &LinuxMemory) -> Result<Vec<Write>> {
    let mut w = Vec::new();
    let limit = v1_bytes("memory limit", m.limit())?;
    let swap = v1_bytes("memory swap", m.swap())?;
    let swap_max = match (limit, swap) {
        (Some(-1), None) => Some(Write::new("memory.swap.max", "max").optional()),
        (_, None) => None,
        (_, Some(-1)) => Some(Write::new("memory.swap.max", "max")),
        (None | Some(-1), Some(s)) => {
            return Err(invalid(
                "memory swap",
                s,
                "a swap limit needs a memory limit",
            ))
        }
        (Some(l), Some(s)) if s < l => {
            return Err(invalid(
                "memory swap",
                s,
                format!("memory+swap must be >= the memory limit {l}"),
            ))
        }
        (Some(l), Some(s)) => Some(Write::new("memory.swap.max", s - l)),
    };
    // Swap first: lowering memory.max below usage can then reclaim into the new swap room.
    w.extend(swap_max);
    if let Some(l) = limit {
        w.push(Write::new("memory.max", v2_num(l)));
    }
    if let Some(r) = v1_bytes("memory reservation", m.reservation())? {
        w.push(Write::new("memory.low", v2_num(r)));
    }
    if m.disable_oom_killer() == Some(true) {
        tracing::warn!("disableOOMKiller has no cgroup v2 equivalent; ignored");
    }
    if m.swappiness().is_some() {
        tracing::warn!("memory swappiness has no cgroup v2 equivalent; ignored");
    }
    Ok(w)
}

/// Whether the cpu controller (not cpuset) is needed.
pub(crate) fn cpu_requested(c: &LinuxCpu) -> bool {
    c.shares().is_some_and(|v| v != 0)
        || c.quota().is_some_and(|v| v != 0)
        || c.period().is_some_and(|v| v != 0)
        || c.burst().is_some()
        || c.idle().is_some()
        || c.realtime_runtime().is_some_and(|v| v != 0)
        || c.realtime_period().is_some_and(|v| v != 0)
}

const MIN_SHARES: u64 = 2;
const MAX_SHARES: u64 = 262_144;

/// cgroup v1 cpu.shares → v2 cpu.weight, the linear mapping of [2, 262144] onto [1, 10000].
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    let s = shares.clamp(MIN_SHARES, MAX_SHARES);
    1 + ((s - 2) * 9999) / 262_142
}

pub(crate) fn cpu_v1(c: &LinuxCpu) -> Result<Vec<Write>> {
    let mut w = Vec::new();
    if let Some(s) = c.shares().filter(|v| *v != 0) {
        if !(MIN_SHARES..=MAX_SHARES).contains(&s) {
            return Err(invalid("cpu shares", s, "must be between 2 and 262144"));
        }
        w.push(Write::new("cpu.shares", s));
    }
    let quota = c.quota().filter(|v| *v != 0);
    // A new period can be rejected against the old quota; it is retried after the quota.
    if let Some(p) = c.period().filter(|v| *v != 0) {
        w.push(Write::new("cpu.cfs_period_us", p).defer_einval(quota.is_some()));
    }
    if let Some(b) = c.burst() {
        w.push(Write::new("cpu.cfs_burst_us", b).defer_einval(quota.is_some()));
    }
    if let Some(q) = quota {
        w.push(Write::new("cpu.cfs_quota_us", q));
    }
    if let Some(i) = c.idle() {
        w.push(Write::new("cpu.idle", i));
    }
    let runtime = c.realtime_runtime().filter(|v| *v != 0);
    if let Some(p) = c.realtime_period().filter(|v| *v != 0) {
        w.push(Write::new("cpu.rt_period_us", p).defer_einval(runtime.is_some()));
    }
    if let Some(r) = runtime {
        w.push(Write::new("cpu.rt_runtime_us", r));
    }
    Ok(w)
}

pub(crate) fn cpu_v2(c: &LinuxCpu) -> Result<Vec<Write>> {
    let mut w = Vec::new();
    if c.realtime_runtime().is_some_and(|v| v != 0) || c.realtime_period().is_some_and(|v| v != 0) {
        return Err(Error::Unsupported {
            what: "cpu realtimeRuntime/realtimePeriod".into(),
            path: "/sys/fs/cgroup".into(),
            reason: "cgroup v2 has no realtime group scheduling".into(),
        });
    }
    if let Some(i) = c.idle() {
        w.push(Write::new("cpu.idle", i));
    }
    if let Some(s) = c.shares().filter(|v| *v != 0) {
        w.push(Write::new("cpu.weight", shares_to_weight(s)));
    }
    let quota = c.quota().filter(|v| *v != 0);
    let period = c.period().filter(|v| *v != 0);
    if let Some(b) = c.burst() {
        w.push(Write::new("cpu.max.burst", b).defer_einval(quota.is_some() || period.is_some()));
    }
    if quota.is_some() || period.is_some() {
        let q = match quota {
            Some(q) if q > 0 => q.to_string(),
            _ => "max".to_string(),
        };
        w.push(Write::new(
            "cpu.max",
            format!("{q} {}", period.unwrap_or(100_000)),
        ));
    }
    Ok(w)
}

/// cpuset writes (same file names in v1 and v2).
pub(crate) fn cpuset(c: &LinuxCpu) -> Vec<Write> {
    let mut w = Vec::new();
    if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
        w.push(Write::new("cpuset.cpus", cpus));
    }
    if let Some(mems) = c.mems().as_deref().filter(|s| !s.is_empty()) {
        w.push(Write::new("cpuset.mems", mems));
    }
    w
}

/// pids.max; zero or negative means unlimited.
pub(crate) fn pids(p: &LinuxPids) -> Vec<Write> {
    let v = if p.limit() > 0 {
        p.limit().to_string()
    } else {
        "max".to_string()
    };
    vec![Write::new("pids.max", v)]
}

fn check_page_size(size: &str) -> Result<()> {
    if size.is_empty() || !size.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(invalid(
            "hugepage size",
            size,
            "expected a size such as 2MB or 1GB",
        ));
    }
    Ok(())
}

pub(crate) fn hugetlb(limits: &[LinuxHugepageLimit], v2: bool) -> Result<Vec<Write>> {
    let mut w = Vec::new();
    for l in limits {
        check_page_size(l.page_size())?;
        let p = format!("hugetlb.{}", l.page_size());
        if v2 {
            let v = v2_num(l.limit());
            w.push(Write::new(format!("{p}.max"), &v));
            // Reservation limits exist on newer kernels only.
            w.push(Write::new(format!("{p}.rsvd.max"), v).optional());
        } else {
            let v = if l.limit() < 0 { -1 } else { l.limit() };
            w.push(Write::new(format!("{p}.limit_in_bytes"), v));
            w.push(Write::new(format!("{p}.rsvd.limit_in_bytes"), v).optional());
        }
    }
    Ok(w)
}

fn throttles(
    b: &LinuxBlockIo,
) -> [(
    &'static str,
    &'static str,
    &Option<Vec<LinuxThrottleDevice>>,
); 4] {
    [
        (
            "blkio.throttle.read_bps_device",
            "rbps",
            b.throttle_read_bps_device(),
        ),
        (
            "blkio.throttle.write_bps_device",
            "wbps",
            b.throttle_write_bps_device(),
        ),
        (
            "blkio.throttle.read_iops_device",
            "riops",
            b.throttle_read_iops_device(),
        ),
        (
            "blkio.throttle.write_iops_device",
            "wiops",
            b.throttle_write_iops_device(),
        ),
    ]
}

pub(crate) fn blkio_requested(b: &LinuxBlockIo) -> bool {
    b.weight().is_some_and(|v| v != 0)
        || b.leaf_weight().is_some_and(|v| v != 0)
        || b.weight_device().as_ref().is_some_and(|v| !v.is_empty())
        || throttles(b)
            .iter()
            .any(|(_, _, l)| l.as_ref().is_some_and(|v| !v.is_empty()))
}

/// v1 blkio writes. `weight_files` names the (weight, weight_device) files this kernel
/// has; it is only asked when a weight is requested.
pub(crate) fn blkio_v1(
    b: &LinuxBlockIo,
    weight_files: impl FnOnce() -> Result<(&'static str, &'static str)>,
) -> Result<Vec<Write>> {
    let mut w = Vec::new();
    let wants_weight = b.weight().is_some_and(|v| v != 0)
        || b.weight_device()
            .iter()
            .flatten()
            .any(|d| d.weight().is_some_and(|v| v != 0));
    let (weight_file, weight_device_file) = if wants_weight {
        weight_files()?
    } else {
        ("", "")
    };
    if let Some(v) = b.weight().filter(|v| *v != 0) {
        w.push(Write::new(weight_file, v));
    }
    if let Some(v) = b.leaf_weight().filter(|v| *v != 0) {
        w.push(Write::new("blkio.leaf_weight", v));
    }
    for d in b.weight_device().iter().flatten() {
        if let Some(v) = d.weight().filter(|v| *v != 0) {
            w.push(Write::new(
                weight_device_file,
                format!("{}:{} {v}", d.major(), d.minor()),
            ));
        }
        if let Some(v) = d.leaf_weight().filter(|v| *v != 0) {
            w.push(Write::new(
                "blkio.leaf_weight_device",
                format!("{}:{} {v}", d.major(), d.minor()),
            ));
        }
    }
    for (file, _, list) in throttles(b) {
        for t in list.iter().flatten() {
            w.push(Write::new(
                file,
                format!("{}:{} {}", t.major(), t.minor(), t.rate()),
            ));
        }
    }
    Ok(w)
}

/// blkio weight [10, 1000] → io.weight [1, 10000].
pub fn blkio_weight_to_io_weight(weight: u16) -> u64 {
    let w = u64::from(weight.clamp(10, 1000));
    1 + (w - 10) * 9999 / 990
}

/// v2 io writes. `bfq` says whether io.bfq.weight exists (asked only for weights).
pub(crate) fn blkio_v2(b: &LinuxBlockIo, bfq: impl FnOnce() -> bool) -> Result<Vec<Write>> {
    let mut w = Vec::new();
    let check = |v: u16| -> Result<u16> {
        if (10..=1000).contains(&v) {
            Ok(v)
        } else {
            Err(invalid("blkio weight", v, "must be between 10 and 1000"))
        }
    };
    let wants_weight = b.weight().is_some_and(|v| v != 0)
        || b.weight_device()
            .iter()
            .flatten()
            .any(|d| d.weight().is_some_and(|v| v != 0));
    let bfq = wants_weight && bfq();
    if let Some(v) = b.weight().filter(|v| *v != 0) {
        let v = check(v)?;
        if bfq {
            w.push(Write::new("io.bfq.weight", v));
        } else {
            w.push(Write::new("io.weight", blkio_weight_to_io_weight(v)));
        }
    }
    for d in b.weight_device().iter().flatten() {
        if let Some(v) = d.weight().filter(|v| *v != 0) {
            let v = check(v)?;
            if bfq {
                w.push(Write::new(
                    "io.bfq.weight",
                    format!("{}:{} {v}", d.major(), d.minor()),
                ));
            } else {
                let iow = blkio_weight_to_io_weight(v);
                w.push(Write::new(
                    "io.weight",
                    format!("{}:{} {iow}", d.major(), d.minor()),
                ));
            }
        }
    }
    if b.leaf_weight().is_some_and(|v| v != 0)
        || b.weight_device()
            .iter()
            .flatten()
            .any(|d| d.leaf_weight().is_some_and(|v| v != 0))
    {
        tracing::warn!("blkio leafWeight has no cgroup v2 equivalent; ignored");
    }
    for (_, key, list) in throttles(b) {
        for t in list.iter().flatten() {
            w.push(Write::new(
                "io.max",
                format!("{}:{} {key}={}", t.major(), t.minor(), t.rate()),
            ));
        }
    }
    Ok(w)
}

/// net_cls and net_prio writes (v1 only controllers).
pub(crate) fn network(n: &LinuxNetwork) -> (Vec<Write>, Vec<Write>) {
    let cls = n
        .class_id()
        .map(|id| Write::new("net_cls.classid", id))
        .into_iter()
        .collect();
    let prio = n
        .priorities()
        .iter()
        .flatten()
        .map(|p| {
            Write::new(
                "net_prio.ifpriomap",
                format!("{} {}", p.name(), p.priority()),
            )
        })
        .collect();
    (cls, prio)
}

/// rdma.max lines, one per device, in device order.
pub(crate) fn rdma(map: &HashMap<String, LinuxRdma>) -> Result<Vec<Write>> {
    let mut devs: Vec<_> = map.iter().collect();
    devs.sort_by(|a, b| a.0.cmp(b.0));
    let mut w = Vec::new();
    for (dev, r) in devs {
        if dev.is_empty() || dev.contains(char::is_whitespace) {
            return Err(invalid("rdma device", dev, "must be a device name"));
        }
        let mut line = dev.clone();
        if let Some(h) = r.hca_handles() {
            line.push_str(&format!(" hca_handle={h}"));
        }
        if let Some(o) = r.hca_objects() {
            line.push_str(&format!(" hca_object={o}"));
        }
        if line.len() > dev.len() {
            w.push(Write::new("rdma.max", line));
        }
    }
    Ok(w)
}

/// Checks a key of `linux.resources.unified` names a plain cgroup file; returns its
/// controller prefix ("memory" for "memory.high").
pub(crate) fn unified_key(key: &str) -> Result<&str> {
    let bad = |reason: &str| invalid("unified key", key, reason.to_string());
    if key.is_empty() || key.contains('/') || key.starts_with('.') || key.contains('\0') {
        return Err(bad("must be a file name such as memory.high"));
    }
    match key.split_once('.') {
        Some((ctrl, rest)) if !ctrl.is_empty() && !rest.is_empty() => Ok(ctrl),
        _ => Err(bad("must have the form <controller>.<file>")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{
        LinuxBlockIoBuilder, LinuxCpuBuilder, LinuxHugepageLimitBuilder, LinuxMemoryBuilder,
        LinuxThrottleDeviceBuilder, LinuxWeightDeviceBuilder,
    };

    fn files(w: &[Write]) -> Vec<(String, String)> {
        w.iter()
            .map(|w| (w.file.clone(), w.value.clone()))
            .collect()
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn shares_to_weight_matches_the_linear_formula() {
        assert_eq!(shares_to_weight(0), 0);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(1 << 40), 10_000);
        assert_eq!(shares_to_weight(512), 1 + (510 * 9999) / 262_142);
    }

    #[test]
    fn blkio_weight_conversion() {
        assert_eq!(blkio_weight_to_io_weight(10), 1);
        assert_eq!(blkio_weight_to_io_weight(1000), 10_000);
        assert_eq!(blkio_weight_to_io_weight(500), 1 + 490 * 9999 / 990);
    }

    #[test]
    fn memory_v1_orders_swap_against_current_limit() {
        let m = LinuxMemoryBuilder::default()
            .limit(100i64)
            .swap(300i64)
            .build()
            .unwrap();
        // Raising past the current limit: memsw first.
        let w = memory_v1(&m, || Ok(50)).unwrap();
        assert_eq!(
            files(&w),
            pairs(&[
                ("memory.memsw.limit_in_bytes", "300"),
                ("memory.limit_in_bytes", "100")
            ])
        );
        // Current limit already above the new memsw: memory first.
        let w = memory_v1(&m, || Ok(1000)).unwrap();
        assert_eq!(
            files(&w),
            pairs(&[
                ("memory.limit_in_bytes", "100"),
                ("memory.memsw.limit_in_bytes", "300")
            ])
        );
        // Only a limit: no read of the current limit.
        let m = LinuxMemoryBuilder::default().limit(100i64).build().unwrap();
        let w = memory_v1(&m, || panic!("not needed")).unwrap();
        assert_eq!(files(&w), pairs(&[("memory.limit_in_bytes", "100")]));
        // Unlimited memory implies unlimited memsw, written first and optional.
        let m = LinuxMemoryBuilder::default().limit(-1i64).build().unwrap();
        let w = memory_v1(&m, || panic!("not needed")).unwrap();
        assert_eq!(
            files(&w),
            pairs(&[
                ("memory.memsw.limit_in_bytes", "-1"),
                ("memory.limit_in_bytes", "-1")
            ])
        );
        assert!(w[0].optional);
        let m = LinuxMemoryBuilder::default()
            .limit(100i64)
            .swap(50i64)
            .build()
            .unwrap();
        assert!(memory_v1(&m, || Ok(0)).is_err());
        let m = LinuxMemoryBuilder::default()
            .swappiness(101u64)
            .build()
            .unwrap();
        assert!(memory_v1(&m, || Ok(0)).is_err());
        let m = LinuxMemoryBuilder::default()
            .reservation(10i64)
            .disable_oom_killer(true)
            .swappiness(0u64)
            .kernel(5i64)
            .build()
            .unwrap();
        assert_eq!(
            files(&memory_v1(&m, || Ok(0)).unwrap()),
            pairs(&[
                ("memory.soft_limit_in_bytes", "10"),
                ("memory.oom_control", "1"),
                ("memory.swappiness", "0")
            ])
        );
    }

    #[test]
    fn memory_v2_converts_swap() {
        let m = LinuxMemoryBuilder::default()
            .limit(100i64)
            .swap(300i64)
            .reservation(5i64)
            .build()
            .unwrap();
        assert_eq!(
            files(&memory_v2(&m).unwrap()),
            pairs(&[
                ("memory.swap.max", "200"),
                ("memory.max", "100"),
                ("memory.low", "5")
            ])
        );
        let m = LinuxMemoryBuilder::default()
            .limit(100i64)
            .swap(100i64)
            .build()
            .unwrap();
        assert_eq!(
            files(&memory_v2(&m).unwrap())[0],
            ("memory.swap.max".into(), "0".into())
        );
        let m = LinuxMemoryBuilder::default().limit(-1i64).build().unwrap();
        assert_eq!(
            files(&memory_v2(&m).unwrap()),
            pairs(&[("memory.swap.max", "max"), ("memory.max", "max")])
        );
        let m = LinuxMemoryBuilder::default().swap(100i64).build().unwrap();
        assert!(memory_v2(&m).is_err());
    }

    #[test]
    fn cpu_plans() {
        let c = LinuxCpuBuilder::default()
            .shares(1024u64)
            .quota(50_000i64)
            .period(100_000u64)
            .realtime_period(1_000_000u64)
            .realtime_runtime(10_000i64)
            .build()
            .unwrap();
        let w = cpu_v1(&c).unwrap();
        assert_eq!(
            files(&w),
            pairs(&[
                ("cpu.shares", "1024"),
                ("cpu.cfs_period_us", "100000"),
                ("cpu.cfs_quota_us", "50000"),
                ("cpu.rt_period_us", "1000000"),
                ("cpu.rt_runtime_us", "10000"),
            ])
        );
        assert!(w[1].defer_einval && w[3].defer_einval);
        assert!(cpu_v2(&c).is_err(), "realtime is v1 only");
        let c = LinuxCpuBuilder::default()
            .shares(1024u64)
            .quota(-1i64)
            .idle(1i64)
            .build()
            .unwrap();
        assert_eq!(
            files(&cpu_v2(&c).unwrap()),
            pairs(&[
                ("cpu.idle", "1"),
                ("cpu.weight", "39"),
                ("cpu.max", "max 100000")
            ])
        );
        let c = LinuxCpuBuilder::default()
            .quota(20_000i64)
            .period(50_000u64)
            .build()
            .unwrap();
        assert_eq!(
            files(&cpu_v2(&c).unwrap()),
            pairs(&[("cpu.max", "20000 50000")])
        );
        let c = LinuxCpuBuilder::default().shares(1u64).build().unwrap();
        assert!(cpu_v1(&c).is_err());
        let c = LinuxCpuBuilder::default()
            .cpus("0")
            .mems("0")
            .build()
            .unwrap();
        assert!(!cpu_requested(&c));
        assert_eq!(
            files(&cpuset(&c)),
            pairs(&[("cpuset.cpus", "0"), ("cpuset.mems", "0")])
        );
    }

    #[test]
    fn hugetlb_and_pids_plans() {
        let l = [LinuxHugepageLimitBuilder::default()
            .page_size("2MB")
            .limit(4_194_304i64)
            .build()
            .unwrap()];
        let w = hugetlb(&l, true).unwrap();
        assert_eq!(
            files(&w),
            pairs(&[
                ("hugetlb.2MB.max", "4194304"),
                ("hugetlb.2MB.rsvd.max", "4194304")
            ])
        );
        assert!(!w[0].optional && w[1].optional);
        let w = hugetlb(&l, false).unwrap();
        assert_eq!(w[0].file, "hugetlb.2MB.limit_in_bytes");
        let bad = [LinuxHugepageLimitBuilder::default()
            .page_size("../x")
            .limit(1i64)
            .build()
            .unwrap()];
        assert!(hugetlb(&bad, true).is_err());
        let p = oci_spec::runtime::LinuxPidsBuilder::default()
            .limit(0i64)
            .build()
            .unwrap();
        assert_eq!(files(&pids(&p)), pairs(&[("pids.max", "max")]));
        let p = oci_spec::runtime::LinuxPidsBuilder::default()
            .limit(1000i64)
            .build()
            .unwrap();
        assert_eq!(files(&pids(&p)), pairs(&[("pids.max", "1000")]));
    }

    #[test]
    fn blkio_plans() {
        let b = LinuxBlockIoBuilder::default()
            .weight(500u16)
            .weight_device(vec![LinuxWeightDeviceBuilder::default()
                .major(8i64)
                .minor(0i64)
                .weight(300u16)
                .build()
                .unwrap()])
            .throttle_read_bps_device(vec![LinuxThrottleDeviceBuilder::default()
                .major(8i64)
                .minor(0i64)
                .rate(1_048_576u64)
                .build()
                .unwrap()])
            .build()
            .unwrap();
        assert!(blkio_requested(&b));
        let w = blkio_v1(&b, || Ok(("blkio.bfq.weight", "blkio.bfq.weight_device"))).unwrap();
        assert_eq!(
            files(&w),
            pairs(&[
                ("blkio.bfq.weight", "500"),
                ("blkio.bfq.weight_device", "8:0 300"),
                ("blkio.throttle.read_bps_device", "8:0 1048576"),
            ])
        );
        let w = blkio_v2(&b, || false).unwrap();
        assert_eq!(
            files(&w),
            pairs(&[
                ("io.weight", &blkio_weight_to_io_weight(500).to_string()),
                (
                    "io.weight",
                    &format!("8:0 {}", blkio_weight_to_io_weight(300))
                ),
                ("io.max", "8:0 rbps=1048576"),
            ])
        );
        let w = blkio_v2(&b, || true).unwrap();
        assert_eq!(files(&w)[0], ("io.bfq.weight".into(), "500".into()));
        // Throttles alone never probe weight files.
        let t = LinuxBlockIoBuilder::default()
            .throttle_write_iops_device(vec![LinuxThrottleDeviceBuilder::default()
                .major(8i64)
                .minor(16i64)
                .rate(100u64)
                .build()
                .unwrap()])
            .build()
            .unwrap();
        let w = blkio_v1(&t, || panic!("not needed")).unwrap();
        assert_eq!(
            files(&w),
            pairs(&[("blkio.throttle.write_iops_device", "8:16 100")])
        );
        let w = blkio_v2(&t, || panic!("not needed")).unwrap();
        assert_eq!(files(&w), pairs(&[("io.max", "8:16 wiops=100")]));
    }

    #[test]
    fn unified_keys_are_validated() {
        assert_eq!(unified_key("memory.high").unwrap(), "memory");
        assert_eq!(unified_key("cgroup.max.depth").unwrap(), "cgroup");
        for bad in ["", "../memory.max", "memory", ".memory", "a/b.c", "memory."] {
            assert!(unified_key(bad).is_err(), "{bad}");
        }
    }
}
