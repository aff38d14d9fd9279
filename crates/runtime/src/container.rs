//! Container lifecycle as the runtime's caller sees it: create, start, run, exec, kill,
//! delete, pause, resume, state. Each operation locks the container's state dir.

use crate::error::{Error, Result};
use crate::init::{self, ExecContext, InitContext};
use crate::spec;
use crate::state::{self, Dir, OciState, Record, Status};
use crate::sync::{self, Channel, Tag};
use crate::{hooks, namespaces, seccomp, terminal};
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxNamespaceType, Process, Spec};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub struct CreateOptions<'a> {
    pub root: &'a Path,
    pub id: &'a str,
    pub bundle: &'a Path,
    pub console_socket: Option<&'a Path>,
    pub pid_file: Option<&'a Path>,
    pub no_pivot: bool,
    pub preserve_fds: i32,
    /// `run` in the foreground: the caller stays the parent and starts it over the channel.
    pub foreground: bool,
}

/// A created container whose caller still holds the channel (foreground `run`).
pub struct Created {
    pub pid: i32,
    pub record: Record,
    channel: Channel,
    /// Our end of the console when `run` has a terminal and no console socket.
    console: Option<OwnedFd>,
}

/// Undoes a half-made container when creation fails at any step.
struct Undo<'a> {
    dir: &'a Dir,
    cgroup: Option<berth_cgroups::Cgroup>,
    pid: Option<i32>,
    armed: bool,
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(pid) = self.pid {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(Pid::from_raw(pid), None);
        }
        if let Some(cg) = &self.cgroup {
            kill_all_in(cg);
            let _ = cg.destroy();
        }
        let _ = self.dir.remove();
    }
}

/// Kills init when `create` fails after cloning it. Declared after the sync channel, so
/// it drops first: init dies before it can see the channel close, take that for an error
/// of its own and print it next to ours. `Undo` then reaps it and cleans up.
struct KillFirst(Option<i32>);

impl Drop for KillFirst {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

/// clone with fork semantics (the child runs on a copy of our stack); returns 0 in the
/// child. With `cgroup`, clone3 puts the child straight into that cgroup v2 directory,
/// which spares the global lock a later write to cgroup.procs would take.
fn clone_process(flags: CloneFlags, cgroup: Option<&OwnedFd>) -> Result<i32> {
    if let Some(dir) = cgroup {
        #[repr(C)]
        #[derive(Default)]
        struct CloneArgs {
            flags: u64,
            pidfd: u64,
            child_tid: u64,
            parent_tid: u64,
            exit_signal: u64,
            stack: u64,
            stack_size: u64,
            tls: u64,
            set_tid: u64,
            set_tid_size: u64,
            cgroup: u64,
        }
        const CLONE_INTO_CGROUP: u64 = 0x200000000;
        let args = CloneArgs {
            flags: flags.bits() as u64 | CLONE_INTO_CGROUP,
            // With CLONE_PARENT the kernel takes the exit signal from the parent and
            // refuses any other value.
            exit_signal: if flags.contains(CloneFlags::CLONE_PARENT) { 0 } else { libc::SIGCHLD as u64 },
            cgroup: std::os::fd::AsRawFd::as_raw_fd(dir) as u64,
            ..Default::default()
        };
        // SAFETY: as for clone below; args outlives the call and its size is passed.
        let r = unsafe { libc::syscall(libc::SYS_clone3, &args as *const CloneArgs, std::mem::size_of::<CloneArgs>()) };
        if r < 0 {
            return Err(Error::Sys { op: format!("clone3({flags:?}) into the container's cgroup"), source: std::io::Error::last_os_error() });
        }
        return Ok(r as i32);
    }
    // SAFETY: without CLONE_VM the child gets its own copy of the address space, like
    // fork; we are single-threaded, so no lock can be held by a vanished thread.
    let r = unsafe { libc::syscall(libc::SYS_clone, flags.bits() as libc::c_long | libc::SIGCHLD as libc::c_long, 0, 0, 0, 0) };
    if r < 0 {
        return Err(Error::Sys { op: format!("clone({flags:?})"), source: std::io::Error::last_os_error() });
    }
    Ok(r as i32)
}

/// Moves the calling (single-threaded) process into the v1 hierarchies of `cg` by writing
/// "0" to each `tasks` file: moving only oneself skips the global threadgroup lock that a
/// write of a pid to cgroup.procs takes, which costs a whole RCU grace period.
pub(crate) fn join_cgroup_v1(cg: &berth_cgroups::Cgroup) -> Result<()> {
    let v2 = cg.v2_path();
    for dir in cg.paths().filter(|p| Some(*p) != v2) {
        let tasks = dir.join("tasks");
        std::fs::write(&tasks, "0").map_err(|e| Error::io("join cgroup", &tasks, e))?;
    }
    Ok(())
}

/// The v2 directory of `cg`, opened for clone3(CLONE_INTO_CGROUP).
fn v2_dir(cg: &berth_cgroups::Cgroup) -> Result<Option<OwnedFd>> {
    cg.v2_path()
        .map(|p| {
            nix::fcntl::open(p, nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC, nix::sys::stat::Mode::empty())
                .map_err(|e| Error::path("open", p, e))
        })
        .transpose()
}

fn owner() -> String {
    let uid = nix::unistd::geteuid();
    nix::unistd::User::from_uid(uid).ok().flatten().map(|u| u.name).unwrap_or_else(|| uid.to_string())
}

fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    crate::fsutil::write_atomic(path, pid.to_string().as_bytes())
}

