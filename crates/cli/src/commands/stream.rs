//! Attached streams of `run`, `attach`, `start -a` and `exec` over a hijacked connection:
//! stdin forwarded (with the detach key sequence on terminals), output copied raw with a
//! TTY or demultiplexed from docker's 8-byte frames without; window size changes and
//! signals passed on to the container.

use std::io::{self, Read, Write};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::client::{empty, Client, Hijacked, Query};
use crate::error::{Error, Result};
use crate::term;

/// ctrl-p ctrl-q.
pub const DEFAULT_DETACH_KEYS: [u8; 2] = [16, 17];

/// What is attached and how.
#[derive(Debug, Clone)]
pub struct Attached {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
    pub detach_keys: Vec<u8>,
}

/// How a stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEnd {
    /// The daemon closed the output (or input ended with nothing to read).
    Done,
    /// The user typed the detach key sequence.
    Detached,
}

/// moby/term's `ToBytes`: "ctrl-p,ctrl-q" or single characters, comma separated.
pub fn detach_key_bytes(keys: &str) -> std::result::Result<Vec<u8>, String> {
    let mut codes = Vec::new();
    for key in keys.split(',') {
        if key.len() == 1 {
            codes.push(key.as_bytes()[0]);
            continue;
        }
        let Some(name) = key.strip_prefix("ctrl-") else {
            return Err(format!("Unknown character: '{key}'"));
        };
        let code = match name.as_bytes() {
            [c @ b'a'..=b'z'] => Some(c - b'a' + 1),
            [b'@'] => Some(0),
            [b'['] => Some(27),
            [b'\\'] => Some(28),
            [b']'] => Some(29),
            [b'^'] => Some(30),
            [b'_'] => Some(31),
            _ => None,
        };
        codes.extend(code);
    }
    Ok(codes)
}

/// The detach keys to use: the flag, else `detachKeys` from the configuration, else
/// ctrl-p ctrl-q; an unreadable sequence falls back to the default with a warning.
pub fn resolve_detach_keys(keys: &str) -> Vec<u8> {
    if keys.is_empty() {
        return DEFAULT_DETACH_KEYS.to_vec();
    }
    match detach_key_bytes(keys) {
        Ok(codes) => codes,
        Err(e) => {
            eprintln!("WARNING: invalid detach escape keys, using default: {e}");
            DEFAULT_DETACH_KEYS.to_vec()
        }
    }
}

/// moby/term's escape proxy: input read one key at a time is held back while it matches
/// the detach sequence; a full match detaches, a mismatch releases what was held.
struct EscapeProxy {
    keys: Vec<u8>,
    matched: usize,
}

enum Filtered {
    Forward(Vec<u8>),
    Detach,
}

impl EscapeProxy {
    fn filter(&mut self, chunk: &[u8]) -> Filtered {
        if self.keys.is_empty() {
            return Filtered::Forward(chunk.to_vec());
        }
        let release = |matched: &mut usize, keys: &[u8], chunk: &[u8]| {
            let mut out = keys[..*matched].to_vec();
            out.extend_from_slice(chunk);
            *matched = 0;
            out
        };
        if chunk.len() != 1 || chunk[0] != self.keys[self.matched] {
            return Filtered::Forward(release(&mut self.matched, &self.keys, chunk));
        }
        if self.matched == self.keys.len() - 1 {
            self.matched = 0;
            return Filtered::Detach;
        }
        self.matched += 1;
        Filtered::Forward(Vec::new())
    }
}

