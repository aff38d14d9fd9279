//! Checks a create request before anything is made, with Docker's error messages where
//! Docker has them. Log options are checked elsewhere.

use crate::error::{invalid, Result};
use bollard_stubs::models::{
    ContainerConfig, HostConfig, HostConfigIsolationEnum, RestartPolicyNameEnum,
};

/// 6 MiB: Docker's smallest memory limit, to leave room for the container's startup.
const MIN_MEMORY: i64 = 6 << 20;
/// Longest hostname Linux takes (HOST_NAME_MAX).
const MAX_HOSTNAME: usize = 64;
/// Docker's smallest healthcheck duration, 1ms in nanoseconds.
const MIN_DURATION: i64 = 1_000_000;

/// Checks `config` (already merged with the image config) and `host`.
pub fn validate(config: &ContainerConfig, host: &HostConfig) -> Result<()> {
    validate_config(config)?;
    validate_host(host)?;
    validate_resources(host)?;
    validate_namespaces(config, host)?;
    security_options(host.security_opt.as_deref().unwrap_or_default())?;
    sysctls(host)?;
    ulimits(host)?;
    devices(host)?;
    crate::mounts::mount_requests(config, host)?;
    for path in host
        .masked_paths
        .iter()
        .chain(host.readonly_paths.iter())
        .flatten()
    {
        if !path.starts_with('/') {
            return Err(invalid(format!(
                "masked and read-only paths must be absolute: {path:?}"
            )));
        }
    }
    Ok(())
}

fn validate_config(config: &ContainerConfig) -> Result<()> {
    let hostname = config.hostname.as_deref().unwrap_or_default();
    if hostname.len() > MAX_HOSTNAME {
        return Err(invalid(format!(
            "hostname {hostname:?} is too long (maximum {MAX_HOSTNAME} bytes)"
        )));
    }
    if let Some(wd) = config.working_dir.as_deref().filter(|w| !w.is_empty()) {
        if !wd.starts_with('/') {
            return Err(invalid(format!(
                "the working directory '{wd}' is invalid, it needs to be an absolute path"
            )));
        }
    }
    if let Some(sig) = config.stop_signal.as_deref().filter(|s| !s.is_empty()) {
        parse_signal(sig)?;
    }
    for e in config.env.iter().flatten() {
        if e.split('=').next().unwrap_or_default().is_empty() {
            return Err(invalid(format!("invalid environment variable: {e}")));
        }
    }
    if let Some(hc) = &config.healthcheck {
        for (name, v) in [
            ("Interval", hc.interval),
            ("Timeout", hc.timeout),
            ("StartPeriod", hc.start_period),
            ("StartInterval", hc.start_interval),
        ] {
            if v.is_some_and(|v| v != 0 && v < MIN_DURATION) {
                return Err(invalid(format!(
                    "{name} in Healthcheck cannot be less than 1ms"
                )));
            }
        }
        if hc.retries.is_some_and(|r| r < 0) {
            return Err(invalid("Retries in Healthcheck cannot be negative"));
        }
    }
    let entrypoint = config.entrypoint.as_deref().unwrap_or_default();
    let entrypoint_empty =
        entrypoint.is_empty() || (entrypoint.len() == 1 && entrypoint[0].is_empty());
    if entrypoint_empty && config.cmd.as_ref().is_none_or(Vec::is_empty) {
        return Err(invalid("no command specified"));
    }
    Ok(())
}

/// Signal names and numbers as Docker's ParseSignal takes them ("SIGTERM", "term", "15",
/// "RTMIN+3").
pub(crate) fn parse_signal(sig: &str) -> Result<i32> {
    let bad = || invalid(format!("Invalid signal: {sig}"));
    if let Ok(n) = sig.parse::<i32>() {
        return if (1..=64).contains(&n) {
            Ok(n)
        } else {
            Err(bad())
        };
    }
    let upper = sig.to_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    const NAMES: [(&str, i32); 35] = [
        ("HUP", 1),
        ("INT", 2),
        ("QUIT", 3),
        ("ILL", 4),
        ("TRAP", 5),
        ("ABRT", 6),
        ("IOT", 6),
        ("BUS", 7),
        ("FPE", 8),
        ("KILL", 9),
        ("USR1", 10),
        ("SEGV", 11),
        ("USR2", 12),
        ("PIPE", 13),
        ("ALRM", 14),
        ("TERM", 15),
        ("STKFLT", 16),
        ("CHLD", 17),
        ("CLD", 17),
        ("CONT", 18),
        ("STOP", 19),
        ("TSTP", 20),
        ("TTIN", 21),
        ("TTOU", 22),
        ("URG", 23),
        ("XCPU", 24),
        ("XFSZ", 25),
        ("VTALRM", 26),
        ("PROF", 27),
        ("WINCH", 28),
        ("IO", 29),
        ("POLL", 29),
        ("PWR", 30),
        ("SYS", 31),
        ("UNUSED", 31),
    ];
    if let Some((_, n)) = NAMES.iter().find(|(n, _)| *n == name) {
        return Ok(*n);
    }
    let rt = |base: &str, sign: i32, start: i32| -> Option<i32> {
        let rest = name.strip_prefix(base)?;
        if rest.is_empty() {
            return Some(start);
        }
        let off: i32 = rest
            .strip_prefix(if sign > 0 { '+' } else { '-' })?
            .parse()
            .ok()?;
        (1..=15).contains(&off).then_some(start + sign * off)
    };
    rt("RTMIN", 1, 34)
        .or_else(|| rt("RTMAX", -1, 64))
        .ok_or_else(bad)
}