fn write_id_map(pid: i32, file: &str, maps: &[oci_spec::runtime::LinuxIdMapping]) -> Result<()> {
    let text: String = maps.iter().map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size())).collect();
    let path = format!("/proc/{pid}/{file}");
    std::fs::write(&path, text).map_err(|e| Error::io("write id mapping", path, e))
}

/// Creates a container: everything up to (not including) running the user's program.
pub fn create(opts: &CreateOptions) -> Result<Created> {
    state::validate_id(opts.id)?;
    let mut bundle = spec::load_bundle(opts.bundle)?;
    if opts.foreground && opts.console_socket.is_none() {
        if let Some(process) = bundle.spec.process_mut() {
            inherit_console_size(process);
        }
    }
    let spec = &bundle.spec;
    let linux = spec.linux().as_ref().ok_or_else(|| Error::InvalidSpec("linux: is required".into()))?;
    let process = spec.process().as_ref().ok_or_else(|| Error::InvalidSpec("process: is required".into()))?;
    let terminal = process.terminal().unwrap_or(false);
    if terminal && opts.console_socket.is_none() && !opts.foreground {
        return Err(Error::InvalidSpec("process.terminal is true: --console-socket is required".into()));
    }
    if !terminal && opts.console_socket.is_some() {
        return Err(Error::InvalidSpec("--console-socket given but process.terminal is false".into()));
    }
    // Compile seccomp before anything exists on disk: its errors are the user's.
    let filter = linux.seccomp().as_ref().map(seccomp::compile).transpose()?;

    let dir = Dir::create(opts.root, opts.id)?;
    let _lock = dir.lock()?;
    let mut undo = Undo { dir: &dir, cgroup: None, pid: None, armed: true };

    if !opts.foreground {
        nix::unistd::mkfifo(&dir.fifo(), nix::sys::stat::Mode::from_bits_truncate(0o622))
            .map_err(|e| Error::path("mkfifo", dir.fifo(), e))?;
        // mkfifo applies the umask; init may run as any user (or in a user namespace)
        // and must be able to open the fifo for writing.
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.fifo(), std::fs::Permissions::from_mode(0o622))
                .map_err(|e| Error::io("chmod", dir.fifo(), e))?;
        }
    }
    let cgroup = berth_cgroups::Cgroup::resolve(linux.cgroups_path().as_deref(), opts.id)?;
    dir.save_cgroup(&cgroup)?;
    cgroup.create()?;
    undo.cgroup = Some(cgroup.clone());
    cgroup.apply(&with_default_devices(linux))?;

    let (console_ours, console_child) = match (terminal, opts.console_socket) {
        (false, _) => (None, None),
        (true, Some(path)) => (None, Some(terminal::connect(path)?)),
        (true, None) => {
            let (a, b) = sync::pair()?;
            (Some(a.0), Some(b.0))
        }
    };
    let fifo_dir = if opts.foreground {
        None
    } else {
        Some(
            nix::fcntl::open(&dir.path, nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC, nix::sys::stat::Mode::empty())
                .map_err(|e| Error::path("open", &dir.path, e))?,
        )
    };

    let namespaces = linux.namespaces().as_deref().unwrap_or_default();
    let is_new = |t: LinuxNamespaceType| namespaces.iter().any(|n| n.typ() == t && n.path().is_none());
    // Cgroup and time namespaces are unshared by init itself: the first after it joined
    // its cgroup, the second because clone() cannot take CLONE_NEWTIME.
    let mut clone_flags = CloneFlags::empty();
    for ns in namespaces.iter().filter(|n| n.path().is_none()) {
        if !matches!(ns.typ(), LinuxNamespaceType::Cgroup | LinuxNamespaceType::Time) {
            clone_flags |= namespaces::clone_flag(ns.typ());
        }
    }
    let mut joins: Vec<_> = namespaces.iter().filter(|n| n.path().is_some()).collect();
    joins.sort_by_key(|n| namespaces::join_order(n.typ()));

    let (parent_ch, child_ch) = sync::pair()?;
    let mut kill_first = KillFirst(None);
    let ctx = InitContext {
        bundle: &bundle,
        channel: child_ch,
        console: console_child,
        fifo_dir,
        no_pivot: opts.no_pivot,
        preserve_fds: opts.preserve_fds,
        seccomp: filter.as_ref(),
        new_user: is_new(LinuxNamespaceType::User),
        new_cgroupns: is_new(LinuxNamespaceType::Cgroup),
        new_time: is_new(LinuxNamespaceType::Time),
        cgroup: &cgroup,
    };
    let cgroup_v2 = v2_dir(&cgroup)?;

    let pid = if joins.is_empty() {
        let pid = clone_process(clone_flags, cgroup_v2.as_ref())?;
        if pid == 0 {
            drop(parent_ch);
            init::run(ctx);
        }
        pid
    } else {
        // Joining namespaces by path needs a process to do the setns calls; it then
        // clones init (as our child, CLONE_PARENT) and reports the pid.
        let mid = clone_process(CloneFlags::empty(), None)?;
        if mid == 0 {
            drop(parent_ch);
            let r = (|| -> Result<i32> {
                for ns in &joins {
                    let path = ns.path().as_ref().map(PathBuf::as_path).unwrap_or(Path::new(""));
                    let fd = nix::fcntl::open(path, nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC, nix::sys::stat::Mode::empty())
                        .map_err(|e| Error::path("open namespace", path, e))?;
                    nix::sched::setns(&fd, namespaces::clone_flag(ns.typ()))
                        .map_err(|e| Error::path("join namespace", path, e))?;
                }
                clone_process(clone_flags | CloneFlags::CLONE_PARENT, cgroup_v2.as_ref())
            })();
            match r {
                Ok(0) => init::run(ctx),
                other => report_clone(&ctx.channel, other),
            }
        }
        drop(ctx);
        recv_pid(&parent_ch, mid)?
    };
    undo.pid = Some(pid);
    kill_first.0 = Some(pid);
    // clone3 put init in the v2 cgroup; it joins the v1 hierarchies itself.
    if is_new(LinuxNamespaceType::User) {
        write_id_map(pid, "uid_map", linux.uid_mappings().as_deref().unwrap_or_default())?;
        write_id_map(pid, "gid_map", linux.gid_mappings().as_deref().unwrap_or_default())?;
    }
    if let Some(adj) = process.oom_score_adj() {
        let path = format!("/proc/{pid}/oom_score_adj");
        std::fs::write(&path, adj.to_string()).map_err(|e| Error::io("set oom_score_adj", path, e))?;
    }
    let record = Record {
        id: opts.id.to_string(),
        pid,
        pid_start: state::process_start_time(pid).unwrap_or(0),
        bundle: bundle.dir.clone(),
        rootfs: bundle.rootfs.clone(),
        created: state::now_rfc3339(),
        owner: owner(),
        cgroup: Some(cgroup.clone()),
        config: bundle.spec.clone(),
    };
    let state_json = serde_json::to_vec(&record.oci_state(Status::Creating)).unwrap_or_default();
    parent_ch.send(Tag::Go, &state_json)?;
    loop {
        match parent_ch.recv()? {
            Some((Tag::HooksRequest, _)) => {
                #[allow(deprecated)]
                if let Some(h) = spec.hooks() {
                    hooks::run("prestart", h.prestart().as_deref().unwrap_or_default(), &state_json)?;
                    hooks::run("createRuntime", h.create_runtime().as_deref().unwrap_or_default(), &state_json)?;
                }
                parent_ch.send(Tag::HooksDone, &[])?;
            }
            Some((Tag::Created, _)) => break,
            Some((Tag::Error, msg)) => return Err(Error::Other(String::from_utf8_lossy(&msg).into_owned())),
            Some((t, _)) => return Err(Error::Other(format!("sync: unexpected {t:?} from init"))),
            None => return Err(Error::Other("container init exited during setup".into())),
        }
    }
    dir.save(&record)?;
    if let Some(p) = opts.pid_file {
        write_pid_file(p, pid)?;
    }
    undo.armed = false;
    kill_first.0 = None;
    drop(undo);
    Ok(Created { pid, record, channel: parent_ch, console: console_ours })
}

