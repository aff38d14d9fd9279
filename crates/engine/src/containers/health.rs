//! Healthchecks: while a container runs, its healthcheck command (from the image's
//! HEALTHCHECK or `--health-*`) runs as an exec every interval; the last results, the
//! status (starting → healthy / unhealthy) and the failing streak are kept in the record,
//! and each change of status is a `health_status: <status>` event. Docker's rules and
//! defaults throughout.

use std::sync::Arc;
use std::time::Duration;

use berth_shim_protocol::{Reply, Request};
use bollard_stubs::models::{ContainerConfig, ExecConfig};
use tokio::io::AsyncReadExt;
use tokio::sync::watch;

use super::record::{now_nanos, Health, HealthResult, State};
use super::{shim, Change, Container, Containers};
use crate::error::{Error, Result};

pub const STARTING: &str = "starting";
pub const HEALTHY: &str = "healthy";
pub const UNHEALTHY: &str = "unhealthy";
/// What the `health` filter calls a container without a healthcheck.
pub const NONE: &str = "none";

const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_START_INTERVAL: Duration = Duration::from_secs(5);
const DEFAULT_RETRIES: i64 = 3;
/// Results kept in the record.
const MAX_LOG_ENTRIES: usize = 5;
/// Output kept per result.
const MAX_OUTPUT: usize = 4096;

/// The health status for `ps --filter health=`: "none" without a healthcheck.
pub fn status_of(state: &State) -> &str {
    state.health.as_ref().map_or(NONE, |h| h.status.as_str())
}

/// The health part of `docker ps`'s status column: " (healthy)", " (health: starting)".
pub fn status_suffix(state: &State) -> String {
    match state.health.as_ref().map(|h| h.status.as_str()) {
        None | Some("") => String::new(),
        Some(STARTING) => " (health: starting)".to_string(),
        Some(status) => format!(" ({status})"),
    }
}

/// A container's healthcheck, docker's defaults filled in.
#[derive(Debug, Clone, PartialEq)]
struct Check {
    command: Vec<String>,
    interval: Duration,
    timeout: Duration,
    start_period: Duration,
    start_interval: Duration,
    retries: i64,
}

/// The container's healthcheck, if it has one: `["CMD", args...]` runs the arguments,
/// `["CMD-SHELL", command]` runs the command with the container's shell, `["NONE"]` (or
/// nothing) means none.
fn check_of(config: &ContainerConfig) -> Option<Check> {
    let hc = config.healthcheck.as_ref()?;
    let test = hc.test.as_deref().unwrap_or_default();
    let command = match test.split_first() {
        Some((kind, args)) if kind == "CMD" && !args.is_empty() => args.to_vec(),
        Some((kind, args)) if kind == "CMD-SHELL" && !args.is_empty() => {
            let mut shell = config.shell.clone().filter(|s| !s.is_empty()).unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()]);
            shell.extend(args.iter().cloned());
            shell
        }
        Some((kind, _)) if kind != "NONE" => {
            tracing::warn!("unknown healthcheck type {kind:?} (expected \"CMD\")");
            return None;
        }
        _ => return None,
    };
    let duration = |v: Option<i64>, default: Duration| match v {
        Some(ns) if ns > 0 => Duration::from_nanos(ns as u64),
        _ => default,
    };
    Some(Check {
        command,
        interval: duration(hc.interval, DEFAULT_INTERVAL),
        timeout: duration(hc.timeout, DEFAULT_TIMEOUT),
        start_period: duration(hc.start_period, Duration::ZERO),
        start_interval: duration(hc.start_interval, DEFAULT_START_INTERVAL),
        retries: hc.retries.filter(|&r| r > 0).unwrap_or(DEFAULT_RETRIES),
    })
}