fn validate_host(host: &HostConfig) -> Result<()> {
    let restart = host.restart_policy.clone().unwrap_or_default();
    let name = restart.name.unwrap_or(RestartPolicyNameEnum::EMPTY);
    let retries = restart.maximum_retry_count.unwrap_or(0);
    if host.auto_remove.unwrap_or(false)
        && !matches!(
            name,
            RestartPolicyNameEnum::EMPTY | RestartPolicyNameEnum::NO
        )
    {
        return Err(invalid(
            "can't create 'AutoRemove' container with restart policy",
        ));
    }
    match name {
        RestartPolicyNameEnum::ALWAYS
        | RestartPolicyNameEnum::UNLESS_STOPPED
        | RestartPolicyNameEnum::NO
            if retries != 0 =>
        {
            let mut msg =
                "invalid restart policy: maximum retry count can only be used with 'on-failure'"
                    .to_string();
            if retries < 0 {
                msg.push_str(" and cannot be negative");
            }
            return Err(invalid(msg));
        }
        RestartPolicyNameEnum::ON_FAILURE if retries < 0 => {
            return Err(invalid(
                "invalid restart policy: maximum retry count cannot be negative",
            ));
        }
        _ => {}
    }
    for extra in host.extra_hosts.iter().flatten() {
        let (_, ip) = extra
            .split_once(':')
            .filter(|(n, _)| !n.is_empty())
            .ok_or_else(|| invalid(format!("bad format for add-host: {extra:?}")))?;
        if ip != "host-gateway" && ip.parse::<std::net::IpAddr>().is_err() {
            return Err(invalid(format!("invalid IP address in add-host: {ip:?}")));
        }
    }
    for (port, bindings) in host.port_bindings.iter().flatten() {
        validate_port(port)?;
        for b in bindings.iter().flatten() {
            if let Some(hp) = b.host_port.as_deref().filter(|p| !p.is_empty()) {
                if parse_port_range(hp).is_none() {
                    return Err(invalid(format!("invalid port specification: {hp:?}")));
                }
            }
        }
    }
    crate::caps::effective(
        host.cap_add.as_deref().unwrap_or_default(),
        host.cap_drop.as_deref().unwrap_or_default(),
        false,
        crate::caps::known(),
    )?;
    if let Some(iso) = host.isolation.filter(|i| {
        !matches!(
            i,
            HostConfigIsolationEnum::EMPTY | HostConfigIsolationEnum::DEFAULT
        )
    }) {
        return Err(invalid(format!("invalid isolation '{iso}' on linux")));
    }
    if host.annotations.iter().flatten().any(|(k, _)| k.is_empty()) {
        return Err(invalid(
            "invalid Annotations: the empty string is not permitted as an annotation key",
        ));
    }
    for dns in host.dns.iter().flatten() {
        if dns.parse::<std::net::IpAddr>().is_err() {
            return Err(invalid(format!(
                "IP address is not correctly formatted: {dns}"
            )));
        }
    }
    Ok(())
}

/// "80", "80/tcp", "8000-8010/udp".
fn validate_port(port: &str) -> Result<()> {
    let (num, proto) = port.split_once('/').unwrap_or((port, "tcp"));
    let ok = matches!(proto, "tcp" | "udp" | "sctp")
        && parse_port_range(num).is_some_and(|(lo, _)| lo != 0);
    if ok {
        Ok(())
    } else {
        Err(invalid(format!("invalid port specification: {port:?}")))
    }
}

fn parse_port_range(v: &str) -> Option<(u16, u16)> {
    let (lo, hi) = v.split_once('-').unwrap_or((v, v));
    let (lo, hi): (u16, u16) = (lo.parse().ok()?, hi.parse().ok()?);
    (lo <= hi).then_some((lo, hi))
}