/// The spec's resources plus the device rules every container needs (as runc adds):
/// mknod of anything, the default devices, ptys, and the spec's own devices.
fn with_default_devices(linux: &oci_spec::runtime::Linux) -> oci_spec::runtime::LinuxResources {
    use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType as T};
    let mut res = linux.resources().clone().unwrap_or_default();
    let mut rules = res.devices().clone().unwrap_or_default();
    let rule = |typ: T, major: Option<i64>, minor: Option<i64>, access: &str| {
        let mut r = LinuxDeviceCgroup::default();
        r.set_allow(true);
        r.set_typ(Some(typ));
        r.set_major(major);
        r.set_minor(minor);
        r.set_access(Some(access.to_string()));
        r
    };
    rules.push(rule(T::C, None, None, "m"));
    rules.push(rule(T::B, None, None, "m"));
    for (major, minor) in [(1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 1), (5, 2)] {
        rules.push(rule(T::C, Some(major), Some(minor), "rwm"));
    }
    rules.push(rule(T::C, Some(136), None, "rwm"));
    // Fifos (type p) are not devices to the devices controller: no rule for them.
    for d in linux.devices().as_deref().unwrap_or_default().iter().filter(|d| d.typ() != T::P) {
        let typ = if d.typ() == oci_spec::runtime::LinuxDeviceType::U { T::C } else { d.typ() };
        rules.push(rule(typ, Some(d.major()), Some(d.minor()), "rwm"));
    }
    res.set_devices(Some(rules));
    res
}

