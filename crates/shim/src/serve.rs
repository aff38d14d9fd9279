//! The shim's event loop: the container's and its execs' stdio, the socket's
//! connections, and SIGCHLD, all polled from one thread.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use berth_runtime::container::{self, Created, CreateOptions, ExecOptions};
use berth_shim_protocol::{from_line, frame_header, to_line, ExitRecord, Reply, Request, ShimConfig, Streams, STDERR, STDOUT};
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus};

use crate::io::{dev_null, read_some, ChildEnds, ProcessIo};
use crate::logs::Logger;
use crate::{failure_kind, redirect};

/// Output queued for a client past which the process's output is no longer read until
/// the client catches up (docker blocks the same way).
const CLIENT_BACKLOG: usize = 1 << 20;
/// Input queued for a process past which clients' input is no longer read.
const INPUT_BACKLOG: usize = 64 << 10;
/// How long output may keep flowing after init exited (a process that escaped the
/// container could hold the pipes open forever).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// How long attached clients get to take the last output before the shim leaves.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest request line (an exec's process with a large environment).
const MAX_REQUEST: usize = 1 << 20;

/// The container's init or one exec.
struct Proc {
    /// None for init, else the exec's id.
    exec: Option<String>,
    pid: i32,
    tty: bool,
    io: ProcessIo,
    status: Option<i32>,
    /// Set once the process exited and its output is drained.
    exit: Option<ExitRecord>,
    waiters: Vec<UnixStream>,
}

/// A connection that has not finished sending its request line.
struct Conn {
    stream: UnixStream,
    buf: Vec<u8>,
    done: bool,
}

/// An attached client: gets a process's output, may send its input.
struct Client {
    stream: UnixStream,
    exec: Option<String>,
    streams: Streams,
    tty: bool,
    out: Vec<u8>,
    input_ended: bool,
    /// How much of the detach sequence the input has matched so far.
    detach_matched: usize,
    /// The process is done: leave once `out` is written.
    closing: bool,
    gone: bool,
}

enum Slot {
    Signals,
    Listener,
    Conn(usize),
    Output(usize, u8),
    Input(usize),
    Client(usize),
}

pub struct Shim {
    config: ShimConfig,
    created: Option<Created>,
    procs: Vec<Proc>,
    log: Logger,
    listener: UnixListener,
    signals: SignalFd,
    conns: Vec<Conn>,
    clients: Vec<Client>,
    /// When init exited: the drain deadline starts then.
    init_exited_at: Option<Instant>,
    /// Whether init exited with the OOM killer at work (read before the cgroup goes).
    oom_killed: bool,
    /// When everything was recorded: clients then get FLUSH_TIMEOUT.
    finished_at: Option<Instant>,
    /// fd 2 as berthd gave it (the shim's own log), restored after the container's stdio
    /// borrowed it.
    diag: OwnedFd,
    buf: Vec<u8>,
}

fn now_nanos() -> i128 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos() as i128).unwrap_or(0)
}

fn exit_code(status: &WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(*code),
        WaitStatus::Signaled(_, sig, _) => Some(128 + *sig as i32),
        _ => None,
    }
}

fn send(stream: &mut UnixStream, reply: &Reply) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    let _ = stream.write_all(&to_line(reply));
}

fn error_reply(message: impl Into<String>) -> Reply {
    let message = message.into();
    let kind = failure_kind(&message);
    Reply::Error { message, kind }
}

/// Lends the process's ends to fds 0-2 for the duration of `f` (the runtime's children
/// inherit them), then points 0 and 1 back at /dev/null and 2 at the shim's log.
fn with_stdio<T>(ends: ChildEnds, diag: &OwnedFd, f: impl FnOnce() -> T) -> std::io::Result<T> {
    redirect(&ends.stdin, 0)?;
    redirect(&ends.stdout, 1)?;
    redirect(&ends.stderr, 2)?;
    drop(ends);
    let r = f();
    let null = dev_null()?;
    redirect(&null, 0)?;
    redirect(&null, 1)?;
    redirect(diag, 2)?;
    Ok(r)
}

