//! What a running container uses and runs: resource samples from its cgroup (`stats`, on
//! cgroup v1, v2 and hybrid hosts alike through berth-cgroups), its processes through the
//! host's `ps` (`top`), and live changes of its limits and restart policy (`update`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use berth_cgroups::Cgroup;
pub use berth_cgroups::stats::{BlkioEntry, NetworkInterface};
use berth_shim_protocol::Request;
use bollard_stubs::models::{HostConfig, Resources, RestartPolicy, RestartPolicyNameEnum};
use serde_json::{json, Map, Value};

use super::record::{now_nanos, Status};
use super::{shim, Container, Containers};
use crate::error::{Error, Result};

/// One measurement of a container.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    /// When it was taken, nanoseconds since the epoch.
    pub read: i128,
    pub cgroup: berth_cgroups::Stats,
    /// The memory counters come from cgroup v1 (which has a peak and a failure count).
    pub memory_v1: bool,
    /// The block I/O counters come from cgroup v1 (whose operation names are capitalised).
    pub blkio_v1: bool,
    /// CPU time of the whole host in nanoseconds (/proc/stat): the base of CPU percentages.
    pub system_cpu_usage: u64,
    pub online_cpus: u32,
    /// The memory limit; the machine's memory when there is none.
    pub memory_limit: u64,
    /// Counters of the container's own network namespace without `lo`; `None` when it
    /// shares the host's or has nothing but `lo`.
    pub networks: Option<BTreeMap<String, NetworkInterface>>,
}

/// `ps` output of a container's processes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Top {
    pub titles: Vec<String>,
    pub processes: Vec<Vec<String>>,
}