fn validate_resources(host: &HostConfig) -> Result<()> {
    let memory = host.memory.unwrap_or(0);
    let swap = host.memory_swap.unwrap_or(0);
    let reservation = host.memory_reservation.unwrap_or(0);
    let nano = host.nano_cpus.unwrap_or(0);
    let period = host.cpu_period.unwrap_or(0);
    let quota = host.cpu_quota.unwrap_or(0);
    if memory < 0 {
        return Err(invalid(format!("invalid memory limit: {memory}")));
    }
    if memory != 0 && memory < MIN_MEMORY {
        return Err(invalid("Minimum memory limit allowed is 6MB"));
    }
    if swap < -1 {
        return Err(invalid(format!("invalid memory swap limit: {swap}")));
    }
    if memory > 0 && swap > 0 && swap < memory {
        return Err(invalid(
            "Minimum memoryswap limit should be larger than memory limit, see usage",
        ));
    }
    if memory == 0 && swap > 0 {
        return Err(invalid(
            "You should always set the Memory limit when using Memoryswap limit, see usage",
        ));
    }
    if let Some(s) = host.memory_swappiness.filter(|&s| s != -1) {
        if !(0..=100).contains(&s) {
            return Err(invalid(format!(
                "Invalid value: {s}, valid memory swappiness range is 0-100"
            )));
        }
    }
    if reservation < 0 {
        return Err(invalid(format!(
            "invalid memory reservation: {reservation}"
        )));
    }
    if reservation > 0 && reservation < MIN_MEMORY {
        return Err(invalid("Minimum memory reservation allowed is 6MB"));
    }
    if memory > 0 && reservation > 0 && memory < reservation {
        return Err(invalid(
            "Minimum memory limit can not be less than memory reservation limit, see usage",
        ));
    }
    if nano > 0 && period > 0 {
        return Err(invalid(
            "Conflicting options: Nano CPUs and CPU Period cannot both be set",
        ));
    }
    if nano > 0 && quota > 0 {
        return Err(invalid(
            "Conflicting options: Nano CPUs and CPU Quota cannot both be set",
        ));
    }
    if nano != 0 {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as i64;
        if nano < 0 || nano > cpus * 1_000_000_000 {
            return Err(invalid(format!(
                "range of CPUs is from 0.01 to {cpus}.00, as there are only {cpus} CPUs available"
            )));
        }
    }
    let shares = host.cpu_shares.unwrap_or(0);
    if shares < 0 {
        return Err(invalid(format!(
            "invalid CPU shares ({shares}): value must be a positive integer"
        )));
    }
    if period != 0 && !(1000..=1_000_000).contains(&period) {
        return Err(invalid(
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
        ));
    }
    if quota > 0 && quota < 1000 {
        return Err(invalid(
            "CPU cfs quota can not be less than 1ms (i.e. 1000)",
        ));
    }
    let (rt_period, rt_runtime) = (
        host.cpu_realtime_period.unwrap_or(0),
        host.cpu_realtime_runtime.unwrap_or(0),
    );
    if rt_period != 0 && rt_runtime != 0 && rt_runtime > rt_period {
        return Err(invalid(
            "cpu real-time runtime cannot be higher than cpu real-time period",
        ));
    }
    for (name, v) in [("cpus", &host.cpuset_cpus), ("mems", &host.cpuset_mems)] {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            if !valid_cpuset(v) {
                return Err(invalid(format!("Invalid value {v} for cpuset {name}")));
            }
        }
    }
    if let Some(w) = host.blkio_weight.filter(|&w| w > 0) {
        if !(10..=1000).contains(&w) {
            return Err(invalid("Range of blkio weight is from 10 to 1000"));
        }
    }
    for d in host.blkio_weight_device.iter().flatten() {
        if d.path.as_deref().is_none_or(str::is_empty) {
            return Err(invalid("blkio weight device: a device path is required"));
        }
        if d.weight.is_some_and(|w| !(10..=1000).contains(&w)) {
            return Err(invalid("Range of blkio weight is from 10 to 1000"));
        }
    }
    for list in [
        &host.blkio_device_read_bps,
        &host.blkio_device_write_bps,
        &host.blkio_device_read_iops,
        &host.blkio_device_write_iops,
    ] {
        for d in list.iter().flatten() {
            if d.path.as_deref().is_none_or(str::is_empty) || d.rate.is_some_and(|r| r < 0) {
                return Err(invalid(format!(
                    "invalid blkio throttle device: {:?} rate {:?}",
                    d.path, d.rate
                )));
            }
        }
    }
    if host.io_maximum_bandwidth.unwrap_or(0) != 0 {
        return Err(invalid(
            "invalid option: QoS maximum bandwidth configuration is not supported on linux",
        ));
    }
    if host.io_maximum_iops.unwrap_or(0) != 0 {
        return Err(invalid(
            "invalid option: QoS maximum IOPs configuration is not supported on linux",
        ));
    }
    if host.shm_size.is_some_and(|s| s < 0) {
        return Err(invalid("SHM size can not be less than 0"));
    }
    if let Some(adj) = host.oom_score_adj.filter(|a| !(-1000..=1000).contains(a)) {
        return Err(invalid(format!(
            "Invalid value {adj}, range for oom score adj is [-1000, 1000]"
        )));
    }
    if let Some(size) = &host.console_size {
        if size.len() != 2 || size.iter().any(|&v| v < 0) {
            return Err(invalid(format!("invalid console size: {size:?}")));
        }
    }
    if let Some(parent) = host.cgroup_parent.as_deref() {
        if parent.split('/').any(|c| c == "..") {
            return Err(invalid(format!(
                "invalid cgroup parent {parent:?}: \"..\" is not allowed"
            )));
        }
    }
    Ok(())
}

/// "0-3,5,7-8": comma-separated numbers and ascending ranges.
fn valid_cpuset(v: &str) -> bool {
    v.split(',').all(|part| {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        matches!((lo.parse::<u32>(), hi.parse::<u32>()), (Ok(lo), Ok(hi)) if lo <= hi)
    })
}

/// `container:<name|id>` modes: the other container's name or id.
pub(crate) fn container_of(mode: &str) -> Option<&str> {
    mode.strip_prefix("container:")
}

