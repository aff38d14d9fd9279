//! A container's streams: attach (live stdio through the shim, in Docker's attach format)
//! and logs (from the log files the shim writes).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use berth_shim_protocol::{Reply, Request, Streams};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot};

use super::record::Status;
use super::{shim, Container, Containers};
use crate::error::{Error, Result};

/// An attach request waiting for the container to start.
pub(super) struct PendingAttach {
    streams: Streams,
    reply: oneshot::Sender<Result<UnixStream>>,
}

/// An attachment: bytes to and from the container's process. Output is raw with a
/// terminal, else multiplexed (8-byte frame headers), exactly what the API passes on.
/// Before the start, the stream arrives once the container is created: clients get their
/// answer at once and their stream when there is one.
pub struct AttachStream {
    pub tty: bool,
    pub stream: oneshot::Receiver<Result<UnixStream>>,
    /// For an exec: fires once its exit code is recorded. Clients read the code right
    /// after the stream ends, so the stream must not end before.
    pub exited: Option<oneshot::Receiver<()>>,
}

impl AttachStream {
    pub fn ready(tty: bool, stream: UnixStream) -> AttachStream {
        let (tx, rx) = oneshot::channel();
        let _ = tx.send(Ok(stream));
        AttachStream { tty, stream: rx, exited: None }
    }

    /// The stream, once the container runs.
    pub async fn connected(self) -> Result<UnixStream> {
        self.stream.await.map_err(|_| Error::Conflict("the container was removed before it started".into()))?
    }
}

impl Containers {
    /// Attaches to a container's stdio. Before the start this waits for it, so that no
    /// output is missed (docker's `run` attaches, then starts).
    pub async fn attach(&self, name_or_id: &str, streams: Streams) -> Result<AttachStream> {
        let c = self.get(name_or_id)?;
        let tty = c.record().config.tty.unwrap_or(false);
        // Under the lifecycle lock a start cannot slip between the check and the
        // registration.
        let _guard = c.lifecycle.lock().await;
        let status = c.status();
        if !matches!(status, Status::Paused | Status::Removing | Status::Dead) {
            self.publish(&c, "attach", &[]);
        }
        match status {
            Status::Running => Ok(AttachStream::ready(tty, connect_attach(&c, streams).await?)),
            Status::Paused => Err(Error::Conflict(format!("container {name_or_id} is paused, unpause the container before attach"))),
            Status::Created | Status::Exited | Status::Restarting => {
                let (tx, rx) = oneshot::channel();
                c.pending_attach.lock().unwrap_or_else(|e| e.into_inner()).push(PendingAttach { streams, reply: tx });
                Ok(AttachStream { tty, stream: rx, exited: None })
            }
            Status::Removing | Status::Dead => Err(Error::Conflict(format!("container {name_or_id} is being removed or dead"))),
        }
    }

    /// Connects the attach requests made before the start (the shim has created the
    /// container but not started its program).
    pub(super) async fn connect_pending_attaches(&self, c: &Container) {
        let pending = std::mem::take(&mut *c.pending_attach.lock().unwrap_or_else(|e| e.into_inner()));
        for p in pending {
            let _ = p.reply.send(connect_attach(c, p.streams).await);
        }
    }

    /// Resizes the container's terminal.
    pub async fn resize(&self, name_or_id: &str, height: u16, width: u16) -> Result<()> {
        let c = self.get(name_or_id)?;
        if !c.status().is_live() {
            return Err(Error::Conflict(format!("Container {} is not running", c.id)));
        }
        shim::call(&c.socket(), &Request::Resize { exec: None, height, width }).await?;
        self.publish(&c, "resize", &[("height", height.to_string()), ("width", width.to_string())]);
        Ok(())
    }
}

async fn connect_attach(c: &Container, streams: Streams) -> Result<UnixStream> {
    match shim::connect(&c.socket(), &Request::Attach(streams)).await? {
        (stream, Reply::Ok) => Ok(stream),
        (_, Reply::Error { message, .. }) => Err(Error::Conflict(message)),
        (_, other) => Err(Error::Internal(format!("unexpected reply to attach: {other:?}"))),
    }
}

/// What `logs` reads.
#[derive(Debug, Clone, Default)]
pub struct LogsOptions {
    pub stdout: bool,
    pub stderr: bool,
    pub since: Option<SystemTime>,
    pub until: Option<SystemTime>,
    pub tail: Option<usize>,
    pub follow: bool,
    pub timestamps: bool,
    pub details: bool,
}

/// One log message.
#[derive(Debug, Clone)]
pub struct LogLine {
    /// 1 = stdout, 2 = stderr (the frame's stream byte).
    pub stream: u8,
    pub time: SystemTime,
    pub line: Vec<u8>,
    pub attrs: Vec<(String, String)>,
}

/// Ends a follow when the reader goes away or the container stops.
struct FollowStop {
    stopped: Arc<AtomicBool>,
}

impl Containers {
    /// The container's log, oldest first; with `follow`, then new lines until the
    /// container stops or the receiver is dropped. Returns whether it has a terminal.
    pub fn logs(&self, name_or_id: &str, options: LogsOptions) -> Result<(bool, mpsc::Receiver<Result<LogLine>>)> {
        let c = self.get(name_or_id)?;
        let record = c.record();
        let tty = record.config.tty.unwrap_or(false);
        let (driver, log_options) = super::setup::log_config(&record.host_config);
        let config = berth_logfile::LogConfig::parse(&driver, &log_options).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let (tx, rx) = mpsc::channel(256);
        let stop = FollowStop { stopped: Arc::new(AtomicBool::new(false)) };
        let follow = options.follow && record.state.status.is_live();
        if follow {
            // The follow ends at the container's next exit (once the shim flushed).
            let mut changes = c.changes.subscribe();
            let stopped = stop.stopped.clone();
            let exits = changes.borrow_and_update().exits;
            let closed = tx.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        changed = changes.changed() => {
                            if changed.is_err() || changes.borrow_and_update().exits != exits {
                                break;
                            }
                        }
                        _ = closed.closed() => break,
                    }
                }
                stopped.store(true, Ordering::Release);
            });
        }
        let dir = c.log_dir().to_path_buf();
        let id = c.id.clone();
        let read_options = berth_logfile::ReadOptions { since: options.since, until: options.until, tail: options.tail, follow };
        tokio::task::spawn_blocking(move || {
            let stopped = stop.stopped.clone();
            let should_stop = move || stopped.load(Ordering::Acquire);
            let reader = match berth_logfile::read(&dir, &id, &config, &read_options, &should_stop) {
                Ok(r) => r,
                Err(e) => {
                    let _ = tx.blocking_send(Err(Error::InvalidArgument(e.to_string())));
                    return;
                }
            };
            for entry in reader {
                let item = match entry {
                    Ok(e) => {
                        let stream = if e.stream == berth_logfile::Stream::Stderr { 2 } else { 1 };
                        if (stream == 1 && !options.stdout) || (stream == 2 && !options.stderr) {
                            continue;
                        }
                        Ok(LogLine { stream, time: e.time, line: e.line, attrs: e.attrs })
                    }
                    Err(e) => Err(Error::Internal(e.to_string())),
                };
                if tx.blocking_send(item).is_err() {
                    stop.stopped.store(true, Ordering::Release);
                    return;
                }
            }
        });
        Ok((tty, rx))
    }
}