impl Containers {
    /// Measures a container; `None` when it is not running (or stopped meanwhile).
    pub async fn stats_sample(&self, c: &Arc<Container>) -> Result<Option<Sample>> {
        let record = c.record();
        if !record.state.status.is_live() {
            return Ok(None);
        }
        let c = c.clone();
        let pid = record.state.pid;
        let measured = tokio::task::spawn_blocking(move || measure(&c, pid))
            .await
            .map_err(|e| Error::Internal(format!("measuring the container: {e}")))?;
        match measured {
            Ok(sample) => Ok(Some(sample)),
            // The cgroup goes with the container: a sample racing its exit finds nothing.
            Err(_) if !record_is_live(&self.get(&record.id)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The container's processes as the host's `ps` shows them with `ps_args` (default
    /// `-ef`), like docker: `ps` runs on the host and only the rows of the container's
    /// processes are kept.
    pub async fn top(&self, name_or_id: &str, ps_args: &str) -> Result<Top> {
        let c = self.get(name_or_id)?;
        match c.status() {
            Status::Running | Status::Paused => {}
            Status::Restarting => return Err(Error::Conflict(format!("Container {} is restarting, wait until the container is running", c.id))),
            _ => return Err(Error::Conflict(format!("Container {} is not running", c.id))),
        }
        let ps_args = if ps_args.trim().is_empty() { "-ef" } else { ps_args };
        validate_ps_args(ps_args)?;
        let args: Vec<String> = ps_args.split(' ').filter(|a| !a.is_empty()).map(String::from).collect();
        let cg = container_cgroup(&c)?;
        let pids = tokio::task::spawn_blocking(move || all_pids(&cg))
            .await
            .map_err(|e| Error::Internal(format!("listing the container's processes: {e}")))??;
        let quick = format!("-q{}", pids.iter().map(u32::to_string).collect::<Vec<_>>().join(","));
        let mut output = run_ps(args.iter().cloned().chain([quick]).collect()).await;
        if output.is_err() {
            // Some ps options (such as f) cannot go with -q: filter the full list instead.
            output = run_ps(args).await;
        }
        let top = parse_ps(&output?, &pids)?;
        self.publish(&c, "top", &[]);
        Ok(top)
    }

    /// Changes a container's resource limits and restart policy (`docker update`): applied
    /// at once to a running container, kept in its configuration always. Returns docker's
    /// warnings.
    pub async fn update(&self, name_or_id: &str, resources: &Resources, restart_policy: Option<&RestartPolicy>) -> Result<Vec<String>> {
        let c = self.get(name_or_id)?;
        let _guard = c.lifecycle.lock().await;
        let record = c.record();
        if record.state.status == Status::Removing {
            return Err(Error::Conflict(format!("Container {} is marked for removal and cannot be updated", c.id)));
        }
        let mut warnings = vec![];
        let mut resources = resources.clone();
        if resources.blkio_weight.is_some_and(|w| w > 0) && !blkio_weight_supported(&c) {
            warnings.push("Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.".to_string());
            resources.blkio_weight = None;
        }
        // docker checks the request alone first, then merges it into what is set.
        let request = requested_host_config(&resources, restart_policy);
        berth_spec::validate(&record.config, &request).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let cannot = |message: String| Error::Conflict(format!("Cannot update container {}: {message}", c.id));
        let before = with_default_swap(record.host_config.clone());
        let host = merge_update(before.clone(), &resources, restart_policy).map_err(cannot)?;

        let live = record.state.status.is_live();
        if live && oci_resources(&before) != oci_resources(&host) {
            let request = Request::Update { resources: oci_resources(&host) };
            if let Err(e) = shim::call(&c.socket(), &request).await {
                let message = self.explain_update_failure(&c, &host, e.to_string()).await;
                return Err(Error::Internal(format!("Cannot update container {}: {message}", c.id)));
            }
        }
        c.update(|r| r.host_config = host)?;
        self.publish(&c, "update", &[]);
        Ok(warnings)
    }

    /// Turns a refused memory limit into runc's message, which names the usage.
    async fn explain_update_failure(&self, c: &Arc<Container>, host: &HostConfig, message: String) -> String {
        let limit = host.memory.unwrap_or(0);
        if limit <= 0 || !message.contains("busy") {
            return message;
        }
        match self.stats_sample(c).await {
            Ok(Some(s)) if s.cgroup.memory.usage.usage > limit as u64 => format!(
                "unable to set memory limit to {limit} (current usage: {}, peak usage: {})",
                s.cgroup.memory.usage.usage, s.cgroup.memory.usage.max
            ),
            _ => message,
        }
    }
}

fn record_is_live(c: &Result<Arc<Container>>) -> bool {
    c.as_ref().is_ok_and(|c| c.status().is_live())
}

/// The container's cgroup, from the `linux.cgroupsPath` of its OCI bundle.
fn container_cgroup(c: &Container) -> Result<Cgroup> {
    let path = c.dir.join("config.json");
    let bytes = std::fs::read(&path).map_err(Error::io("read", &path))?;
    let spec: Value = serde_json::from_slice(&bytes).map_err(|e| Error::Internal(format!("{}: {e}", path.display())))?;
    let cgroups_path = spec["linux"]["cgroupsPath"].as_str().map(Path::new);
    Cgroup::resolve(cgroups_path, &c.id).map_err(|e| Error::Internal(format!("resolve the cgroup of {}: {e}", c.id)))
}

fn measure(c: &Container, pid: i32) -> Result<Sample> {
    let cg = container_cgroup(c)?;
    let read = now_nanos();
    let stats = cg.stats().map_err(|e| Error::Internal(format!("read the cgroup statistics of {}: {e}", c.id)))?;
    let (system_cpu_usage, online_cpus) = system_cpu();
    let machine = machine_memory();
    let limit = stats.memory.usage.limit;
    Ok(Sample {
        read,
        memory_v1: cg.v1_path("memory").is_some(),
        blkio_v1: cg.v1_path("blkio").is_some(),
        system_cpu_usage,
        online_cpus,
        // "No limit" reads as a huge number (v1) or max (v2): docker shows the machine's.
        memory_limit: if limit == 0 || (machine > 0 && limit > machine) { machine } else { limit },
        networks: networks(pid),
        cgroup: stats,
    })
}

/// Host CPU time in nanoseconds and the number of online CPUs, from /proc/stat: the
/// first seven fields of the `cpu` line, like docker.
fn system_cpu() -> (u64, u32) {
    let Ok(text) = std::fs::read_to_string("/proc/stat") else { return (0, 0) };
    parse_proc_stat(&text, clock_ticks())
}

fn parse_proc_stat(text: &str, ticks_per_second: u64) -> (u64, u32) {
    let mut total = 0;
    let mut cpus = 0;
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        match fields.next() {
            Some("cpu") => {
                let ticks: u64 = fields.take(7).filter_map(|f| f.parse::<u64>().ok()).sum();
                total = ticks.saturating_mul(1_000_000_000) / ticks_per_second.max(1);
            }
            Some(name) if name.starts_with("cpu") => cpus += 1,
            _ => {}
        }
    }
    (total, cpus)
}

fn clock_ticks() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
            Ok(Some(t)) if t > 0 => t as u64,
            _ => 100,
        }
    })
}