impl Containers {
    /// Starts the health monitor of a container that just started (or that berthd
    /// reconnected to). It ends by itself at the container's next exit or removal.
    pub(super) fn start_health(self: &Arc<Self>, c: &Arc<Container>) {
        let record = c.record();
        let Some(check) = check_of(&record.config) else { return };
        let reset = c.update(|r| {
            let health = r.state.health.get_or_insert_with(Health::default);
            health.status = STARTING.to_string();
            health.failing_streak = 0;
        });
        if let Err(e) = reset {
            tracing::warn!("healthcheck of {}: {e}", c.id);
        }
        let mut changes = c.changes.subscribe();
        let exits = changes.borrow_and_update().exits;
        let containers = self.clone();
        let c = c.clone();
        tokio::spawn(async move {
            let started_at = record.state.started_at;
            loop {
                let wait = containers.next_interval(&c, &check, started_at);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = ended(&mut changes, exits) => return,
                }
                let result = tokio::select! {
                    result = containers.probe(&c, &check) => result,
                    _ = ended(&mut changes, exits) => return,
                };
                if changes.borrow().exits != exits || !c.status().is_live() {
                    return;
                }
                containers.record_health(&c, &check, started_at, result);
            }
        });
    }

    /// docker's pace: the start interval while the container is starting within its
    /// start period, the interval otherwise.
    fn next_interval(&self, c: &Container, check: &Check, started_at: i128) -> Duration {
        let since_start = Duration::from_nanos(u64::try_from(now_nanos() - started_at).unwrap_or(0));
        let starting = c.record().state.health.is_some_and(|h| h.status == STARTING);
        if since_start < check.start_period && starting {
            check.start_interval
        } else {
            check.interval
        }
    }

    /// Runs the check once as an exec; a check that outlives its timeout is killed and
    /// fails.
    async fn probe(self: &Arc<Self>, c: &Arc<Container>, check: &Check) -> HealthResult {
        let start = now_nanos();
        let config = ExecConfig {
            cmd: Some(check.command.clone()),
            user: c.record().config.user,
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(false),
            ..Default::default()
        };
        let failed = |output: String| HealthResult { start, end: now_nanos(), exit_code: -1, output };
        let id = match self.exec_create(&c.id, config) {
            Ok(id) => id,
            Err(e) => return failed(e.to_string()),
        };
        let result = match tokio::time::timeout(check.timeout, self.run_probe(c, &id)).await {
            Ok(Ok((code, output))) => HealthResult { start, end: now_nanos(), exit_code: code.into(), output },
            Ok(Err(e)) => failed(e.to_string()),
            Err(_) => {
                if let Ok(view) = self.exec_inspect(&id) {
                    if view.running && view.pid > 0 {
                        kill_tree(view.pid);
                    }
                }
                failed(format!("Health check exceeded timeout ({})", go_duration(check.timeout)))
            }
        };
        // A check's exec is not the user's: it leaves no trace in the exec list.
        self.execs.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
        if let Err(e) = c.update(|r| r.exec_ids.retain(|x| *x != id)) {
            tracing::warn!("healthcheck of {}: {e}", c.id);
        }
        result
    }

    /// Starts the exec and collects its output (stdout and stderr together, the first
    /// 4 KiB) and exit code.
    async fn run_probe(self: &Arc<Self>, c: &Container, id: &str) -> Result<(i32, String)> {
        let stream = self.exec_start(id, false).await?.ok_or_else(|| Error::Internal("healthcheck exec has no stream".into()))?;
        let mut stream = stream.connected().await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.map_err(|e| Error::Internal(format!("reading the healthcheck output: {e}")))?;
        let output = limit_output(&demultiplex(&raw));
        match shim::connect(&c.socket(), &Request::ExecWait { id: id.to_string() }).await? {
            (_, Reply::Exited(exit)) => Ok((exit.code, output)),
            (_, Reply::Error { message, .. }) => Err(Error::Internal(message)),
            (_, other) => Err(Error::Internal(format!("unexpected reply to exec wait: {other:?}"))),
        }
    }

    /// docker's bookkeeping of one result: 0 is healthy; a failure counts toward
    /// `retries` except while still starting within the start period.
    fn record_health(&self, c: &Container, check: &Check, started_at: i128, result: HealthResult) {
        let mut change = None;
        let saved = c.update(|r| {
            let health = r.state.health.get_or_insert_with(Health::default);
            let old = health.status.clone();
            let in_start_period = result.start - started_at < check.start_period.as_nanos() as i128;
            if result.exit_code == 0 {
                health.failing_streak = 0;
                health.status = HEALTHY.to_string();
            } else if !(health.status == STARTING && in_start_period) {
                health.failing_streak += 1;
                if health.failing_streak >= check.retries {
                    health.status = UNHEALTHY.to_string();
                }
            }
            health.log.push(result);
            let excess = health.log.len().saturating_sub(MAX_LOG_ENTRIES);
            health.log.drain(..excess);
            if health.status != old {
                change = Some(health.status.clone());
            }
        });
        if let Err(e) = saved {
            tracing::warn!("healthcheck of {}: {e}", c.id);
        }
        if let Some(status) = change {
            self.publish(c, &format!("health_status: {status}"), &[]);
        }
    }
}

/// Resolves once the run being watched is over: the container exited or was removed.
async fn ended(changes: &mut watch::Receiver<Change>, exits: u64) {
    loop {
        {
            let now = changes.borrow_and_update();
            if now.exits != exits || now.removed {
                return;
            }
        }
        if changes.changed().await.is_err() {
            return;
        }
    }
}

/// SIGKILLs a process and everything it started (a shell's command would outlive the
/// shell otherwise, and pile up with every check that times out).
fn kill_tree(pid: i32) {
    let mut parents: Vec<(i32, i32)> = vec![];
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(child) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // The fields after the command (which may hold spaces and parentheses): state, ppid.
        let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)).and_then(|p| p.parse::<i32>().ok());
        if let Some(ppid) = ppid {
            parents.push((child, ppid));
        }
    }
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(parents.iter().filter(|(_, p)| *p == parent).map(|(c, _)| *c));
        i += 1;
    }
    for pid in tree {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    }
}

