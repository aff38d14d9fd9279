//! Start, stop, kill, restart, pause; learning of exits (also those that happened while
//! berthd was down) and restart policies.

use std::sync::Arc;
use std::time::Duration;

use berth_shim_protocol::{from_line, ExitRecord, FailureKind, LogSettings, Ready, Reply, Request, ShimConfig};
use tokio::io::AsyncReadExt;
use tokio::net::UnixStream;

use super::record::{now_nanos, Status};
use super::{setup, shim, Container, Containers};
use crate::error::{Error, Result};

/// First delay of restart-policy restarts; doubles up to `MAX_BACKOFF`, and starts over
/// once a container ran for `BACKOFF_RESET` (docker's numbers).
pub const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
const BACKOFF_RESET: Duration = Duration::from_secs(10);
const DEFAULT_STOP_TIMEOUT: i64 = 10;

/// A start refused because the container already runs (HTTP 304 in docker's API).
pub const ALREADY_STARTED: &str = "container already started";

impl Containers {
    /// Starts a created or stopped container.
    pub async fn start(self: &Arc<Self>, name_or_id: &str) -> Result<()> {
        let c = self.get(name_or_id)?;
        let started = {
            let _guard = c.lifecycle.lock().await;
            match c.status() {
                Status::Running | Status::Paused => return Err(Error::NotModified(ALREADY_STARTED.into())),
                Status::Removing => return Err(Error::Conflict(format!("container {} is marked for removal and cannot be started", c.id))),
                _ => {}
            }
            c.update(|r| r.state.manually_stopped = false)?;
            self.start_locked(&c).await
        };
        // Like dockerd: a `--rm` container that failed to start goes (clients wait for that).
        if started.is_err() && c.record().host_config.auto_remove.unwrap_or(false) {
            if let Err(e) = self.remove(&c.id, true, true).await {
                tracing::warn!("auto-removing {}: {e}", c.id);
            }
        }
        started
    }

    /// Starts the container's program through a new shim. Holds the lifecycle lock.
    async fn start_locked(self: &Arc<Self>, c: &Arc<Container>) -> Result<()> {
        let t0 = std::time::Instant::now();
        let record = c.record();
        let rootfs = c.rootfs();
        std::fs::create_dir_all(&c.run_dir).map_err(Error::io("create", &c.run_dir))?;
        let upper = c.dir.join("rw/upper");
        let work = c.dir.join("rw/work");
        let _ = berth_snapshot::unmount(&rootfs);
        berth_snapshot::mount_overlay(&record.layers, Some((&upper, &work)), &rootfs)?;
        let prepared = setup::prepare(self, c, &record);
        let t_prepared = t0.elapsed();
        let spec = match prepared {
            Ok(spec) => spec,
            Err(e) => {
                let _ = berth_snapshot::unmount(&rootfs);
                return Err(e);
            }
        };
        let _ = std::fs::remove_file(c.exit_file());
        let config = ShimConfig {
            id: c.id.clone(),
            bundle: c.dir.clone(),
            runtime_root: self.runtime_root.clone(),
            socket: c.socket(),
            exit_file: c.exit_file(),
            stdin: record.config.open_stdin.unwrap_or(false),
            stdin_once: record.config.stdin_once.unwrap_or(false),
            tty: record.config.tty.unwrap_or(false),
            log: LogSettings {
                driver: spec.log_driver.clone(),
                options: spec.log_options.clone(),
                dir: c.dir.clone(),
                attrs: spec.log_attrs.clone(),
            },
        };
        let ready = shim::spawn(&self.shim_binary, &config, &c.run_dir.join("shim.log")).await;
        let t_created = t0.elapsed();
        let (pid, shim_pid) = match ready {
            Ok(Ready::Created { pid, shim_pid }) => (pid, shim_pid),
            Ok(Ready::Failed { message, kind }) => {
                let _ = berth_snapshot::unmount(&rootfs);
                self.release_volumes(c);
                // Clients attached for this start see their stream end.
                c.pending_attach.lock().unwrap_or_else(|e| e.into_inner()).clear();
                let code = match kind {
                    FailureKind::NotFound => 127,
                    FailureKind::NotExecutable => 126,
                    FailureKind::Other => 128,
                };
                let message = format!("failed to create shim task: OCI runtime create failed: {message}: unknown");
                c.update(|r| {
                    r.state.status = Status::Exited;
                    r.state.exit_code = code;
                    r.state.error = message.clone();
                    r.state.finished_at = now_nanos();
                })?;
                c.notify(|ch| ch.exit_code = code);
                self.publish(c, "die", &[("exitCode", code.to_string())]);
                return Err(Error::StartFailed { message, code });
            }
            Err(e) => {
                let _ = berth_snapshot::unmount(&rootfs);
                self.release_volumes(c);
                return Err(e);
            }
        };
        let socket = c.socket();
        let started = async {
            let wait = shim::open_wait(&socket).await?;
            self.connect_pending_attaches(c).await;
            shim::call(&socket, &Request::Start).await?;
            Ok::<_, Error>(wait)
        };
        let wait = match started.await {
            Ok(wait) => wait,
            Err(e) => {
                let _ = shim::call(&socket, &Request::Kill { signal: libc::SIGKILL, all: true }).await;
                let _ = berth_snapshot::unmount(&rootfs);
                self.release_volumes(c);
                return Err(e);
            }
        };
        tracing::debug!(id = %c.id, prepared = ?t_prepared, created = ?t_created, started = ?t0.elapsed(), "container started");
        let started_at = now_nanos();
        c.update(|r| {
            r.state.status = Status::Running;
            r.state.pid = pid;
            r.state.shim_pid = shim_pid;
            r.state.exit_code = 0;
            r.state.error.clear();
            r.state.oom_killed = false;
            r.state.started_at = started_at;
            r.state.finished_at = 0;
        })?;
        self.publish(c, "start", &[]);
        self.monitor(c.clone(), wait);
        Ok(())
    }