/// The machine's memory in bytes (MemTotal).
fn machine_memory() -> u64 {
    static TOTAL: OnceLock<u64> = OnceLock::new();
    *TOTAL.get_or_init(|| {
        let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        text.lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    })
}

/// Interface counters of the network namespace of `pid`, when it is not berthd's own.
fn networks(pid: i32) -> Option<BTreeMap<String, NetworkInterface>> {
    if pid <= 0 {
        return None;
    }
    let ns = std::fs::read_link(format!("/proc/{pid}/ns/net")).ok()?;
    if std::fs::read_link("/proc/self/ns/net").ok()? == ns {
        return None;
    }
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).ok()?;
    let list = parse_net_dev(&text);
    (!list.is_empty()).then_some(list)
}

/// /proc/net/dev without `lo`.
fn parse_net_dev(text: &str) -> BTreeMap<String, NetworkInterface> {
    let mut out = BTreeMap::new();
    for line in text.lines().skip(2) {
        let Some((name, counters)) = line.split_once(':') else { continue };
        let name = name.trim();
        if name == "lo" {
            continue;
        }
        let n: Vec<u64> = counters.split_ascii_whitespace().map(|f| f.parse().unwrap_or(0)).collect();
        if n.len() < 12 {
            continue;
        }
        out.insert(
            name.to_string(),
            NetworkInterface {
                name: name.to_string(),
                rx_bytes: n[0],
                rx_packets: n[1],
                rx_errors: n[2],
                rx_dropped: n[3],
                tx_bytes: n[8],
                tx_packets: n[9],
                tx_errors: n[10],
                tx_dropped: n[11],
            },
        );
    }
    out
}

/// Every process in the cgroup and its descendants.
fn all_pids(cg: &Cgroup) -> Result<Vec<u32>> {
    let dir = ["pids", "freezer", "memory"].iter().find_map(|c| cg.v1_path(c)).or_else(|| cg.v2_path());
    let mut pids = vec![];
    if let Some(dir) = dir {
        collect_pids(dir, &mut pids)?;
    }
    Ok(pids)
}

fn collect_pids(dir: &Path, pids: &mut Vec<u32>) -> Result<()> {
    let procs = dir.join("cgroup.procs");
    let text = std::fs::read_to_string(&procs).map_err(Error::io("read", &procs))?;
    pids.extend(text.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
    for entry in std::fs::read_dir(dir).map_err(Error::io("read", dir))?.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            collect_pids(&entry.path(), pids)?;
        }
    }
    Ok(())
}

/// docker's rule: `ps` may not rename the PID column, which the filter relies on.
fn validate_ps_args(ps_args: &str) -> Result<()> {
    let words: Vec<&str> = ps_args.split_ascii_whitespace().collect();
    for (i, word) in words.iter().enumerate() {
        let Some((key, value)) = word.split_once('=') else { continue };
        let value = if value.is_empty() { words.get(i + 1).copied().unwrap_or("") } else { value };
        if value.starts_with("PID") && key != "pid" {
            return Err(Error::InvalidArgument(format!("specifying \"{key}={value}\" is not allowed")));
        }
    }
    Ok(())
}