/// Whether the container's cgroup saw the OOM killer at work.
fn oom_killed(root: &Path, id: &str) -> bool {
    let Ok((_, rec, _)) = container::load(root, id) else { return false };
    let Some(cg) = rec.cgroup else { return false };
    let killed = cg.paths().any(|dir| {
        ["memory.events", "memory.oom_control"].iter().any(|file| {
            std::fs::read_to_string(dir.join(file)).is_ok_and(|text| {
                text.lines().any(|l| l.strip_prefix("oom_kill ").and_then(|n| n.trim().parse::<u64>().ok()).is_some_and(|n| n > 0))
            })
        })
    });
    killed
}

/// Writes the exit record: temp file, rename. The caller syncs it afterwards, so that
/// berthd (which records the exit itself) does not wait for the disk.
fn write_exit_file(path: &Path, exit: &ExitRecord) -> std::io::Result<std::fs::File> {
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(&to_line(exit))?;
    std::fs::rename(&tmp, path)?;
    Ok(file)
}

fn sync_exit_file(file: std::fs::File, path: &Path) {
    let _ = file.sync_all();
    if let Some(dir) = path.parent().and_then(|d| std::fs::File::open(d).ok()) {
        let _ = dir.sync_all();
    }
}

impl Shim {
    /// Creates the container (not started) and binds the socket.
    pub fn create(config: ShimConfig) -> Result<Shim, String> {
        let mut blocked = SigSet::empty();
        for s in [Signal::SIGCHLD, Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
            blocked.add(s);
        }
        blocked.thread_block().map_err(|e| format!("block signals: {e}"))?;
        let signals = SignalFd::with_flags(&blocked, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC).map_err(|e| format!("signalfd: {e}"))?;
        // Processes the container leaves behind are reparented to us, and reaped.
        // SAFETY: prctl with integer arguments only.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };

        // Docker's default profile takes libseccomp ~15 ms to compile: once per host, then
        // from the cache.
        berth_runtime::seccomp::set_cache_dir(config.runtime_root.join(".seccomp-cache"));
        let diag = nix::unistd::dup(std::io::stderr().as_fd()).map_err(|e| format!("dup stderr: {e}"))?;
        nix::fcntl::fcntl(&diag, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC)).map_err(|e| format!("fcntl: {e}"))?;
        let log = Logger::open(&config)?;
        let (mut io, ends) = ProcessIo::new(config.stdin, config.tty).map_err(|e| format!("container stdio: {e}"))?;
        let opts = CreateOptions {
            root: &config.runtime_root,
            id: &config.id,
            bundle: &config.bundle,
            console_socket: None,
            pid_file: None,
            no_pivot: false,
            preserve_fds: 0,
            foreground: true,
        };
        let mut created = with_stdio(ends, &diag, || container::create(&opts))
            .map_err(|e| format!("container stdio: {e}"))?
            .map_err(|e| e.to_string())?;
        if config.tty {
            match created.take_console() {
                Ok(Some(master)) => io.set_terminal(master).map_err(|e| format!("terminal: {e}"))?,
                Ok(None) => {}
                Err(e) => {
                    let _ = container::delete(&config.runtime_root, &config.id, true);
                    return Err(format!("receiving the container's terminal: {e}"));
                }
            }
        }
        let _ = std::fs::remove_file(&config.socket);
        let listener = match UnixListener::bind(&config.socket) {
            Ok(l) => l,
            Err(e) => {
                let _ = container::delete(&config.runtime_root, &config.id, true);
                return Err(format!("listen on {}: {e}", config.socket.display()));
            }
        };
        let _ = listener.set_nonblocking(true);
        let init = Proc { exec: None, pid: created.pid, tty: config.tty, io, status: None, exit: None, waiters: vec![] };
        Ok(Shim {
            config,
            created: Some(created),
            procs: vec![init],
            log,
            listener,
            signals,
            conns: vec![],
            clients: vec![],
            init_exited_at: None,
            oom_killed: false,
            finished_at: None,
            diag,
            buf: vec![0; 64 << 10],
        })
    }

    pub fn init_pid(&self) -> i32 {
        self.procs[0].pid
    }

    fn backlogged(&self, exec: &Option<String>) -> bool {
        self.clients.iter().any(|c| !c.gone && &c.exec == exec && c.out.len() > CLIENT_BACKLOG)
    }

    pub fn run(&mut self) -> ! {
        loop {
            if let Some(done) = self.finished_at {
                let flushed = self.clients.iter().all(|c| c.gone || (c.closing && c.out.is_empty()));
                if flushed || done.elapsed() > FLUSH_TIMEOUT {
                    let _ = std::fs::remove_file(&self.config.socket);
                    std::process::exit(0);
                }
            }
            let mut slots = vec![Slot::Signals];
            let mut polled: Vec<(i32, PollFlags)> = vec![(self.signals.as_raw_fd(), PollFlags::POLLIN)];
            if self.finished_at.is_none() {
                slots.push(Slot::Listener);
                polled.push((self.listener.as_raw_fd(), PollFlags::POLLIN));
            }
            for (i, c) in self.conns.iter().enumerate() {
                slots.push(Slot::Conn(i));
                polled.push((c.stream.as_raw_fd(), PollFlags::POLLIN));
            }
            for (i, p) in self.procs.iter().enumerate() {
                if !self.backlogged(&p.exec) {
                    for (stream, fd) in [(STDOUT, &p.io.stdout), (STDERR, &p.io.stderr), (STDOUT, &p.io.terminal)] {
                        if let Some(fd) = fd {
                            slots.push(Slot::Output(i, stream));
                            polled.push((fd.as_raw_fd(), PollFlags::POLLIN));
                        }
                    }
                }
                if !p.io.input.is_empty() {
                    if let Some(fd) = p.io.input_fd() {
                        slots.push(Slot::Input(i));
                        polled.push((fd.as_raw_fd(), PollFlags::POLLOUT));
                    }
                }
            }
            for (i, c) in self.clients.iter().enumerate() {
                if c.gone {
                    continue;
                }
                let mut flags = PollFlags::empty();
                if !c.out.is_empty() {
                    flags |= PollFlags::POLLOUT;
                }
                let input_full = self.proc_index(&c.exec).is_some_and(|p| self.procs[p].io.input.len() > INPUT_BACKLOG);
                if !c.input_ended && !input_full {
                    flags |= PollFlags::POLLIN;
                }
                slots.push(Slot::Client(i));
                polled.push((c.stream.as_raw_fd(), flags));
            }
            let timeout = if self.init_exited_at.is_some() || self.finished_at.is_some() { 100u16 } else { u16::MAX };
            let mut fds: Vec<PollFd> = polled
                .iter()
                // SAFETY: every fd polled is owned by `self` and stays open during the poll.
                .map(|(fd, flags)| PollFd::new(unsafe { std::os::fd::BorrowedFd::borrow_raw(*fd) }, *flags))
                .collect();
            let timeout = if timeout == u16::MAX { PollTimeout::NONE } else { PollTimeout::from(timeout) };
            match nix::poll::poll(&mut fds, timeout) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => {
                    self.diag(&format!("poll: {e}"));
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            let ready: Vec<(usize, PollFlags)> =
                fds.iter().enumerate().filter_map(|(i, f)| f.revents().filter(|r| !r.is_empty()).map(|r| (i, r))).collect();
            drop(fds);
            for (i, revents) in ready {
                match slots[i] {
                    Slot::Signals => self.on_signals(),
                    Slot::Listener => self.accept(),
                    Slot::Conn(c) => self.on_conn(c),
                    Slot::Output(p, stream) => self.on_output(p, stream),
                    Slot::Input(p) => {
                        self.procs[p].io.flush_input();
                    }
                    Slot::Client(c) => self.on_client(c, revents),
                }
            }
            self.conns.retain(|c| !c.done);
            self.clients.retain(|c| !c.gone);
            self.progress();
        }
    }

    fn diag(&self, message: &str) {
        let _ = nix::unistd::write(&self.diag, format!("berth-shim {}: {message}\n", self.config.id).as_bytes());
    }

    fn proc_index(&self, exec: &Option<String>) -> Option<usize> {
        self.procs.iter().position(|p| &p.exec == exec)
    }

    fn on_signals(&mut self) {
        while let Ok(Some(_)) = self.signals.read_signal() {}
        loop {
            match nix::sys::wait::waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(status) => {
                    let (Some(pid), Some(code)) = (status.pid(), exit_code(&status)) else { continue };
                    if let Some(p) = self.procs.iter().position(|p| p.pid == pid.as_raw() && p.status.is_none()) {
                        self.procs[p].status = Some(code);
                        if p == 0 {
                            self.init_exited();
                        }
                    }
                }
            }
        }
    }

    /// Init is gone: everything else in the container dies now (which closes the pipes
    /// it shared), and the runtime's state and cgroup go.
    fn init_exited(&mut self) {
        self.init_exited_at = Some(Instant::now());
        self.oom_killed = oom_killed(&self.config.runtime_root, &self.config.id);
        if let Err(e) = container::delete(&self.config.runtime_root, &self.config.id, true) {
            self.diag(&format!("delete: {e}"));
        }
    }

    fn accept(&mut self) {
        while let Ok((stream, _)) = self.listener.accept() {
            let _ = stream.set_nonblocking(true);
            self.conns.push(Conn { stream, buf: vec![], done: false });
        }
    }

    /// Reads a connection's request line; handles it once complete.
    fn on_conn(&mut self, i: usize) {
        let conn = &mut self.conns[i];
        let mut byte = [0u8; 4096];
        loop {
            // A client sends nothing after its request line until it has the reply, so
            // this cannot read past the line.
            match conn.stream.read(&mut byte) {
                Ok(0) => {
                    conn.done = true;
                    return;
                }
                Ok(n) => {
                    conn.buf.extend_from_slice(&byte[..n]);
                    if conn.buf.ends_with(b"\n") {
                        break;
                    }
                    if conn.buf.len() > MAX_REQUEST {
                        send(&mut conn.stream, &error_reply("request too long"));
                        conn.done = true;
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    conn.done = true;
                    return;
                }
            }
        }
        conn.done = true;
        let line = std::mem::take(&mut conn.buf);
        let stream = match conn.stream.try_clone() {
            Ok(s) => s,
            Err(_) => return,
        };
        match from_line::<Request>(&line) {
            Ok(request) => {
                let one_off = matches!(request, Request::Start | Request::Exec { .. } | Request::Update { .. });
                self.handle(request, stream);
                if one_off {
                    crate::shed_memory();
                }
            }
            Err(e) => {
                let mut stream = stream;
                send(&mut stream, &error_reply(format!("invalid request: {e}")));
            }
        }
    }

    fn handle(&mut self, request: Request, mut stream: UnixStream) {
        let root = self.config.runtime_root.clone();
        let id = self.config.id.clone();
        let reply = match request {
            Request::Start => match self.created.as_mut() {
                Some(created) => match created.start() {
                    Ok(()) => {
                        self.created = None;
                        Reply::Ok
                    }
                    Err(e) => error_reply(e.to_string()),
                },
                None => error_reply("container already started"),
            },
            Request::Wait => {
                match &self.procs[0].exit {
                    Some(exit) => send(&mut stream, &Reply::Exited(exit.clone())),
                    None => self.procs[0].waiters.push(stream),
                }
                return;
            }
            Request::ExecWait { id } => {
                match self.proc_index(&Some(id.clone())) {
                    Some(p) => match &self.procs[p].exit {
                        Some(exit) => send(&mut stream, &Reply::Exited(exit.clone())),
                        None => self.procs[p].waiters.push(stream),
                    },
                    None => send(&mut stream, &error_reply(format!("no such exec: {id}"))),
                }
                return;
            }
            Request::Kill { signal, all } => match container::kill(&root, &id, signal, all) {
                Ok(()) => Reply::Ok,
                Err(e) => error_reply(e.to_string()),
            },
            Request::Attach(streams) => {
                if self.procs[0].exit.is_some() {
                    send(&mut stream, &error_reply("container has exited"));
                    return;
                }
                send(&mut stream, &Reply::Ok);
                self.add_client(stream, None, streams);
                return;
            }
            Request::Resize { exec, height, width } => match self.proc_index(&exec) {
                Some(p) => match self.procs[p].io.resize(height, width) {
                    Ok(()) => Reply::Ok,
                    Err(e) => error_reply(format!("resize: {e}")),
                },
                None => error_reply("no such process"),
            },
            Request::CloseStdin => {
                self.procs[0].io.close_input = true;
                self.procs[0].io.flush_input();
                Reply::Ok
            }
            Request::Pause => container::pause(&root, &id).map_or_else(|e| error_reply(e.to_string()), |()| Reply::Ok),
            Request::Resume => container::resume(&root, &id).map_or_else(|e| error_reply(e.to_string()), |()| Reply::Ok),
            Request::Update { resources } => match serde_json::from_value(resources) {
                Ok(r) => container::update(&root, &id, &r).map_or_else(|e| error_reply(e.to_string()), |()| Reply::Ok),
                Err(e) => error_reply(format!("invalid resources: {e}")),
            },
            Request::Exec { id: exec_id, process, tty, streams } => {
                match self.exec(&exec_id, process, tty, streams.stdin) {
                    Ok(pid) => {
                        send(&mut stream, &Reply::Started { pid });
                        self.add_client(stream, Some(exec_id), streams);
                    }
                    Err(e) => send(&mut stream, &error_reply(e)),
                }
                return;
            }
        };
        send(&mut stream, &reply);
    }

    fn exec(&mut self, exec_id: &str, process: serde_json::Value, tty: bool, stdin: bool) -> Result<i32, String> {
        if self.procs[0].status.is_some() || self.created.is_some() {
            return Err(format!("container {} is not running", self.config.id));
        }
        if self.proc_index(&Some(exec_id.to_string())).is_some() {
            return Err(format!("exec {exec_id} already started"));
        }
        let process: oci_spec::runtime::Process = serde_json::from_value(process).map_err(|e| format!("invalid process: {e}"))?;
        let (mut io, ends) = ProcessIo::new(stdin, tty).map_err(|e| format!("exec stdio: {e}"))?;
        let opts = ExecOptions {
            root: &self.config.runtime_root,
            id: &self.config.id,
            process,
            console_socket: None,
            pid_file: None,
            detach: false,
            preserve_fds: 0,
        };
        let exec = with_stdio(ends, &self.diag, || container::exec(opts)).map_err(|e| format!("exec stdio: {e}"))?.map_err(|e| e.to_string())?;
        if let Some(master) = exec.console {
            io.set_terminal(master).map_err(|e| format!("terminal: {e}"))?;
        }
        self.procs.push(Proc { exec: Some(exec_id.to_string()), pid: exec.pid, tty, io, status: None, exit: None, waiters: vec![] });
        Ok(exec.pid)
    }

    fn add_client(&mut self, stream: UnixStream, exec: Option<String>, streams: Streams) {
        let _ = stream.set_nonblocking(true);
        let tty = self.proc_index(&exec).is_some_and(|p| self.procs[p].tty);
        let input_ended = !streams.stdin;
        self.clients.push(Client { stream, exec, streams, tty, out: vec![], input_ended, detach_matched: 0, closing: false, gone: false });
    }

    fn on_output(&mut self, p: usize, stream: u8) {
        let proc = &mut self.procs[p];
        let fd = match (stream, proc.tty) {
            (_, true) => &mut proc.io.terminal,
            (STDOUT, false) => &mut proc.io.stdout,
            _ => &mut proc.io.stderr,
        };
        let Some(f) = fd else { return };
        let n = match read_some(f, &mut self.buf) {
            None => {
                *fd = None;
                return;
            }
            Some(0) => return,
            Some(n) => n,
        };
        let data = &self.buf[..n];
        if proc.exec.is_none() {
            self.log.write(stream, data);
        }
        for c in self.clients.iter_mut().filter(|c| !c.gone && c.exec == proc.exec) {
            let wanted = if c.tty { c.streams.stdout || c.streams.stderr } else if stream == STDOUT { c.streams.stdout } else { c.streams.stderr };
            if !wanted {
                continue;
            }
            if !c.tty {
                c.out.extend_from_slice(&frame_header(stream, n));
            }
            c.out.extend_from_slice(data);
            flush_client(c);
        }
    }

    fn on_client(&mut self, i: usize, revents: PollFlags) {
        if revents.contains(PollFlags::POLLOUT) {
            flush_client(&mut self.clients[i]);
        }
        if revents.intersects(PollFlags::POLLIN | PollFlags::POLLHUP) && !self.clients[i].input_ended {
            self.client_input(i);
        }
        if revents.intersects(PollFlags::POLLERR) || (revents.contains(PollFlags::POLLHUP) && self.clients[i].input_ended) {
            self.clients[i].gone = true;
        }
    }

    /// Moves a client's input to its process, watching for the detach keys.
    fn client_input(&mut self, i: usize) {
        let n = match self.clients[i].stream.read(&mut self.buf) {
            Ok(0) | Err(_) => {
                self.clients[i].input_ended = true;
                let c = &self.clients[i];
                if c.streams.stdin {
                    if let Some(p) = self.proc_index(&c.exec) {
                        // An exec's stdin always ends with its client's; the container's
                        // only with stdin_once (`run -i`, `attach` of such a container).
                        if c.exec.is_some() || self.config.stdin_once {
                            self.procs[p].io.close_input = true;
                            self.procs[p].io.flush_input();
                        }
                    }
                }
                return;
            }
            Ok(n) => n,
        };
        let c = &mut self.clients[i];
        if !c.streams.stdin {
            return;
        }
        let Some(p) = self.procs.iter().position(|p| p.exec == c.exec) else { return };
        let keys = &c.streams.detach_keys;
        let mut out = Vec::with_capacity(n);
        for &b in &self.buf[..n] {
            if !keys.is_empty() && b == keys[c.detach_matched] {
                c.detach_matched += 1;
                if c.detach_matched == keys.len() {
                    // Detached: the client leaves, the process keeps running.
                    c.gone = true;
                    break;
                }
                continue;
            }
            if c.detach_matched > 0 {
                out.extend_from_slice(&keys[..c.detach_matched]);
                c.detach_matched = 0;
            }
            out.push(b);
        }
        let io = &mut self.procs[p].io;
        if io.input_fd().is_some() {
            io.input.extend_from_slice(&out);
            io.flush_input();
        }
    }

    /// Records exits whose output is drained, answers waiters, and after init: cleans
    /// up the container and prepares to leave.
    fn progress(&mut self) {
        let drain_expired = self.init_exited_at.is_some_and(|t| t.elapsed() > DRAIN_TIMEOUT);
        for p in 0..self.procs.len() {
            let proc = &mut self.procs[p];
            let Some(code) = proc.status else { continue };
            if proc.exit.is_some() {
                continue;
            }
            if !proc.io.outputs_done() && !drain_expired {
                continue;
            }
            let oom = proc.exec.is_none() && self.oom_killed;
            let exit = ExitRecord { code, finished_at: now_nanos(), oom_killed: oom };
            proc.io = ProcessIo::default();
            proc.exit = Some(exit.clone());
            if proc.exec.is_none() {
                self.log.finish();
                let file = write_exit_file(&self.config.exit_file, &exit);
                if let Err(e) = &file {
                    self.diag(&format!("writing {}: {e}", self.config.exit_file.display()));
                }
                for mut w in std::mem::take(&mut self.procs[p].waiters) {
                    send(&mut w, &Reply::Exited(exit.clone()));
                }
                if let Ok(file) = file {
                    sync_exit_file(file, &self.config.exit_file);
                }
                // Every exec died with the container.
                for c in self.clients.iter_mut() {
                    c.closing = true;
                }
                self.finished_at = Some(Instant::now());
            } else {
                let exec = proc.exec.clone();
                for mut w in std::mem::take(&mut proc.waiters) {
                    send(&mut w, &Reply::Exited(exit.clone()));
                }
                for c in self.clients.iter_mut().filter(|c| c.exec == exec) {
                    c.closing = true;
                }
            }
        }
        for c in self.clients.iter_mut() {
            if c.closing && c.out.is_empty() {
                let _ = c.stream.shutdown(std::net::Shutdown::Both);
                c.gone = true;
            }
        }
        if self.init_exited_at.is_some() && self.procs[0].exit.is_none() && drain_expired {
            self.diag("output still open after init exited; giving up on it");
        }
    }
}

/// Writes what the client can take now; a client that cannot be written to is gone.
fn flush_client(c: &mut Client) {
    while !c.out.is_empty() {
        match c.stream.write(&c.out) {
            Ok(n) => {
                c.out.drain(..n);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => {
                c.out.clear();
                c.gone = true;
                return;
            }
        }
    }
}