fn validate_namespaces(config: &ContainerConfig, host: &HostConfig) -> Result<()> {
    let net = host.network_mode.as_deref().unwrap_or_default();
    let hostname = config.hostname.as_deref().unwrap_or_default();
    if net == "container" || container_of(net).is_some() {
        if container_of(net).is_none_or(str::is_empty) {
            return Err(invalid(
                "invalid network mode: invalid container format container:<name|id>",
            ));
        }
        let conflicts = [
            (!hostname.is_empty(), "conflicting options: hostname and the network mode"),
            (host.links.as_ref().is_some_and(|l| !l.is_empty()), "conflicting options: container type network can't be used with links. This would result in undefined behavior"),
            (host.dns.as_ref().is_some_and(|l| !l.is_empty()), "conflicting options: dns and the network mode"),
            (host.extra_hosts.as_ref().is_some_and(|l| !l.is_empty()), "conflicting options: custom host-to-IP mapping and the network mode"),
            (host.port_bindings.as_ref().is_some_and(|l| !l.is_empty()) || host.publish_all_ports.unwrap_or(false), "conflicting options: port publishing and the container type network mode"),
            (config.exposed_ports.as_ref().is_some_and(|l| !l.is_empty()), "conflicting options: port exposing and the container type network mode"),
        ];
        if let Some((_, msg)) = conflicts.iter().find(|(c, _)| *c) {
            return Err(invalid(*msg));
        }
    }
    let uts = host.uts_mode.as_deref().unwrap_or_default();
    if !matches!(uts, "" | "host") {
        return Err(invalid(format!("invalid UTS mode: {uts}")));
    }
    if uts == "host" && !hostname.is_empty() {
        return Err(invalid("conflicting options: hostname and the UTS mode"));
    }
    if net == "host" && host.links.as_ref().is_some_and(|l| !l.is_empty()) {
        return Err(invalid("conflicting options: host type networking can't be used with links. This would result in undefined behavior"));
    }
    let ipc = host.ipc_mode.as_deref().unwrap_or_default();
    let ipc_ok = matches!(ipc, "" | "none" | "private" | "host" | "shareable")
        || container_of(ipc).is_some_and(|c| !c.is_empty());
    if !ipc_ok {
        return Err(invalid(format!("invalid IPC mode: {ipc}")));
    }
    let pid = host.pid_mode.as_deref().unwrap_or_default();
    if !(matches!(pid, "" | "host") || container_of(pid).is_some_and(|c| !c.is_empty())) {
        return Err(invalid(format!("invalid PID mode: {pid}")));
    }
    let userns = host.userns_mode.as_deref().unwrap_or_default();
    if !matches!(userns, "" | "host") {
        return Err(invalid(format!(
            "invalid USER mode: {userns} (user namespace remapping is not supported)"
        )));
    }
    Ok(())
}

/// `--security-opt` as the daemon understands it.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct SecurityOptions {
    pub no_new_privileges: bool,
    pub writable_cgroups: Option<bool>,
    /// "unconfined", "builtin" or a profile's JSON text (the CLI inlines files).
    pub seccomp: Option<String>,
}

pub(crate) fn security_options(opts: &[String]) -> Result<SecurityOptions> {
    let mut s = SecurityOptions::default();
    for opt in opts {
        match opt.as_str() {
            "no-new-privileges" => {
                s.no_new_privileges = true;
                continue;
            }
            "writable-cgroups" => {
                s.writable_cgroups = Some(true);
                continue;
            }
            "disable" => continue, // SELinux labeling off: there is none to turn off
            _ => {}
        }
        let (k, v) = opt
            .split_once('=')
            .or_else(|| opt.split_once(':'))
            .ok_or_else(|| invalid(format!("invalid --security-opt 1: {opt:?}")))?;
        let bool_value =
            || parse_bool(v).ok_or_else(|| invalid(format!("invalid --security-opt 2: {opt:?}")));
        match k {
            // No SELinux or AppArmor support: accepted and ignored, as Docker does on
            // hosts without them.
            "label" | "apparmor" => {}
            "seccomp" => {
                if v != "unconfined" && v != "builtin" {
                    crate::seccomp::check_profile(v.as_bytes())?;
                }
                s.seccomp = Some(v.to_string());
            }
            "no-new-privileges" => s.no_new_privileges = bool_value()?,
            "writable-cgroups" => s.writable_cgroups = Some(bool_value()?),
            _ => return Err(invalid(format!("invalid --security-opt 2: {opt:?}"))),
        }
    }
    Ok(s)
}