/// Runs the host's `ps`; an error carries the first line of what it printed on stderr.
async fn run_ps(args: Vec<String>) -> Result<String> {
    let out = tokio::process::Command::new("ps")
        .args(&args)
        .env("LC_ALL", "C")
        .output()
        .await
        .map_err(|e| Error::Internal(format!("ps: {e}")))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let first = stderr.lines().next().filter(|l| !l.is_empty()).map(str::to_string).unwrap_or_else(|| out.status.to_string());
        return Err(Error::Internal(format!("ps: {first}")));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Keeps the rows of `pids` (and the thread rows, PID "-", that follow one of them); the
/// columns past the last title are one field, as the command has spaces.
fn parse_ps(output: &str, pids: &[u32]) -> Result<Top> {
    let mut lines = output.split('\n');
    let titles: Vec<String> = lines.next().unwrap_or("").split_ascii_whitespace().map(String::from).collect();
    let pid_index = titles.iter().position(|t| t == "PID").ok_or_else(|| Error::Internal("Couldn't find PID field in ps output".into()))?;
    let mut top = Top { titles, processes: vec![] };
    let mut in_container = false;
    for line in lines.filter(|l| !l.is_empty()) {
        let fields: Vec<&str> = line.split_ascii_whitespace().collect();
        let Some(pid) = fields.get(pid_index) else { continue };
        if *pid == "-" {
            if in_container {
                top.processes.push(row(&fields, top.titles.len()));
            }
            continue;
        }
        let pid: u32 = pid.parse().map_err(|_| Error::Internal(format!("Unexpected pid '{pid}' in ps output")))?;
        in_container = pids.contains(&pid);
        if in_container {
            top.processes.push(row(&fields, top.titles.len()));
        }
    }
    Ok(top)
}

fn row(fields: &[&str], columns: usize) -> Vec<String> {
    let last = columns.saturating_sub(1).min(fields.len());
    let mut row: Vec<String> = fields[..last].iter().map(|f| f.to_string()).collect();
    row.push(fields[last..].join(" "));
    row
}

/// docker stores "twice the memory" when a memory limit came without a swap limit; the
/// update rules compare against that.
fn with_default_swap(mut host: HostConfig) -> HostConfig {
    let memory = host.memory.unwrap_or(0);
    if memory > 0 && host.memory_swap.unwrap_or(0) == 0 {
        host.memory_swap = Some(memory.saturating_mul(2));
    }
    host
}

/// The request as a host config of its own, for docker's checks of the request alone.
fn requested_host_config(r: &Resources, restart_policy: Option<&RestartPolicy>) -> HostConfig {
    HostConfig {
        blkio_weight: r.blkio_weight,
        cpu_shares: r.cpu_shares,
        cpu_period: r.cpu_period,
        cpu_quota: r.cpu_quota,
        cpu_realtime_period: r.cpu_realtime_period,
        cpu_realtime_runtime: r.cpu_realtime_runtime,
        cpuset_cpus: r.cpuset_cpus.clone(),
        cpuset_mems: r.cpuset_mems.clone(),
        memory: r.memory,
        memory_reservation: r.memory_reservation,
        memory_swap: r.memory_swap,
        nano_cpus: r.nano_cpus,
        pids_limit: r.pids_limit,
        restart_policy: restart_policy.cloned(),
        ..Default::default()
    }
}

fn set(v: Option<i64>) -> Option<i64> {
    v.filter(|&v| v != 0)
}

/// docker's merge of an update into the container's host config: zero means "unchanged";
/// NanoCpus and CpuPeriod/CpuQuota exclude each other; a memory limit above the set
/// memory+swap limit needs a new swap limit; `AutoRemove` keeps the restart policy at "no".
fn merge_update(mut host: HostConfig, r: &Resources, restart_policy: Option<&RestartPolicy>) -> Result<HostConfig, String> {
    let old_nano = host.nano_cpus.unwrap_or(0);
    if r.nano_cpus.unwrap_or(0) > 0 && host.cpu_period.unwrap_or(0) > 0 {
        return Err("Conflicting options: Nano CPUs cannot be updated as CPU Period has already been set".into());
    }
    if r.nano_cpus.unwrap_or(0) > 0 && host.cpu_quota.unwrap_or(0) > 0 {
        return Err("Conflicting options: Nano CPUs cannot be updated as CPU Quota has already been set".into());
    }
    if r.cpu_period.unwrap_or(0) > 0 && old_nano > 0 {
        return Err("Conflicting options: CPU Period cannot be updated as NanoCPUs has already been set".into());
    }
    if r.cpu_quota.unwrap_or(0) > 0 && old_nano > 0 {
        return Err("Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set".into());
    }
    if let Some(w) = r.blkio_weight.filter(|&w| w != 0) {
        host.blkio_weight = Some(w);
    }
    for (field, value) in [
        (&mut host.cpu_shares, r.cpu_shares),
        (&mut host.nano_cpus, r.nano_cpus),
        (&mut host.cpu_period, r.cpu_period),
        (&mut host.cpu_quota, r.cpu_quota),
        (&mut host.cpu_realtime_period, r.cpu_realtime_period),
        (&mut host.cpu_realtime_runtime, r.cpu_realtime_runtime),
        (&mut host.memory_reservation, r.memory_reservation),
    ] {
        if let Some(v) = set(value) {
            *field = Some(v);
        }
    }
    if let Some(cpus) = r.cpuset_cpus.as_ref().filter(|s| !s.is_empty()) {
        host.cpuset_cpus = Some(cpus.clone());
    }
    if let Some(mems) = r.cpuset_mems.as_ref().filter(|s| !s.is_empty()) {
        host.cpuset_mems = Some(mems.clone());
    }
    if let Some(memory) = set(r.memory) {
        if memory > host.memory_swap.unwrap_or(0) && set(r.memory_swap).is_none() {
            return Err("Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time".into());
        }
        host.memory = Some(memory);
    }
    if let Some(swap) = set(r.memory_swap) {
        host.memory_swap = Some(swap);
    }
    if r.pids_limit.is_some() {
        host.pids_limit = r.pids_limit;
    }
    if let Some(policy) = restart_policy.filter(|p| p.name.as_ref().is_some_and(|n| *n != RestartPolicyNameEnum::EMPTY)) {
        let none = policy.name == Some(RestartPolicyNameEnum::NO);
        if host.auto_remove.unwrap_or(false) && !none {
            return Err("Restart policy cannot be updated because AutoRemove is enabled for the container".into());
        }
        host.restart_policy = Some(policy.clone());
    }
    Ok(host)
}

/// The OCI `LinuxResources` of the limits `docker update` can change, as the runtime
/// applies them (unset ones are left alone).
fn oci_resources(host: &HostConfig) -> Value {
    let mut r = Map::new();
    let mut memory = Map::new();
    if let Some(limit) = host.memory.filter(|&m| m > 0) {
        memory.insert("limit".into(), json!(limit));
        match host.memory_swap.unwrap_or(0) {
            s if s > 0 || s == -1 => {
                memory.insert("swap".into(), json!(s));
            }
            _ => {}
        }
    }
    if let Some(reservation) = host.memory_reservation.filter(|&m| m > 0) {
        memory.insert("reservation".into(), json!(reservation));
    }
    if !memory.is_empty() {
        r.insert("memory".into(), Value::Object(memory));
    }
    let mut cpu = Map::new();
    if let Some(shares) = host.cpu_shares.filter(|&s| s > 0) {
        cpu.insert("shares".into(), json!(shares));
    }
    if let Some(nano) = host.nano_cpus.filter(|&n| n > 0) {
        const PERIOD: i64 = 100_000;
        cpu.insert("period".into(), json!(PERIOD));
        cpu.insert("quota".into(), json!(nano * PERIOD / 1_000_000_000));
    } else {
        if let Some(p) = host.cpu_period.filter(|&p| p > 0) {
            cpu.insert("period".into(), json!(p));
        }
        if let Some(q) = host.cpu_quota.filter(|&q| q != 0) {
            cpu.insert("quota".into(), json!(q));
        }
    }
    if let Some(p) = host.cpu_realtime_period.filter(|&p| p > 0) {
        cpu.insert("realtimePeriod".into(), json!(p));
    }
    if let Some(rt) = host.cpu_realtime_runtime.filter(|&r| r > 0) {
        cpu.insert("realtimeRuntime".into(), json!(rt));
    }
    if let Some(cpus) = host.cpuset_cpus.as_deref().filter(|s| !s.is_empty()) {
        cpu.insert("cpus".into(), json!(cpus));
    }
    if let Some(mems) = host.cpuset_mems.as_deref().filter(|s| !s.is_empty()) {
        cpu.insert("mems".into(), json!(mems));
    }
    if !cpu.is_empty() {
        r.insert("cpu".into(), Value::Object(cpu));
    }
    if let Some(limit) = host.pids_limit {
        // 0 and negative mean unlimited, which the runtime spells -1.
        r.insert("pids".into(), json!({ "limit": if limit <= 0 { -1 } else { limit } }));
    }
    if let Some(w) = host.blkio_weight.filter(|&w| w > 0) {
        r.insert("blockIO".into(), json!({ "weight": w }));
    }
    Value::Object(r)
}

/// Whether the container's block I/O controller takes a weight (CFQ or BFQ on v1, the io
/// controller's weight on v2), judged by its cgroup or, once that is gone, its parent's.
fn blkio_weight_supported(c: &Container) -> bool {
    // Never started: there is nothing to judge by, and the start reports a failure.
    let Ok(cg) = container_cgroup(c) else { return true };
    let (dir, files) = match (cg.v1_path("blkio"), cg.v2_path()) {
        (Some(dir), _) => (dir, ["blkio.weight", "blkio.bfq.weight"]),
        (None, Some(dir)) => (dir, ["io.weight", "io.bfq.weight"]),
        (None, None) => return false,
    };
    let Some(existing) = dir.ancestors().find(|d| d.is_dir()) else { return false };
    files.iter().any(|f| existing.join(f).exists())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_gives_host_cpu_time_and_cpu_count() {
        let text = "cpu  100 5 50 1000 10 1 2 7 0 0\ncpu0 50 2 25 500 5 1 1 3 0 0\ncpu1 50 3 25 500 5 0 1 4 0 0\nintr 1 2\n";
        // user..softirq (7 fields) = 1168 ticks at 100 per second, steal left out.
        assert_eq!(parse_proc_stat(text, 100), (11_680_000_000, 2));
    }

    #[test]
    fn net_dev_without_lo() {
        let text = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo:     100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0\n  eth0:    2000      20    1    2    0     0          0         0     3000      30    3    4    0     0       0          0\n";
        let list = parse_net_dev(text);
        assert_eq!(list.keys().collect::<Vec<_>>(), vec!["eth0"]);
        let eth0 = &list["eth0"];
        assert_eq!((eth0.rx_bytes, eth0.rx_packets, eth0.rx_errors, eth0.rx_dropped), (2000, 20, 1, 2));
        assert_eq!((eth0.tx_bytes, eth0.tx_packets, eth0.tx_errors, eth0.tx_dropped), (3000, 30, 3, 4));
    }

    #[test]
    fn ps_rows_of_the_container_only() {
        let out = "UID          PID    PPID  C STIME TTY          TIME CMD\nroot           1       0  0 10:00 ?        00:00:01 /sbin/init splash\nroot         700     600  0 10:01 ?        00:00:00 sleep 100\nroot         701     700  0 10:01 ?        00:00:00 sh -c echo hi\n";
        let top = parse_ps(out, &[700, 701]).unwrap();
        assert_eq!(top.titles, vec!["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]);
        assert_eq!(top.processes.len(), 2);
        assert_eq!(top.processes[0], vec!["root", "700", "600", "0", "10:01", "?", "00:00:00", "sleep 100"]);
        assert_eq!(top.processes[1][7], "sh -c echo hi");
        // Thread rows ("-" as PID) follow their process.
        let threads = "PID TID CMD\n700 - sleep\n- 700 -\n1 - init\n- 1 -\n";
        let top = parse_ps(threads, &[700]).unwrap();
        assert_eq!(top.processes, vec![vec!["700", "-", "sleep"], vec!["-", "700", "-"]]);
        assert!(parse_ps("USER CMD\nroot x\n", &[1]).is_err());
    }

    #[test]
    fn ps_args_may_not_rename_pid() {
        assert!(validate_ps_args("-ef").is_ok());
        assert!(validate_ps_args("-o pid=PID,comm").is_ok());
        let e = validate_ps_args("-o user=PID").unwrap_err().to_string();
        assert_eq!(e, "specifying \"user=PID\" is not allowed");
        assert!(validate_ps_args("-o comm= PIDX").is_err());
    }

    fn resources() -> Resources {
        Resources::default()
    }

    #[test]
    fn update_merge_follows_docker() {
        let created = with_default_swap(HostConfig { memory: Some(64 << 20), ..Default::default() });
        assert_eq!(created.memory_swap, Some(128 << 20));
        // Within memory+swap: fine, and swap stays.
        let host = merge_update(created.clone(), &Resources { memory: Some(96 << 20), ..resources() }, None).unwrap();
        assert_eq!((host.memory, host.memory_swap), (Some(96 << 20), Some(128 << 20)));
        // Above it: a new swap limit is needed.
        let e = merge_update(created.clone(), &Resources { memory: Some(256 << 20), ..resources() }, None).unwrap_err();
        assert!(e.starts_with("Memory limit should be smaller than already set memoryswap limit"), "{e}");
        let host = merge_update(created.clone(), &Resources { memory: Some(256 << 20), memory_swap: Some(-1), ..resources() }, None).unwrap();
        assert_eq!(host.memory_swap, Some(-1));
        // No limit at all so far: docker wants the swap limit too.
        assert!(merge_update(HostConfig::default(), &Resources { memory: Some(64 << 20), ..resources() }, None).is_err());
        // CPUs: --cpus and --cpu-quota exclude each other across updates.
        let host = merge_update(HostConfig::default(), &Resources { nano_cpus: Some(500_000_000), ..resources() }, None).unwrap();
        let e = merge_update(host.clone(), &Resources { cpu_quota: Some(20_000), ..resources() }, None).unwrap_err();
        assert_eq!(e, "Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set");
        assert_eq!(oci_resources(&host), json!({ "cpu": { "period": 100_000, "quota": 50_000 } }));
        // Restart policies, and AutoRemove.
        let always = RestartPolicy { name: Some(RestartPolicyNameEnum::ALWAYS), maximum_retry_count: None };
        let host = merge_update(HostConfig::default(), &resources(), Some(&always)).unwrap();
        assert_eq!(host.restart_policy, Some(always.clone()));
        let unset = RestartPolicy { name: Some(RestartPolicyNameEnum::EMPTY), maximum_retry_count: None };
        assert_eq!(merge_update(host, &resources(), Some(&unset)).unwrap().restart_policy, Some(always.clone()));
        let e = merge_update(HostConfig { auto_remove: Some(true), ..Default::default() }, &resources(), Some(&always)).unwrap_err();
        assert_eq!(e, "Restart policy cannot be updated because AutoRemove is enabled for the container");
    }

    #[test]
    fn oci_resources_of_every_updatable_limit() {
        let host = HostConfig {
            memory: Some(64 << 20),
            memory_swap: Some(128 << 20),
            memory_reservation: Some(32 << 20),
            cpu_shares: Some(512),
            cpu_period: Some(50_000),
            cpu_quota: Some(25_000),
            cpuset_cpus: Some("0".into()),
            pids_limit: Some(0),
            blkio_weight: Some(300),
            ..Default::default()
        };
        assert_eq!(
            oci_resources(&host),
            json!({
                "memory": { "limit": 64 << 20, "swap": 128 << 20, "reservation": 32 << 20 },
                "cpu": { "shares": 512, "period": 50_000, "quota": 25_000, "cpus": "0" },
                "pids": { "limit": -1 },
                "blockIO": { "weight": 300 },
            })
        );
        assert_eq!(oci_resources(&HostConfig::default()), json!({}));
    }
}