/// Runs poststart hooks; per the spec their failure is only a warning.
fn poststart(rec: &Record) {
    if let Some(h) = rec.config.hooks() {
        let state_json = serde_json::to_vec(&rec.oci_state(Status::Running)).unwrap_or_default();
        if let Err(e) = hooks::run("poststart", h.poststart().as_deref().unwrap_or_default(), &state_json) {
            tracing::warn!("{e}");
        }
    }
}

impl Created {
    /// Lets a foreground container run its program; returns once it has exec'd.
    pub fn start(&mut self) -> Result<()> {
        self.channel.send(Tag::Start, &[])?;
        match self.channel.recv()? {
            None => {}
            Some((Tag::Error, msg)) => return Err(Error::Other(String::from_utf8_lossy(&msg).into_owned())),
            Some((t, _)) => return Err(Error::Other(format!("sync: unexpected {t:?} from init"))),
        }
        poststart(&self.record);
        Ok(())
    }

    /// Our end of the terminal, received from init (terminal without console socket).
    pub fn take_console(&mut self) -> Result<Option<OwnedFd>> {
        match self.console.take() {
            Some(sock) => terminal::recv_master(&sock).map(Some),
            None => Ok(None),
        }
    }
}

/// Starts a created container: releases init from the exec fifo.
pub fn start(root: &Path, id: &str) -> Result<()> {
    let dir = Dir::open(root, id)?;
    let _lock = dir.lock()?;
    let rec = dir.load()?;
    let status = rec.status(&dir);
    if status != Status::Created {
        return Err(Error::WrongState { id: id.into(), status: status.to_string(), action: "start", wanted: "created" });
    }
    let fifo = dir.fifo();
    let fd = nix::fcntl::open(&fifo, nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_NONBLOCK | nix::fcntl::OFlag::O_CLOEXEC, nix::sys::stat::Mode::empty())
        .map_err(|e| Error::path("open", &fifo, e))?;
    // Init writes one byte, runs the startContainer hooks, then execs, which closes its
    // (close-on-exec) end: read to EOF so poststart runs after the user's program started.
    let mut released = false;
    loop {
        let mut fds = [nix::poll::PollFd::new(fd.as_fd(), nix::poll::PollFlags::POLLIN)];
        match nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(100u16)) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => {
                if !rec.init_alive() {
                    if released {
                        break;
                    }
                    return Err(Error::Other(format!("container {id:?}: init exited before start")));
                }
            }
            Ok(_) => {
                let mut b = [0u8; 1];
                match nix::unistd::read(&fd, &mut b) {
                    Ok(1) => released = true,
                    Ok(_) if released => break,
                    Ok(_) => return Err(Error::Other(format!("container {id:?}: init exited before start"))),
                    Err(nix::errno::Errno::EAGAIN) => continue,
                    Err(e) => return Err(Error::path("read", &fifo, e)),
                }
            }
            Err(e) => return Err(Error::path("poll", &fifo, e)),
        }
    }
    let _ = std::fs::remove_file(&fifo);
    poststart(&rec);
    Ok(())
}