/// Go's strconv.ParseBool.
fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// IPC sysctls that a container's own ipc namespace isolates.
const IPC_SYSCTLS: [&str; 8] = [
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

/// Only namespaced sysctls, and only when the container has its own namespace for them.
fn sysctls(host: &HostConfig) -> Result<()> {
    let net = host.network_mode.as_deref().unwrap_or_default();
    let ipc = host.ipc_mode.as_deref().unwrap_or_default();
    let uts = host.uts_mode.as_deref().unwrap_or_default();
    for (k, v) in host.sysctls.iter().flatten() {
        let not_allowed = || invalid(format!("sysctl '{k}={v}' is not allowed"));
        let host_ns = |ns: &str| {
            invalid(format!(
                "sysctl {k:?} is not allowed in the host's {ns} namespace"
            ))
        };
        if k.is_empty() || k.contains("..") || k.contains('/') {
            return Err(not_allowed());
        }
        if IPC_SYSCTLS.contains(&k.as_str()) || k.starts_with("fs.mqueue.") {
            if ipc == "host" {
                return Err(host_ns("ipc"));
            }
        } else if k.starts_with("net.") {
            if net == "host" {
                return Err(host_ns("network"));
            }
        } else if k == "kernel.domainname" {
            if uts == "host" {
                return Err(host_ns("uts"));
            }
        } else if k == "kernel.hostname" {
            return Err(invalid(format!(
                "sysctl {k:?} is not allowed: set the hostname with --hostname"
            )));
        } else {
            return Err(not_allowed());
        }
    }
    Ok(())
}

/// Resource names `--ulimit` takes.
pub(crate) const ULIMITS: [&str; 16] = [
    "as",
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

fn ulimits(host: &HostConfig) -> Result<()> {
    for u in host.ulimits.iter().flatten() {
        let name = u.name.as_deref().unwrap_or_default();
        if !ULIMITS.contains(&name) {
            return Err(invalid(format!("invalid ulimit type: {name}")));
        }
        let (soft, hard) = (u.soft.unwrap_or(0), u.hard.unwrap_or(0));
        if soft < -1 || hard < -1 {
            return Err(invalid(format!(
                "invalid ulimit {name}: values must be -1 (unlimited) or more"
            )));
        }
        if hard != -1 {
            if soft == -1 {
                return Err(invalid(format!("ulimit soft limit must be less than or equal to hard limit: soft: -1 (unlimited), hard: {hard}")));
            }
            if soft > hard {
                return Err(invalid(format!(
                    "ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
                )));
            }
        }
    }
    Ok(())
}

/// Cgroup permissions: some of r, w, m, each at most once.
pub(crate) fn valid_device_mode(mode: &str) -> bool {
    !mode.is_empty()
        && mode.chars().all(|c| "rwm".contains(c))
        && mode
            .chars()
            .enumerate()
            .all(|(i, c)| !mode[..i].contains(c))
}

fn devices(host: &HostConfig) -> Result<()> {
    for d in host.devices.iter().flatten() {
        let on_host = d.path_on_host.as_deref().unwrap_or_default();
        if on_host.is_empty() {
            return Err(invalid(format!(
                "invalid device specification: {d:?}: PathOnHost is empty"
            )));
        }
        let in_container = d
            .path_in_container
            .as_deref()
            .filter(|p| !p.is_empty())
            .unwrap_or(on_host);
        if !in_container.starts_with('/') {
            return Err(invalid(format!("{in_container} is not an absolute path")));
        }
        if let Some(mode) = d.cgroup_permissions.as_deref().filter(|m| !m.is_empty()) {
            if !valid_device_mode(mode) {
                return Err(invalid(format!("bad mode specified: {mode}")));
            }
        }
    }
    for rule in host.device_cgroup_rules.iter().flatten() {
        parse_device_cgroup_rule(rule)?;
    }
    Ok(())
}

/// "c 1:3 rwm", "b *:* m", "a *:* rwm": (type, major, minor, access); `*` is `None`.
pub(crate) fn parse_device_cgroup_rule(
    rule: &str,
) -> Result<(char, Option<i64>, Option<i64>, String)> {
    let bad = || invalid(format!("invalid device cgroup format '{rule}'"));
    let re = regex::Regex::new(r"^([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})$")
        .map_err(|e| crate::Error::Internal(e.to_string()))?;
    let c = re.captures(rule).ok_or_else(bad)?;
    let num = |s: &str| -> Result<Option<i64>> {
        if s == "*" {
            Ok(None)
        } else {
            s.parse().map(Some).map_err(|_| bad())
        }
    };
    let typ = c[1].chars().next().ok_or_else(bad)?;
    Ok((typ, num(&c[2])?, num(&c[3])?, c[4].to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard_stubs::models::{DeviceMapping, HealthConfig, ResourcesUlimits, RestartPolicy};
    use std::collections::HashMap;

    fn cfg() -> ContainerConfig {
        ContainerConfig {
            cmd: Some(vec!["sh".into()]),
            ..Default::default()
        }
    }

    fn err(config: &ContainerConfig, host: &HostConfig) -> String {
        validate(config, host).unwrap_err().to_string()
    }

    fn host_err(host: HostConfig) -> String {
        err(&cfg(), &host)
    }

    #[test]
    fn defaults_are_valid() {
        validate(&cfg(), &HostConfig::default()).unwrap();
    }

    #[test]
    fn config_errors() {
        let c = ContainerConfig { cmd: None, ..cfg() };
        assert_eq!(err(&c, &HostConfig::default()), "no command specified");
        let c = ContainerConfig {
            entrypoint: Some(vec!["".into()]),
            cmd: None,
            ..cfg()
        };
        assert_eq!(err(&c, &HostConfig::default()), "no command specified");
        let c = ContainerConfig {
            working_dir: Some("rel".into()),
            ..cfg()
        };
        assert_eq!(
            err(&c, &HostConfig::default()),
            "the working directory 'rel' is invalid, it needs to be an absolute path"
        );
        let c = ContainerConfig {
            env: Some(vec!["=x".into()]),
            ..cfg()
        };
        assert_eq!(
            err(&c, &HostConfig::default()),
            "invalid environment variable: =x"
        );
        let c = ContainerConfig {
            hostname: Some("h".repeat(65)),
            ..cfg()
        };
        assert!(err(&c, &HostConfig::default()).contains("is too long (maximum 64 bytes)"));
        let c = ContainerConfig {
            stop_signal: Some("SIGFOO".into()),
            ..cfg()
        };
        assert_eq!(err(&c, &HostConfig::default()), "Invalid signal: SIGFOO");
        let c = ContainerConfig {
            healthcheck: Some(HealthConfig {
                interval: Some(10),
                ..Default::default()
            }),
            ..cfg()
        };
        assert_eq!(
            err(&c, &HostConfig::default()),
            "Interval in Healthcheck cannot be less than 1ms"
        );
        let c = ContainerConfig {
            healthcheck: Some(HealthConfig {
                retries: Some(-1),
                ..Default::default()
            }),
            ..cfg()
        };
        assert_eq!(
            err(&c, &HostConfig::default()),
            "Retries in Healthcheck cannot be negative"
        );
    }

    #[test]
    fn signals() {
        assert_eq!(parse_signal("SIGTERM").unwrap(), 15);
        assert_eq!(parse_signal("kill").unwrap(), 9);
        assert_eq!(parse_signal("9").unwrap(), 9);
        assert_eq!(parse_signal("SIGRTMIN+3").unwrap(), 37);
        assert_eq!(parse_signal("RTMAX").unwrap(), 64);
        assert_eq!(parse_signal("RTMAX-2").unwrap(), 62);
        assert!(
            parse_signal("0").is_err()
                && parse_signal("65").is_err()
                && parse_signal("RTMIN+16").is_err()
        );
    }

    #[test]
    fn memory_rules() {
        let mem = |m: i64, s: Option<i64>| HostConfig {
            memory: Some(m),
            memory_swap: s,
            ..Default::default()
        };
        assert_eq!(
            host_err(mem(4 << 20, None)),
            "Minimum memory limit allowed is 6MB"
        );
        assert_eq!(
            host_err(mem(64 << 20, Some(32 << 20))),
            "Minimum memoryswap limit should be larger than memory limit, see usage"
        );
        assert_eq!(
            host_err(mem(0, Some(32 << 20))),
            "You should always set the Memory limit when using Memoryswap limit, see usage"
        );
        validate(&cfg(), &mem(64 << 20, Some(-1))).unwrap();
        validate(&cfg(), &mem(64 << 20, Some(64 << 20))).unwrap();
        assert_eq!(
            host_err(HostConfig {
                memory_reservation: Some(1 << 20),
                ..Default::default()
            }),
            "Minimum memory reservation allowed is 6MB"
        );
        assert_eq!(
            host_err(HostConfig {
                memory: Some(16 << 20),
                memory_reservation: Some(32 << 20),
                ..Default::default()
            }),
            "Minimum memory limit can not be less than memory reservation limit, see usage"
        );
        assert_eq!(
            host_err(HostConfig {
                memory_swappiness: Some(101),
                ..Default::default()
            }),
            "Invalid value: 101, valid memory swappiness range is 0-100"
        );
        validate(
            &cfg(),
            &HostConfig {
                memory_swappiness: Some(-1),
                ..Default::default()
            },
        )
        .unwrap();
    }

    #[test]
    fn cpu_rules() {
        assert_eq!(
            host_err(HostConfig {
                nano_cpus: Some(1_000_000_000),
                cpu_period: Some(100000),
                ..Default::default()
            }),
            "Conflicting options: Nano CPUs and CPU Period cannot both be set"
        );
        assert_eq!(
            host_err(HostConfig {
                nano_cpus: Some(1_000_000_000),
                cpu_quota: Some(100000),
                ..Default::default()
            }),
            "Conflicting options: Nano CPUs and CPU Quota cannot both be set"
        );
        assert!(host_err(HostConfig {
            nano_cpus: Some(1_000_000_000_000),
            ..Default::default()
        })
        .starts_with("range of CPUs is from 0.01 to"));
        assert!(host_err(HostConfig {
            cpu_period: Some(999),
            ..Default::default()
        })
        .starts_with("CPU cfs period can not be less than 1ms"));
        assert_eq!(
            host_err(HostConfig {
                cpu_quota: Some(10),
                ..Default::default()
            }),
            "CPU cfs quota can not be less than 1ms (i.e. 1000)"
        );
        assert_eq!(
            host_err(HostConfig {
                cpu_shares: Some(-2),
                ..Default::default()
            }),
            "invalid CPU shares (-2): value must be a positive integer"
        );
        assert_eq!(
            host_err(HostConfig {
                cpuset_cpus: Some("1-0".into()),
                ..Default::default()
            }),
            "Invalid value 1-0 for cpuset cpus"
        );
        validate(
            &cfg(),
            &HostConfig {
                cpuset_cpus: Some("0-1,3".into()),
                cpuset_mems: Some("0".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            host_err(HostConfig {
                blkio_weight: Some(5),
                ..Default::default()
            }),
            "Range of blkio weight is from 10 to 1000"
        );
        assert_eq!(
            host_err(HostConfig {
                oom_score_adj: Some(1001),
                ..Default::default()
            }),
            "Invalid value 1001, range for oom score adj is [-1000, 1000]"
        );
        assert_eq!(
            host_err(HostConfig {
                shm_size: Some(-1),
                ..Default::default()
            }),
            "SHM size can not be less than 0"
        );
    }

    #[test]
    fn restart_policy_rules() {
        let policy = |name, retries| HostConfig {
            restart_policy: Some(RestartPolicy {
                name: Some(name),
                maximum_retry_count: Some(retries),
            }),
            ..Default::default()
        };
        assert_eq!(
            host_err(HostConfig {
                auto_remove: Some(true),
                ..policy(RestartPolicyNameEnum::ALWAYS, 0)
            }),
            "can't create 'AutoRemove' container with restart policy"
        );
        validate(
            &cfg(),
            &HostConfig {
                auto_remove: Some(true),
                ..policy(RestartPolicyNameEnum::NO, 0)
            },
        )
        .unwrap();
        assert_eq!(
            host_err(policy(RestartPolicyNameEnum::ALWAYS, 3)),
            "invalid restart policy: maximum retry count can only be used with 'on-failure'"
        );
        assert_eq!(
            host_err(policy(RestartPolicyNameEnum::UNLESS_STOPPED, -1)),
            "invalid restart policy: maximum retry count can only be used with 'on-failure' and cannot be negative"
        );
        assert_eq!(
            host_err(policy(RestartPolicyNameEnum::ON_FAILURE, -1)),
            "invalid restart policy: maximum retry count cannot be negative"
        );
        validate(&cfg(), &policy(RestartPolicyNameEnum::ON_FAILURE, 5)).unwrap();
    }

    #[test]
    fn namespace_modes() {
        let net = |m: &str| HostConfig {
            network_mode: Some(m.into()),
            ..Default::default()
        };
        assert_eq!(
            host_err(net("container:")),
            "invalid network mode: invalid container format container:<name|id>"
        );
        let c = ContainerConfig {
            hostname: Some("h".into()),
            ..cfg()
        };
        assert_eq!(
            err(&c, &net("container:abc")),
            "conflicting options: hostname and the network mode"
        );
        assert_eq!(
            host_err(HostConfig {
                dns: Some(vec!["1.1.1.1".into()]),
                ..net("container:abc")
            }),
            "conflicting options: dns and the network mode"
        );
        assert_eq!(
            err(
                &c,
                &HostConfig {
                    uts_mode: Some("host".into()),
                    ..Default::default()
                }
            ),
            "conflicting options: hostname and the UTS mode"
        );
        assert_eq!(
            host_err(HostConfig {
                ipc_mode: Some("bogus".into()),
                ..Default::default()
            }),
            "invalid IPC mode: bogus"
        );
        assert_eq!(
            host_err(HostConfig {
                pid_mode: Some("container:".into()),
                ..Default::default()
            }),
            "invalid PID mode: container:"
        );
        assert_eq!(
            host_err(HostConfig {
                uts_mode: Some("private".into()),
                ..Default::default()
            }),
            "invalid UTS mode: private"
        );
        for ok in [
            "host",
            "none",
            "bridge",
            "default",
            "mynet",
            "container:abc",
        ] {
            validate(&cfg(), &net(ok)).unwrap();
        }
        for ok in ["", "none", "private", "host", "shareable", "container:x"] {
            validate(
                &cfg(),
                &HostConfig {
                    ipc_mode: Some(ok.into()),
                    ..Default::default()
                },
            )
            .unwrap();
        }
    }

    #[test]
    fn capabilities() {
        assert_eq!(
            host_err(HostConfig {
                cap_add: Some(vec!["FOO".into()]),
                ..Default::default()
            }),
            "invalid CapAdd: unknown capability: \"CAP_FOO\""
        );
        validate(
            &cfg(),
            &HostConfig {
                cap_add: Some(vec!["all".into()]),
                cap_drop: Some(vec!["net_raw".into()]),
                ..Default::default()
            },
        )
        .unwrap();
    }

    #[test]
    fn security_opts() {
        let so =
            |v: &[&str]| security_options(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert!(so(&["no-new-privileges"]).unwrap().no_new_privileges);
        assert!(!so(&["no-new-privileges=false"]).unwrap().no_new_privileges);
        assert!(so(&["no-new-privileges:true"]).unwrap().no_new_privileges);
        assert_eq!(
            so(&["writable-cgroups=1"]).unwrap().writable_cgroups,
            Some(true)
        );
        assert_eq!(
            so(&["seccomp=unconfined"]).unwrap().seccomp.as_deref(),
            Some("unconfined")
        );
        so(&["label=disable", "apparmor=unconfined", "disable"]).unwrap();
        assert_eq!(
            so(&["bogus"]).unwrap_err().to_string(),
            "invalid --security-opt 1: \"bogus\""
        );
        assert_eq!(
            so(&["foo=bar"]).unwrap_err().to_string(),
            "invalid --security-opt 2: \"foo=bar\""
        );
        assert_eq!(
            so(&["no-new-privileges=maybe"]).unwrap_err().to_string(),
            "invalid --security-opt 2: \"no-new-privileges=maybe\""
        );
        assert!(so(&["seccomp=/path/to/file.json"])
            .unwrap_err()
            .to_string()
            .starts_with("decoding seccomp profile failed"));
    }

    #[test]
    fn sysctl_rules() {
        let sys = |k: &str, net: &str, ipc: &str| HostConfig {
            sysctls: Some(HashMap::from([(k.to_string(), "1".to_string())])),
            network_mode: Some(net.into()),
            ipc_mode: Some(ipc.into()),
            ..Default::default()
        };
        for ok in [
            "net.ipv4.ip_forward",
            "kernel.shmmax",
            "fs.mqueue.msg_max",
            "kernel.domainname",
        ] {
            validate(&cfg(), &sys(ok, "bridge", "private")).unwrap();
        }
        assert_eq!(
            host_err(sys("vm.swappiness", "bridge", "")),
            "sysctl 'vm.swappiness=1' is not allowed"
        );
        assert_eq!(
            host_err(sys("kernel.pid_max", "bridge", "")),
            "sysctl 'kernel.pid_max=1' is not allowed"
        );
        assert_eq!(
            host_err(sys("net.ipv4.ip_forward", "host", "")),
            "sysctl \"net.ipv4.ip_forward\" is not allowed in the host's network namespace"
        );
        assert_eq!(
            host_err(sys("kernel.sem", "bridge", "host")),
            "sysctl \"kernel.sem\" is not allowed in the host's ipc namespace"
        );
        assert!(host_err(sys("kernel.hostname", "bridge", "")).contains("--hostname"));
    }

    #[test]
    fn ulimit_rules() {
        let ul = |name: &str, soft, hard| HostConfig {
            ulimits: Some(vec![ResourcesUlimits {
                name: Some(name.into()),
                soft: Some(soft),
                hard: Some(hard),
            }]),
            ..Default::default()
        };
        validate(&cfg(), &ul("nofile", 1024, 2048)).unwrap();
        validate(&cfg(), &ul("core", -1, -1)).unwrap();
        validate(&cfg(), &ul("nproc", 10, -1)).unwrap();
        assert_eq!(host_err(ul("files", 1, 1)), "invalid ulimit type: files");
        assert_eq!(
            host_err(ul("nofile", 10, 5)),
            "ulimit soft limit must be less than or equal to hard limit: 10 > 5"
        );
        assert!(host_err(ul("nofile", -1, 5)).contains("soft: -1 (unlimited), hard: 5"));
    }

    #[test]
    fn device_rules() {
        let dev = |h: &str, c: &str, p: &str| HostConfig {
            devices: Some(vec![DeviceMapping {
                path_on_host: Some(h.into()),
                path_in_container: Some(c.into()),
                cgroup_permissions: Some(p.into()),
            }]),
            ..Default::default()
        };
        validate(&cfg(), &dev("/dev/null", "/dev/mynull", "rw")).unwrap();
        validate(&cfg(), &dev("/dev/null", "", "")).unwrap();
        assert_eq!(
            host_err(dev("/dev/null", "rel", "rwm")),
            "rel is not an absolute path"
        );
        assert_eq!(
            host_err(dev("/dev/null", "/dev/x", "rwx")),
            "bad mode specified: rwx"
        );
        assert_eq!(
            host_err(dev("/dev/null", "/dev/x", "rr")),
            "bad mode specified: rr"
        );
        assert!(host_err(dev("", "/dev/x", "r")).contains("PathOnHost is empty"));
        let rule = |r: &str| HostConfig {
            device_cgroup_rules: Some(vec![r.into()]),
            ..Default::default()
        };
        validate(&cfg(), &rule("c 1:3 rwm")).unwrap();
        validate(&cfg(), &rule("b *:* m")).unwrap();
        assert_eq!(
            host_err(rule("c 1:3")),
            "invalid device cgroup format 'c 1:3'"
        );
        assert_eq!(
            parse_device_cgroup_rule("a *:5 r").unwrap(),
            ('a', None, Some(5), "r".into())
        );
    }

    #[test]
    fn misc_host_rules() {
        assert_eq!(
            host_err(HostConfig {
                extra_hosts: Some(vec!["nohost".into()]),
                ..Default::default()
            }),
            "bad format for add-host: \"nohost\""
        );
        assert_eq!(
            host_err(HostConfig {
                extra_hosts: Some(vec!["h:1.2.3".into()]),
                ..Default::default()
            }),
            "invalid IP address in add-host: \"1.2.3\""
        );
        validate(
            &cfg(),
            &HostConfig {
                extra_hosts: Some(vec!["gw:host-gateway".into(), "v6:::1".into()]),
                ..Default::default()
            },
        )
        .unwrap();
        let ports = |p: &str| HostConfig {
            port_bindings: Some(HashMap::from([(p.to_string(), None)])),
            ..Default::default()
        };
        validate(&cfg(), &ports("80/tcp")).unwrap();
        assert_eq!(
            host_err(ports("0/tcp")),
            "invalid port specification: \"0/tcp\""
        );
        assert_eq!(
            host_err(ports("80/xyz")),
            "invalid port specification: \"80/xyz\""
        );
        assert_eq!(
            host_err(HostConfig {
                isolation: Some(HostConfigIsolationEnum::HYPERV),
                ..Default::default()
            }),
            "invalid isolation 'hyperv' on linux"
        );
        assert_eq!(
            host_err(HostConfig {
                dns: Some(vec!["nope".into()]),
                ..Default::default()
            }),
            "IP address is not correctly formatted: nope"
        );
        assert!(host_err(HostConfig {
            io_maximum_bandwidth: Some(1),
            ..Default::default()
        })
        .contains("QoS maximum bandwidth"));
        assert!(host_err(HostConfig {
            cgroup_parent: Some("/a/../b".into()),
            ..Default::default()
        })
        .contains("invalid cgroup parent"));
    }
}