/// Reads standard input on a thread of its own (a blocking read never stalls the
/// runtime); `None` marks the end of input.
fn stdin_chunks() -> mpsc::Receiver<io::Result<Vec<u8>>> {
    let (tx, rx) = mpsc::channel(8);
    std::thread::spawn(move || {
        let mut stdin = io::stdin();
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    if tx.blocking_send(Ok(buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
    });
    rx
}

fn write_error(source: io::Error) -> Error {
    Error::Io {
        operation: "writing output",
        source,
    }
}

fn read_error(source: io::Error) -> Error {
    Error::Io {
        operation: "reading attached stream",
        source,
    }
}

/// stdcopy's demultiplexer: frames of `[stream, 0, 0, 0, size (u32 big-endian)]` and
/// `size` bytes; stream 0 and 1 go to stdout, 2 to stderr, 3 is an error from the daemon.
#[derive(Default)]
pub struct Demux {
    buffer: Vec<u8>,
}

impl Demux {
    /// Feeds bytes; complete frames are written out.
    pub fn feed(
        &mut self,
        data: &[u8],
        stdout: &mut dyn Write,
        stderr: &mut dyn Write,
    ) -> Result<()> {
        self.buffer.extend_from_slice(data);
        let mut start = 0;
        while self.buffer.len() - start >= 8 {
            let header = &self.buffer[start..start + 8];
            let size = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
            if self.buffer.len() - start - 8 < size {
                break;
            }
            let kind = header[0];
            let payload = &self.buffer[start + 8..start + 8 + size];
            match kind {
                0 | 1 => stdout.write_all(payload).map_err(write_error)?,
                2 => stderr.write_all(payload).map_err(write_error)?,
                3 => {
                    return Err(Error::Stream(format!(
                        "error from daemon in stream: {}",
                        String::from_utf8_lossy(payload)
                    )))
                }
                other => return Err(Error::Stream(format!("Unrecognized input header: {other}"))),
            }
            start += 8 + size;
        }
        self.buffer.drain(..start);
        stdout.flush().map_err(write_error)?;
        stderr.flush().map_err(write_error)?;
        Ok(())
    }
}

/// Copies the attached streams until the output ends, the input ends with no output
/// attached, or the user detaches. The terminal is in raw mode while stdin is attached
/// to a TTY, and restored before this returns.
pub async fn pump(conn: Hijacked, attached: &Attached) -> Result<StreamEnd> {
    let mut raw = if attached.stdin && attached.tty {
        term::RawInput::enable().map_err(|source| Error::Io {
            operation: "unable to set IO streams as raw terminal",
            source,
        })?
    } else {
        None
    };
    let (mut reader, mut writer) = tokio::io::split(conn);
    let has_output = attached.stdout || attached.stderr;
    let tty = attached.tty;

    let output = async {
        let mut buf = vec![0u8; 32 * 1024];
        let mut demux = Demux::default();
        loop {
            let n = reader.read(&mut buf).await.map_err(read_error)?;
            if n == 0 {
                return Ok::<(), Error>(());
            }
            let stdout = io::stdout();
            let mut stdout = stdout.lock();
            if tty {
                stdout.write_all(&buf[..n]).map_err(write_error)?;
                stdout.flush().map_err(write_error)?;
            } else {
                let mut stderr = io::stderr().lock();
                demux.feed(&buf[..n], &mut stdout, &mut stderr)?;
            }
        }
    };
    tokio::pin!(output);

    let stdin_attached = attached.stdin;
    let keys = attached.detach_keys.clone();
    let input = async {
        if stdin_attached {
            let mut chunks = stdin_chunks();
            let mut proxy = EscapeProxy {
                keys: if tty { keys } else { Vec::new() },
                matched: 0,
            };
            while let Some(chunk) = chunks.recv().await {
                let Ok(chunk) = chunk else { break };
                match proxy.filter(&chunk) {
                    Filtered::Detach => return Ok::<StreamEnd, Error>(StreamEnd::Detached),
                    Filtered::Forward(bytes) if bytes.is_empty() => {}
                    Filtered::Forward(bytes) => {
                        if writer.write_all(&bytes).await.is_err() {
                            break;
                        }
                    }
                }
            }
        }
        // The daemon sees the end of stdin when the write side closes.
        let _ = writer.shutdown().await;
        Ok(StreamEnd::Done)
    };
    tokio::pin!(input);

    let mut input_done = false;
    let end = loop {
        tokio::select! {
            result = &mut output => {
                result?;
                break StreamEnd::Done;
            }
            result = &mut input, if !input_done => {
                match result? {
                    StreamEnd::Detached => break StreamEnd::Detached,
                    StreamEnd::Done if !has_output => break StreamEnd::Done,
                    StreamEnd::Done => input_done = true,
                }
            }
        }
    };
    raw.take();
    Ok(end)
}

/// What a TTY resize goes to.
#[derive(Debug, Clone)]
pub enum ResizeTarget {
    Container(String),
    Exec(String),
}

impl ResizeTarget {
    fn path(&self) -> String {
        match self {
            ResizeTarget::Container(id) => format!("/containers/{id}/resize"),
            ResizeTarget::Exec(id) => format!("/exec/{id}/resize"),
        }
    }
}

/// Sends one size to the daemon; a zero size is not sent.
pub async fn resize(
    client: &mut Client,
    target: &ResizeTarget,
    rows: u16,
    cols: u16,
) -> Result<()> {
    if rows == 0 && cols == 0 {
        return Ok(());
    }
    let query = Query::new()
        .add("h", rows.to_string())
        .add("w", cols.to_string());
    let response = client
        .request(http::Method::POST, &target.path(), &query, &[], empty())
        .await?;
    crate::client::read_body(response).await?;
    Ok(())
}

/// docker's `MonitorTtySize`: sends the terminal's size now (retrying briefly while the
/// process starts) and again on every SIGWINCH, until the task is dropped.
pub async fn monitor_tty_size(mut client: Client, target: ResizeTarget) {
    let (rows, cols) = term::stdout_size();
    if resize(&mut client, &target, rows, cols).await.is_err() {
        let mut resized = false;
        for attempt in 1..=10u64 {
            tokio::time::sleep(std::time::Duration::from_millis(attempt * 10)).await;
            let (rows, cols) = term::stdout_size();
            if resize(&mut client, &target, rows, cols).await.is_ok() {
                resized = true;
                break;
            }
        }
        if !resized {
            eprintln!("failed to resize tty, using default size");
        }
    }
    let Ok(mut winch) =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
    else {
        return;
    };
    while winch.recv().await.is_some() {
        let (rows, cols) = term::stdout_size();
        let _ = resize(&mut client, &target, rows, cols).await;
    }
}

/// Signals passed on to the container with `--sig-proxy` (docker catches all of them;
/// SIGCHLD, SIGPIPE and the ones a process cannot catch are left out).
const PROXIED_SIGNALS: &[(i32, &str)] = &[
    (libc::SIGHUP, "HUP"),
    (libc::SIGINT, "INT"),
    (libc::SIGQUIT, "QUIT"),
    (libc::SIGUSR1, "USR1"),
    (libc::SIGUSR2, "USR2"),
    (libc::SIGTERM, "TERM"),
    (libc::SIGALRM, "ALRM"),
    (libc::SIGCONT, "CONT"),
    (libc::SIGTSTP, "TSTP"),
    (libc::SIGTTIN, "TTIN"),
    (libc::SIGTTOU, "TTOU"),
    (libc::SIGWINCH, "WINCH"),
    (libc::SIGVTALRM, "VTALRM"),
    (libc::SIGPROF, "PROF"),
    (libc::SIGIO, "IO"),
    (libc::SIGPWR, "PWR"),
    (libc::SIGSYS, "SYS"),
    (libc::SIGXCPU, "XCPU"),
    (libc::SIGXFSZ, "XFSZ"),
];

/// docker's `ForwardAllSignals`: every signal this process receives is sent to the
/// container (`POST /containers/{id}/kill?signal=NAME`) until the task is dropped.
pub async fn forward_signals(mut client: Client, id: String) {
    let (tx, mut rx) = mpsc::unbounded_channel::<&'static str>();
    for (number, name) in PROXIED_SIGNALS {
        let Ok(mut stream) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::from_raw(*number))
        else {
            continue;
        };
        let tx = tx.clone();
        let name: &'static str = name;
        tokio::spawn(async move {
            while stream.recv().await.is_some() {
                if tx.send(name).is_err() {
                    return;
                }
            }
        });
    }
    drop(tx);
    let path = format!("/containers/{id}/kill");
    while let Some(name) = rx.recv().await {
        let query = Query::new().add("signal", name);
        if let Ok(response) = client
            .request(http::Method::POST, &path, &query, &[], empty())
            .await
        {
            let _ = crate::client::read_body(response).await;
        }
    }
}

/// A task that is aborted when dropped, so helpers end with the command on every path.
pub struct Background(tokio::task::JoinHandle<()>);

impl Background {
    pub fn spawn(future: impl std::future::Future<Output = ()> + Send + 'static) -> Background {
        Background(tokio::spawn(future))
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_parse_like_moby_term() {
        assert_eq!(detach_key_bytes("ctrl-p,ctrl-q").unwrap(), vec![16, 17]);
        assert_eq!(
            detach_key_bytes("a,ctrl-@,ctrl-_").unwrap(),
            vec![b'a', 0, 31]
        );
        assert_eq!(
            detach_key_bytes("foo").unwrap_err(),
            "Unknown character: 'foo'"
        );
        assert_eq!(resolve_detach_keys(""), vec![16, 17]);
    }

    #[test]
    fn escape_proxy_holds_back_and_releases() {
        let mut p = EscapeProxy {
            keys: vec![16, 17],
            matched: 0,
        };
        assert!(matches!(p.filter(&[16]), Filtered::Forward(v) if v.is_empty()));
        assert!(matches!(p.filter(b"x"), Filtered::Forward(v) if v == [16, b'x']));
        assert!(matches!(p.filter(&[16]), Filtered::Forward(v) if v.is_empty()));
        assert!(matches!(p.filter(&[17]), Filtered::Detach));
        assert!(matches!(p.filter(b"hello"), Filtered::Forward(v) if v == b"hello"));
    }

    #[test]
    fn demux_splits_frames_across_reads() {
        let mut frames = Vec::new();
        for (kind, text) in [(1u8, "out\n"), (2, "err\n"), (1, "more")] {
            frames.push(kind);
            frames.extend_from_slice(&[0, 0, 0]);
            frames.extend_from_slice(&(text.len() as u32).to_be_bytes());
            frames.extend_from_slice(text.as_bytes());
        }
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut d = Demux::default();
        for piece in frames.chunks(5) {
            d.feed(piece, &mut out, &mut err).unwrap();
        }
        assert_eq!(out, b"out\nmore");
        assert_eq!(err, b"err\n");
        let mut bad = Demux::default();
        assert!(bad
            .feed(&[3, 0, 0, 0, 0, 0, 0, 2, b'n', b'o'], &mut out, &mut err)
            .is_err());
    }
}