    /// Waits in the background for the shim to report the exit.
    fn monitor(self: &Arc<Self>, c: Arc<Container>, wait: UnixStream) {
        self.start_health(&c);
        let containers = self.clone();
        tokio::spawn(async move {
            let exit = match read_exit(wait).await {
                Some(exit) => exit,
                // The shim died without answering: take its record if it wrote one.
                None => containers.exit_of_dead_shim(&c).await,
            };
            containers.exited(&c, exit).await;
        });
    }

    /// Records an exit, unmounts, and applies --rm or the restart policy.
    async fn exited(self: &Arc<Self>, c: &Arc<Container>, exit: ExitRecord) {
        let record = c.record();
        if !record.state.status.is_live() {
            return;
        }
        let ran = Duration::from_nanos(u64::try_from((exit.finished_at - record.state.started_at).max(0)).unwrap_or(0));
        let restart = !record.host_config.auto_remove.unwrap_or(false) && self.should_restart(&record, exit.code);
        let saved = c.update(|r| {
            r.state.status = if restart { Status::Restarting } else { Status::Exited };
            r.state.pid = 0;
            r.state.shim_pid = 0;
            r.state.exit_code = exit.code;
            r.state.oom_killed = exit.oom_killed;
            r.state.finished_at = exit.finished_at;
        });
        if let Err(e) = saved {
            tracing::error!("recording the exit of {}: {e}", c.id);
        }
        let _ = std::fs::remove_dir_all(&c.run_dir);
        if exit.oom_killed {
            self.publish(c, "oom", &[]);
        }
        self.publish(c, "die", &[("exitCode", exit.code.to_string())]);
        c.notify(|ch| {
            ch.exits += 1;
            ch.exit_code = exit.code;
        });
        // The rootfs goes after the exit is known: unmounting an overlay syncs its upper
        // filesystem (milliseconds). Under the lifecycle lock, so a start cannot race it;
        // a removal (--rm) unmounts by itself.
        if !record.host_config.auto_remove.unwrap_or(false) {
            let containers = self.clone();
            let c = c.clone();
            tokio::spawn(async move {
                let _guard = c.lifecycle.lock().await;
                if !c.status().is_live() && c.status() != Status::Removing && c.dir.exists() {
                    let rootfs = c.rootfs();
                    let _ = tokio::task::spawn_blocking(move || berth_snapshot::unmount(&rootfs)).await;
                }
                containers.release_volumes(&c);
            });
        }
        if record.host_config.auto_remove.unwrap_or(false) {
            let containers = self.clone();
            let c = c.clone();
            tokio::spawn(async move {
                if let Err(e) = containers.remove(&c.id, true, true).await {
                    tracing::warn!("auto-removing {}: {e}", c.id);
                }
            });
        } else if restart {
            let delay = {
                let mut backoff = c.backoff.lock().unwrap_or_else(|e| e.into_inner());
                if ran >= BACKOFF_RESET {
                    *backoff = INITIAL_BACKOFF;
                }
                let delay = *backoff;
                *backoff = (*backoff * 2).min(MAX_BACKOFF);
                delay
            };
            let containers = self.clone();
            let c = c.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let _guard = c.lifecycle.lock().await;
                // Stopped or removed meanwhile.
                if c.status() != Status::Restarting {
                    return;
                }
                let _ = c.update(|r| r.restart_count += 1);
                if let Err(e) = containers.start_locked(&c).await {
                    tracing::warn!("restarting {}: {e}", c.id);
                    let _ = c.update(|r| r.state.status = Status::Exited);
                }
            });
        }
    }

    /// Docker's restart policies.
    fn should_restart(&self, record: &super::Record, code: i32) -> bool {
        if record.state.manually_stopped {
            return false;
        }
        let policy = record.host_config.restart_policy.as_ref();
        let name = policy.and_then(|p| p.name.as_ref()).map(|n| n.to_string()).unwrap_or_default();
        match name.as_str() {
            "always" | "unless-stopped" => true,
            "on-failure" => {
                let max = policy.and_then(|p| p.maximum_retry_count).unwrap_or(0);
                code != 0 && (max == 0 || record.restart_count < max)
            }
            _ => false,
        }
    }

    /// Stops a container: its stop signal, then SIGKILL after `timeout` seconds.
    pub async fn stop(&self, name_or_id: &str, signal: Option<&str>, timeout: Option<i64>) -> Result<()> {
        let c = self.get(name_or_id)?;
        let _guard = c.lifecycle.lock().await;
        self.stop_locked(&c, signal, timeout).await
    }

    async fn stop_locked(&self, c: &Arc<Container>, signal: Option<&str>, timeout: Option<i64>) -> Result<()> {
        let record = c.record();
        if record.state.status == Status::Restarting {
            // Waiting to restart: stopping cancels that.
            c.update(|r| {
                r.state.status = Status::Exited;
                r.state.manually_stopped = true;
            })?;
            self.publish(c, "stop", &[]);
            return Ok(());
        }
        if !record.state.status.is_live() {
            return Err(Error::NotModified("container already stopped".into()));
        }
        c.update(|r| r.state.manually_stopped = true)?;
        let signal = signal.map(str::to_string).or(record.config.stop_signal.clone()).unwrap_or_else(|| "SIGTERM".into());
        let signal = setup::parse_signal(&signal)?;
        let timeout = timeout.or(record.config.stop_timeout).unwrap_or(DEFAULT_STOP_TIMEOUT);
        let mut rx = c.changes.subscribe();
        let exits = rx.borrow_and_update().exits;
        if record.state.status == Status::Paused {
            // A frozen process cannot act on a signal; docker thaws it after signalling.
            self.signal(c, signal).await?;
            let _ = shim::call(&c.socket(), &Request::Resume).await;
        } else {
            self.signal(c, signal).await?;
        }
        let exited = async {
            while rx.borrow_and_update().exits == exits {
                if rx.changed().await.is_err() {
                    break;
                }
            }
        };
        let graceful = if timeout < 0 {
            exited.await;
            true
        } else {
            tokio::time::timeout(Duration::from_secs(timeout as u64), exited).await.is_ok()
        };
        if !graceful {
            self.kill_and_wait(c).await?;
        }
        self.publish(c, "stop", &[]);
        Ok(())
    }

    async fn signal(&self, c: &Container, signal: i32) -> Result<()> {
        self.publish(c, "kill", &[("signal", signal.to_string())]);
        shim::call(&c.socket(), &Request::Kill { signal, all: false }).await
    }

    /// SIGKILL to everything in the container, then wait for the exit to be recorded.
    pub(super) async fn kill_and_wait(&self, c: &Arc<Container>) -> Result<()> {
        let mut rx = c.changes.subscribe();
        let exits = rx.borrow_and_update().exits;
        if !c.status().is_live() {
            return Ok(());
        }
        self.publish(c, "kill", &[("signal", libc::SIGKILL.to_string())]);
        if let Err(e) = shim::call(&c.socket(), &Request::Kill { signal: libc::SIGKILL, all: true }).await {
            // The shim may be finishing already; the exit still arrives.
            tracing::debug!("kill {}: {e}", c.id);
        }
        let exited = async {
            while rx.borrow_and_update().exits == exits && c.status().is_live() {
                if rx.changed().await.is_err() {
                    break;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(30), exited)
            .await
            .map_err(|_| Error::Internal(format!("container {} did not exit after SIGKILL", c.id)))
    }

    /// Sends a signal (name or number) to the container's init.
    pub async fn kill(&self, name_or_id: &str, signal: Option<&str>) -> Result<()> {
        let c = self.get(name_or_id)?;
        let _guard = c.lifecycle.lock().await;
        if !c.status().is_live() {
            return Err(Error::Conflict(format!("Cannot kill container: {name_or_id}: Container {} is not running", c.id)));
        }
        let signal = setup::parse_signal(signal.unwrap_or("SIGKILL"))?;
        c.update(|r| r.state.manually_stopped = true)?;
        self.signal(&c, signal).await
    }

    /// Stops (if running) and starts again.
    pub async fn restart(self: &Arc<Self>, name_or_id: &str, timeout: Option<i64>) -> Result<()> {
        let c = self.get(name_or_id)?;
        let _guard = c.lifecycle.lock().await;
        match self.stop_locked(&c, None, timeout).await {
            Ok(()) | Err(Error::NotModified(_)) => {}
            Err(e) => return Err(e),
        }
        c.update(|r| r.state.manually_stopped = false)?;
        self.start_locked(&c).await?;
        self.publish(&c, "restart", &[]);
        Ok(())
    }

    pub async fn pause(&self, name_or_id: &str) -> Result<()> {
        let c = self.get(name_or_id)?;
        let _guard = c.lifecycle.lock().await;
        match c.status() {
            Status::Running => {}
            Status::Paused => return Err(Error::Conflict(format!("Container {} is already paused", c.id))),
            _ => return Err(Error::Conflict(format!("Container {} is not running", c.id))),
        }
        shim::call(&c.socket(), &Request::Pause).await?;
        c.update(|r| r.state.status = Status::Paused)?;
        self.publish(&c, "pause", &[]);
        Ok(())
    }

    pub async fn unpause(&self, name_or_id: &str) -> Result<()> {
        let c = self.get(name_or_id)?;
        let _guard = c.lifecycle.lock().await;
        if c.status() != Status::Paused {
            return Err(Error::Conflict(format!("Container {} is not paused", c.id)));
        }
        shim::call(&c.socket(), &Request::Resume).await?;
        c.update(|r| r.state.status = Status::Running)?;
        self.publish(&c, "unpause", &[]);
        Ok(())
    }

    /// After a berthd restart: reconnects to the shim of every live container, and
    /// records the exits that happened meanwhile (then applies restart policies).
    pub async fn restore(self: &Arc<Self>) {
        for c in self.all() {
            let status = c.status();
            if !status.is_live() && status != Status::Restarting {
                continue;
            }
            if status == Status::Restarting {
                // berthd died during a restart delay: restart now.
                let containers = self.clone();
                tokio::spawn(async move {
                    let _guard = c.lifecycle.lock().await;
                    if let Err(e) = containers.start_locked(&c).await {
                        tracing::warn!("restarting {}: {e}", c.id);
                        let _ = c.update(|r| r.state.status = Status::Exited);
                    }
                });
                continue;
            }
            match shim::open_wait(&c.socket()).await {
                Ok(wait) => self.monitor(c.clone(), wait),
                Err(_) => {
                    // A shim that lives on without its socket cannot be managed: end it
                    // rather than leave an orphan running.
                    kill_orphan(&c.record().state);
                    let exit = self.exit_of_dead_shim(&c).await;
                    self.exited(&c, exit).await;
                }
            }
        }
    }

    /// The exit of a container whose shim is gone: the one it recorded, or, when it died
    /// before recording one (killed by someone else), 255 after its container is ended
    /// and cleaned up, so nothing keeps running unmanaged.
    async fn exit_of_dead_shim(&self, c: &Container) -> ExitRecord {
        if let Some(exit) = exit_from_file(c) {
            return exit;
        }
        shim::cleanup(&self.shim_binary, &self.runtime_root, &c.id).await;
        ExitRecord { code: 255, finished_at: now_nanos(), oom_killed: false }
    }
}

/// Reads the exit from a Wait connection: one `Exited` line when the container ends.
async fn read_exit(mut wait: UnixStream) -> Option<ExitRecord> {
    let mut line = Vec::new();
    wait.read_to_end(&mut line).await.ok()?;
    match from_line::<Reply>(&line).ok()? {
        Reply::Exited(exit) => Some(exit),
        _ => None,
    }
}

/// Kills a shim that no longer answers, and its container's init; each only if the pid
/// still is that process (the shim by name, init as the shim's child).
fn kill_orphan(state: &super::State) {
    let stat = |pid: i32| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok();
    let shim_alive = state.shim_pid > 0 && stat(state.shim_pid).is_some_and(|s| s.contains("(berth-shim)"));
    if !shim_alive {
        return;
    }
    let parent_of_init = stat(state.pid).and_then(|s| s.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1).and_then(|p| p.parse::<i32>().ok())));
    if state.pid > 0 && parent_of_init == Some(state.shim_pid) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(state.pid), nix::sys::signal::Signal::SIGKILL);
    }
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(state.shim_pid), nix::sys::signal::Signal::SIGKILL);
}

fn exit_from_file(c: &Container) -> Option<ExitRecord> {
    let bytes = std::fs::read(c.exit_file()).ok()?;
    from_line(&bytes).ok()
}
