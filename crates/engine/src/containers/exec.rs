//! `exec`: processes started in a running container. Like docker, exec instances live in
//! memory only; they are created, started once, and inspected for their exit code.

use std::sync::{Arc, Mutex};

use berth_shim_protocol::{Reply, Request, Streams};

use super::record::Status;
use super::streams::AttachStream;
use super::{setup, shim, Container, Containers};
use crate::error::{Error, Result};

pub use bollard_stubs::models::ExecConfig;

/// One exec instance.
pub struct Exec {
    pub id: String,
    pub container: Arc<Container>,
    pub config: ExecConfig,
    state: Mutex<ExecState>,
}

#[derive(Debug, Clone, Default)]
struct ExecState {
    started: bool,
    running: bool,
    pid: i32,
    exit_code: Option<i32>,
}

/// What `GET /exec/{id}/json` shows.
#[derive(Debug, Clone)]
pub struct ExecView {
    pub id: String,
    pub container_id: String,
    pub config: ExecConfig,
    pub running: bool,
    pub pid: i32,
    pub exit_code: Option<i32>,
}

impl Containers {
    /// Registers an exec in a running container; returns its id.
    pub fn exec_create(&self, name_or_id: &str, config: ExecConfig) -> Result<String> {
        let c = self.get(name_or_id)?;
        match c.status() {
            Status::Running => {}
            Status::Paused => return Err(Error::Conflict(format!("Container {} is paused, unpause the container before exec", c.id))),
            _ => return Err(Error::Conflict(format!("Container {} is not running", c.id))),
        }
        if config.cmd.as_ref().is_none_or(|c| c.is_empty()) {
            return Err(Error::InvalidArgument("No exec command specified".into()));
        }
        let id = super::random_id();
        let exec = Arc::new(Exec { id: id.clone(), container: c.clone(), config, state: Mutex::new(ExecState::default()) });
        self.execs.lock().unwrap_or_else(|e| e.into_inner()).insert(id.clone(), exec);
        let _ = c.update(|r| r.exec_ids.push(id.clone()));
        let cmd = self.exec_get(&id)?.config.cmd.clone().unwrap_or_default().join(" ");
        self.publish(&c, &format!("exec_create: {cmd}"), &[("execID", id.clone())]);
        Ok(id)
    }

    fn exec_get(&self, id: &str) -> Result<Arc<Exec>> {
        self.execs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("No such exec instance: {id}")))
    }

    pub fn exec_inspect(&self, id: &str) -> Result<ExecView> {
        let exec = self.exec_get(id)?;
        let state = exec.state.lock().unwrap_or_else(|e| e.into_inner()).clone();
        Ok(ExecView {
            id: exec.id.clone(),
            container_id: exec.container.id.clone(),
            config: exec.config.clone(),
            running: state.running,
            pid: state.pid,
            exit_code: state.exit_code,
        })
    }

    /// Starts an exec; returns its stream unless `detach`.
    pub async fn exec_start(self: &Arc<Self>, id: &str, detach: bool) -> Result<Option<AttachStream>> {
        let exec = self.exec_get(id)?;
        {
            let mut state = exec.state.lock().unwrap_or_else(|e| e.into_inner());
            if state.started {
                return Err(Error::Conflict(format!("Error: Exec command {id} is already running")));
            }
            state.started = true;
        }
        let c = exec.container.clone();
        if c.status() != Status::Running {
            return Err(Error::Conflict(format!("Container {} is not running", c.id)));
        }
        let tty = exec.config.tty.unwrap_or(false);
        let process = setup::exec_process(&c, &exec.config)?;
        let streams = if detach {
            Streams::default()
        } else {
            Streams {
                stdin: exec.config.attach_stdin.unwrap_or(false),
                stdout: exec.config.attach_stdout.unwrap_or(false),
                stderr: exec.config.attach_stderr.unwrap_or(false),
                detach_keys: setup::detach_keys(exec.config.detach_keys.as_deref())?,
            }
        };
        let request = Request::Exec { id: id.to_string(), process, tty, streams };
        let (stream, reply) = shim::connect(&c.socket(), &request).await?;
        let pid = match reply {
            Reply::Started { pid } => pid,
            Reply::Error { message, kind } => {
                // dockerd reports 126 for every exec that could not start.
                exec.state.lock().unwrap_or_else(|e| e.into_inner()).exit_code = Some(126);
                let code = if kind == berth_shim_protocol::FailureKind::Other { 128 } else { 126 };
                return Err(Error::StartFailed { message: format!("OCI runtime exec failed: {message}: unknown"), code });
            }
            other => return Err(Error::Internal(format!("unexpected reply to exec: {other:?}"))),
        };
        {
            let mut state = exec.state.lock().unwrap_or_else(|e| e.into_inner());
            state.running = true;
            state.pid = pid;
        }
        let cmd = exec.config.cmd.clone().unwrap_or_default().join(" ");
        self.publish(&c, &format!("exec_start: {cmd}"), &[("execID", id.to_string())]);
        // The exit code arrives on its own connection, whether or not anyone watches.
        let containers = self.clone();
        let watched = exec.clone();
        let (recorded, exited) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let code = match shim::connect(&watched.container.socket(), &Request::ExecWait { id: watched.id.clone() }).await {
                Ok((_, Reply::Exited(exit))) => exit.code,
                _ => 126,
            };
            {
                let mut state = watched.state.lock().unwrap_or_else(|e| e.into_inner());
                state.running = false;
                state.exit_code = Some(code);
            }
            let _ = recorded.send(());
            containers.publish(&watched.container, "exec_die", &[("execID", watched.id.clone()), ("exitCode", code.to_string())]);
        });
        Ok((!detach).then(|| AttachStream { exited: Some(exited), ..AttachStream::ready(tty, stream) }))
    }

    pub async fn exec_resize(&self, id: &str, height: u16, width: u16) -> Result<()> {
        let exec = self.exec_get(id)?;
        shim::call(&exec.container.socket(), &Request::Resize { exec: Some(id.to_string()), height, width }).await
    }

    /// Forgets the exec instances of a container (at its exit or removal).
    pub(super) fn forget_execs(&self, container_id: &str) {
        self.execs.lock().unwrap_or_else(|e| e.into_inner()).retain(|_, e| e.container.id != container_id || e.state.lock().is_ok_and(|s| s.running));
    }
}