/// Loads a container and its current status.
pub fn load(root: &Path, id: &str) -> Result<(Dir, Record, Status)> {
    let dir = Dir::open(root, id)?;
    let rec = dir.load()?;
    let status = rec.status(&dir);
    Ok((dir, rec, status))
}

pub fn state(root: &Path, id: &str) -> Result<OciState> {
    let (_, rec, status) = load(root, id)?;
    Ok(rec.oci_state(status))
}

/// Sends `sig` to init, or with `all` to every process in the container's cgroup.
pub fn kill(root: &Path, id: &str, sig: i32, all: bool) -> Result<()> {
    let (_, rec, status) = load(root, id)?;
    if status == Status::Stopped {
        return Err(Error::WrongState { id: id.into(), status: status.to_string(), action: "kill", wanted: "running" });
    }
    let send = |pid: i32| {
        // SAFETY: kill with integer arguments.
        if unsafe { libc::kill(pid, sig) } != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::ESRCH) {
                return Err(Error::Sys { op: format!("kill {pid} with signal {sig}"), source: e });
            }
        }
        Ok(())
    };
    match (&rec.cgroup, all) {
        (Some(cg), true) => {
            for pid in cg.pids()? {
                send(pid)?;
            }
            if status == Status::Paused && sig == libc::SIGKILL {
                let _ = cg.thaw();
            }
            Ok(())
        }
        _ => send(rec.pid),
    }
}

