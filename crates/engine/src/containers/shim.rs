//! Talking to berth-shim: start one for a container, and send it requests over its
//! socket (see `berth_shim_protocol` for the conversation).

use std::path::{Path, PathBuf};
use std::process::Stdio;

use berth_shim_protocol::{from_line, to_line, Ready, Reply, Request, ShimConfig};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use crate::error::{Error, Result};

/// Finds `berth-shim`: next to the running binary (an installed or built berthd), else
/// on PATH.
pub fn find_binary() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("berth-shim")))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("berth-shim"))
}

/// Starts a shim and returns its first line: the container is created, or why not.
/// The shim's own diagnostics go to `diag_log`.
pub async fn spawn(binary: &Path, config: &ShimConfig, diag_log: &Path) -> Result<Ready> {
    let diag = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(diag_log)
        .map_err(Error::io("open", diag_log))?;
    let mut child = tokio::process::Command::new(binary)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(diag)
        .kill_on_drop(false)
        .spawn()
        .map_err(|e| Error::Internal(format!("starting {}: {e}", binary.display())))?;
    let input = serde_json::to_vec(config).map_err(|e| Error::Internal(format!("encode shim config: {e}")))?;
    let mut stdin = child.stdin.take().ok_or_else(|| Error::Internal("shim stdin".into()))?;
    stdin.write_all(&input).await.map_err(|e| Error::Internal(format!("writing the shim's configuration: {e}")))?;
    drop(stdin);
    let stdout = child.stdout.take().ok_or_else(|| Error::Internal("shim stdout".into()))?;
    let mut line = String::new();
    let read = BufReader::new(stdout).read_line(&mut line).await;
    // The shim lives on after the container is created; reap it whenever it leaves.
    tokio::spawn(async move {
        let _ = child.wait().await;
    });
    read.map_err(|e| Error::Internal(format!("reading from the shim: {e}")))?;
    from_line::<Ready>(line.as_bytes())
        .map_err(|e| Error::Internal(format!("the shim did not start (see {}): {e}", diag_log.display())))
}

/// Runs `berth-shim cleanup` for a container whose shim died without recording an exit:
/// its processes are killed and its runtime state and cgroup removed.
pub async fn cleanup(binary: &Path, runtime_root: &Path, id: &str) {
    let out = tokio::process::Command::new(binary).arg("cleanup").arg(runtime_root).arg(id).stdin(Stdio::null()).output().await;
    match out {
        Ok(out) if out.status.success() => {}
        Ok(out) => tracing::warn!("cleaning up after the shim of {id}: {}", String::from_utf8_lossy(&out.stderr).trim()),
        Err(e) => tracing::warn!("cleaning up after the shim of {id}: starting {}: {e}", binary.display()),
    }
}

/// Sends `request` and reads the reply line; the connection stays usable (for attach and
/// exec it is the stream).
pub async fn connect(socket: &Path, request: &Request) -> Result<(UnixStream, Reply)> {
    let mut stream = UnixStream::connect(socket).await.map_err(Error::io("connect to", socket))?;
    stream.write_all(&to_line(request)).await.map_err(Error::io("write to", socket))?;
    // Byte by byte: whatever follows the line belongs to the stream.
    let mut line = Vec::with_capacity(64);
    loop {
        let b = stream.read_u8().await.map_err(Error::io("read from", socket))?;
        line.push(b);
        if b == b'\n' {
            break;
        }
    }
    let reply = from_line::<Reply>(&line).map_err(|e| Error::Internal(format!("bad reply from the shim: {e}")))?;
    Ok((stream, reply))
}

/// Asks to be told of the container's exit: the shim answers on this connection (one
/// `Reply::Exited` line) when it happens.
pub async fn open_wait(socket: &Path) -> Result<UnixStream> {
    let mut stream = UnixStream::connect(socket).await.map_err(Error::io("connect to", socket))?;
    stream.write_all(&to_line(&Request::Wait)).await.map_err(Error::io("write to", socket))?;
    Ok(stream)
}

/// A request whose answer is `Ok`; an error reply becomes an error.
pub async fn call(socket: &Path, request: &Request) -> Result<()> {
    match connect(socket, request).await?.1 {
        Reply::Ok | Reply::Started { .. } | Reply::Exited(_) => Ok(()),
        Reply::Error { message, .. } => Err(Error::Internal(message)),
    }
}