/// The payloads of a multiplexed stream (8-byte frame headers), in order.
fn demultiplex(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    while raw.len() >= 8 {
        let len = u32::from_be_bytes([raw[4], raw[5], raw[6], raw[7]]) as usize;
        let end = (8 + len).min(raw.len());
        out.extend_from_slice(&raw[8..end]);
        raw = &raw[end..];
    }
    out
}

/// docker's limit: the first 4 KiB, "..." when there was more.
fn limit_output(bytes: &[u8]) -> String {
    if bytes.len() <= MAX_OUTPUT {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    format!("{}...", String::from_utf8_lossy(&bytes[..MAX_OUTPUT]))
}

/// A duration the way Go prints one ("30s", "1m30s", "1.5s", "500ms").
fn go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    let fraction = |value: u128, unit: u128| {
        let whole = value / unit;
        let rest = value % unit;
        if rest == 0 {
            return whole.to_string();
        }
        let digits = unit.to_string().len() - 1;
        let decimals = format!("{rest:0digits$}");
        format!("{whole}.{}", decimals.trim_end_matches('0'))
    };
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return format!("{}µs", fraction(nanos, 1_000));
    }
    if nanos < 1_000_000_000 {
        return format!("{}ms", fraction(nanos, 1_000_000));
    }
    let secs = d.as_secs();
    let (hours, minutes) = (secs / 3600, secs / 60 % 60);
    let seconds = fraction(nanos % 60_000_000_000, 1_000_000_000);
    match (hours, minutes) {
        (0, 0) => format!("{seconds}s"),
        (0, m) => format!("{m}m{seconds}s"),
        (h, m) => format!("{h}h{m}m{seconds}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard_stubs::models::HealthConfig;

    fn config(test: &[&str]) -> ContainerConfig {
        ContainerConfig {
            healthcheck: Some(HealthConfig { test: Some(test.iter().map(|s| s.to_string()).collect()), ..Default::default() }),
            ..Default::default()
        }
    }

    #[test]
    fn healthcheck_forms() {
        let check = check_of(&config(&["CMD-SHELL", "exit 0"])).unwrap();
        assert_eq!(check.command, vec!["/bin/sh", "-c", "exit 0"]);
        assert_eq!((check.interval, check.timeout, check.retries), (DEFAULT_INTERVAL, DEFAULT_TIMEOUT, DEFAULT_RETRIES));
        assert_eq!(check_of(&config(&["CMD", "true", "x"])).unwrap().command, vec!["true", "x"]);
        let mut shell = config(&["CMD-SHELL", "echo"]);
        shell.shell = Some(vec!["/bin/ash".into(), "-e".into(), "-c".into()]);
        assert_eq!(check_of(&shell).unwrap().command, vec!["/bin/ash", "-e", "-c", "echo"]);
        assert!(check_of(&config(&["NONE"])).is_none());
        assert!(check_of(&config(&[])).is_none());
        assert!(check_of(&config(&["CMD"])).is_none());
        assert!(check_of(&config(&["BOGUS", "x"])).is_none());
        assert!(check_of(&ContainerConfig::default()).is_none());
        let mut timed = config(&["CMD", "true"]);
        if let Some(hc) = timed.healthcheck.as_mut() {
            hc.interval = Some(1_000_000_000);
            hc.retries = Some(1);
            hc.start_period = Some(0);
        }
        let check = check_of(&timed).unwrap();
        assert_eq!((check.interval, check.retries, check.start_period), (Duration::from_secs(1), 1, Duration::ZERO));
    }

    #[test]
    fn ps_texts() {
        let mut state = State::default();
        assert_eq!((status_of(&state), status_suffix(&state).as_str()), ("none", ""));
        state.health = Some(Health { status: STARTING.into(), ..Default::default() });
        assert_eq!((status_of(&state), status_suffix(&state).as_str()), ("starting", " (health: starting)"));
        state.health = Some(Health { status: UNHEALTHY.into(), ..Default::default() });
        assert_eq!(status_suffix(&state), " (unhealthy)");
    }

    #[test]
    fn output_is_demultiplexed_and_limited() {
        let mut raw = berth_shim_protocol::frame_header(1, 3).to_vec();
        raw.extend_from_slice(b"out");
        raw.extend_from_slice(&berth_shim_protocol::frame_header(2, 4));
        raw.extend_from_slice(b"err\n");
        assert_eq!(demultiplex(&raw), b"outerr\n");
        let long = vec![b'a'; MAX_OUTPUT + 10];
        let limited = limit_output(&long);
        assert_eq!(limited.len(), MAX_OUTPUT + 3);
        assert!(limited.ends_with("a..."));
    }

    #[test]
    fn durations_print_like_go() {
        assert_eq!(go_duration(Duration::from_secs(30)), "30s");
        assert_eq!(go_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(go_duration(Duration::from_secs(60)), "1m0s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(go_duration(Duration::from_secs(3661)), "1h1m1s");
    }
}