fn wait_gone(rec: &Record, timeout: Duration) -> bool {
    let until = Instant::now() + timeout;
    while rec.init_alive() {
        if Instant::now() > until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    true
}

/// SIGKILLs everything in `cg` (thawing it first) until it is empty, for up to ~100 ms.
fn kill_all_in(cg: &berth_cgroups::Cgroup) {
    for round in 0..50 {
        let pids = cg.pids().unwrap_or_default();
        if pids.is_empty() {
            return;
        }
        if round == 0 {
            // A frozen process cannot act on SIGKILL.
            let _ = cg.thaw();
        }
        for p in pids {
            let _ = nix::sys::signal::kill(Pid::from_raw(p), Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Deletes a container: stopped ones always, created ones by killing init, running or
/// paused ones only with `force`.
pub fn delete(root: &Path, id: &str, force: bool) -> Result<()> {
    let dir = Dir::at(root, id)?;
    let not_found = || if force { Ok(()) } else { Err(Error::NotFound(id.into())) };
    // The lock waits out a create in progress (it holds the lock until state is written).
    let _lock = match dir.lock() {
        Ok(l) => l,
        Err(Error::Path { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => return not_found(),
        Err(e) => return Err(e),
    };
    let rec = match dir.load() {
        Ok(rec) => rec,
        Err(Error::NotFound(_)) => {
            // A create killed before it wrote state leaves its dir, maybe a cgroup with
            // a half-made init in it: undo all of that.
            if let Some(cg) = dir.unfinished_cgroup() {
                kill_all_in(&cg);
                cg.destroy()?;
            }
            dir.remove()?;
            return not_found();
        }
        Err(e) => return Err(e),
    };
    let status = rec.status(&dir);
    match status {
        Status::Running | Status::Paused if !force => {
            return Err(Error::WrongState { id: id.into(), status: status.to_string(), action: "delete", wanted: "stopped (or use --force)" })
        }
        _ => {}
    }
    if let Some(cg) = &rec.cgroup {
        // With a shared pid namespace, init's death does not take the rest with it.
        kill_all_in(cg);
    }
    if rec.init_alive() {
        let _ = nix::sys::signal::kill(Pid::from_raw(rec.pid), Signal::SIGKILL);
        wait_gone(&rec, Duration::from_secs(5));
    }
    if let Some(cg) = &rec.cgroup {
        cg.destroy()?;
    }
    if let Some(h) = rec.config.hooks() {
        let state_json = serde_json::to_vec(&rec.oci_state(Status::Stopped)).unwrap_or_default();
        if let Err(e) = hooks::run("poststop", h.poststop().as_deref().unwrap_or_default(), &state_json) {
            tracing::warn!("{e}");
        }
    }
    dir.remove()
}

pub fn pause(root: &Path, id: &str) -> Result<()> {
    let (dir, rec, status) = load(root, id)?;
    let _lock = dir.lock()?;
    if status != Status::Running {
        return Err(Error::WrongState { id: id.into(), status: status.to_string(), action: "pause", wanted: "running" });
    }
    Ok(rec.cgroup.as_ref().ok_or_else(|| Error::Other("container has no cgroup".into()))?.freeze()?)
}

pub fn resume(root: &Path, id: &str) -> Result<()> {
    let (dir, rec, status) = load(root, id)?;
    let _lock = dir.lock()?;
    if status != Status::Paused {
        return Err(Error::WrongState { id: id.into(), status: status.to_string(), action: "resume", wanted: "paused" });
    }
    Ok(rec.cgroup.as_ref().ok_or_else(|| Error::Other("container has no cgroup".into()))?.thaw()?)
}

/// Applies new resource limits and records them in the state.
pub fn update(root: &Path, id: &str, resources: &oci_spec::runtime::LinuxResources) -> Result<()> {
    let (dir, mut rec, status) = load(root, id)?;
    let _lock = dir.lock()?;
    if status == Status::Stopped {
        return Err(Error::WrongState { id: id.into(), status: status.to_string(), action: "update", wanted: "running" });
    }
    let cg = rec.cgroup.as_ref().ok_or_else(|| Error::Other("container has no cgroup".into()))?;
    cg.apply(resources)?;
    if let Some(linux) = rec.config.linux_mut() {
        linux.set_resources(Some(merge_resources(linux.resources().clone().unwrap_or_default(), resources)));
    }
    dir.save(&rec)
}

// Keeps previously set limits that the update does not mention.
fn merge_resources(
    old: oci_spec::runtime::LinuxResources,
    new: &oci_spec::runtime::LinuxResources,
) -> oci_spec::runtime::LinuxResources {
    let mut out = old;
    if new.memory().is_some() {
        out.set_memory(*new.memory());
    }
    if new.cpu().is_some() {
        out.set_cpu(new.cpu().clone());
    }
    if new.pids().is_some() {
        out.set_pids(*new.pids());
    }
    if new.block_io().is_some() {
        out.set_block_io(new.block_io().clone());
    }
    if new.hugepage_limits().is_some() {
        out.set_hugepage_limits(new.hugepage_limits().clone());
    }
    if new.unified().is_some() {
        out.set_unified(new.unified().clone());
    }
    out
}

pub struct ExecOptions<'a> {
    pub root: &'a Path,
    pub id: &'a str,
    pub process: Process,
    pub console_socket: Option<&'a Path>,
    pub pid_file: Option<&'a Path>,
    pub detach: bool,
    pub preserve_fds: i32,
}

/// A process started in a running container by `exec`.
pub struct Exec {
    pub pid: i32,
    /// Our end of the terminal when the process has one and no console socket was given.
    pub console: Option<OwnedFd>,
}

/// Starts `opts.process` inside the container's namespaces and cgroup.
pub fn exec(opts: ExecOptions) -> Result<Exec> {
    let (_, rec, status) = load(opts.root, opts.id)?;
    if status != Status::Running && status != Status::Created {
        return Err(Error::WrongState { id: opts.id.into(), status: status.to_string(), action: "exec", wanted: "running" });
    }
    spec::validate_process(&opts.process, "process")?;
    let mut opts = opts;
    if !opts.detach && opts.console_socket.is_none() {
        inherit_console_size(&mut opts.process);
    }
    let linux = rec.config.linux().as_ref().ok_or_else(|| Error::InvalidSpec("linux: is required".into()))?;
    let filter = linux.seccomp().as_ref().map(seccomp::compile).transpose()?;
    let terminal = opts.process.terminal().unwrap_or(false);
    let (console_ours, console_child) = match (terminal, opts.console_socket) {
        (false, _) => (None, None),
        (true, Some(path)) => (None, Some(terminal::connect(path)?)),
        (true, None) if !opts.detach => {
            let (a, b) = sync::pair()?;
            (Some(a.0), Some(b.0))
        }
        (true, None) => return Err(Error::InvalidSpec("exec with a terminal and --detach needs --console-socket".into())),
    };
    // A pidfd pins the process: setns through it cannot hit a recycled pid.
    let pidfd = crate::process::pidfd_open(rec.pid).map_err(|e| Error::Sys { op: format!("pidfd_open {}", rec.pid), source: e })?;
    if !rec.init_alive() {
        return Err(Error::WrongState { id: opts.id.into(), status: "stopped".into(), action: "exec", wanted: "running" });
    }
    let mut flags = CloneFlags::empty();
    for ns in linux.namespaces().as_deref().unwrap_or_default() {
        flags |= namespaces::clone_flag(ns.typ());
    }
    let (parent_ch, child_ch) = sync::pair()?;
    let ctx = ExecContext {
        process: &opts.process,
        channel: child_ch,
        console: console_child,
        preserve_fds: opts.preserve_fds,
        seccomp: filter.as_ref(),
    };
    let cgroup_v2 = match &rec.cgroup {
        Some(cg) => v2_dir(cg)?,
        None => None,
    };
    let mid = clone_process(CloneFlags::empty(), cgroup_v2.as_ref())?;
    if mid == 0 {
        drop(parent_ch);
        enter_container_and_clone(rec.cgroup.as_ref(), &pidfd, flags, ctx);
    }
    drop(ctx);
    let pid = recv_pid(&parent_ch, mid)?;
    let started = (|| -> Result<()> {
        if let Some(adj) = opts.process.oom_score_adj() {
            let path = format!("/proc/{pid}/oom_score_adj");
            std::fs::write(&path, adj.to_string()).map_err(|e| Error::io("set oom_score_adj", path, e))?;
        }
        parent_ch.send(Tag::Go, &[])?;
        match parent_ch.recv()? {
            None => Ok(()),
            Some((Tag::Error, msg)) => Err(Error::Other(String::from_utf8_lossy(&msg).into_owned())),
            Some((t, _)) => Err(Error::Other(format!("sync: unexpected {t:?} from exec process"))),
        }
    })();
    if let Err(e) = started {
        let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(Pid::from_raw(pid), None);
        return Err(e);
    }
    if let Some(p) = opts.pid_file {
        write_pid_file(p, pid)?;
    }
    let console = match console_ours {
        Some(sock) => Some(terminal::recv_master(&sock)?),
        None => None,
    };
    Ok(Exec { pid, console })
}

/// The intermediate process of `exec`: enter the cgroup and namespaces, then clone the
/// process to run (CLONE_PARENT makes it the runtime's child, inside the pid namespace).
fn enter_container_and_clone(cgroup: Option<&berth_cgroups::Cgroup>, pidfd: &OwnedFd, flags: CloneFlags, ctx: ExecContext) -> ! {
    crate::process::set_undumpable();
    let r = (|| -> Result<i32> {
        // execCPUAffinity.initial applies before the move into the container's cgroup.
        if let Some(cpus) = ctx.process.exec_cpu_affinity().as_ref().and_then(|a| a.initial().clone()) {
            crate::process::set_affinity(&cpus, "process.execCPUAffinity.initial")?;
        }
        if let Some(cg) = cgroup {
            join_cgroup_v1(cg)?;
        }
        nix::sched::setns(pidfd, flags).map_err(|e| Error::sys("join container namespaces", e))?;
        clone_process(CloneFlags::CLONE_PARENT, None)
    })();
    match r {
        Ok(0) => init::run_exec(ctx),
        other => report_clone(&ctx.channel, other),
    }
}

/// In an intermediate process: tell the runtime the pid it cloned (or why it could
/// not), then exit.
fn report_clone(channel: &Channel, r: Result<i32>) -> ! {
    match r {
        Ok(child) => {
            let _ = channel.send(Tag::Pid, &child.to_le_bytes());
            init::exit(0)
        }
        Err(e) => {
            let _ = channel.send(Tag::Error, e.to_string().as_bytes());
            init::exit(1)
        }
    }
}

/// The runtime's side of `report_clone`: reaps the intermediate, returns the pid.
fn recv_pid(channel: &Channel, intermediate: i32) -> Result<i32> {
    let r = channel.expect(Tag::Pid);
    let _ = nix::sys::wait::waitpid(Pid::from_raw(intermediate), None);
    let bytes = r?;
    bytes
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .map(i32::from_le_bytes)
        .ok_or_else(|| Error::Other("sync: bad pid".into()))
}

/// A terminal the runtime owns starts with the caller's window size (unless the spec sets
/// one): init sets it when it makes the pty, so the program never sees a 0x0 terminal
/// while the size is still being copied over.
fn inherit_console_size(process: &mut oci_spec::runtime::Process) {
    if process.terminal() != Some(true) || process.console_size().is_some() {
        return;
    }
    if let Some((rows, cols)) = crate::foreground::window_size(0) {
        let size = oci_spec::runtime::BoxBuilder::default().height(u64::from(rows)).width(u64::from(cols)).build().ok();
        process.set_console_size(size);
    }
}

/// Waits for a foreground process (our child), forwarding signals to it and proxying its
/// terminal if we hold one. Returns its exit code (128+signal when killed).
pub fn wait_foreground(pid: i32, console: Option<OwnedFd>) -> Result<i32> {
    crate::foreground::wait(pid, console)
}

/// Blocks the signals that `wait_foreground` forwards; call before create/exec so none
/// is lost in between. Children clear the mask before exec.
pub fn block_signals() -> Result<()> {
    crate::foreground::block_signals()
}

/// Used by `list`: all containers under `root` with their status.
pub fn list(root: &Path) -> Result<Vec<(Record, Status)>> {
    let mut out = vec![];
    for id in state::list_ids(root)? {
        if let Ok((_, rec, status)) = load(root, &id) {
            out.push((rec, status));
        }
    }
    Ok(out)
}

/// The container's process ids (for `ps`).
pub fn pids(root: &Path, id: &str) -> Result<Vec<i32>> {
    let (_, rec, _) = load(root, id)?;
    match &rec.cgroup {
        Some(cg) => Ok(cg.pids()?),
        None => Ok(vec![]),
    }
}

/// One-shot resource statistics (for `events --stats`).
pub fn stats(root: &Path, id: &str) -> Result<berth_cgroups::Stats> {
    let (_, rec, status) = load(root, id)?;
    if status == Status::Stopped {
        return Err(Error::WrongState { id: id.into(), status: status.to_string(), action: "events", wanted: "running" });
    }
    Ok(rec.cgroup.as_ref().ok_or_else(|| Error::Other("container has no cgroup".into()))?.stats()?)
}

/// The spec a container was created from.
pub fn config(root: &Path, id: &str) -> Result<Spec> {
    Ok(load(root, id)?.1.config)
}
